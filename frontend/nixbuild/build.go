package nixbuild

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"path"
	"slices"
	"strings"

	"github.com/moby/buildkit/client/llb"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
	"github.com/nix-frontend/nix-frontend/llb/nixstep"
	"github.com/nix-frontend/nix-frontend/nix/protocol"
	"github.com/nix-frontend/nix-frontend/nix/storepath"
	"golang.org/x/sync/errgroup"
)

// maxFetchRounds bounds how often downloads wait for builds they need and
// those builds for downloads: nixpkgs built from source needs a few.
const maxFetchRounds = 8

// maxBuildSteps bounds a stage's build steps: past it, jobs share steps,
// so a stage of a thousand installables is some dozens of steps.
const maxBuildSteps = 64

// build runs each job's fetch steps, when it needs any, and its build step,
// and reads the jobs' results.
func (p *plan) build(ctx context.Context, ev *evaluation, jobs []*job) error {
	after, err := p.fetch(ctx, ev, jobs)
	if err != nil {
		return err
	}
	batches := batch(jobs, maxBuildSteps)
	steps := make([]planStep, len(batches))
	for i, b := range batches {
		req := protocol.BuildRequest{Fetched: b[0].fetch, Network: b[0].network, Recover: p.recover,
			ImageArchive: p.stage.EntrypointFromMeta && len(jobs) == 1 && len(b[0].outputs) == 1}
		var names []string
		var locs []parser.Range
		var inputs []nixstep.Mount
		for _, j := range b {
			req.Jobs = append(req.Jobs, protocol.BuildJob{Name: j.name, DrvPath: j.drvPath, Outputs: j.outputs, System: j.system, Key: j.key})
			names = append(names, j.name)
			locs = append(locs, j.locs...)
			inputs = append(inputs, drvMount(ev, j.drvPath))
			if st, ok := after[j]; ok {
				inputs = append(inputs, nixstep.Mount{Target: protocol.InDir + "/fetched/" + j.key, State: st, Path: "/"})
			}
		}
		name := fmt.Sprintf("[nix %d/%d] build %s", i+1, len(batches), strings.Join(shortList(names), ", "))
		if req.Network != "" {
			name += " (network: " + req.Network + ")"
		}
		steps[i] = planStep{Step: nixstep.Step{Name: name, Request: req, Inputs: inputs, Access: nixstep.Hermetic,
			Network: req.Network != "", UserConfig: true}, locs: locs}
	}
	runs, err := p.steps(steps...)
	if err != nil {
		return err
	}
	for i, b := range batches {
		for _, j := range b {
			j.run = runs[i]
		}
		p.anchors = append(p.anchors, runs[i].Out)
	}
	return p.each(ctx, len(batches), func(ctx context.Context, i int) error {
		ref, err := p.solveRef(ctx, runs[i].Out)
		if err != nil {
			return err
		}
		for _, j := range batches[i] {
			var r protocol.BuildResult
			if err := readRefJSON(ctx, ref, j.resultFile(), &r); err != nil {
				return err
			}
			if err := r.Validate(); err != nil {
				return parser.WithLocation(fmt.Errorf("the build step of %s: %w", j.name, err), j.locs)
			}
			if r.DrvPath != j.drvPath || !maps.Equal(r.Outputs, j.outputs) {
				return parser.WithLocation(fmt.Errorf("the build step of %s reported other outputs than asked for", j.name), j.locs)
			}
			j.result = &r
		}
		return nil
	})
}

// batch groups jobs into at most n build steps, in order; jobs share a step
// only when they agree on what the step may reach.
func batch(jobs []*job, n int) [][]*job {
	size := (len(jobs) + n - 1) / n
	var out [][]*job
	for _, j := range jobs {
		if k := len(out) - 1; k >= 0 && len(out[k]) < size && out[k][0].network == j.network && out[k][0].fetch == j.fetch {
			out[k] = append(out[k], j)
			continue
		}
		out = append(out, []*job{j})
	}
	return out
}

// shortList shows at most three names.
func shortList(names []string) []string {
	if len(names) > 3 {
		return append(slices.Clone(names[:3]), fmt.Sprintf("and %d more", len(names)-3))
	}
	return names
}

// fetch runs the fetch steps of the jobs that need them, round by round:
// a round's fetches download what they can; when downloads wait for
// ordinary derivations (a fetcher program to build first), a hermetic build
// step makes those and the next round fetches again. It returns each
// fetching job's last step, which its build step runs after.
func (p *plan) fetch(ctx context.Context, ev *evaluation, jobs []*job) (map[*job]llb.State, error) {
	after := map[*job]llb.State{}
	var pending []*job
	for _, j := range jobs {
		if j.fetch {
			pending = append(pending, j)
		}
	}
	for round := 0; len(pending) > 0; round++ {
		if round == maxFetchRounds {
			j := pending[0]
			return nil, parser.WithLocation(fmt.Errorf("downloads of %s still wait for builds after %d rounds of fetching", j.name, round), j.locs)
		}
		steps := make([]planStep, len(pending))
		for i, j := range pending {
			name := fmt.Sprintf("[nix %s] fetch for %s", p.stage.Name, j.name)
			if round > 0 {
				name += fmt.Sprintf(" (round %d)", round+1)
			}
			inputs := []nixstep.Mount{drvMount(ev, j.drvPath)}
			if st, ok := after[j]; ok {
				inputs = append(inputs, nixstep.Mount{Target: protocol.InDir + "/before", State: st, Path: "/"})
			}
			steps[i] = planStep{Step: nixstep.Step{
				Name:       name,
				Request:    protocol.FetchRequest{DrvPath: j.drvPath, Round: round, Recover: p.recover},
				Inputs:     inputs,
				Access:     nixstep.Fetching,
				UserConfig: true,
			}, locs: j.locs}
		}
		runs, err := p.steps(steps...)
		if err != nil {
			return nil, err
		}
		results := make([]protocol.FetchResult, len(pending))
		states := make([]llb.State, len(pending))
		files := make([]string, len(pending))
		for i := range pending {
			states[i], files[i] = runs[i].Out, protocol.FetchFile
		}
		if err := p.readAll(ctx, states, files, func(i int) any { return &results[i] }); err != nil {
			return nil, err
		}
		var next []*job
		var prep []planStep
		for i, j := range pending {
			after[j] = runs[i].Out
			if err := results[i].Validate(); err != nil {
				return nil, parser.WithLocation(fmt.Errorf("the fetch step of %s: %w", j.name, err), j.locs)
			}
			if len(results[i].Waiting) == 0 {
				continue
			}
			next = append(next, j)
			prep = append(prep, planStep{Step: nixstep.Step{
				Name: fmt.Sprintf("[nix %s] build what downloads of %s need: %s", p.stage.Name, j.name, strings.Join(shortList(drvNames(results[i].Waiting)), ", ")),
				Request: protocol.BuildRequest{Drvs: results[i].Waiting, Network: j.network, Recover: p.recover,
					Jobs: []protocol.BuildJob{{Name: j.name, DrvPath: j.drvPath, Outputs: j.outputs, System: j.system, Key: j.key}}},
				Inputs:     []nixstep.Mount{drvMount(ev, j.drvPath), {Target: protocol.InDir + "/before", State: runs[i].Out, Path: "/"}},
				Access:     nixstep.Hermetic,
				Network:    j.network != "",
				UserConfig: true,
			}, locs: j.locs})
		}
		prepRuns, err := p.steps(prep...)
		if err != nil {
			return nil, err
		}
		for k, j := range next {
			after[j] = prepRuns[k].Out
		}
		pending = next
	}
	return after, nil
}

// drvMount is the evaluation's export of a derivation's closure, which
// fetch and build steps import when the store no longer has it.
func drvMount(ev *evaluation, drvPath string) nixstep.Mount {
	dir := path.Join(protocol.DrvDir, storepath.Base(drvPath))
	return nixstep.Mount{Target: path.Join(protocol.InDir, dir), State: ev.run.Out, Path: "/" + dir}
}

func drvNames(drvs []string) []string {
	out := make([]string, len(drvs))
	for i, d := range drvs {
		out[i] = storepath.DrvName(d)
	}
	return out
}

// readAll runs the states' steps, at most parallelism() at once, and
// reads file i of state i into into(i).
func (p *plan) readAll(ctx context.Context, states []llb.State, files []string, into func(int) any) error {
	p.anchors = append(p.anchors, states...)
	return p.each(ctx, len(states), func(ctx context.Context, i int) error {
		ref, err := p.solveRef(ctx, states[i])
		if err != nil {
			return err
		}
		return readRefJSON(ctx, ref, files[i], into(i))
	})
}

// runAll runs the states' steps, at most parallelism() at once.
func (p *plan) runAll(ctx context.Context, states []llb.State) error {
	return p.each(ctx, len(states), func(ctx context.Context, i int) error {
		return p.solve(ctx, states[i])
	})
}

// each calls f for 0…n-1, at most parallelism() at once: see Each.
func (p *plan) each(ctx context.Context, n int, f func(context.Context, int) error) error {
	return Each(ctx, n, parallelism(), f)
}

// Each calls f for 0…n-1, at most limit at once (no limit when limit < 0),
// and cancels the calls still running after the first failure. It returns
// the most telling of the errors (see mostTelling), not the first: a failed
// step cancels the concurrent solves, and BuildKit may fail one of those
// with an error of its own ("context canceled", "releasing already
// released reference") while the failed step's report is still being read.
func Each(ctx context.Context, n, limit int, f func(context.Context, int) error) error {
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(limit)
	errs := make([]error, n)
	for i := range n {
		g.Go(func() error {
			errs[i] = f(gctx, i)
			return errs[i]
		})
	}
	_ = g.Wait() // every error is in errs
	return mostTelling(errs)
}

// mostTelling picks the error to report of concurrent solves': paths the
// store lost (all of them, which Build recovers from), else a failed step's
// error at its Nixfile lines, else the first that is not a cancellation.
func mostTelling(errs []error) error {
	var lost *storeLostError
	var located, other, canceled error
	for _, err := range errs {
		var sl *storeLostError
		var le *parser.LocationError
		switch {
		case err == nil:
		case errors.As(err, &sl):
			if lost == nil {
				lost = &storeLostError{err: sl.err}
			}
			lost.missing = append(lost.missing, sl.missing...)
		case errors.As(err, &le):
			located = cmp.Or(located, err)
		case errors.Is(err, context.Canceled):
			canceled = cmp.Or(canceled, err)
		default:
			other = cmp.Or(other, err)
		}
	}
	if lost != nil {
		return lost
	}
	return cmp.Or(located, other, canceled)
}

// closure is the union of the jobs' closures, sorted by path.
func closure(jobs []*job) []protocol.PathInfo {
	byPath := map[string]protocol.PathInfo{}
	for _, j := range jobs {
		for _, pi := range j.result.Closure {
			byPath[pi.Path] = pi
		}
	}
	out := make([]protocol.PathInfo, 0, len(byPath))
	for _, k := range slices.Sorted(maps.Keys(byPath)) {
		out = append(out, byPath[k])
	}
	return out
}
