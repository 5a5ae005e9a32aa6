package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"

	"github.com/nix-frontend/nix-frontend/nix/steps"
)

// helpers are the commands build steps run. Each reads its request as JSON
// (see package steps) from $NIX_FRONTEND_REQUEST; the argument after the
// command is a label for people reading the process list or an error.
var helpers = map[string]struct {
	help string
	run  func(ctx context.Context, arg []byte) error
}{
	"eval": {"evaluate INSTALL lines to derivations", func(ctx context.Context, arg []byte) error {
		var req steps.EvalRequest
		if err := json.Unmarshal(arg, &req); err != nil {
			return err
		}
		return steps.Eval(ctx, req, os.Stderr)
	}},
	"build": {"build one derivation in the shared store", func(ctx context.Context, arg []byte) error {
		var req steps.BuildRequest
		if err := json.Unmarshal(arg, &req); err != nil {
			return err
		}
		return steps.Build(ctx, req, os.Stderr)
	}},
	"push": {"sign and upload a closure to a Nix binary cache", func(ctx context.Context, arg []byte) error {
		var req steps.PushRequest
		if err := json.Unmarshal(arg, &req); err != nil {
			return err
		}
		return steps.Push(ctx, req, os.Stderr)
	}},
	"export": {"copy a closure out of the store and write the link tree", func(ctx context.Context, arg []byte) error {
		var req steps.ExportRequest
		if err := json.Unmarshal(arg, &req); err != nil {
			return err
		}
		return steps.Export(ctx, req, os.Stderr)
	}},
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
	for _, name := range []string{"eval", "build", "export", "push"} {
		s += fmt.Sprintf("  %-8s %s\n", name, helpers[name].help)
	}
	return s
}
