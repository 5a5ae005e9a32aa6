package steps

import (
	"fmt"
	"os"
	"strings"

	"github.com/nix-community/go-nix/pkg/derivation"
)

// drvGraph is the derivations of a build closure, read from their .drv
// files with go-nix's parser: no Nix command prints them the same way on
// every version.
type drvGraph map[string]*derivation.Derivation

// readDrvs parses the .drv files among paths (a closure from drvClosure).
func readDrvs(paths []string) (drvGraph, error) {
	g := drvGraph{}
	for _, p := range paths {
		if !strings.HasSuffix(p, ".drv") {
			continue
		}
		f, err := os.Open(p)
		if err != nil {
			return nil, err
		}
		d, err := derivation.ReadDerivation(f)
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("reading %s: %w", p, err)
		}
		g[p] = d
	}
	return g, nil
}

// fixedOutput says whether a derivation is fixed-output: a download, whose
// builder Nix gives the network because the result is checked against a
// hash known in advance.
func fixedOutput(d *derivation.Derivation) bool {
	o, ok := d.Outputs["out"]
	return ok && len(d.Outputs) == 1 && o.HashAlgorithm != ""
}

// fixedOutputs returns the fixed-output derivations of a closure.
func fixedOutputs(closure []string) ([]string, error) {
	g, err := readDrvs(closure)
	if err != nil {
		return nil, err
	}
	var out []string
	for p, d := range g {
		if fixedOutput(d) {
			out = append(out, p)
		}
	}
	return out, nil
}

// outputPaths are the store paths of a derivation's outputs (input-addressed
// and fixed-output derivations know them in advance).
func outputPaths(d *derivation.Derivation) []string {
	var out []string
	for _, o := range d.Outputs {
		if o.Path != "" {
			out = append(out, o.Path)
		}
	}
	return out
}
