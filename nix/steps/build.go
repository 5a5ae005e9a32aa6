package steps

import (
	"context"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"github.com/nix-frontend/nix-frontend/nix/imagearchive"
	"github.com/nix-frontend/nix-frontend/nix/nixlog"
	"github.com/nix-frontend/nix-frontend/nix/protocol"
	"github.com/nix-frontend/nix-frontend/nix/storepath"
	"github.com/nix-frontend/nix-frontend/nix/system"
)

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
			names = append(names, storepath.DrvName(f))
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
	if hint := timeoutHint(e.Errors); hint != "" {
		msg += "\n" + hint
	}
	if hint := platformHint(e.System, e.Errors); hint != "" {
		msg += "\n" + hint
	}
	return msg
}

func names(paths []string) []string {
	out := make([]string, 0, len(paths))
	for _, p := range paths {
		out = append(out, storepath.DrvName(p))
	}
	return out
}

// Build realises derivations without the network and without the build's
// credentials (the frontend gives the step neither), as build users, and
// writes each job's BuildResult.
func Build(ctx context.Context, req protocol.BuildRequest, stderr io.Writer) error {
	if err := requireNix(); err != nil {
		return err
	}
	if err := useBuildUsers(); err != nil {
		return err
	}
	// Builders have no network: asking binary caches would only fail.
	addNixConfig("substituters =")
	var drvs []string
	systems := map[string]bool{}
	for _, j := range req.Jobs {
		if err := importDrvs(ctx, []string{j.DrvPath}, drvInput(j.DrvPath), stderr); err != nil {
			return err
		}
		drvs = append(drvs, j.DrvPath)
		if j.System != "" && j.System != system.Host() && !systems[j.System] {
			// Nix builds other systems through the host's emulators (QEMU
			// binfmt) or remote builders.
			systems[j.System] = true
			addNixConfig("extra-platforms = " + j.System)
		}
	}
	targets := drvs
	if len(req.Drvs) > 0 {
		targets = req.Drvs
	}
	if req.Fetched {
		if err := checkFetched(ctx, targets); err != nil {
			return err
		}
	}
	if req.Network != "" {
		fmt.Fprintf(stderr, "nix-frontend: builders have the network (INSTALL --network=%s)\n", req.Network)
	}
	dec := nixlog.NewDecoder(stderr)
	// The indirect GC root keeps the outputs while the step runs and stops
	// Nix warning that there is none.
	args := append([]string{"--realise", "--log-format", "internal-json", "--add-root", filepath.Join(os.TempDir(), "nix-frontend-result")}, targets...)
	err := nixCmd(ctx, nil, io.Discard, dec, "nix-store", args...)
	dec.Close()
	if err != nil {
		return buildFailed(dec.Summary(), req.Jobs, req.Drvs)
	}
	if len(req.Drvs) > 0 {
		return os.MkdirAll(protocol.OutDir, 0o755)
	}
	for _, j := range req.Jobs {
		if err := writeResult(ctx, j, req.ImageArchive); err != nil {
			return err
		}
	}
	return nil
}

// writeResult writes a job's outputs and their closure.
func writeResult(ctx context.Context, j protocol.BuildJob, imageArchive bool) error {
	res := protocol.BuildResult{DrvPath: j.DrvPath, Outputs: j.Outputs}
	outs := slices.Sorted(maps.Values(j.Outputs))
	var err error
	if res.Closure, err = pathInfos(ctx, outs); err != nil {
		return err
	}
	paths := make([]string, len(res.Closure))
	for i, p := range res.Closure {
		paths[i] = p.Path
	}
	res.LayerSteps = layerSteps(paths, protocol.LayerRecordsDir)
	if imageArchive && len(outs) == 1 {
		res.ImageArchive = imagearchive.IsArchive(outs[0])
	}
	if err := res.Validate(); err != nil {
		return err
	}
	return writeJSON(filepath.Join(protocol.OutDir, protocol.ResultDir, j.Key+".json"), res)
}

// buildFailed says what did not build: the derivations other than jobs
// the step realised, or the job whose derivation Nix reports failed (the
// first job when it names none of them: a dependency failed).
func buildFailed(sum nixlog.Summary, jobs []protocol.BuildJob, others []string) error {
	e := &BuildFailedError{Failed: sum.Failed, Errors: sum.Errors}
	switch {
	case len(others) > 0:
		e.Name = strings.Join(names(others), ", ")
	case len(jobs) > 0:
		e.Name, e.DrvPath, e.System = jobs[0].Name, jobs[0].DrvPath, jobs[0].System
		for _, j := range jobs {
			if slices.Contains(sum.Failed, j.DrvPath) {
				e.Name, e.DrvPath, e.System = j.Name, j.DrvPath, j.System
			}
		}
	}
	return e
}

// checkFetched makes sure the store has what the job's fetch step fetched:
// when realising would have to download (a fixed-output derivation is not
// built), the store lost it since, and the fetch must run again.
func checkFetched(ctx context.Context, targets []string) error {
	plan, err := dryRun(ctx, targets...)
	if err != nil {
		return err
	}
	var lost []string
	for _, d := range plan.build {
		g, err := readDrvs([]string{d})
		if err != nil {
			return err
		}
		if fixedOutput(g[d]) {
			lost = append(lost, outputPaths(g[d])...)
		}
	}
	if len(lost) > 0 {
		return &StoreLostError{Missing: lost}
	}
	return nil
}

// Timeouts across Nix versions (colours removed):
//
//	building of '/nix/store/…-x.drv' timed out after 5 seconds
//	building of '/nix/store/…-x.drv' timed out after 5 seconds of silence
//	… (newer:) Reason: timed out after 5 seconds [of silence].
var reTimedOut = regexp.MustCompile(`timed out after (\d+) seconds( of silence)?`)

// timeoutHint names the Nix setting that ended a build.
func timeoutHint(errs []string) string {
	for _, m := range errs {
		if sm := reTimedOut.FindStringSubmatch(m); sm != nil {
			setting := "timeout"
			if sm[2] != "" {
				setting = "max-silent-time"
			}
			return fmt.Sprintf("Nix stopped the build after %s seconds (%s = %s in the NIX_CONFIG build argument or the Nix image's nix.conf); raise it if the build needs longer", sm[1], setting, sm[1])
		}
	}
	return ""
}

// platformHint explains failures that come from building for a system the
// BuildKit host cannot run.
func platformHint(sys string, errs []string) string {
	if sys == "" || sys == system.Host() {
		return ""
	}
	for _, m := range errs {
		if strings.Contains(m, "Exec format error") || strings.Contains(m, "is required to build") {
			return fmt.Sprintf("this BuildKit host (%s) cannot run %s programs: register QEMU emulators on the host "+
				"(docker run --privileged --rm tonistiigi/binfmt --install all), or give Nix a remote builder for %s "+
				"with builders = ... in the NIX_CONFIG build argument", system.Host(), sys, sys)
		}
	}
	return ""
}
