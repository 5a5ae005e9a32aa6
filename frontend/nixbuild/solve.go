package nixbuild

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/moby/buildkit/client/llb"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
	"github.com/moby/buildkit/frontend/gateway/client"
	gwpb "github.com/moby/buildkit/frontend/gateway/pb"
	"github.com/moby/buildkit/identity"
	"github.com/moby/buildkit/solver/errdefs"
	"github.com/nix-frontend/nix-frontend/llb/nixstep"
	"github.com/nix-frontend/nix-frontend/nix/protocol"
)

// planStep is a step with the Nixfile lines it comes from.
type planStep struct {
	nixstep.Step
	locs []parser.Range
	// groups are the INSTALL lines of a links step's groups.
	groups [][]parser.Range
}

// steps makes the LLB of steps and remembers them, for errors.
func (p *plan) steps(steps ...planStep) ([]nixstep.Run, error) {
	ns := make([]nixstep.Step, len(steps))
	for i, s := range steps {
		ns[i] = s.Step
		ns[i].Location = p.location(s.locs)
	}
	runs, err := p.b.Nix.Steps(ns)
	if err != nil {
		return nil, err
	}
	for i, r := range runs {
		p.known[r.Digest] = stepInfo{name: steps[i].Name, locs: steps[i].locs, groups: steps[i].groups}
	}
	return runs, nil
}

// maxRead is how much of a file one ReadFile call returns: BuildKit's
// gateway answers with one gRPC message, whose size it caps at 16 MiB.
const maxRead = 4 << 20

// readJSON solves st and reads one of its files, of any size.
func (p *plan) readJSON(ctx context.Context, st llb.State, file string, v any) error {
	p.anchors = append(p.anchors, st)
	ref, err := p.solveRef(ctx, st)
	if err != nil {
		return err
	}
	return readRefJSON(ctx, ref, file, v)
}

func readRefJSON(ctx context.Context, ref client.Reference, file string, v any) error {
	var dt []byte
	for {
		chunk, err := ref.ReadFile(ctx, client.ReadRequest{Filename: "/" + file, Range: &client.FileRange{Offset: len(dt), Length: maxRead}})
		if err != nil {
			return fmt.Errorf("reading %s: %w", file, err)
		}
		dt = append(dt, chunk...)
		if len(chunk) < maxRead {
			break
		}
	}
	if err := json.Unmarshal(dt, v); err != nil {
		return fmt.Errorf("reading %s: %w", file, err)
	}
	return nil
}

// solve runs st's steps, reporting a failed step at its Nixfile lines.
func (p *plan) solve(ctx context.Context, st llb.State) error {
	_, err := p.solveRef(ctx, st)
	return err
}

func (p *plan) solveRef(ctx context.Context, st llb.State) (client.Reference, error) {
	def, err := st.Marshal(ctx)
	if err != nil {
		return nil, err
	}
	res, err := p.b.Client.Solve(ctx, client.SolveRequest{Definition: def.ToPB(), CacheImports: p.b.CacheImports, Evaluate: true})
	if err != nil {
		return nil, p.stepError(ctx, err)
	}
	return res.SingleRef()
}

// stepError turns a failed solve into the failed step's own report, at the
// step's Nixfile lines. A step that found the store without paths cached
// steps made is a storeLostError, which Build retries.
func (p *plan) stepError(ctx context.Context, err error) error {
	var se *errdefs.SolveError
	if !errors.As(err, &se) {
		return err
	}
	dgst := se.Description[nixstep.StepKey]
	info, ok := p.known[dgst]
	if !ok {
		return err
	}
	var exit *gwpb.ExitError
	errors.As(err, &exit)
	// The solve that failed may have cancelled ctx (errgroup).
	rep, rerr := p.report(context.WithoutCancel(ctx), dgst)
	switch {
	case rerr != nil || rep.Error == "":
		// No report: the step died before it could write one.
		return parser.WithLocation(fmt.Errorf("%s: %w", info.name, err), info.locs)
	case exit != nil && exit.ExitCode == protocol.ExitStoreLost:
		return &storeLostError{err: errors.New(rep.Error), missing: rep.Missing}
	case rep.Eval != nil:
		return p.evalError(rep.Eval)
	case rep.Group != nil && *rep.Group >= 0 && *rep.Group < len(info.groups):
		return parser.WithLocation(errors.New(rep.Error), info.groups[*rep.Group])
	}
	return parser.WithLocation(errors.New(rep.Error), info.locs)
}

// report reads the report the step with the given request digest left.
func (p *plan) report(ctx context.Context, dgst string) (protocol.Report, error) {
	var rep protocol.Report
	def, err := p.b.Nix.Report(dgst, identity.NewID()).Marshal(ctx)
	if err != nil {
		return rep, err
	}
	res, err := p.b.Client.Solve(ctx, client.SolveRequest{Definition: def.ToPB(), Evaluate: true})
	if err != nil {
		return rep, err
	}
	ref, err := res.SingleRef()
	if err != nil {
		return rep, err
	}
	err = readRefJSON(ctx, ref, protocol.ReportFile, &rep)
	return rep, err
}

// anchor adds the steps the frontend read to the stage's result without
// adding a layer: the difference of a state with itself is empty. BuildKit
// exports (--cache-to mode=max) the cache of what a result is made of; the
// layers do not depend on the evaluation and build steps (a layer step's
// cache key is its store paths alone), so without the anchor a builder
// importing the cache would evaluate and build again.
func (p *plan) anchor(st llb.State) llb.State {
	if len(p.anchors) == 0 {
		return st
	}
	read := p.anchors[0]
	if len(p.anchors) > 1 {
		read = llb.Merge(p.anchors, llb.WithCustomName("[nix] steps the frontend read"))
	}
	return llb.Merge([]llb.State{st, llb.Diff(read, read)}, llb.WithCustomName(fmt.Sprintf("[nix %s] keep the steps in the cache", p.stage.Name)))
}
