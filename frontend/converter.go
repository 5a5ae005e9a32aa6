package frontend

import (
	"context"
	"encoding/json"
	"fmt"
	"path"
	"strconv"
	"strings"
	"sync"

	"github.com/containerd/platforms"
	"github.com/distribution/reference"
	"github.com/moby/buildkit/client/llb"
	"github.com/moby/buildkit/client/llb/sourceresolver"
	"github.com/moby/buildkit/frontend/dockerfile/dockerfile2llb"
	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/linter"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
	"github.com/moby/buildkit/frontend/dockerui"
	"github.com/moby/buildkit/frontend/gateway/client"
	"github.com/moby/buildkit/frontend/subrequests/lint"
	dockerspec "github.com/moby/docker-image-spec/specs-go/v1"
	"github.com/nix-frontend/nix-frontend/frontend/nixbuild"
	"github.com/nix-frontend/nix-frontend/frontend/nixfile"
	"github.com/nix-frontend/nix-frontend/llb/nixstep"
	"github.com/nix-frontend/nix-frontend/llb/storelayers"
	"github.com/nix-frontend/nix-frontend/nix/protocol"
	"github.com/nix-frontend/nix-frontend/nix/system"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/pkg/errors"
)

// converter converts one Nixfile, once per target platform.
type converter struct {
	c          client.Client
	bc         *dockerui.Client
	src        *dockerui.Source
	nf         *nixfile.Nixfile
	dockerfile []byte // the Nixfile as a Dockerfile, same line numbers
	selfImage  string
	nixImage   string
	nixConfig  string
	maxLayers  int
	evaluator  string
	// entrypointFromMeta sets the image's entrypoint to the installed
	// package's program (compatibility mode).
	entrypointFromMeta bool

	mu       sync.Mutex
	sboms    map[string]nixstep.Run // by platform
	checked  map[int]bool                  // stages checkPrograms looked at
}

func newConverter(ctx context.Context, c client.Client, bc *dockerui.Client, src *dockerui.Source, nf *nixfile.Nixfile) (*converter, error) {
	cv := &converter{c: c, bc: bc, src: src, nf: nf}
	cv.dockerfile = nf.Dockerfile(func(s *nixfile.Stage) string { return contextName(s.Index) })
	args := bc.BuildArgs
	cv.nixImage = args[ArgNixImage]
	if cv.nixImage == "" {
		cv.nixImage = DefaultNixImage
	}
	cv.nixConfig = args[ArgNixConfig]
	// --build-context nix=docker-image://... names the Nix image like any
	// other named context would.
	if v, ok := c.BuildOpts().Opts["context:nix"]; ok {
		ref, isImage := strings.CutPrefix(v, "docker-image://")
		if !isImage {
			return nil, fmt.Errorf("the build context nix=%s must be an image (docker-image://...): it selects the image Nix runs in", v)
		}
		cv.nixImage = ref
	}
	var err error
	if cv.maxLayers, err = atoiDefault(args[ArgMaxLayers], 0); err != nil || cv.maxLayers < 0 {
		return nil, fmt.Errorf("build argument %s=%q: want a number of layers", ArgMaxLayers, args[ArgMaxLayers])
	}
	if cv.maxLayers > storelayers.MaxLayers {
		return nil, fmt.Errorf("build argument %s=%d: images of more than %d layers do not run on every runtime (overlayfs mounts at most %d layers); use %d or fewer", ArgMaxLayers, cv.maxLayers, storelayers.MaxLayers, storelayers.MaxLayers, storelayers.MaxLayers)
	}
	cv.evaluator = args[ArgNixEvaluator]
	switch cv.evaluator {
	case "", protocol.EvaluatorNix, protocol.EvaluatorNixEvalJobs:
	default:
		return nil, fmt.Errorf("build argument %s=%q: use nix-eval-jobs or nix", ArgNixEvaluator, cv.evaluator)
	}
	for _, a := range []string{ArgNixConfig, ArgNixPushCache} {
		if err := credentialFree(a, args[a]); err != nil {
			return nil, err
		}
	}
	cv.selfImage = c.BuildOpts().Opts[SourceOpt]
	return cv, nil
}

func (cv *converter) convertOpt(platform *ocispecs.Platform) dockerfile2llb.ConvertOpt {
	opt := dockerfile2llb.ConvertOpt{
		Config:         cv.bc.Config,
		Client:         cv.bc,
		SourceMap:      cv.src.SourceMap,
		MetaResolver:   cv.c,
		TargetPlatform: platform,
		Warn: func(rulename, description, url, msg string, location []parser.Range) {
			line := 0
			if len(location) > 0 {
				line = location[0].Start.Line
			}
			cv.src.Warn(context.TODO(), linter.LintFormatShort(rulename, msg, line), warnOpts(location, [][]byte{[]byte(description)}, url))
		},
	}
	opt.BuildArgs = cv.buildArgs()
	return opt
}

// placeholderOpt converts with empty stand-ins for Nix-built stages: what
// outlines and target lists need, without building anything.
func (cv *converter) placeholderOpt() dockerfile2llb.ConvertOpt {
	stages := map[int]nixState{}
	for _, s := range cv.nf.Stages {
		if len(s.Installs) > 0 {
			stages[s.Index] = nixState{State: llb.Scratch()}
		}
	}
	opt := cv.convertOpt(nil)
	if w, err := newWithContexts(cv.c, stages); err == nil {
		if bc, err := dockerui.NewClient(w); err == nil {
			opt.Client = bc
		}
	}
	return opt
}

// lint answers --call=check: BuildKit's rules on the Dockerfile part and the
// Nixfile's own rules on INSTALL lines.
func (cv *converter) lint(ctx context.Context) (*lint.LintResults, error) {
	res, err := dockerfile2llb.DockerfileLint(ctx, cv.dockerfile, cv.placeholderOpt())
	if err != nil {
		return nil, err
	}
	cfg, err := cv.nf.CheckConfig()
	if err != nil {
		return nil, err
	}
	ws, _ := nixfile.FilterWarnings(cv.nf.Warnings, cfg)
	for _, w := range ws {
		res.AddWarning(w.RuleName, w.Description, w.URL, w.Message, 0, w.Location)
	}
	return res, nil
}

// buildPlatform builds the target stage for one platform.
func (cv *converter) buildPlatform(ctx context.Context, platform *ocispecs.Platform, idx int) (*dockerui.BuildResult, error) {
	target := platforms.DefaultSpec()
	if platform != nil {
		target = *platform
	}
	targetIdx, err := cv.targetStage()
	if err != nil {
		return nil, err
	}
	reach := reachable(cv.nf, targetIdx)
	stages := map[int]nixState{}
	var nix *nixstep.Env
	for _, s := range cv.nf.Stages {
		if !reach[s.Index] || len(s.Installs) == 0 {
			continue
		}
		if nix == nil {
			if nix, err = cv.nixEnv(ctx); err != nil {
				return nil, parser.WithLocation(err, s.Installs[0].Location)
			}
		}
		st, err := cv.nixStage(ctx, s, target, platform, nix, stages)
		if err != nil {
			return nil, err
		}
		stages[s.Index] = st
	}

	if nix != nil && cv.bc.SBOM != nil {
		var sources []nixbuild.Source
		for _, st := range stages {
			sources = append(sources, st.SBOM...)
		}
		run, err := cv.sbomStep(nix, target, sources)
		if err != nil {
			return nil, err
		}
		cv.mu.Lock()
		if cv.sboms == nil {
			cv.sboms = map[string]nixstep.Run{}
		}
		cv.sboms[formatPlatform(target)] = run
		cv.mu.Unlock()
	}
	opt, err := cv.optWithStages(platform, stages)
	if err != nil {
		return nil, err
	}
	if idx != 0 {
		opt.Warn = nil
	}
	res, err := dockerfile2llb.Dockerfile2LLB(ctx, cv.dockerfile, opt)
	if err != nil {
		return nil, err
	}
	def, err := res.State.Marshal(ctx)
	if err != nil {
		return nil, errors.Wrap(err, "failed to marshal LLB definition")
	}
	r, err := cv.c.Solve(ctx, client.SolveRequest{Definition: def.ToPB(), CacheImports: cv.bc.CacheImports})
	if err != nil {
		return nil, err
	}
	ref, err := r.SingleRef()
	if err != nil {
		return nil, err
	}
	return &dockerui.BuildResult{Reference: ref, Image: res.Image, BaseImage: res.BaseImage, Epoch: res.Epoch}, nil
}

func (cv *converter) optWithStages(platform *ocispecs.Platform, stages map[int]nixState) (dockerfile2llb.ConvertOpt, error) {
	opt := cv.convertOpt(platform)
	w, err := newWithContexts(cv.c, stages)
	if err != nil {
		return opt, err
	}
	bc, err := dockerui.NewClient(w)
	if err != nil {
		return opt, err
	}
	opt.Client = bc
	return opt, nil
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

// nixEnv resolves the Nix image and the helper image for the build platform:
// Nix runs where BuildKit runs, and builds other systems the way Nix does
// (extra-platforms with emulation, or remote builders from NIX_CONFIG).
func (cv *converter) nixEnv(ctx context.Context) (*nixstep.Env, error) {
	if cv.selfImage == "" {
		return nil, fmt.Errorf("nix-frontend does not know its own image: run it through a `# syntax=` line, or give the %q frontend option when running it in-process", SourceOpt)
	}
	build := platforms.DefaultSpec()
	if len(cv.bc.BuildPlatforms) > 0 {
		build = cv.bc.BuildPlatforms[0]
	}
	return nixstep.Resolve(ctx, cv.c, cv.nixImage, cv.selfImage, build, cv.nixConfig)
}

// nixStage applies a stage's INSTALL lines to its base.
func (cv *converter) nixStage(ctx context.Context, s *nixfile.Stage, target ocispecs.Platform, targetOpt *ocispecs.Platform, nix *nixstep.Env, done map[int]nixState) (nixState, error) {
	lex := cv.nf.Lex()
	build := nix.Platform
	auto := platformArgs(build, target)
	meta := metaScope(lex, cv.nf.MetaArgs, cv.bc.BuildArgs, auto)

	stagePlatform := target
	if s.Platform != "" {
		p, _, err := lex.ProcessWord(s.Platform, meta)
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

	baseName, _, err := lex.ProcessWord(s.BaseName, meta)
	if err != nil {
		return nixState{}, parser.WithLocation(fmt.Errorf("FROM %s: %v", s.BaseName, err), s.Location)
	}
	stage := nixbuild.Stage{Name: s.Name, System: nixSystem, EntrypointFromMeta: cv.entrypointFromMeta}
	if stage.Name == "" {
		stage.Name = "stage-" + strconv.Itoa(s.Index)
	}
	base, img, err := cv.base(ctx, s, baseName, stagePlatform, targetOpt, done)
	if err != nil {
		return nixState{}, parser.WithLocation(err, s.Location)
	}
	stage.Base, stage.BaseImage = base, img
	stage.Scratch = strings.EqualFold(baseName, "scratch")
	stage.BaseLayers = len(img.RootFS.DiffIDs)

	for _, in := range s.Installs {
		scope := stageScope(lex, s.Commands, in.CommandIndex, meta, cv.bc.BuildArgs, auto)
		x, err := in.Expand(lex, scope)
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
		Nix:          nix,
		Context:      *ctxState,
		SourceMap:    cv.src.SourceMap,
		CacheImports: cv.bc.CacheImports,
		MaxLayers:    cv.maxLayers,
		PushCache:    cv.bc.BuildArgs[ArgNixPushCache],
		Evaluator:    cv.evaluator,
	}
	res, err := b.Build(ctx, stage)
	if err != nil {
		return nixState{}, err
	}
	if err := cv.checkPrograms(ctx, s, stage.Scratch, res); err != nil {
		return nixState{}, err
	}
	return nixState{State: res.State, Image: res.Image, SBOM: res.SBOM}, nil
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
			opt, err := cv.optWithStages(targetOpt, done)
			if err != nil {
				return llb.State{}, nil, err
			}
			opt.Target = prev.Name
			opt.Warn = nil
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

// reachable returns the stages the target needs: through FROM, COPY --from
// and RUN --mount=from=.
func reachable(nf *nixfile.Nixfile, target int) map[int]bool {
	byName := map[string]int{}
	for _, s := range nf.Stages {
		if s.Name != "" {
			byName[strings.ToLower(s.Name)] = s.Index
		}
	}
	lookup := func(ref string, before int) (int, bool) {
		if i, ok := byName[strings.ToLower(ref)]; ok && i < before {
			return i, true
		}
		if i, err := strconv.Atoi(ref); err == nil && i >= 0 && i < before {
			return i, true
		}
		return 0, false
	}
	seen := map[int]bool{}
	var visit func(i int)
	visit = func(i int) {
		if seen[i] {
			return
		}
		seen[i] = true
		s := nf.Stages[i]
		if j, ok := lookup(s.BaseName, i); ok {
			visit(j)
		}
		for _, c := range s.Commands {
			switch c := c.(type) {
			case *instructions.CopyCommand:
				if j, ok := lookup(c.From, i); ok {
					visit(j)
				}
			case *instructions.RunCommand:
				for _, m := range instructions.GetMounts(c) {
					if j, ok := lookup(m.From, i); ok {
						visit(j)
					}
				}
			}
		}
	}
	visit(target)
	return seen
}

// evalContext is the build context as evaluation sees it: without the
// Nixfile, when the Nixfile is at the context's root, so that editing the
// Nixfile (a comment above an INSTALL line) changes nothing Nix reads, even
// for an expression that takes the whole context as its source. A Nix file
// given as the build file (compatibility mode) is what Nix evaluates, and
// stays.
func (cv *converter) evalContext(ctx context.Context) (*llb.State, error) {
	st, err := cv.bc.MainContext(ctx)
	if err != nil || cv.entrypointFromMeta {
		return st, err
	}
	name := path.Base(cv.src.Filename)
	out := st.File(llb.Rm("/"+name, llb.WithAllowNotFound(true)), llb.WithCustomName("[nix] evaluation context: the build context without "+name))
	return &out, nil
}

func formatPlatform(p ocispecs.Platform) string { return platforms.FormatAll(platforms.Normalize(p)) }
