package steps

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/nix-frontend/nix-frontend/nix/nixlog"
)

// BuildRequest realises one derivation's outputs in the shared store.
type BuildRequest struct {
	Name    string            `json:"name"`    // "hello-2.12", for messages
	DrvPath string            `json:"drvPath"` //
	Outputs map[string]string `json:"outputs"` // output name → store path
	// DrvClosure is the evaluation step's export of the .drv closure,
	// imported when the store does not have the derivation.
	DrvClosure string `json:"drvClosure"`
	Out        string `json:"out"`
}

// Command implements Request.
func (BuildRequest) Command() string { return "build" }

// BuildResult is what a build step writes to ResultFile.
type BuildResult struct {
	DrvPath string            `json:"drvPath"`
	Outputs map[string]string `json:"outputs"`
	// Closure is the runtime closure of the outputs.
	Closure []PathInfo `json:"closure"`
}

// OutputPaths returns the outputs' store paths, sorted.
func (r BuildResult) OutputPaths() []string {
	var out []string
	for _, p := range r.Outputs {
		out = append(out, p)
	}
	sort.Strings(out)
	return out
}

// BuildFailedError is a derivation that did not build.
type BuildFailedError struct {
	Name    string
	DrvPath string
	Failed  []string // derivations whose builders failed
	Errors  []string // Nix's error messages
}

func (e *BuildFailedError) Error() string {
	msg := fmt.Sprintf("building %s failed", e.Name)
	if len(e.Failed) > 0 && (len(e.Failed) > 1 || e.Failed[0] != e.DrvPath) {
		var names []string
		for _, f := range e.Failed {
			names = append(names, nixlog.DrvName(f))
		}
		msg += fmt.Sprintf(" (its dependency %s failed)", strings.Join(names, ", "))
	}
	// Nix's first error says what broke; later ones are consequences
	// ("1 dependencies ... failed") and hints.
	for _, m := range e.Errors {
		if m = strings.TrimSpace(m); m != "" && !strings.HasPrefix(m, "(use '--show-trace'") {
			return msg + ": " + m
		}
	}
	return msg
}

// Build realises a derivation, printing Nix's log as readable lines on
// stderr, and writes the outputs' closure to req.Out.
func Build(ctx context.Context, req BuildRequest, stderr io.Writer) error {
	if err := requireNix(); err != nil {
		return err
	}
	if missing := missingPaths([]string{req.DrvPath}); len(missing) > 0 {
		if err := importDrvs(ctx, []string{req.DrvClosure}, stderr); err != nil {
			return err
		}
	}
	dec := nixlog.NewDecoder(stderr)
	// The indirect GC root keeps the outputs while the step runs and stops
	// Nix warning that there is none.
	err := nixCmd(ctx, nil, io.Discard, dec, "nix-store", "--realise", "--log-format", "internal-json",
		"--add-root", filepath.Join(os.TempDir(), "nix-frontend-result"), req.DrvPath)
	dec.Close()
	if err != nil {
		sum := dec.Summary()
		return &BuildFailedError{Name: req.Name, DrvPath: req.DrvPath, Failed: sum.Failed, Errors: sum.Errors}
	}
	res := BuildResult{DrvPath: req.DrvPath, Outputs: req.Outputs}
	res.Closure, err = pathInfos(ctx, res.OutputPaths())
	if err != nil {
		return err
	}
	if err := os.MkdirAll(req.Out, 0o755); err != nil {
		return err
	}
	return writeJSON(filepath.Join(req.Out, ResultFile), res)
}
