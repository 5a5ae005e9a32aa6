package frontend

import (
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"

	"github.com/moby/buildkit/frontend/gateway/client"
	"github.com/nix-frontend/nix-frontend/llb/storelayers"
	"github.com/nix-frontend/nix-frontend/nix/protocol"
)

// Build arguments nix-frontend reads (besides the Nixfile's own ARGs).
const (
	// ArgNixImage selects the image Nix runs in.
	ArgNixImage = "NIX_IMAGE"
	// ArgNixConfig is passed to every Nix process as NIX_CONFIG.
	ArgNixConfig = "NIX_CONFIG"
	// ArgMaxLayers is the image's layer budget, base layers included.
	ArgMaxLayers = "NIX_MAX_LAYERS"
	// ArgNixPushCache is a Nix binary cache each stage's closure is
	// uploaded to (opt-in).
	ArgNixPushCache = "NIX_PUSH_CACHE"
	// ArgNixEvaluator picks the evaluator: nix-eval-jobs (the default
	// when the Nix image has it) or nix, the built-in one.
	ArgNixEvaluator = "NIX_EVALUATOR"
	// ArgScratchBasics=false leaves FROM scratch images without the
	// /etc/passwd, /etc/group, /tmp and CA certificates nix-frontend
	// otherwise adds.
	ArgScratchBasics = "NIX_SCRATCH_BASICS"
)

// DefaultNixImage is the Nix image used when NIX_IMAGE is not set.
const DefaultNixImage = "docker.io/nixos/nix:2.24.14"

// SourceOpt is the gateway option that names the frontend's own image:
// BuildKit sets it to the image of the `# syntax=` line (or of
// BUILDKIT_SYNTAX, or gateway.v0's source). Build steps run the helper
// binary from that image, so the code that handles the build's secrets is
// always the frontend the build runs: the image BuildKit runs the frontend
// from, pinned by digest, when the gateway says (CurrentFrontend), else
// this option's image, resolved. A client that runs frontend.Build in its
// own process (BuildKit's client.Build) passes it itself.
const SourceOpt = "source"

// config is what the build's options and arguments ask of nix-frontend.
type config struct {
	nixImage  string
	nixConfig string
	// maxLayers is the layer budget; 0 for the default.
	maxLayers int
	pushCache string
	evaluator string
	// basics adds passwd, group, /tmp and CA certificates to FROM scratch
	// stages.
	basics bool
	// selfImage is the frontend's own image, which build steps run the
	// helper binary from.
	selfImage string
}

// loadConfig reads the build arguments and options, reporting every
// problem at once.
func loadConfig(opts client.BuildOpts, args map[string]string) (config, error) {
	cfg := config{
		nixImage:  args[ArgNixImage],
		nixConfig: args[ArgNixConfig],
		pushCache: args[ArgNixPushCache],
		evaluator: args[ArgNixEvaluator],
		selfImage: opts.Opts[SourceOpt],
	}
	if cfg.nixImage == "" {
		cfg.nixImage = DefaultNixImage
	}
	var errs []error
	// --build-context nix=docker-image://... names the Nix image like any
	// other named context would.
	if v, ok := opts.Opts["context:nix"]; ok {
		ref, isImage := strings.CutPrefix(v, "docker-image://")
		if !isImage {
			errs = append(errs, fmt.Errorf("the build context nix=%s must be an image (docker-image://...): it selects the image Nix runs in", v))
		}
		cfg.nixImage = ref
	}
	if v := args[ArgMaxLayers]; v != "" {
		n, err := strconv.Atoi(v)
		switch {
		case err != nil || n < 1:
			errs = append(errs, fmt.Errorf("build argument %s=%q: want a number of layers", ArgMaxLayers, v))
		case n > storelayers.MaxLayers:
			errs = append(errs, fmt.Errorf("build argument %s=%d: images of more than %d layers do not run on every runtime (overlayfs mounts at most %d layers); use %d or fewer",
				ArgMaxLayers, n, storelayers.MaxLayers, storelayers.MaxLayers, storelayers.MaxLayers))
		}
		cfg.maxLayers = n
	}
	switch v := args[ArgScratchBasics]; v {
	case "", "true":
		cfg.basics = true
	case "false":
	default:
		errs = append(errs, fmt.Errorf("build argument %s=%q: use true or false", ArgScratchBasics, v))
	}
	switch cfg.evaluator {
	case "", protocol.EvaluatorNix, protocol.EvaluatorNixEvalJobs:
	default:
		errs = append(errs, fmt.Errorf("build argument %s=%q: use nix-eval-jobs or nix", ArgNixEvaluator, cfg.evaluator))
	}
	for _, a := range []string{ArgNixConfig, ArgNixPushCache} {
		if err := credentialFree(a, args[a]); err != nil {
			errs = append(errs, err)
		}
	}
	return cfg, errors.Join(errs...)
}

// credentialFree refuses a build argument that holds credentials. BuildKit
// records build arguments in the build's provenance attestation, its cache
// records and the LLB definition, so a password there leaves the build;
// credentials belong in --secret, which only the steps that fetch mount.
func credentialFree(name, value string) error {
	for _, line := range strings.Split(value, "\n") {
		key, _, _ := strings.Cut(line, "=")
		if k := strings.TrimSpace(key); k == "access-tokens" || k == "extra-access-tokens" {
			return fmt.Errorf("build argument %s sets %s: build arguments are recorded in the image's provenance and in BuildKit's cache; give the tokens with --secret id=access-tokens instead", name, k)
		}
		for _, word := range strings.Fields(line) {
			u, err := url.Parse(word)
			if err != nil || u.User == nil {
				continue
			}
			if _, hasPassword := u.User.Password(); hasPassword {
				c := *u
				c.User = url.User(u.User.Username())
				return fmt.Errorf("build argument %s has a URL with a password (%s): build arguments are recorded in the image's provenance and in BuildKit's cache; give credentials with --secret id=netrc (HTTP) or --secret id=aws (S3) instead", name, c.String())
			}
		}
	}
	return nil
}
