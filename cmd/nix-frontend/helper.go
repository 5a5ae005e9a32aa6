package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"

	"github.com/nix-frontend/nix-frontend/nix/steps"
)

// helper is a command build steps run. Each reads its request as JSON (see
// package steps) from $NIX_FRONTEND_REQUEST; the argument after the command
// is a label for people reading the process list or an error.
type helper struct {
	help string
	run  func(ctx context.Context, req []byte) error
}

// step adapts a step function to its JSON request.
func step[R steps.Request](fn func(context.Context, R, io.Writer) error) func(context.Context, []byte) error {
	return func(ctx context.Context, dt []byte) error {
		var req R
		if err := json.Unmarshal(dt, &req); err != nil {
			return fmt.Errorf("reading the %s request: %w", req.Command(), err)
		}
		return fn(ctx, req, os.Stderr)
	}
}

var helperOrder = []string{"eval", "build", "export", "push"}

var helpers = map[string]helper{
	"eval":   {"evaluate INSTALL lines to derivations", step(steps.Eval)},
	"build":  {"build one derivation in the shared store", step(steps.Build)},
	"export": {"copy a closure out of the store and write the link tree", step(steps.Export)},
	"push":   {"sign and upload a closure to a Nix binary cache", step(steps.Push)},
}

func runHelper(ctx context.Context, args []string) int {
	h, ok := helpers[args[0]]
	req := os.Getenv(steps.RequestEnv)
	if !ok || req == "" {
		usage()
		return 2
	}
	if err := h.run(ctx, []byte(req)); err != nil {
		fmt.Fprintf(os.Stderr, "nix-frontend: %v\n", err)
		return 1
	}
	return 0
}

func helperUsage() string {
	s := ""
	for _, name := range helperOrder {
		s += fmt.Sprintf("  %-8s %s\n", name, helpers[name].help)
	}
	return s
}
