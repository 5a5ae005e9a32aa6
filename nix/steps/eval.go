package steps

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"

	"github.com/nix-frontend/nix-frontend/nix/evaljobs"
)

// EvalRequest evaluates a stage's INSTALL lines, one evaljobs.Request each.
type EvalRequest struct {
	Installs []evaljobs.Request `json:"installs"`
	Out      string             `json:"out"`
}

// Command implements Request.
func (EvalRequest) Command() string { return "eval" }

// EvalResult is one INSTALL line's jobs, one per installable, in order.
type EvalResult struct {
	Jobs []evaljobs.Job `json:"jobs"`
	// Evaluator says which evaluator ran: "nix-eval-jobs" or "nix".
	Evaluator string `json:"evaluator"`
}

// Eval evaluates every INSTALL line, writes the jobs to JobsFile and, for
// every derivation, its .drv closure to DrvDir/<drv>/closure: the build
// steps import it when the /nix cache mount no longer has it.
func Eval(ctx context.Context, req EvalRequest, stderr io.Writer) error {
	if err := requireNix(); err != nil {
		return err
	}
	evalJobs, useEvalJobs := lookNixEvalJobs()
	var results []EvalResult
	drvs := map[string]bool{}
	for _, r := range req.Installs {
		var lines bytes.Buffer
		res := EvalResult{Evaluator: "nix"}
		if r.File != "" {
			if _, err := os.Stat(r.File); err != nil {
				res.Jobs = missingFileJobs(r)
				results = append(results, res)
				continue
			}
		}
		if !r.Pure() && !r.Impure {
			// Lock flake references so flakes evaluate purely, as `nix
			// build` does; file mode is impure like nix-build.
			locked, err := evaljobs.LockRequest(ctx, "", r, nil)
			if err == nil {
				r = locked
			} else if hasFlake(r) {
				// The evaluation below reports the same problem on the
				// installable, where the user can see which one it is.
				fmt.Fprintf(stderr, "nix-frontend: %v\n", err)
			}
		}
		if useEvalJobs {
			res.Evaluator = "nix-eval-jobs"
			args, err := evaljobs.NixEvalJobsArgs(r)
			if err != nil {
				return err
			}
			cmd := exec.CommandContext(ctx, evalJobs, args...)
			cmd.Stdout, cmd.Stderr = &lines, stderr
			// nix-eval-jobs exits non-zero when a job failed; the lines
			// say which, and MatchJobs reports what is missing.
			if err := cmd.Run(); err != nil {
				fmt.Fprintf(stderr, "nix-frontend: nix-eval-jobs: %v\n", err)
			}
		} else if err := evaljobs.Evaluate(ctx, "", r, nil, &lines); err != nil {
			return err
		}
		jobs, err := evaljobs.ReadJobs(&lines)
		if err != nil {
			return fmt.Errorf("reading %s output: %w", res.Evaluator, err)
		}
		res.Jobs = evaljobs.MatchJobs(r, jobs)
		for _, j := range res.Jobs {
			if j.Error == "" && j.DrvPath != "" {
				drvs[j.DrvPath] = true
			}
		}
		results = append(results, res)
	}
	if err := os.MkdirAll(req.Out, 0o755); err != nil {
		return err
	}
	if err := writeJSON(filepath.Join(req.Out, JobsFile), results); err != nil {
		return err
	}
	sorted := make([]string, 0, len(drvs))
	for d := range drvs {
		sorted = append(sorted, d)
	}
	sort.Strings(sorted)
	for _, d := range sorted {
		if err := exportDrvClosure(ctx, d, filepath.Join(req.Out, DrvDir, DrvKey(d))); err != nil {
			return err
		}
	}
	return nil
}

// missingFileJobs reports a --file that is not in the build context on
// every installable of its INSTALL line.
func missingFileJobs(r evaljobs.Request) []evaljobs.Job {
	rel := strings.TrimPrefix(r.File, SrcDir+"/")
	msg := fmt.Sprintf("%s does not exist in the build context (check the path, relative to the context, and .dockerignore)", rel)
	var jobs []evaljobs.Job
	for i := range r.Targets() {
		jobs = append(jobs, evaljobs.Job{Attr: evaljobs.JobAttr(i), AttrPath: []string{evaljobs.JobAttr(i)}, Error: msg})
	}
	return jobs
}

func hasFlake(r evaljobs.Request) bool {
	for _, t := range r.Targets() {
		if t.FlakeRef != "" {
			return true
		}
	}
	return false
}

// lookNixEvalJobs finds nix-eval-jobs in the Nix image, unless
// NIX_FRONTEND_EVALUATOR=nix asks for the built-in evaluator.
func lookNixEvalJobs() (string, bool) {
	if os.Getenv("NIX_FRONTEND_EVALUATOR") == "nix" {
		return "", false
	}
	p, err := exec.LookPath("nix-eval-jobs")
	return p, err == nil
}

// exportDrvClosure writes `nix-store --export` of the derivation's closure
// (other .drv files and sources, not build outputs). nix-store lists the
// closure in topological order, dependencies first, which is what --import
// needs; the order depends only on the closure, so the bytes are the same
// wherever it is evaluated.
func exportDrvClosure(ctx context.Context, drv, dir string) error {
	out, err := nixOutput(ctx, "nix-store", "--query", "--requisites", drv)
	if err != nil {
		return err
	}
	paths := strings.Fields(string(out))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	f, err := os.Create(filepath.Join(dir, DrvClosure))
	if err != nil {
		return err
	}
	err = nixCmd(ctx, nil, f, nil, "nix-store", append([]string{"--export"}, paths...)...)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}
