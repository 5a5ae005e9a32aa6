package steps

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"

	"github.com/nix-frontend/nix-frontend/nix/nixlog"
)

// BuildRequest realises one derivation's outputs in the shared store.
type BuildRequest struct {
	Name    string            `json:"name"`    // "hello-2.12", for messages
	DrvPath string            `json:"drvPath"` //
	Outputs map[string]string `json:"outputs"` // output name → store path
	// System is the derivation's Nix system. One the build host is not
	// becomes an extra platform, which Nix builds through the host's
	// emulators (QEMU binfmt) or remote builders.
	System string `json:"system,omitempty"`
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
	System  string            `json:"system,omitempty"`
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
	System  string
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
			msg += ": " + m
			break
		}
	}
	if hint := platformHint(e.System, e.Errors); hint != "" {
		msg += "\n" + hint
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
	if req.System != "" {
		allowSystem(req.System)
	}
	dec := nixlog.NewDecoder(stderr)
	// The indirect GC root keeps the outputs while the step runs and stops
	// Nix warning that there is none.
	err := nixCmd(ctx, nil, io.Discard, dec, "nix-store", "--realise", "--log-format", "internal-json",
		"--add-root", filepath.Join(os.TempDir(), "nix-frontend-result"), req.DrvPath)
	dec.Close()
	if err != nil {
		sum := dec.Summary()
		return &BuildFailedError{Name: req.Name, DrvPath: req.DrvPath, System: req.System, Failed: sum.Failed, Errors: sum.Errors}
	}
	res := BuildResult{DrvPath: req.DrvPath, System: req.System, Outputs: req.Outputs}
	res.Closure, err = pathInfos(ctx, res.OutputPaths())
	if err != nil {
		return err
	}
	if err := os.MkdirAll(req.Out, 0o755); err != nil {
		return err
	}
	return writeJSON(filepath.Join(req.Out, ResultFile), res)
}

// allowSystem lets Nix build derivations for system on this host, adding it
// to extra-platforms after whatever NIX_CONFIG says.
func allowSystem(system string) {
	if system == HostSystem() {
		return
	}
	os.Setenv("NIX_CONFIG", os.Getenv("NIX_CONFIG")+"\nextra-platforms = "+system)
}

// HostSystem is the Nix system of the machine the helper runs on.
func HostSystem() string {
	switch runtime.GOARCH {
	case "amd64":
		return "x86_64-linux"
	case "arm64":
		return "aarch64-linux"
	case "arm":
		return "armv7l-linux"
	case "386":
		return "i686-linux"
	default:
		return runtime.GOARCH + "-linux"
	}
}

// platformHint explains failures that come from building for a system the
// BuildKit host cannot run.
func platformHint(system string, errs []string) string {
	if system == "" || system == HostSystem() {
		return ""
	}
	for _, m := range errs {
		if strings.Contains(m, "Exec format error") || strings.Contains(m, "is required to build") {
			return fmt.Sprintf("this BuildKit host (%s) cannot run %s programs: register QEMU emulators on the host "+
				"(docker run --privileged --rm tonistiigi/binfmt --install all), or give Nix a remote builder for %s "+
				"with builders = ... in the NIX_CONFIG build argument", HostSystem(), system, system)
		}
	}
	return ""
}
