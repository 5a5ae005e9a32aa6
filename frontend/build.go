// Package frontend turns a Nixfile into a BuildKit result. It parses the
// Nixfile (package nixfile), builds the INSTALL lines of each stage as LLB
// (package nixbuild) and hands the rest of the file, with those stages
// injected as named contexts, to BuildKit's own Dockerfile converter: RUN,
// COPY, ENV and every other Dockerfile instruction mean exactly what they
// mean in a Dockerfile.
package frontend

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"path"
	"runtime/debug"
	"strconv"

	"github.com/moby/buildkit/client/llb"
	"github.com/moby/buildkit/frontend/dockerfile/dockerfile2llb"
	"github.com/moby/buildkit/frontend/dockerfile/linter"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
	"github.com/moby/buildkit/frontend/dockerui"
	"github.com/moby/buildkit/frontend/gateway/client"
	"github.com/moby/buildkit/frontend/subrequests/lint"
	"github.com/moby/buildkit/frontend/subrequests/targets"
	"github.com/nix-frontend/nix-frontend/frontend/nixfile"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"
	pkgerrors "github.com/pkg/errors"
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
)

// DefaultNixImage is the Nix image used when NIX_IMAGE is not set.
const DefaultNixImage = "docker.io/nixos/nix:2.24.14"

// SourceOpt is the gateway option that names the frontend's own image:
// BuildKit sets it to the image of the `# syntax=` line (or of
// BUILDKIT_SYNTAX, or gateway.v0's source). Build steps run the helper
// binary from that image, so the code that handles the build's secrets is
// always the frontend the build runs. A client that runs frontend.Build in
// its own process (BuildKit's client.Build) passes it itself.
const SourceOpt = "source"

// Build is the gateway BuildFunc.
func Build(ctx context.Context, c client.Client) (_ *client.Result, err error) {
	defer func() {
		// A bug must surface as an error the user can report, not as a
		// frontend that died with "exit code: 2".
		if r := recover(); r != nil {
			err = fmt.Errorf("nix-frontend internal error: %v; please report it with the Nixfile that caused it\n%s", r, debug.Stack())
		}
	}()
	bc, err := dockerui.NewClient(c)
	if err != nil {
		return nil, err
	}
	src, err := bc.ReadEntrypoint(ctx, "Dockerfile")
	if err != nil {
		return nil, err
	}
	defer func() { err = withSource(err, src.SourceMap) }()

	data, compat := src.Data, isNixExpression(src.Filename)
	if compat {
		// The generated Nixfile is what errors point at.
		data = compatNixfile(src.Filename, bc.Target)
		src.SourceMap = llb.NewSourceMap(nil, "Nixfile (generated for "+path.Base(src.Filename)+")", "Dockerfile", data)
		bc.Target = ""
	}
	nf, err := nixfile.Parse(path.Base(src.Filename), data)
	if err != nil {
		return nil, parseError(err)
	}
	cv, err := newConverter(ctx, c, bc, src, nf)
	if err != nil {
		return nil, err
	}
	cv.entrypointFromMeta = compat

	if res, ok, err := bc.HandleSubrequest(ctx, dockerui.RequestHandler{
		Outline: cv.outline,
		ListTargets: func(ctx context.Context) (*targets.List, error) {
			return dockerfile2llb.ListTargets(ctx, cv.dockerfile)
		},
		Lint: func(ctx context.Context) (*lint.LintResults, error) {
			return cv.lint(ctx)
		},
	}); err != nil {
		return nil, err
	} else if ok {
		return res, nil
	}

	if err := cv.warn(ctx); err != nil {
		return nil, err
	}
	rb, err := bc.Build(ctx, func(ctx context.Context, platform *ocispecs.Platform, idx int) (*dockerui.BuildResult, error) {
		return cv.buildPlatform(ctx, platform, idx)
	})
	if err != nil {
		return nil, err
	}
	if err := cv.attachSBOMs(ctx, rb, cv.sboms); err != nil {
		return nil, err
	}
	return rb.Finalize()
}

// parseError turns validation problems into one error that lists them all
// and points at the first.
func parseError(err error) error {
	var errs *nixfile.Errors
	if !errors.As(err, &errs) || len(errs.List) == 0 {
		return err
	}
	if len(errs.List) == 1 {
		return errs.First()
	}
	return parser.WithLocation(pkgerrors.New(errs.Error()), errs.List[0].Location)
}

// warn reports the Nixfile's lint findings through the client, as BuildKit
// does for Dockerfiles, and fails when # check=error=true says so.
func (cv *converter) warn(ctx context.Context) error {
	cfg, err := cv.nf.CheckConfig()
	if err != nil {
		return err
	}
	if v, ok := cv.bc.BuildArgs["BUILDKIT_DOCKERFILE_CHECK"]; ok {
		if cfg, err = linter.ParseLintOptions(v); err != nil {
			return err
		}
	}
	ws, ferr := nixfile.FilterWarnings(cv.nf.Warnings, cfg)
	for _, w := range ws {
		line := 0
		if len(w.Location) > 0 {
			line = w.Location[0].Start.Line
		}
		msg := linter.LintFormatShort(w.RuleName, w.Message, line)
		cv.src.Warn(ctx, msg, warnOpts(w.Location, [][]byte{[]byte(w.Description)}, w.URL))
	}
	return ferr
}

func (cv *converter) buildArgs() map[string]string { return maps.Clone(cv.bc.BuildArgs) }

func atoiDefault(s string, def int) (int, error) {
	if s == "" {
		return def, nil
	}
	return strconv.Atoi(s)
}
