package frontend

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"path"
	"strconv"
	"strings"

	"github.com/containerd/platforms"
	"github.com/distribution/reference"
	"github.com/moby/buildkit/client/llb"
	"github.com/moby/buildkit/client/llb/sourceresolver"
	"github.com/moby/buildkit/frontend/dockerfile/dockerfile2llb"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
	"github.com/moby/buildkit/frontend/dockerui"
	"github.com/moby/buildkit/frontend/gateway/client"
	dockerspec "github.com/moby/docker-image-spec/specs-go/v1"
	"github.com/nix-frontend/nix-frontend/frontend/nixbuild"
	"github.com/nix-frontend/nix-frontend/frontend/nixfile"
	"github.com/nix-frontend/nix-frontend/llb/nixstep"
	"github.com/nix-frontend/nix-frontend/nix/system"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/pkg/errors"
)

// converter converts one Nixfile. It is made once per build and only read
// afterwards: the platforms of a multi-platform build convert concurrently.
type converter struct {
	c          client.Client
	bc         *dockerui.Client
	src        *dockerui.Source
	nf         *nixfile.Nixfile
	dockerfile []byte // the Nixfile as a Dockerfile, same line numbers
	cfg        config
	checks     *checks
	// compat is compatibility mode: a Nix file given as the build file.
	// The installed package's program becomes the entrypoint, and an
	// installed image tarball the image.
	compat bool
	// nix is where Nix runs, resolved once per build when a stage the
	// target needs has INSTALL lines.
	nix *nixstep.Env
	// preview plans the Nix stages' layers without making them: see
	// pushPreview.
	preview bool
}

// convertOpt is the Dockerfile converter's options for one platform.
// stages are the Nix-built stages, handed over as named contexts; warn
// shows the converter's lint warnings (nil: none).
func (cv *converter) convertOpt(ctx context.Context, platform *ocispecs.Platform, stages map[int]nixState, warn bool) (dockerfile2llb.ConvertOpt, error) {
	opt := dockerfile2llb.ConvertOpt{
		Config:         cv.bc.Config,
		SourceMap:      cv.src.SourceMap,
		MetaResolver:   cv.c,
		TargetPlatform: platform,
	}
	// Each conversion gets its own map: platforms convert concurrently.
	opt.BuildArgs = maps.Clone(cv.bc.BuildArgs)
	if warn {
		opt.Warn = cv.checks.dockerfileWarn(ctx)
	}
	w, err := newWithContexts(cv.c, stages)
	if err != nil {
		return opt, err
	}
	if opt.Client, err = dockerui.NewClient(w); err != nil {
		return opt, err
	}
	return opt, nil
}

// placeholderOpt converts with empty stand-ins for Nix-built stages: what
// outlines, target lists and checks need, without building anything.
func (cv *converter) placeholderOpt(ctx context.Context) (dockerfile2llb.ConvertOpt, error) {
	stages := map[int]nixState{}
	for _, s := range cv.nf.Stages {
		if len(s.Installs) > 0 {
			stages[s.Index] = nixState{State: llb.Scratch()}
		}
	}
	return cv.convertOpt(ctx, nil, stages, false)
}

// targetStage is the stage --target names, or the last one.
func (cv *converter) targetStage() (int, error) {
	stages := cv.nf.Stages
	if len(stages) == 0 {
		return 0, errors.New("the Nixfile has no FROM instruction")
	}
	t := cv.bc.Target
	if t == "" {
		return len(stages) - 1, nil
	}
	for _, s := range stages {
		if strings.EqualFold(s.Name, t) {
			return s.Index, nil
		}
	}
	return 0, fmt.Errorf("target stage %q could not be found", t)
}

// buildPlatform is the Nix-relevant part of the build for one platform: the
// dockerui result, and the SBOM step when the build asked for one.
type builtPlatform struct {
	platform ocispecs.Platform
	sbom     *nixstep.Run
}

// buildPlatform builds the target stage for one platform. Only the first
// platform shows lint warnings: they are the same for every platform.
func (cv *converter) buildPlatform(ctx context.Context, targetOpt *ocispecs.Platform, first bool) (*dockerui.BuildResult, builtPlatform, error) {
	target := platforms.DefaultSpec()
	if targetOpt != nil {
		target = *targetOpt
	}
	out := builtPlatform{platform: target}
	scope := cv.scopes(target)
	targetIdx, err := cv.targetStage()
	if err != nil {
		return nil, out, err
	}
	stages, err := cv.nixStages(ctx, scope, reachable(cv.nf, targetIdx, scope), targetOpt, first)
	if err != nil {
		return nil, out, err
	}
	if cv.bc.SBOM != nil && len(stages) > 0 {
		var sources []nixbuild.Source
		for _, st := range stages {
			sources = append(sources, st.SBOM...)
		}
		run, err := cv.sbomStep(cv.nix, target, sources)
		if err != nil {
			return nil, out, err
		}
		out.sbom = &run
	}
	opt, err := cv.convertOpt(ctx, targetOpt, stages, first)
	if err != nil {
		return nil, out, err
	}
	res, err := dockerfile2llb.Dockerfile2LLB(ctx, cv.dockerfile, opt)
	if err != nil {
		return nil, out, err
	}
	def, err := res.State.Marshal(ctx)
	if err != nil {
		return nil, out, errors.Wrap(err, "failed to marshal LLB definition")
	}
	r, err := cv.c.Solve(ctx, client.SolveRequest{Definition: def.ToPB(), CacheImports: cv.bc.CacheImports})
	if err != nil {
		return nil, out, err
	}
	ref, err := r.SingleRef()
	if err != nil {
		return nil, out, err
	}
	return &dockerui.BuildResult{Reference: ref, Image: res.Image, BaseImage: res.BaseImage, Epoch: res.Epoch}, out, nil
}

// nixStages builds the reachable stages with INSTALL lines. Stages whose
// bases do not need another of them build at once; a stage based on an
// earlier stage waits for the Nix stages that one needs.
func (cv *converter) nixStages(ctx context.Context, scope scopes, reach map[int]bool, targetOpt *ocispecs.Platform, first bool) (map[int]nixState, error) {
	deps := map[int][]int{}
	var pending []*nixfile.Stage
	for _, s := range cv.nf.Stages {
		if !reach[s.Index] || len(s.Installs) == 0 {
			continue
		}
		pending = append(pending, s)
		if j, ok := scope.stageRef(cv.nf, s.BaseName, s.Index, scope.meta); ok {
			for k := range reachable(cv.nf, j, scope) {
				if len(cv.nf.Stages[k].Installs) > 0 {
					deps[s.Index] = append(deps[s.Index], k)
				}
			}
		}
	}
	done := map[int]nixState{}
	for len(pending) > 0 {
		var ready, waiting []*nixfile.Stage
		for _, s := range pending {
			if allDone(deps[s.Index], done) {
				ready = append(ready, s)
			} else {
				waiting = append(waiting, s)
			}
		}
		if len(ready) == 0 {
			return nil, parser.WithLocation(errors.New("stages depend on each other in a cycle"), waiting[0].Location)
		}
		built := make([]nixState, len(ready))
		err := nixbuild.Each(ctx, len(ready), -1, func(ctx context.Context, i int) (err error) {
			built[i], err = cv.nixStage(ctx, ready[i], scope, targetOpt, done, first)
			return err
		})
		if err != nil {
			return nil, err
		}
		for i, s := range ready {
			done[s.Index] = built[i]
		}
		pending = waiting
	}
	return done, nil
}

func allDone(deps []int, done map[int]nixState) bool {
	for _, d := range deps {
		if _, ok := done[d]; !ok {
			return false
		}
	}
	return true
}

// nixStage applies a stage's INSTALL lines to its base. done holds the
// Nix stages its base may need; nixStage only reads it.
func (cv *converter) nixStage(ctx context.Context, s *nixfile.Stage, scope scopes, targetOpt *ocispecs.Platform, done map[int]nixState, first bool) (nixState, error) {
	lex := cv.nf.Lex()
	stagePlatform := scope.target
	if s.Platform != "" {
		p, _, err := lex.ProcessWord(s.Platform, scope.meta)
		if err == nil {
			stagePlatform, err = platforms.Parse(p)
		}
		if err != nil {
			return nixState{}, parser.WithLocation(fmt.Errorf("FROM --platform=%s: %v", s.Platform, err), s.Location)
		}
		stagePlatform = platforms.Normalize(stagePlatform)
	}
	nixSystem, err := system.ForPlatform(stagePlatform)
	if err != nil {
		return nixState{}, parser.WithLocation(err, s.Location)
	}
	baseName, _, err := lex.ProcessWord(s.BaseName, scope.meta)
	if err != nil {
		return nixState{}, parser.WithLocation(fmt.Errorf("FROM %s: %v", s.BaseName, err), s.Location)
	}
	stage := nixbuild.Stage{Name: s.Name, System: nixSystem, EntrypointFromMeta: cv.compat}
	if stage.Name == "" {
		stage.Name = "stage-" + strconv.Itoa(s.Index)
	}
	base, img, err := cv.base(ctx, s, baseName, stagePlatform, targetOpt, done)
	if err != nil {
		return nixState{}, parser.WithLocation(err, s.Location)
	}
	stage.Base, stage.BaseImage = base, img
	stage.Scratch = strings.EqualFold(baseName, "scratch")
	stage.Basics = stage.Scratch && cv.cfg.basics
	stage.User = stageUser(s, scope)
	stage.BaseLayers = len(img.RootFS.DiffIDs)
	for _, in := range s.Installs {
		x, err := in.Expand(lex, scope.stage(s, in.CommandIndex))
		if err != nil {
			return nixState{}, err
		}
		stage.Installs = append(stage.Installs, x)
	}
	ctxState, err := cv.evalContext(ctx)
	if err != nil {
		return nixState{}, err
	}
	b := &nixbuild.Builder{
		Client:       cv.c,
		Nix:          cv.nix,
		Context:      *ctxState,
		SourceMap:    cv.src.SourceMap,
		CacheImports: cv.bc.CacheImports,
		MaxLayers:    cv.cfg.maxLayers,
		PushCache:    cv.cfg.pushCache,
		Evaluator:    cv.cfg.evaluator,
		Preview:      cv.preview,
	}
	res, err := b.Build(ctx, stage)
	if err != nil {
		return nixState{}, err
	}
	if first {
		if err := cv.checks.warn(ctx, append(checkPrograms(s, stage.Scratch, res.Programs), res.Warnings...)); err != nil {
			return nixState{}, err
		}
	}
	return nixState{State: res.State, Image: res.Image, SBOM: res.SBOM, Preview: res.Preview}, nil
}

// resolveNix resolves the Nix image and the helper image for the build
// platform: Nix runs where BuildKit runs, and builds other systems the way
// Nix does (extra-platforms with emulation, or remote builders).
func (cv *converter) resolveNix(ctx context.Context) (*nixstep.Env, error) {
	helper := nixstep.Helper{Ref: cv.cfg.selfImage}
	// BuildKit's gateway client knows the image it runs the frontend from;
	// a frontend run in-process (tests) has none.
	if cf, ok := cv.c.(interface{ CurrentFrontend() (*llb.State, error) }); ok {
		self, err := cf.CurrentFrontend()
		if err != nil {
			return nil, err
		}
		helper.Self = self
	}
	if helper.Self == nil && helper.Ref == "" {
		return nil, fmt.Errorf("nix-frontend does not know its own image: run it through a `# syntax=` line, or give the %q frontend option when running it in-process", SourceOpt)
	}
	build := platforms.DefaultSpec()
	if len(cv.bc.BuildPlatforms) > 0 {
		build = cv.bc.BuildPlatforms[0]
	}
	return nixstep.Resolve(ctx, cv.c, cv.cfg.nixImage, helper, build, cv.cfg.nixConfig)
}

// base resolves a stage's FROM: scratch, an earlier stage (built by the
// Dockerfile converter, with the Nix-built stages before it), a named
// context, or an image.
func (cv *converter) base(ctx context.Context, s *nixfile.Stage, name string, platform ocispecs.Platform, targetOpt *ocispecs.Platform, done map[int]nixState) (llb.State, *dockerspec.DockerOCIImage, error) {
	if strings.EqualFold(name, "scratch") {
		img := emptyImage(platform)
		return llb.Scratch().Platform(platform), &img, nil
	}
	for _, prev := range cv.nf.Stages[:s.Index] {
		if prev.Name != "" && strings.EqualFold(prev.Name, name) {
			opt, err := cv.convertOpt(ctx, targetOpt, done, false)
			if err != nil {
				return llb.State{}, nil, err
			}
			opt.Target = prev.Name
			res, err := dockerfile2llb.Dockerfile2LLB(ctx, cv.dockerfile, opt)
			if err != nil {
				return llb.State{}, nil, err
			}
			return res.State, res.Image, nil
		}
	}
	nc, err := cv.bc.NamedContext(name, dockerui.ContextOpt{Platform: &platform, ResolveMode: cv.bc.ImageResolveMode.String()})
	if err != nil {
		return llb.State{}, nil, err
	}
	if nc != nil {
		st, img, err := nc.Load(ctx)
		if err != nil {
			return llb.State{}, nil, err
		}
		if img == nil {
			e := emptyImage(platform)
			img = &e
		}
		return *st, img, nil
	}
	named, err := reference.ParseNormalizedNamed(name)
	if err != nil {
		return llb.State{}, nil, fmt.Errorf("FROM %s: %v", name, err)
	}
	ref := reference.TagNameOnly(named).String()
	_, dgst, dt, err := cv.c.ResolveImageConfig(ctx, ref, sourceresolver.Opt{
		LogName:  "[internal] load metadata for " + ref,
		ImageOpt: &sourceresolver.ResolveImageOpt{Platform: &platform, ResolveMode: cv.bc.ImageResolveMode.String()},
	})
	if err != nil {
		return llb.State{}, nil, err
	}
	var img dockerspec.DockerOCIImage
	if err := json.Unmarshal(dt, &img); err != nil {
		return llb.State{}, nil, err
	}
	pinned, err := reference.WithDigest(reference.TrimNamed(named), dgst)
	if err != nil {
		return llb.State{}, nil, err
	}
	st, err := llb.Image(pinned.String(), llb.Platform(platform)).WithImageConfig(dt)
	if err != nil {
		return llb.State{}, nil, err
	}
	img.Created = nil
	return st, &img, nil
}

func emptyImage(platform ocispecs.Platform) dockerspec.DockerOCIImage {
	img := dockerspec.DockerOCIImage{}
	img.Platform = platform
	img.RootFS.Type = "layers"
	img.Config.WorkingDir = "/"
	img.Config.Env = []string{"PATH=" + nixbuild.DefaultPath}
	return img
}

// evalContext is the build context as evaluation sees it: without the
// Nixfile, when the Nixfile is at the context's root, so that editing the
// Nixfile (a comment above an INSTALL line) changes nothing Nix reads, even
// for an expression that takes the whole context as its source. A Nix file
// given as the build file (compatibility mode) is what Nix evaluates, and
// stays.
func (cv *converter) evalContext(ctx context.Context) (*llb.State, error) {
	st, err := cv.bc.MainContext(ctx)
	if err != nil || cv.compat {
		return st, err
	}
	name := path.Base(cv.src.Filename)
	out := st.File(llb.Rm("/"+name, llb.WithAllowNotFound(true)), llb.WithCustomName("[nix] evaluation context: the build context without "+name))
	return &out, nil
}

func formatPlatform(p ocispecs.Platform) string { return platforms.FormatAll(platforms.Normalize(p)) }
