package evaljobs

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"runtime"
	"strconv"
	"sync"
)

// NixEvalJobsArgs returns the arguments (without the program name) that make
// nix-eval-jobs evaluate req with the given number of workers: Expr(req)
// passed with --expr, so each output line's attr names an installable
// (JobAttr; see MatchJobs). --expr needs nix-eval-jobs 2.12 or later; older
// versions only take a file.
func NixEvalJobsArgs(req Request, workers int) ([]string, error) {
	expr, err := Expr(req)
	if err != nil {
		return nil, err
	}
	args := []string{"--workers", strconv.Itoa(max(workers, 1))}
	if req.Meta {
		args = append(args, "--meta")
	}
	args = append(args, commonNixArgs(req)...)
	// nix-eval-jobs only makes --flake evaluations pure by itself.
	if req.Pure() {
		args = append(args, "--option", "pure-eval", "true")
	}
	return append(args, "--expr", expr), nil
}

// Workers is how many evaluations of req run at once on this machine: one
// per CPU, no more than there are installables.
func Workers(req Request) int {
	return max(1, min(runtime.NumCPU(), len(req.targets())))
}

// commonNixArgs are the options nix eval and nix-eval-jobs share.
func commonNixArgs(req Request) []string {
	features := "nix-command"
	if req.hasFlakes() {
		features += " flakes"
	}
	args := []string{"--extra-experimental-features", features}
	if !req.Pure() {
		args = append(args, "--impure")
	}
	if req.System != "" {
		args = append(args, "--option", "system", req.System)
	}
	return args
}

// Evaluate evaluates req with the nix CLI (path to the nix binary, "" for
// "nix" on PATH) and writes one JSON line per target to out, in request
// order, in nix-eval-jobs' format. An installable that fails to evaluate
// gets a line with its error (Nix's message, see TrimNixError); the
// returned error is only for problems that are not the installables' fault:
// nix cannot be run, ctx is done, or out cannot be written.
//
// All installables are evaluated by one `nix eval` process first. When that
// fails, each is evaluated by its own process, up to workers at a time, so
// that one failure cannot hide the others' results and each error message
// is Nix's own. env is the processes' environment (nil: this
// process's). Evaluating drvPath writes the .drv files to the store, which
// the build step needs.
func Evaluate(ctx context.Context, nix string, req Request, workers int, env []string, out io.Writer) error {
	wrapper, err := Expr(req)
	if err != nil {
		return err
	}
	if nix == "" {
		nix = "nix"
	}
	bin, err := exec.LookPath(nix)
	if err != nil {
		return fmt.Errorf("evaljobs: cannot run nix: %w", err)
	}
	if jobs, ok := evalAll(ctx, bin, req, wrapper, env); ok {
		for _, j := range jobs {
			line, err := json.Marshal(j)
			if err != nil {
				return err
			}
			if _, err := out.Write(append(line, '\n')); err != nil {
				return fmt.Errorf("evaljobs: writing result: %w", err)
			}
		}
		return nil
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	ctx, cancel := context.WithCancel(ctx)

	ts := req.targets()
	workers = max(workers, 1)
	type result struct {
		job Job
		err error
	}
	results := make([]chan result, len(ts))
	sem := make(chan struct{}, workers)
	var wg sync.WaitGroup
	for i := range ts {
		results[i] = make(chan result, 1)
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				results[i] <- result{err: ctx.Err()}
				return
			}
			defer func() { <-sem }()
			j, err := evalOne(ctx, bin, req, wrapper, i, env)
			results[i] <- result{j, err}
		}()
	}
	// On an early return, stop the evaluations still running before
	// waiting for them.
	defer func() {
		cancel()
		wg.Wait()
	}()
	// Lines go out in request order, each as soon as it and those before
	// it are done, so the output is the same from run to run.
	for i := range ts {
		r := <-results[i]
		if r.err != nil {
			return r.err
		}
		line, err := json.Marshal(r.job)
		if err != nil {
			return err
		}
		if _, err := out.Write(append(line, '\n')); err != nil {
			return fmt.Errorf("evaljobs: writing result: %w", err)
		}
	}
	return nil
}

// jobInfo is what `nix eval` prints of a derivation: infoExpr's value.
type jobInfo struct {
	DrvPath string            `json:"drvPath"`
	Name    string            `json:"name"`
	System  string            `json:"system"`
	Outputs map[string]string `json:"outputs"`
	Meta    json.RawMessage   `json:"meta"`
}

func (i jobInfo) job(attr string) Job {
	return Job{Attr: attr, AttrPath: []string{attr}, DrvPath: i.DrvPath, Name: i.Name, System: i.System, Outputs: i.Outputs, Meta: i.Meta}
}

// evalAll evaluates every installable in one process; ok is false when any
// of them fails, or Nix does.
func evalAll(ctx context.Context, bin string, req Request, wrapper string, env []string) ([]Job, bool) {
	expr := fmt.Sprintf("let\n  jobs = %s;\nin builtins.mapAttrs (_: v: %s) jobs\n", wrapper, infoExpr(req.Meta))
	cmd := exec.CommandContext(ctx, bin, append(append([]string{"eval", "--json"}, commonNixArgs(req)...), "--expr", expr)...)
	cmd.Env = env
	out, err := cmd.Output()
	if err != nil {
		return nil, false
	}
	var infos map[string]jobInfo
	if json.Unmarshal(out, &infos) != nil {
		return nil, false
	}
	jobs := make([]Job, len(req.targets()))
	for i := range jobs {
		info, ok := infos[JobAttr(i)]
		if !ok {
			return nil, false
		}
		jobs[i] = info.job(JobAttr(i))
	}
	return jobs, true
}

func evalOne(ctx context.Context, bin string, req Request, wrapper string, i int, env []string) (Job, error) {
	attr := JobAttr(i)
	job := Job{Attr: attr, AttrPath: []string{attr}}
	expr := fmt.Sprintf("let\n  jobs = %s;\n  v = jobs.%s;\nin %s\n", wrapper, nixString(attr), infoExpr(req.Meta))
	args := append([]string{"eval", "--json"}, commonNixArgs(req)...)
	args = append(args, "--expr", expr)
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = env
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if ctx.Err() != nil {
		return job, ctx.Err()
	}
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		job.Error = TrimNixError(stderr.String())
		if job.Error == "" {
			job.Error = fmt.Sprintf("nix eval failed (%s) without a message", exit.ProcessState)
		}
		return job, nil
	}
	if err != nil {
		return job, fmt.Errorf("evaljobs: running nix eval: %w", err)
	}
	var info jobInfo
	if err := json.Unmarshal(stdout.Bytes(), &info); err != nil {
		return job, fmt.Errorf("evaljobs: unexpected output of nix eval for %s: %v: %.200q", req.targets()[i], err, stdout.String())
	}
	return info.job(attr), nil
}

// LockFlakeRef returns the locked form of a flake reference (with narHash,
// and rev where there is one), as `nix flake metadata` reports it. A request
// whose references are all locked is evaluated purely (see Request.Pure).
func LockFlakeRef(ctx context.Context, nix, ref string, env []string) (string, error) {
	if nix == "" {
		nix = "nix"
	}
	cmd := exec.CommandContext(ctx, nix, "flake", "metadata", "--json",
		"--extra-experimental-features", "nix-command flakes", "--no-write-lock-file", ref)
	cmd.Env = env
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		if msg := TrimNixError(stderr.String()); msg != "" {
			return "", fmt.Errorf("locking flake %s: %s", ref, msg)
		}
		return "", fmt.Errorf("locking flake %s: %w", ref, err)
	}
	var md struct {
		URL string `json:"url"`
	}
	if err := json.Unmarshal(stdout.Bytes(), &md); err != nil || md.URL == "" {
		return "", fmt.Errorf("locking flake %s: unexpected output of nix flake metadata: %.200q", ref, stdout.String())
	}
	return md.URL, nil
}

// LockRequest returns req with every flake reference locked by LockFlakeRef,
// so that it is evaluated purely like `nix build` would. It leaves req as it
// is when req.Impure is set. Locking reads each flake once (fetching it if
// it is remote).
func LockRequest(ctx context.Context, nix string, req Request, env []string) (Request, error) {
	if req.Impure {
		return req, nil
	}
	locked := map[string]string{}
	out := req
	out.Installables = append([]Installable(nil), req.Installables...)
	for i, t := range out.Installables {
		if t.FlakeRef == "" || IsLocked(t.flakeRef()) {
			continue
		}
		l, ok := locked[t.FlakeRef]
		if !ok {
			var err error
			if l, err = LockFlakeRef(ctx, nix, t.FlakeRef, env); err != nil {
				return req, err
			}
			locked[t.FlakeRef] = l
		}
		out.Installables[i].Locked = l
	}
	return out, nil
}
