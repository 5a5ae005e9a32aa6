// Package nixbuild turns the INSTALL lines of a Nixfile stage into LLB. A
// stage's plan runs these steps, each a BuildKit step of its own:
//
//	evaluate   the INSTALL lines to derivations            network, credentials
//	fetch      substitutes and downloads a build needs     network, credentials
//	build      one step per installed derivation           hermetic
//	layer      one step per layer: store paths copied      hermetic
//	           out of the store, checked against Nix's
//	           database; the step's output is the layer
//	links      the link tree, a layer of its own           hermetic
//
// and merges the layers onto the base. A layer step's cache key is its store
// paths and their NAR hashes, nothing else, so a store path is copied out of
// the /nix cache mount once per builder, whatever stage, line or image asks
// for it. Failed steps are not cached; the frontend reads the report they
// leave to say what failed at which INSTALL line. When the /nix cache mount
// lost paths that cached steps made, the plan runs again with its fetch and
// build steps forced to run.
package nixbuild

import (
	"context"
	"errors"
	"fmt"
	"runtime"

	"github.com/moby/buildkit/client/llb"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
	"github.com/moby/buildkit/frontend/gateway/client"
	"github.com/moby/buildkit/identity"
	"github.com/moby/buildkit/solver/pb"
	dockerspec "github.com/moby/docker-image-spec/specs-go/v1"
	"github.com/nix-frontend/nix-frontend/frontend/nixfile"
	"github.com/nix-frontend/nix-frontend/llb/nixstep"
	"github.com/nix-frontend/nix-frontend/nix/protocol"
)

// Builder builds the Nix part of stages.
type Builder struct {
	Client client.Client
	Nix    *nixstep.Env
	// Context is the build context, mounted for evaluation.
	Context   llb.State
	SourceMap *llb.SourceMap
	// CacheImports are the build's --cache-from, for the solves the
	// frontend makes to read step outputs.
	CacheImports []client.CacheOptionsEntry
	// MaxLayers is the image's layer budget, base layers included.
	MaxLayers int
	// PushCache is a Nix binary cache to upload each stage's closure to
	// (NIX_PUSH_CACHE), "" for none.
	PushCache string
	// Evaluator is NIX_EVALUATOR: "", "nix" or "nix-eval-jobs".
	Evaluator string
	// Preview stops a stage once its layers are planned: Result.Preview
	// lists them, and no store path is copied into a layer.
	Preview bool
}

// parallelism bounds the Nix steps of a stage that run at once: four per
// CPU, at least eight. BuildKit runs every step a solve needs at once, and a
// stage of a thousand installables must not start a thousand containers;
// but a Nix step spends much of its time off the CPUs (its container
// starting, Nix's commands starting, the store's locks), so a bound of the
// CPUs' number would leave them idle between steps.
func parallelism() int {
	return max(8, 4*runtime.NumCPU())
}

// Stage is what a stage's INSTALL lines need.
type Stage struct {
	// Name shows in progress lines: the stage name or its index.
	Name string
	// Installs are the stage's INSTALL lines, expanded.
	Installs []*nixfile.Install
	Base     llb.State
	// BaseImage is the base's config; for scratch an empty config with
	// the platform set.
	BaseImage *dockerspec.DockerOCIImage
	// BaseLayers is how many layers the base has, for the layer budget.
	BaseLayers int
	// Scratch says the base is scratch: links default to "/".
	Scratch bool
	// System is the Nix system of the stage's platform.
	System string
	// Basics gives a FROM scratch stage /etc/passwd, /etc/group, /tmp and
	// CA certificates (see basics); User is its USER line's value.
	Basics bool
	User   string
	// EntrypointFromMeta makes the first installable's program the image's
	// entrypoint, found as `nix run` finds it: meta.mainProgram, else the
	// package name without its version. An installed image tarball becomes
	// the image.
	EntrypointFromMeta bool
}

// Result is a stage with its INSTALL lines applied.
type Result struct {
	State llb.State
	Image *dockerspec.DockerOCIImage
	// Paths is the installed closure.
	Paths []protocol.PathInfo
	// Programs are the link trees' programs ("/bin/hello").
	Programs []string
	// SBOM are the step outputs the stage's SBOM is made from: the
	// evaluation's result (Eval) and the builds' results.
	SBOM []Source
	// Warnings are lint findings only the built stage shows.
	Warnings []nixfile.Warning
	// Preview lists the stage's layers when Builder.Preview is set; the
	// result has no State then.
	Preview []PreviewLayer
}

// Source is a file of a step's output.
type Source struct {
	State llb.State
	File  string
	Eval  bool
}

// Build returns the stage's base with the installed closure merged on top,
// and the image config that goes with it.
func (b *Builder) Build(ctx context.Context, s Stage) (*Result, error) {
	if err := b.checkCaps(); err != nil {
		return nil, err
	}
	res, err := newPlan(b, s, "", nil).run(ctx)
	// Cached steps made paths the /nix cache mount no longer has (a pruned
	// mount, a new builder): fetch and build everything again, and run the
	// steps that failed for lack of a path under a new cache key, since
	// BuildKit remembers a failed step for the rest of the build. A
	// layer's key changes only when it holds a lost path, so the layers
	// of the others stay as they are.
	lost := map[string]bool{}
	for attempt := 0; attempt < maxRecoveries; attempt++ {
		var sl *storeLostError
		if !errors.As(err, &sl) {
			break
		}
		for _, m := range sl.missing {
			lost[m] = true
		}
		res, err = newPlan(b, s, identity.NewID(), lost).run(ctx)
	}
	return res, err
}

// maxRecoveries bounds the attempts after the store lost paths: each
// learns the paths one failed step missed.
const maxRecoveries = 3

func (b *Builder) checkCaps() error {
	caps := b.Client.BuildOpts().LLBCaps
	if err := caps.Supports(pb.CapMergeOp); err != nil {
		return fmt.Errorf("this BuildKit daemon cannot merge layers (MergeOp), which nix-frontend needs for one layer per store path: use BuildKit v0.10 or later (Docker Engine 23 or later)")
	}
	if err := caps.Supports(pb.CapExecMountCache); err != nil {
		return fmt.Errorf("this BuildKit daemon has no cache mounts, which nix-frontend needs for the shared /nix store: use BuildKit v0.10 or later")
	}
	return nil
}

// plan is one attempt at a stage: the steps it made, by request digest, so
// a failed solve can be traced to its step and INSTALL lines.
type plan struct {
	b     *Builder
	stage Stage
	// recover is set on the attempts after the store lost paths: it makes
	// fetch and build steps run again, and the steps that need one of the
	// lost paths.
	recover string
	lost    map[string]bool
	known   map[string]stepInfo
	// anchors are the outputs of steps the frontend read, which no layer
	// depends on: see anchor.
	anchors []llb.State
	// warnings are lint findings of the built stage.
	warnings []nixfile.Warning
}

type stepInfo struct {
	name string
	locs []parser.Range
	// groups maps link groups to their INSTALL lines, for the links step.
	groups [][]parser.Range
}

// storeLostError is a step that found the /nix cache mount without paths
// an earlier, cached step made.
type storeLostError struct {
	err     error
	missing []string
}

func (e *storeLostError) Error() string { return e.err.Error() }
func (e *storeLostError) Unwrap() error { return e.err }

func newPlan(b *Builder, s Stage, recover string, lost map[string]bool) *plan {
	return &plan{b: b, stage: s, recover: recover, lost: lost, known: map[string]stepInfo{}}
}

// recoverFor is the recover marker of a step that needs paths: set only
// when one of them was lost.
func (p *plan) recoverFor(paths []string) string {
	for _, path := range paths {
		if p.lost[path] {
			return p.recover
		}
	}
	return ""
}

// run builds the stage: evaluate, fetch and build, then layers, links and
// the image, solved here so that a failed step is reported at its line.
func (p *plan) run(ctx context.Context) (*Result, error) {
	ev, err := p.evaluate(ctx)
	if err != nil {
		return nil, err
	}
	jobs, groups, err := p.jobs(ev)
	if err != nil {
		return nil, err
	}
	if err := p.build(ctx, ev, jobs); err != nil {
		return nil, err
	}
	res := &Result{Paths: closure(jobs), SBOM: []Source{{State: ev.run.Out, File: protocol.EvalFile, Eval: true}}}
	for _, j := range jobs {
		res.SBOM = append(res.SBOM, Source{State: j.run.Out, File: j.resultFile()})
	}
	if p.stage.EntrypointFromMeta && len(jobs) == 1 && jobs[0].result.ImageArchive {
		res.State, res.Image, err = p.imageArchive(ctx, jobs[0])
		if err != nil {
			return nil, err
		}
	} else {
		l, err := p.layout(ctx, res.Paths, groups)
		if err != nil {
			return nil, err
		}
		res.Programs = l.linked.Programs
		if res.State, res.Image, err = p.image(ctx, jobs, l, res.Paths, groups); err != nil {
			return nil, err
		}
		if p.b.Preview {
			// The image is LLB nobody solves: a later stage built on
			// this one plans its layers on top of it.
			res.Preview = p.preview(l, groups)
			res.Warnings = p.warnings
			return res, nil
		}
	}
	if p.b.PushCache != "" {
		if err := p.push(ctx, res.Paths); err != nil {
			return nil, err
		}
	}
	res.Warnings = p.warnings
	res.State = p.anchor(res.State)
	if err := p.solve(ctx, res.State); err != nil {
		return nil, err
	}
	return res, nil
}

// location is the source location of Nixfile lines, for a step.
func (p *plan) location(ranges []parser.Range) llb.ConstraintsOpt {
	if p.b.SourceMap == nil || len(ranges) == 0 {
		return nil
	}
	locs := make([]*pb.Range, 0, len(ranges))
	for _, r := range ranges {
		locs = append(locs, &pb.Range{
			Start: &pb.Position{Line: int32(r.Start.Line), Character: int32(r.Start.Character)},
			End:   &pb.Position{Line: int32(r.End.Line), Character: int32(r.End.Character)},
		})
	}
	return p.b.SourceMap.Location(locs)
}

// allLocations are the stage's INSTALL lines.
func (p *plan) allLocations() []parser.Range {
	var locs []parser.Range
	for _, in := range p.stage.Installs {
		locs = append(locs, in.Location...)
	}
	return locs
}
