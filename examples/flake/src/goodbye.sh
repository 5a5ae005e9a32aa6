#!/bin/sh
echo "goodbye, ${1:-world}!"
