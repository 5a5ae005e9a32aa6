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
	"path"
	"runtime/debug"

	"github.com/containerd/platforms"
	"github.com/moby/buildkit/client/llb"
	"github.com/moby/buildkit/frontend/dockerfile/dockerfile2llb"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
	"github.com/moby/buildkit/frontend/dockerui"
	"github.com/moby/buildkit/frontend/gateway/client"
	"github.com/moby/buildkit/frontend/subrequests"
	"github.com/moby/buildkit/frontend/subrequests/lint"
	"github.com/moby/buildkit/frontend/subrequests/targets"
	"github.com/nix-frontend/nix-frontend/frontend/nixfile"
	"github.com/nix-frontend/nix-frontend/llb/nixstep"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"
	pkgerrors "github.com/pkg/errors"
)

// Build is the gateway BuildFunc: parse, read the configuration, answer a
// subrequest or build every platform, and attach the SBOMs.
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

	cv, err := newConverter(c, bc, src)
	if err != nil {
		return nil, err
	}
	switch c.BuildOpts().Opts["requestid"] {
	case PushPreviewRequest:
		return cv.pushPreview(ctx)
	case subrequests.RequestSubrequestsDescribe:
		return describe()
	}
	if res, ok, err := bc.HandleSubrequest(ctx, dockerui.RequestHandler{
		Outline: cv.outline,
		ListTargets: func(ctx context.Context) (*targets.List, error) {
			return dockerfile2llb.ListTargets(ctx, cv.dockerfile)
		},
		Lint: cv.lint,
	}); err != nil || ok {
		return res, err
	}

	if err := cv.checks.warn(ctx, append(cv.nf.Warnings, cv.userWarnings()...)); err != nil {
		return nil, err
	}
	if cv.nix, err = cv.needNix(ctx); err != nil {
		return nil, err
	}
	built := make([]builtPlatform, max(1, len(bc.TargetPlatforms)))
	rb, err := bc.Build(ctx, func(ctx context.Context, platform *ocispecs.Platform, idx int) (*dockerui.BuildResult, error) {
		res, b, err := cv.buildPlatform(ctx, platform, idx == 0)
		built[idx] = b
		return res, err
	})
	if err != nil {
		return nil, err
	}
	if err := cv.attachSBOMs(ctx, rb, built); err != nil {
		return nil, err
	}
	return rb.Finalize()
}

// newConverter parses the build file and reads the build's configuration.
func newConverter(c client.Client, bc *dockerui.Client, src *dockerui.Source) (*converter, error) {
	cv := &converter{c: c, bc: bc, src: src, compat: isNixExpression(src.Filename)}
	data := src.Data
	if cv.compat {
		// The generated Nixfile is what errors point at.
		data = compatNixfile(src.Filename, bc.Target)
		src.SourceMap = llb.NewSourceMap(nil, "Nixfile (generated for "+path.Base(src.Filename)+")", "Dockerfile", data)
		bc.Target = ""
	}
	nf, err := nixfile.Parse(path.Base(src.Filename), data)
	if err != nil {
		return nil, parseError(err)
	}
	cv.nf = nf
	cv.dockerfile = nf.Dockerfile(func(s *nixfile.Stage) string { return contextName(s.Index) })
	if cv.cfg, err = loadConfig(c.BuildOpts(), bc.BuildArgs); err != nil {
		return nil, err
	}
	if cv.checks, err = newChecks(nf, bc.BuildArgs, src); err != nil {
		return nil, err
	}
	return cv, nil
}

// needNix resolves where Nix runs, once for every platform, when a stage
// the target needs on some platform has INSTALL lines.
func (cv *converter) needNix(ctx context.Context) (*nixstep.Env, error) {
	targets := cv.bc.TargetPlatforms
	if len(targets) == 0 {
		targets = []ocispecs.Platform{platforms.DefaultSpec()}
	}
	target, err := cv.targetStage()
	if err != nil {
		return nil, err
	}
	for _, p := range targets {
		for i := range reachable(cv.nf, target, cv.scopes(p)) {
			if s := cv.nf.Stages[i]; len(s.Installs) > 0 {
				env, err := cv.resolveNix(ctx)
				if err != nil {
					return nil, parser.WithLocation(err, s.Installs[0].Location)
				}
				return env, nil
			}
		}
	}
	return nil, nil
}

// lint answers --call=check: BuildKit's rules on the Dockerfile part and the
// Nixfile's own rules on INSTALL lines.
func (cv *converter) lint(ctx context.Context) (*lint.LintResults, error) {
	opt, err := cv.placeholderOpt(ctx)
	if err != nil {
		return nil, err
	}
	res, err := dockerfile2llb.DockerfileLint(ctx, cv.dockerfile, opt)
	if err != nil {
		return nil, err
	}
	cv.checks.report(res, append(cv.nf.Warnings, cv.userWarnings()...))
	return res, nil
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
