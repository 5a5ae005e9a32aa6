// Package nixstep makes the LLB of build steps that run Nix: the Nix image
// pinned by digest, the shared /nix cache mount seeded from it, and
// nix-frontend's helper binary mounted from the frontend image.
package nixstep

import (
	"context"
	"fmt"
	"strings"

	"github.com/containerd/platforms"
	"github.com/distribution/reference"
	"github.com/moby/buildkit/client/llb"
	"github.com/moby/buildkit/client/llb/sourceresolver"
	"github.com/nix-frontend/nix-frontend/nix/steps"
	digest "github.com/opencontainers/go-digest"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"
)

// DefaultNixConfig is prepended to the user's NIX_CONFIG in every step: the
// helper uses the `nix` command and flakes. The user's settings come after
// and win.
const DefaultNixConfig = "experimental-features = nix-command flakes"

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

// Resolve pins the Nix image and the frontend image and prepares the store
// mount for the build platform.
func Resolve(ctx context.Context, resolver sourceresolver.ImageMetaResolver, nixImage, helperImage string, platform ocispecs.Platform, nixConfig string) (*Env, error) {
	nixRef, nixDgst, cfg, err := resolve(ctx, resolver, nixImage, platform)
	if err != nil {
		return nil, fmt.Errorf("the Nix image %s: %w (set the NIX_IMAGE build argument to an image with Nix)", nixImage, err)
	}
	helperRef, helperDgst, _, err := resolve(ctx, resolver, helperImage, platform)
	if err != nil {
		return nil, fmt.Errorf("the nix-frontend image %s: %w", helperImage, err)
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
		helper:    llb.Image(helperRef, llb.Platform(platform), llb.WithCustomName("[nix] load nix-frontend helper")),
		NixConfig: nixConfig,
		CacheID:   "nix-frontend-store-" + nixDgst.Encoded()[:16] + "-" + strings.ReplaceAll(platforms.Format(platform), "/", "-"),
	}
	// nixos/nix keeps Nix itself in /nix/store: the cache mount starts as a
	// copy of the image's /nix. An image with Nix in /usr/bin has no /nix,
	// and the mount starts empty.
	e.seed = img.File(llb.Mkdir("/nix", 0o755, llb.WithParents(true)), llb.WithCustomName("[nix] prepare /nix"))
	return e, nil
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

// Mount is an input of a step, read-only, limited to one path of a state.
type Mount struct {
	Target string    // where, inside the step
	State  llb.State //
	Path   string    // which path of State; its contents alone key the cache
}

// Run makes a step that runs the helper with req. The request travels in
// the environment (steps.RequestEnv), part of the step's cache key like its
// command line, which stays short enough to read in an error: the helper,
// the command and label. Its output is the state of steps.OutDir. Inputs are mounted read-only with a selector, so a step
// re-runs only when the selected bytes change, not when an earlier step
// merely ran again.
func (e *Env) Run(name, label string, req steps.Request, inputs []Mount, opts ...llb.ConstraintsOpt) (llb.State, error) {
	arg, err := steps.Encode(req)
	if err != nil {
		return llb.State{}, err
	}
	runOpts := []llb.RunOption{
		llb.Args([]string{steps.HelperBinary, req.Command(), label}),
		llb.AddEnv(steps.RequestEnv, arg),
		llb.AddEnv("NIX_CONFIG", DefaultNixConfig+"\n"+e.NixConfig),
		llb.AddEnv("HOME", "/root"),
		llb.AddMount("/nix", e.seed, llb.SourcePath("/nix"), llb.AsPersistentCacheDir(e.CacheID, llb.CacheMountShared)),
		// Nix's per-user caches (fetched tarballs, narinfo lookups) are
		// SQLite databases that concurrent Nix processes corrupt ("constraint
		// failed"), unlike the store's: each concurrent step gets its own.
		llb.AddMount("/root/.cache/nix", llb.Scratch(), llb.AsPersistentCacheDir(e.CacheID+"-home", llb.CacheMountPrivate)),
		llb.AddMount(steps.HelperRoot, e.helper, llb.Readonly),
		// Credentials for fetching, when the build was given them: BuildKit
		// mounts secrets and the SSH agent only for the step's run, and
		// they are not part of its cache key.
		llb.AddSecret(steps.NetrcSecret, llb.SecretID("netrc"), llb.SecretOptional),
		llb.AddSecret(steps.AccessTokensSecret, llb.SecretID("access-tokens"), llb.SecretOptional),
		llb.AddSecret(steps.SigningKeySecret, llb.SecretID("nix-signing-key"), llb.SecretOptional),
		llb.AddSecret("/root/.aws/credentials", llb.SecretID("aws"), llb.SecretOptional),
		llb.AddSSHSocket(llb.SSHID("default"), llb.SSHSocketTarget(steps.SSHAgentSocket), llb.SSHOptional),
		llb.WithCustomName(name),
	}
	for _, m := range inputs {
		runOpts = append(runOpts, llb.AddMount(m.Target, m.State, llb.SourcePath(m.Path), llb.Readonly))
	}
	for _, o := range opts {
		runOpts = append(runOpts, o)
	}
	run := e.image.Run(runOpts...)
	return run.AddMount(steps.OutDir, llb.Scratch()), nil
}
