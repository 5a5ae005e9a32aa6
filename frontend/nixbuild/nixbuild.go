// Package nixbuild turns the INSTALL lines of a Nixfile stage into LLB: an
// evaluation step, one build step per derivation sharing the /nix cache
// mount, an export step that copies the closure out of it, one layer per
// store path merged onto the base image, and a link layer.
package nixbuild

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"path"
	"sort"
	"strings"

	"github.com/moby/buildkit/client/llb"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
	"github.com/moby/buildkit/frontend/gateway/client"
	"github.com/moby/buildkit/solver/pb"
	dockerspec "github.com/moby/docker-image-spec/specs-go/v1"
	"github.com/nix-frontend/nix-frontend/frontend/nixfile"
	"github.com/nix-frontend/nix-frontend/llb/nixstep"
	"github.com/nix-frontend/nix-frontend/llb/storelayers"
	"github.com/nix-frontend/nix-frontend/nix/evaljobs"
	"github.com/nix-frontend/nix-frontend/nix/imagearchive"
	"github.com/nix-frontend/nix-frontend/nix/nixlog"
	"github.com/nix-frontend/nix-frontend/nix/steps"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"
)

// Builder builds the Nix part of stages.
type Builder struct {
	Client    client.Client
	Nix       *nixstep.Env
	Context   llb.State // the build context, mounted for evaluation
	SourceMap *llb.SourceMap
	// CacheImports are the build's --cache-from, for the solves the
	// frontend makes to read step outputs.
	CacheImports []client.CacheOptionsEntry
	// MaxLayers is the image's layer budget, base layers included.
	MaxLayers int
	// PushCache is a Nix binary cache to upload each stage's closure to
	// (NIX_PUSH_CACHE), "" for none.
	PushCache string
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
	// EntrypointFromMeta makes the first installable's program the image's
	// entrypoint, found as `nix run` finds it: meta.mainProgram, else the
	// package name without its version.
	EntrypointFromMeta bool
}

// job is one build step: a derivation and the outputs to install.
type job struct {
	key     string // DrvKey + selected outputs: the step's identity
	name    string
	system  string
	drvPath string
	outputs map[string]string
	locs    []parser.Range
	state   llb.State
}

// Result is a stage with its INSTALL lines applied.
type Result struct {
	State llb.State
	Image *dockerspec.DockerOCIImage
	// Paths is the installed closure; Installed what the INSTALL lines
	// named, with their metadata.
	Paths     []steps.PathInfo
	Installed []Installed
	// Programs are the link trees' programs ("/bin/hello").
	Programs []string
}

// Installed is a package an INSTALL line named.
type Installed struct {
	DrvPath string
	Outputs []string
	Meta    json.RawMessage
}

// Build returns the stage's base with the installed closure merged on top,
// and the image config that goes with it.
func (b *Builder) Build(ctx context.Context, s Stage) (*Result, error) {
	st, img, m, installed, err := b.build(ctx, s)
	if err != nil {
		return nil, err
	}
	return &Result{State: st, Image: img, Paths: m.Paths, Programs: m.Programs, Installed: installed}, nil
}

func (b *Builder) build(ctx context.Context, s Stage) (llb.State, *dockerspec.DockerOCIImage, steps.Manifest, []Installed, error) {
	if err := b.checkCaps(); err != nil {
		return llb.State{}, nil, steps.Manifest{}, nil, err
	}
	reqs, err := b.evalRequests(s)
	if err != nil {
		return llb.State{}, nil, steps.Manifest{}, nil, err
	}
	var words []string
	var allLocs []parser.Range
	for _, in := range s.Installs {
		words = append(words, installDesc(in))
		allLocs = append(allLocs, in.Location...)
	}
	evalSt, err := b.Nix.Run(fmt.Sprintf("[nix %s] evaluate %s", s.Name, strings.Join(words, " ")), s.Name,
		steps.EvalRequest{Installs: reqs, Out: steps.OutDir},
		[]nixstep.Mount{{Target: steps.SrcDir, State: b.Context, Path: "/"}},
		b.location(allLocs))
	if err != nil {
		return llb.State{}, nil, steps.Manifest{}, nil, err
	}
	var results []steps.EvalResult
	if err := b.readJSON(ctx, evalSt, steps.JobsFile, &results); err != nil {
		return llb.State{}, nil, steps.Manifest{}, nil, err
	}
	if len(results) != len(s.Installs) {
		return llb.State{}, nil, steps.Manifest{}, nil, fmt.Errorf("evaluation returned %d results for %d INSTALL lines", len(results), len(s.Installs))
	}

	jobs, links, err := b.jobs(s, reqs, results)
	if err != nil {
		return llb.State{}, nil, steps.Manifest{}, nil, err
	}
	var entrypoint []string
	if s.EntrypointFromMeta && len(links) > 0 && len(results[0].Jobs) > 0 {
		entrypoint = []string{path.Join(links[0].Root, "bin", mainProgram(results[0].Jobs[0]))}
	}
	for i, j := range jobs {
		st, err := b.Nix.Run(fmt.Sprintf("[nix %d/%d] build %s", i+1, len(jobs), j.name), j.name,
			steps.BuildRequest{Name: j.name, DrvPath: j.drvPath, System: j.system, Outputs: j.outputs,
				DrvClosure: steps.InDir + "/" + steps.DrvClosure, Out: steps.OutDir},
			[]nixstep.Mount{{Target: steps.InDir, State: evalSt, Path: "/" + steps.DrvDir + "/" + steps.DrvKey(j.drvPath)}},
			b.location(j.locs))
		if err != nil {
			return llb.State{}, nil, steps.Manifest{}, nil, err
		}
		jobs[i].state = st
	}

	exportReq := steps.ExportRequest{Links: links, Out: steps.OutDir}
	if s.EntrypointFromMeta && len(jobs) == 1 && len(jobs[0].outputs) == 1 {
		for _, p := range jobs[0].outputs {
			exportReq.LoadImage = p
		}
	}
	var mounts []nixstep.Mount
	for _, j := range jobs {
		dir := steps.InDir + "/results/" + j.key
		mounts = append(mounts, nixstep.Mount{Target: dir, State: j.state, Path: "/"})
		exportReq.Results = append(exportReq.Results, dir+"/"+steps.ResultFile)
		drvDir := steps.InDir + "/drv/" + steps.DrvKey(j.drvPath)
		mounts = append(mounts, nixstep.Mount{Target: drvDir, State: evalSt, Path: "/" + steps.DrvDir + "/" + steps.DrvKey(j.drvPath)})
		exportReq.DrvClosures = append(exportReq.DrvClosures, drvDir+"/"+steps.DrvClosure)
	}
	exportSt, err := b.Nix.Run(fmt.Sprintf("[nix %s] export closure", s.Name), s.Name, exportReq, mounts, b.location(allLocs))
	if err != nil {
		return llb.State{}, nil, steps.Manifest{}, nil, err
	}
	var manifest steps.Manifest
	if err := b.readJSON(ctx, exportSt, steps.ManifestFile, &manifest); err != nil {
		return llb.State{}, nil, steps.Manifest{}, nil, err
	}
	if b.PushCache != "" {
		pushSt, err := b.Nix.Run(fmt.Sprintf("[nix %s] push closure to %s", s.Name, redactURL(b.PushCache)), s.Name,
			steps.PushRequest{URL: b.PushCache, Results: exportReq.Results, DrvClosures: exportReq.DrvClosures, Out: steps.OutDir},
			mounts, b.location(allLocs))
		if err != nil {
			return llb.State{}, nil, steps.Manifest{}, nil, err
		}
		var pushed map[string]any
		if err := b.readJSON(ctx, pushSt, steps.PushedFile, &pushed); err != nil {
			return llb.State{}, nil, steps.Manifest{}, nil, err
		}
	}
	if manifest.Image != nil {
		st, img, err := b.loadImage(ctx, s, exportSt, manifest.Image.Layers)
		return st, img, manifest, nil, err
	}
	st, img, err := b.image(s, exportSt, manifest, links)
	if err != nil {
		return llb.State{}, nil, steps.Manifest{}, nil, err
	}
	if entrypoint != nil {
		img.Config.Entrypoint, img.Config.Cmd = entrypoint, nil
	}
	var installed []Installed
	for _, res := range results {
		for _, j := range res.Jobs {
			in := Installed{DrvPath: j.DrvPath, Meta: j.Meta}
			for _, o := range sortedKeys(j.Outputs) {
				in.Outputs = append(in.Outputs, j.Outputs[o])
			}
			installed = append(installed, in)
		}
	}
	return st, img, manifest, installed, nil
}

// loadImage makes the image an image tarball built by Nix describes: one
// layer per layer of the tarball, and its config.
func (b *Builder) loadImage(ctx context.Context, s Stage, exportSt llb.State, layers int) (llb.State, *dockerspec.DockerOCIImage, error) {
	var img dockerspec.DockerOCIImage
	if err := b.readJSON(ctx, exportSt, steps.ImageDir+"/"+imagearchive.ConfigFile, &img); err != nil {
		return llb.State{}, nil, err
	}
	if img.OS == "" {
		img.Platform = s.BaseImage.Platform
	}
	img.RootFS.DiffIDs = nil
	img.History = nil
	states := []llb.State{llb.Scratch()}
	for i := 0; i < layers; i++ {
		dir := fmt.Sprintf("/%s/%s/%d/", steps.ImageDir, imagearchive.LayersDir, i)
		states = append(states, llb.Scratch().File(llb.Copy(exportSt, dir, "/", &llb.CopyInfo{CopyDirContentsOnly: true}),
			llb.WithCustomName(fmt.Sprintf("[nix %s] image tarball layer %d", s.Name, i+1))))
		created := storelayers.Epoch
		img.History = append(img.History, ocispecs.History{Created: &created, CreatedBy: fmt.Sprintf("nix-frontend: layer %d of the image tarball", i+1), Comment: "nix-frontend"})
	}
	return llb.Merge(states, llb.WithCustomName(fmt.Sprintf("[nix %s] merge image tarball", s.Name))), &img, nil
}

// redactURL drops a password from a URL shown in progress lines.
func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil || u.User == nil {
		return s
	}
	u.User = url.User(u.User.Username())
	return u.String()
}

// mainProgram is the program `nix run` would run for a package.
func mainProgram(j evaljobs.Job) string {
	var meta struct {
		MainProgram string `json:"mainProgram"`
	}
	if len(j.Meta) > 0 && json.Unmarshal(j.Meta, &meta) == nil && meta.MainProgram != "" {
		return meta.MainProgram
	}
	return nixlog.PName(j.Name)
}

// image merges one layer per store path (or group) and the link layer onto
// the base, and extends the base's config.
func (b *Builder) image(s Stage, exportSt llb.State, m steps.Manifest, links []steps.LinkGroup) (llb.State, *dockerspec.DockerOCIImage, error) {
	budget := b.MaxLayers
	if budget <= 0 {
		budget = storelayers.DefaultMaxLayers
	}
	budget -= s.BaseLayers
	if m.Links {
		budget--
	}
	if budget < 1 {
		return llb.State{}, nil, fmt.Errorf("the layer budget NIX_MAX_LAYERS=%d leaves no room for store paths after the base image's %d layers; raise it", b.MaxLayers, s.BaseLayers)
	}
	img := cloneImage(s.BaseImage)
	states := []llb.State{s.Base}
	for _, l := range storelayers.Plan(m.Paths, budget) {
		states = append(states, l.State(exportSt))
		img.History = append(img.History, l.History())
	}
	if m.Links {
		states = append(states, storelayers.LinkLayer(exportSt))
		h := storelayers.Layer{}.History()
		h.CreatedBy = "nix-frontend: links in " + linkRoots(links)
		img.History = append(img.History, h)
	}
	img.Config.Env = withPath(img.Config.Env, links)
	merged := llb.Merge(states, llb.WithCustomName(fmt.Sprintf("[nix %s] merge %d store paths", s.Name, len(m.Paths))))
	return merged, img, nil
}

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

// evalRequests turns INSTALL lines into evaluation requests.
func (b *Builder) evalRequests(s Stage) ([]evaljobs.Request, error) {
	var reqs []evaljobs.Request
	for _, in := range s.Installs {
		// Meta gives the SBOM its licenses and the entrypoint its program.
		r := evaljobs.Request{Impure: in.Impure, System: in.System, Meta: true}
		if r.System == "" {
			r.System = s.System
		}
		if in.File != "" {
			r.File = path.Join(steps.SrcDir, path.Clean("/"+in.File))
			for _, a := range in.Installables {
				r.Installables = append(r.Installables, evaljobs.Installable{Attr: a})
			}
			for _, a := range in.Args {
				r.Args = append(r.Args, evaljobs.Arg{Name: a.Name, Value: a.Value, String: a.String})
			}
		} else {
			for _, w := range in.Installables {
				inst, err := evaljobs.ResolveFlakeRef(w, steps.SrcDir)
				if err != nil {
					return nil, parser.WithLocation(fmt.Errorf("INSTALL %s: %w", w, err), in.Location)
				}
				r.Installables = append(r.Installables, inst)
			}
		}
		reqs = append(reqs, r)
	}
	return reqs, nil
}

// jobs picks the build steps from the evaluation, reporting every
// installable that failed to evaluate at its INSTALL line.
func (b *Builder) jobs(s Stage, reqs []evaljobs.Request, results []steps.EvalResult) ([]*job, []steps.LinkGroup, error) {
	var jobs []*job
	byKey := map[string]*job{}
	var links []steps.LinkGroup
	var errs []string
	var errLocs []parser.Range
	for i, res := range results {
		in := s.Installs[i]
		targets := reqs[i].Targets()
		var paths []string
		for k, j := range res.Jobs {
			word := installDesc(in)
			if k < len(in.Installables) {
				word = in.Installables[k]
			}
			if j.Error != "" {
				// Name context files as the user does, not by the mount.
				msg := strings.ReplaceAll(evaljobs.TrimNixError(j.Error), steps.SrcDir+"/", "")
				errs = append(errs, fmt.Sprintf("INSTALL %s: %s", word, msg))
				if errLocs == nil {
					errLocs = in.Location
				}
				continue
			}
			var sel []string
			if k < len(targets) {
				sel = targets[k].Outputs
			}
			outputs, err := selectOutputs(j, sel)
			if err != nil {
				errs = append(errs, fmt.Sprintf("INSTALL %s: %v", word, err))
				if errLocs == nil {
					errLocs = in.Location
				}
				continue
			}
			key := steps.DrvKey(j.DrvPath) + "." + strings.Join(sortedKeys(outputs), ",")
			jb := byKey[key]
			if jb == nil {
				jb = &job{key: key, name: j.Name, system: j.System, drvPath: j.DrvPath, outputs: outputs}
				byKey[key] = jb
				jobs = append(jobs, jb)
			}
			jb.locs = append(jb.locs, in.Location...)
			for _, name := range sortedKeys(outputs) {
				paths = append(paths, outputs[name])
			}
		}
		root := in.Link
		switch {
		case root == "none":
			continue
		case root == "" && s.Scratch:
			root = "/"
		case root == "":
			root = "/usr/local"
		}
		line := 0
		if len(in.Location) > 0 {
			line = in.Location[0].Start.Line
		}
		links = append(links, steps.LinkGroup{Root: root, Priority: in.Priority, Paths: paths, Line: line})
	}
	if len(errs) > 0 {
		return nil, nil, parser.WithLocation(fmt.Errorf("evaluation failed:\n%s", strings.Join(errs, "\n")), errLocs)
	}
	return jobs, links, nil
}

// selectOutputs picks the outputs an installable installs: those after '^'
// ("*" for all), else "out" (or the first output), like `nix profile`.
func selectOutputs(j evaljobs.Job, sel []string) (map[string]string, error) {
	if len(j.Outputs) == 0 {
		return nil, fmt.Errorf("%s has no outputs", j.DrvPath)
	}
	out := map[string]string{}
	switch {
	case len(sel) == 1 && sel[0] == "*":
		for k, v := range j.Outputs {
			out[k] = v
		}
	case len(sel) > 0:
		for _, name := range sel {
			p, ok := j.Outputs[name]
			if !ok {
				return nil, fmt.Errorf("%s has no output %q (it has %s)", j.Name, name, strings.Join(sortedKeys(j.Outputs), ", "))
			}
			out[name] = p
		}
	default:
		if p, ok := j.Outputs["out"]; ok {
			out["out"] = p
		} else {
			first := sortedKeys(j.Outputs)[0]
			out[first] = j.Outputs[first]
		}
	}
	for name, p := range out {
		if p == "" {
			return nil, fmt.Errorf("output %s of %s is content-addressed, which nix-frontend does not support yet", name, j.Name)
		}
	}
	return out, nil
}

// readJSON solves st and reads one of its files.
func (b *Builder) readJSON(ctx context.Context, st llb.State, file string, v any) error {
	def, err := st.Marshal(ctx)
	if err != nil {
		return err
	}
	res, err := b.Client.Solve(ctx, client.SolveRequest{Definition: def.ToPB(), CacheImports: b.CacheImports})
	if err != nil {
		return err
	}
	ref, err := res.SingleRef()
	if err != nil {
		return err
	}
	dt, err := ref.ReadFile(ctx, client.ReadRequest{Filename: "/" + file})
	if err != nil {
		return fmt.Errorf("reading %s: %w", file, err)
	}
	return json.Unmarshal(dt, v)
}

func (b *Builder) location(ranges []parser.Range) llb.ConstraintsOpt {
	if b.SourceMap == nil || len(ranges) == 0 {
		return llb.WithDescription(nil)
	}
	locs := make([]*pb.Range, 0, len(ranges))
	for _, r := range ranges {
		locs = append(locs, &pb.Range{
			Start: &pb.Position{Line: int32(r.Start.Line), Character: int32(r.Start.Character)},
			End:   &pb.Position{Line: int32(r.End.Line), Character: int32(r.End.Character)},
		})
	}
	return b.SourceMap.Location(locs)
}

func installDesc(in *nixfile.Install) string {
	if len(in.Installables) == 0 {
		return "--file=" + in.File
	}
	return strings.Join(in.Installables, " ")
}

func linkRoots(links []steps.LinkGroup) string {
	seen := map[string]bool{}
	var roots []string
	for _, l := range links {
		if !seen[l.Root] {
			seen[l.Root] = true
			roots = append(roots, l.Root)
		}
	}
	sort.Strings(roots)
	return strings.Join(roots, ", ")
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
