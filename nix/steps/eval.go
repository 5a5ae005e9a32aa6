package steps

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"

	"github.com/nix-frontend/nix-frontend/nix/evaljobs"
	"github.com/nix-frontend/nix-frontend/nix/protocol"
	"github.com/nix-frontend/nix-frontend/nix/storepath"
	"golang.org/x/sync/errgroup"
)

// EvalFailedError is an evaluation in which an installable failed; its
// result says which, for errors at their INSTALL lines. The step fails, so
// BuildKit does not cache the failure: a cause outside the build context (a
// flake input's server, the evaluator killed for memory) is gone the next
// time.
type EvalFailedError struct {
	Result *protocol.EvalResult
}

func (e *EvalFailedError) Error() string {
	var msgs []string
	for _, in := range e.Result.Installs {
		for _, j := range in.Jobs {
			if j.Error != "" {
				msgs = append(msgs, j.Error)
			}
		}
	}
	return "evaluation failed:\n" + strings.Join(msgs, "\n")
}

// Eval evaluates every INSTALL line and writes the result to EvalFile and,
// for every derivation, its .drv closure to DrvDir/<drv>/closure: the later
// steps import it when the /nix cache mount no longer has it.
func Eval(ctx context.Context, req protocol.EvalRequest, stderr io.Writer) error {
	if err := requireNix(); err != nil {
		return err
	}
	if err := useBuildUsers(); err != nil {
		return err
	}
	useCredentials()
	evaluator, err := pickEvaluator(req.Evaluator)
	if err != nil {
		return err
	}
	res := &protocol.EvalResult{Evaluator: evaluator.name}
	targets := 0
	for _, r := range req.Installs {
		targets += len(r.Targets())
	}
	for _, r := range req.Installs {
		res.Workers = max(res.Workers, evaljobs.Workers(r))
	}
	fmt.Fprintf(stderr, "nix-frontend: evaluating %d installables with %s, %d workers\n", targets, evaluator.name, res.Workers)
	for _, r := range req.Installs {
		jobs, err := evaluator.run(ctx, r, stderr)
		if err != nil {
			return err
		}
		for i, j := range jobs {
			// What the evaluator printed shapes LLB: an attribute set that
			// only claims to be a derivation fails here, at its installable.
			if j.Error == "" {
				if err := protocol.ValidateJob(j); err != nil {
					jobs[i] = evaljobs.Job{Attr: j.Attr, AttrPath: j.AttrPath, Error: "error: the evaluation returned something that is not a derivation Nix can build: " + err.Error()}
				}
			}
		}
		res.Installs = append(res.Installs, protocol.EvalInstall{Jobs: jobs})
	}
	if err := res.Validate(len(req.Installs)); err != nil {
		return err
	}
	if res.Failed() {
		return &EvalFailedError{Result: res}
	}
	var drvs []string
	for _, in := range res.Installs {
		for _, j := range in.Jobs {
			if !slices.Contains(drvs, j.DrvPath) {
				drvs = append(drvs, j.DrvPath)
			}
		}
	}
	slices.Sort(drvs)
	if res.Substituters, err = hasSubstituters(ctx); err != nil {
		return err
	}
	fods := make([]int, len(drvs))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(runtime.NumCPU())
	for i, d := range drvs {
		g.Go(func() error {
			closure, err := drvClosure(gctx, d)
			if err != nil {
				return err
			}
			f, err := fixedOutputs(closure)
			if err != nil {
				return err
			}
			fods[i] = len(f)
			return exportDrvClosure(gctx, closure, filepath.Join(protocol.OutDir, protocol.DrvDir, storepath.Base(d)))
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	res.FixedOutput = map[string]int{}
	for i, d := range drvs {
		res.FixedOutput[d] = fods[i]
	}
	return writeJSON(filepath.Join(protocol.OutDir, protocol.EvalFile), res)
}

// evaluator runs one INSTALL line's evaluation.
type evaluator struct {
	name string
	run  func(ctx context.Context, r evaljobs.Request, stderr io.Writer) ([]evaljobs.Job, error)
}

// pickEvaluator is nix-eval-jobs when the Nix image has it (or the request
// demands it), else the built-in evaluator, which drives `nix eval`.
func pickEvaluator(want string) (evaluator, error) {
	builtin := evaluator{name: protocol.EvaluatorNix, run: evalBuiltin}
	path, err := exec.LookPath("nix-eval-jobs")
	switch {
	case want == protocol.EvaluatorNix:
		return builtin, nil
	case want == protocol.EvaluatorNixEvalJobs && err != nil:
		return evaluator{}, fmt.Errorf("NIX_EVALUATOR=nix-eval-jobs, but the Nix image has no nix-eval-jobs on its PATH")
	case err != nil:
		return builtin, nil
	}
	return evaluator{name: protocol.EvaluatorNixEvalJobs, run: func(ctx context.Context, r evaljobs.Request, stderr io.Writer) ([]evaljobs.Job, error) {
		return evalNixEvalJobs(ctx, path, r, stderr)
	}}, nil
}

func evalBuiltin(ctx context.Context, r evaljobs.Request, stderr io.Writer) ([]evaljobs.Job, error) {
	if jobs := missingFile(r); jobs != nil {
		return jobs, nil
	}
	r = lock(ctx, r, stderr)
	var lines bytes.Buffer
	if err := evaljobs.Evaluate(ctx, "", r, evaljobs.Workers(r), nil, &lines); err != nil {
		return nil, err
	}
	return readLines(r, &lines, protocol.EvaluatorNix)
}

func evalNixEvalJobs(ctx context.Context, bin string, r evaljobs.Request, stderr io.Writer) ([]evaljobs.Job, error) {
	if jobs := missingFile(r); jobs != nil {
		return jobs, nil
	}
	r = lock(ctx, r, stderr)
	args, err := evaljobs.NixEvalJobsArgs(r, evaljobs.Workers(r))
	if err != nil {
		return nil, err
	}
	var lines bytes.Buffer
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Stdout, cmd.Stderr = &lines, stderr
	// nix-eval-jobs exits non-zero when a job failed; the lines say
	// which, and MatchJobs reports what is missing.
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		fmt.Fprintf(stderr, "nix-frontend: nix-eval-jobs: %v\n", err)
	}
	return readLines(r, &lines, protocol.EvaluatorNixEvalJobs)
}

func readLines(r evaljobs.Request, lines io.Reader, name string) ([]evaljobs.Job, error) {
	jobs, err := evaljobs.ReadJobs(lines)
	if err != nil {
		return nil, fmt.Errorf("reading %s output: %w", name, err)
	}
	return evaljobs.MatchJobs(r, jobs), nil
}

// lock locks flake references so flakes evaluate purely, as `nix build`
// does; file mode is impure like nix-build.
func lock(ctx context.Context, r evaljobs.Request, stderr io.Writer) evaljobs.Request {
	if r.Pure() || r.Impure {
		return r
	}
	locked, err := evaljobs.LockRequest(ctx, "", r, nil)
	if err != nil {
		// The evaluation reports the same problem on the installable,
		// where the user can see which one it is.
		fmt.Fprintf(stderr, "nix-frontend: %v\n", err)
		return r
	}
	return locked
}

// missingFile reports a --file that is not in the build context on every
// installable of its INSTALL line, nil when the file is there.
func missingFile(r evaljobs.Request) []evaljobs.Job {
	if r.File == "" {
		return nil
	}
	if _, err := os.Stat(r.File); err == nil {
		return nil
	}
	rel := strings.TrimPrefix(r.File, protocol.SrcDir+"/")
	msg := fmt.Sprintf("%s does not exist in the build context (check the path, relative to the context, and .dockerignore)", rel)
	var jobs []evaljobs.Job
	for i := range r.Targets() {
		jobs = append(jobs, evaljobs.Job{Attr: evaljobs.JobAttr(i), AttrPath: []string{evaljobs.JobAttr(i)}, Error: msg})
	}
	return jobs
}

// hasSubstituters says whether Nix is configured with binary caches.
func hasSubstituters(ctx context.Context) (bool, error) {
	// `nix config show` since Nix 2.20; `nix show-config` before.
	out, err := nixOutput(ctx, "nix", "config", "show", "--json")
	if err != nil {
		if out, err = nixOutput(ctx, "nix", "show-config", "--json"); err != nil {
			return false, err
		}
	}
	var cfg struct {
		Substituters struct {
			Value []string `json:"value"`
		} `json:"substituters"`
	}
	if err := json.Unmarshal(out, &cfg); err != nil {
		return false, fmt.Errorf("reading Nix's configuration: %w", err)
	}
	return len(cfg.Substituters.Value) > 0, nil
}

// drvClosure lists a derivation's closure: other .drv files and sources,
// not build outputs, in the topological order nix-store gives (dependencies
// first), which is what --import needs. The order depends only on the
// closure, so the export's bytes are the same wherever it is made.
func drvClosure(ctx context.Context, drv string) ([]string, error) {
	out, err := nixOutput(ctx, "nix-store", "--query", "--requisites", drv)
	if err != nil {
		return nil, err
	}
	return strings.Fields(string(out)), nil
}

// exportDrvClosure writes `nix-store --export` of a .drv closure.
func exportDrvClosure(ctx context.Context, paths []string, dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	f, err := os.Create(filepath.Join(dir, protocol.DrvClosure))
	if err != nil {
		return err
	}
	err = nixCmd(ctx, nil, f, nil, "nix-store", append([]string{"--export"}, paths...)...)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}
