package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/nix-frontend/nix-frontend/nix/protocol"
	"github.com/nix-frontend/nix-frontend/nix/steps"
)

// helper is a command build steps run. Each reads its request from
// protocol.RequestFile.
type helper struct {
	name string
	help string
	run  func(ctx context.Context, req []byte) error
}

// step adapts a step function to its request file.
func step[R protocol.Request](fn func(context.Context, R, io.Writer) error) func(context.Context, []byte) error {
	return func(ctx context.Context, dt []byte) error {
		req, err := protocol.Decode[R](dt)
		if err != nil {
			return err
		}
		return fn(ctx, req, os.Stderr)
	}
}

var helpers = []helper{
	{"eval", "evaluate INSTALL lines to derivations (network, credentials)", step(steps.Eval)},
	{"fetch", "substitute and download what a build needs (network, credentials)", step(steps.Fetch)},
	{"build", "build derivations in the shared store (no network, no credentials)", step(steps.Build)},
	{"layer", "copy store paths into a layer, checked against Nix's database", step(steps.Layer)},
	{"links", "write the link tree of installed store paths", step(steps.Links)},
	{"unpack", "split an image tarball Nix built into its layers", step(steps.Unpack)},
	{"push", "sign and upload store paths to a Nix binary cache", step(steps.Push)},
	{"sbom", "write the SPDX document of built closures", step(steps.SBOM)},
	{"report", "print the report a failed step left", printReport},
}

func findHelper(name string) (helper, bool) {
	for _, h := range helpers {
		if h.name == name {
			return h, true
		}
	}
	return helper{}, false
}

// runHelper runs a helper command inside a build step. A failure leaves a
// report for the frontend (protocol.Report) and exits with the report's
// code.
func runHelper(ctx context.Context, args []string) int {
	h, ok := findHelper(args[0])
	if !ok {
		usage()
		return 2
	}
	if h.name == "report" {
		if len(args) != 2 {
			usage()
			return 2
		}
		if err := h.run(ctx, []byte(args[1])); err != nil {
			fmt.Fprintf(os.Stderr, "nix-frontend: %v\n", err)
			return 1
		}
		return 0
	}
	req, err := os.ReadFile(protocol.RequestFile)
	if err != nil {
		fmt.Fprintf(os.Stderr, "nix-frontend: %s runs inside build steps, which give it %s: %v\n", h.name, protocol.RequestFile, err)
		return 2
	}
	digest := protocol.Digest(req)
	// A report from an earlier failure of the same request is stale.
	os.Remove(filepath.Join(protocol.ReportDir, protocol.ReportName(digest)))
	err = h.run(ctx, req)
	if err == nil {
		return 0
	}
	code, rep := steps.Report(err)
	fmt.Fprintf(os.Stderr, "nix-frontend: %v\n", err)
	if werr := writeReport(digest, rep); werr != nil {
		fmt.Fprintf(os.Stderr, "nix-frontend: writing the report: %v\n", werr)
	}
	return code
}

// writeReport leaves a failed step's report in the reports cache mount.
func writeReport(digest string, rep protocol.Report) error {
	dt, err := json.Marshal(rep)
	if err != nil {
		return err
	}
	p := filepath.Join(protocol.ReportDir, protocol.ReportName(digest))
	tmp := p + fmt.Sprintf(".%d", os.Getpid())
	if err := os.WriteFile(tmp, dt, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, p)
}

// printReport copies the report of the step with the given request digest
// into the step's output, for the frontend to read.
func printReport(_ context.Context, digest []byte) error {
	name := protocol.ReportName(filepath.Base(string(digest)))
	dt, err := os.ReadFile(filepath.Join(protocol.ReportDir, name))
	if os.IsNotExist(err) {
		dt, err = json.Marshal(protocol.Report{})
	}
	if err != nil {
		return err
	}
	if err := os.MkdirAll(protocol.OutDir, 0o755); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(protocol.OutDir, protocol.ReportFile), dt, 0o644)
}

func helperUsage() string {
	s := ""
	for _, h := range helpers {
		s += fmt.Sprintf("  %-8s %s\n", h.name, h.help)
	}
	return s
}
