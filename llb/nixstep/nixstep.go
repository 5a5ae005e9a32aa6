// Package nixstep makes the LLB of build steps that run Nix: the Nix image
// pinned by digest, the shared /nix cache mount seeded from it, the helper
// binary mounted from the frontend image, each step's request as a file,
// and what else a step may reach. Steps that fetch get the network and the
// build's credentials; every other step has neither (see Access).
package nixstep

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/containerd/platforms"
	"github.com/distribution/reference"
	"github.com/moby/buildkit/client/llb"
	"github.com/moby/buildkit/client/llb/sourceresolver"
	"github.com/moby/buildkit/solver/pb"
	"github.com/nix-frontend/nix-frontend/nix/protocol"
	"github.com/nix-frontend/nix-frontend/nix/steps"
	digest "github.com/opencontainers/go-digest"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"
)

// DefaultNixConfig is prepended to the user's NIX_CONFIG in every step: the
// helper uses the `nix` command and flakes. The user's settings come after
// and win.
const DefaultNixConfig = "experimental-features = nix-command flakes"

// StepKey is the description key that names a step's request digest, so
// the frontend can tell which step failed (errdefs.SolveError).
const StepKey = "nix-frontend.step"

// epoch is the time of the request files.
var epoch = time.Unix(0, 0).UTC()

// reportsCacheID is the cache mount failed steps report to.
const reportsCacheID = "nix-frontend-reports"

// Env is where Nix runs: an image, a platform and a store.
type Env struct {
	// Ref is the Nix image pinned by digest.
	Ref      string
	Digest   digest.Digest
	Platform ocispecs.Platform
	image    llb.State
	seed     llb.State
	helper   llb.State
	// NixConfig is the user's NIX_CONFIG build argument.
	NixConfig string
	// CacheID names the shared /nix cache mount; one per Nix image and
	// platform, so a store is only ever used by the Nix that made it.
	CacheID string
}

// Helper is the frontend image that steps run the helper binary from.
type Helper struct {
	// Self is the image BuildKit runs this frontend from, pinned by
	// digest (the gateway's CurrentFrontend), when BuildKit says.
	Self *llb.State
	// Ref is the frontend image's reference, resolved when Self is nil.
	Ref string
}

// Resolve pins the Nix image and the frontend image and prepares the store
// mount for the build platform.
func Resolve(ctx context.Context, resolver sourceresolver.ImageMetaResolver, nixImage string, helper Helper, platform ocispecs.Platform, nixConfig string) (*Env, error) {
	nixRef, nixDgst, cfg, err := resolve(ctx, resolver, nixImage, platform)
	if err != nil {
		return nil, fmt.Errorf("the Nix image %s: %w (set the NIX_IMAGE build argument to an image with Nix)", nixImage, err)
	}
	helperSt, helperDgst, err := resolveHelper(ctx, resolver, helper, platform)
	if err != nil {
		return nil, err
	}
	// The frontend image holds no Nix; said here, before BuildKit fails on
	// the one image mounted twice in every step.
	if nixDgst == helperDgst {
		return nil, fmt.Errorf("the Nix image %s is the nix-frontend image itself, which has no Nix: set the NIX_IMAGE build argument to an image with Nix, such as nixos/nix", nixImage)
	}
	img, err := llb.Image(nixRef, llb.Platform(platform), llb.WithCustomName("[nix] load "+nixImage)).WithImageConfig(cfg)
	if err != nil {
		return nil, err
	}
	e := &Env{
		Ref:       nixRef,
		Digest:    nixDgst,
		Platform:  platform,
		image:     img,
		helper:    helperSt,
		NixConfig: nixConfig,
		CacheID:   "nix-frontend-store-" + nixDgst.Encoded()[:16] + "-" + strings.ReplaceAll(platforms.Format(platform), "/", "-"),
	}
	// nixos/nix keeps Nix itself in /nix/store: the cache mount starts as a
	// copy of the image's /nix. An image with Nix in /usr/bin has no /nix,
	// and the mount starts empty.
	e.seed = img.File(llb.Mkdir("/nix", 0o755, llb.WithParents(true)), llb.WithCustomName("[nix] prepare /nix"))
	return e, nil
}

// resolveHelper returns the frontend image to run the helper from, and its
// digest. The image BuildKit runs the frontend from needs no registry
// round trip, and is the very binary that wrote the steps' requests.
func resolveHelper(ctx context.Context, resolver sourceresolver.ImageMetaResolver, h Helper, platform ocispecs.Platform) (llb.State, digest.Digest, error) {
	if h.Self != nil {
		dgst, err := sourceDigest(ctx, *h.Self)
		if err != nil {
			return llb.State{}, "", fmt.Errorf("the nix-frontend image BuildKit runs: %w", err)
		}
		return *h.Self, dgst, nil
	}
	ref, dgst, _, err := resolve(ctx, resolver, h.Ref, platform)
	if err != nil {
		return llb.State{}, "", fmt.Errorf("the nix-frontend image %s: %w", h.Ref, err)
	}
	return llb.Image(ref, llb.Platform(platform), llb.WithCustomName("[nix] load nix-frontend helper")), dgst, nil
}

// sourceDigest is the digest an image state is pinned to.
func sourceDigest(ctx context.Context, st llb.State) (digest.Digest, error) {
	def, err := st.Marshal(ctx)
	if err != nil {
		return "", err
	}
	for _, dt := range def.Def {
		var op pb.Op
		if err := op.UnmarshalVT(dt); err != nil {
			return "", err
		}
		if src := op.GetSource(); src != nil {
			if _, d, ok := strings.Cut(src.Identifier, "@"); ok {
				return digest.Parse(d)
			}
		}
	}
	return "", errors.New("it is not pinned by digest")
}

func resolve(ctx context.Context, resolver sourceresolver.ImageMetaResolver, ref string, platform ocispecs.Platform) (string, digest.Digest, []byte, error) {
	named, err := reference.ParseNormalizedNamed(ref)
	if err != nil {
		return "", "", nil, err
	}
	_, dgst, cfg, err := resolver.ResolveImageConfig(ctx, reference.TagNameOnly(named).String(), sourceresolver.Opt{
		LogName:  "[nix] resolve " + ref,
		ImageOpt: &sourceresolver.ResolveImageOpt{Platform: &platform},
	})
	if err != nil {
		return "", "", nil, err
	}
	pinned, err := reference.WithDigest(reference.TrimNamed(named), dgst)
	if err != nil {
		return "", "", nil, err
	}
	return pinned.String(), dgst, cfg, nil
}

// Access is what a step reaches besides the store.
type Access int

const (
	// Hermetic steps have no network and none of the build's credentials,
	// as builders in Nix's sandbox: builds, layers, link trees.
	Hermetic Access = iota
	// Fetching steps have BuildKit's network and the build's credentials
	// (--secret, --ssh): evaluation, fetches and pushes.
	Fetching
)

// Mount is an input of a step, read-only, limited to one path of a state.
type Mount struct {
	Target string    // where, inside the step
	State  llb.State //
	Path   string    // which path of State; its contents alone key the cache
}

// Step is one helper command to run.
type Step struct {
	// Name is the progress line.
	Name    string
	Request protocol.Request
	Inputs  []Mount
	Access  Access
	// Network gives a hermetic step BuildKit's network after all
	// (INSTALL --network=default), still without credentials.
	Network bool
	// UserConfig applies the user's NIX_CONFIG: to steps whose work it
	// shapes (evaluation, fetches, builds, pushes), not to those that copy
	// what is built, whose cache keys then depend on the store paths alone.
	UserConfig bool
	// Meta gives the step a second output at protocol.MetaDir.
	Meta bool
	// Layers gives the step that many outputs at protocol.LayerDir(i)
	// instead of protocol.OutDir.
	Layers int
	// HelperOnly runs the step in the frontend image alone, without Nix
	// and the store: for commands that only read other steps' outputs.
	HelperOnly bool
	// Location points the step at the Nixfile lines it comes from.
	Location llb.ConstraintsOpt
}

// Run is a step in the LLB graph.
type Run struct {
	// Out is the step's output, protocol.OutDir; the first of Layers
	// for a step with Step.Layers.
	Out llb.State
	// Layers are the outputs of a step with Step.Layers.
	Layers []llb.State
	// Meta is its second output, protocol.MetaDir, when Step.Meta.
	Meta llb.State
	// Digest names the step's request (protocol.Digest): its report, and
	// the step in a failed solve's description (StepKey).
	Digest string
}

// Steps makes the LLB of steps. Their requests are written by one file
// operation, and each step mounts its own request file, so a step's cache
// key depends on its request alone.
func (e *Env) Steps(steps []Step) ([]Run, error) {
	type encoded struct {
		dt     []byte
		digest string
	}
	encs := make([]encoded, len(steps))
	var fa *llb.FileAction
	for i, s := range steps {
		dt, err := protocol.Encode(s.Request)
		if err != nil {
			return nil, err
		}
		encs[i] = encoded{dt, protocol.Digest(dt)}
		mk := llb.Mkfile("/"+encs[i].digest+".json", 0o444, dt, llb.WithCreatedTime(epoch))
		if fa == nil {
			fa = mk
		} else {
			fa = fa.Mkfile("/"+encs[i].digest+".json", 0o444, dt, llb.WithCreatedTime(epoch))
		}
	}
	if fa == nil {
		return nil, nil
	}
	requests := llb.Scratch().File(fa, llb.WithCustomName("[nix] step requests"))
	runs := make([]Run, len(steps))
	for i, s := range steps {
		runs[i] = e.run(s, requests, encs[i].digest)
	}
	return runs, nil
}

// StoreMount mounts the shared store at /nix. BuildKit keys a cache mount
// by its id and by the result it starts from, so whatever is to see the
// store the steps use must mount it with this option.
func (e *Env) StoreMount() llb.RunOption {
	return llb.AddMount("/nix", e.seed, llb.SourcePath("/nix"), llb.AsPersistentCacheDir(e.CacheID, llb.CacheMountShared))
}

func (e *Env) run(s Step, requests llb.State, dgst string) Run {
	if s.HelperOnly {
		return e.runHelper(s, requests, dgst)
	}
	config := DefaultNixConfig
	if s.UserConfig && e.NixConfig != "" {
		config += "\n" + e.NixConfig
	}
	opts := []llb.RunOption{
		llb.Args([]string{protocol.HelperBinary, s.Request.Command()}),
		llb.AddEnv("NIX_CONFIG", config),
		llb.AddEnv("HOME", "/root"),
		e.StoreMount(),
		llb.AddMount(protocol.HelperRoot, e.helper, llb.Readonly),
		llb.AddMount(protocol.RequestFile, requests, llb.SourcePath("/"+dgst+".json"), llb.Readonly),
		llb.AddMount(protocol.ReportDir, llb.Scratch(), llb.AsPersistentCacheDir(reportsCacheID, llb.CacheMountShared)),
		llb.WithCustomName(s.Name),
		llb.WithDescription(map[string]string{StepKey: dgst}),
	}
	switch {
	case s.Access == Fetching:
		opts = append(opts,
			// Nix's per-user caches (fetched tarballs, narinfo lookups)
			// are SQLite databases that concurrent Nix processes corrupt
			// ("constraint failed"), unlike the store's: each concurrent
			// step gets its own.
			llb.AddMount("/root/.cache/nix", llb.Scratch(), llb.AsPersistentCacheDir(e.CacheID+"-home", llb.CacheMountPrivate)),
			// BuildKit mounts secrets and the SSH agent only for the
			// step's run; they are not part of its cache key.
			llb.AddSecret(steps.NetrcSecret, llb.SecretID("netrc"), llb.SecretOptional),
			llb.AddSecret(steps.AccessTokensSecret, llb.SecretID("access-tokens"), llb.SecretOptional),
			llb.AddSecret(steps.SigningKeySecret, llb.SecretID("nix-signing-key"), llb.SecretOptional),
			llb.AddSecret(steps.AWSSecret, llb.SecretID("aws"), llb.SecretOptional),
			llb.AddSSHSocket(llb.SSHID("default"), llb.SSHSocketTarget(steps.SSHAgentSocket), llb.SSHOptional),
		)
	case !s.Network:
		opts = append(opts, llb.Network(pb.NetMode_NONE))
	}
	for _, m := range s.Inputs {
		opts = append(opts, llb.AddMount(m.Target, m.State, llb.SourcePath(m.Path), llb.Readonly))
	}
	if s.Location != nil {
		opts = append(opts, s.Location)
	}
	exec := e.image.Run(opts...)
	r := Run{Digest: dgst}
	for i := range s.Layers {
		r.Layers = append(r.Layers, exec.AddMount(protocol.LayerDir(i), llb.Scratch()))
	}
	if len(r.Layers) > 0 {
		r.Out = r.Layers[0]
	} else {
		r.Out = exec.AddMount(protocol.OutDir, llb.Scratch())
	}
	if s.Meta {
		r.Meta = exec.AddMount(protocol.MetaDir, llb.Scratch())
	}
	return r
}

// runHelper runs a step in the frontend image alone.
func (e *Env) runHelper(s Step, requests llb.State, dgst string) Run {
	opts := []llb.RunOption{
		llb.Args([]string{"/bin/nix-frontend", s.Request.Command()}),
		llb.AddMount(protocol.RequestFile, requests, llb.SourcePath("/"+dgst+".json"), llb.Readonly),
		llb.AddMount(protocol.ReportDir, llb.Scratch(), llb.AsPersistentCacheDir(reportsCacheID, llb.CacheMountShared)),
		llb.Network(pb.NetMode_NONE),
		llb.WithCustomName(s.Name),
		llb.WithDescription(map[string]string{StepKey: dgst}),
	}
	for _, m := range s.Inputs {
		opts = append(opts, llb.AddMount(m.Target, m.State, llb.SourcePath(m.Path), llb.Readonly))
	}
	if s.Location != nil {
		opts = append(opts, s.Location)
	}
	return Run{Out: e.helper.Run(opts...).AddMount(protocol.OutDir, llb.Scratch()), Digest: dgst}
}

// Report is a step that reads the report the step with the given request
// digest left when it failed. nonce makes it run each time it is asked for:
// reports are not build results.
func (e *Env) Report(digest, nonce string) llb.State {
	return e.helper.Run(
		llb.Args([]string{"/bin/nix-frontend", "report", digest}),
		llb.AddEnv("NIX_FRONTEND_NONCE", nonce),
		llb.AddMount(protocol.ReportDir, llb.Scratch(), llb.AsPersistentCacheDir(reportsCacheID, llb.CacheMountShared)),
		llb.Network(pb.NetMode_NONE),
		llb.WithCustomName("[nix] read the failed step's report"),
	).AddMount(protocol.OutDir, llb.Scratch())
}
