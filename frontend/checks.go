package frontend

import (
	"context"

	"github.com/moby/buildkit/frontend/dockerfile/linter"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
	"github.com/moby/buildkit/frontend/dockerui"
	"github.com/moby/buildkit/frontend/subrequests/lint"
	"github.com/nix-frontend/nix-frontend/frontend/nixfile"
)

// checks is the one place nix-frontend's own lint warnings go through: the
// Nixfile's parse-time findings and those made once a stage is built. It
// applies the Nixfile's `# check=` directive, replaced by a
// BUILDKIT_DOCKERFILE_CHECK build argument, as BuildKit does for the
// Dockerfile rules it checks itself.
type checks struct {
	cfg *linter.Config
	src *dockerui.Source
}

func newChecks(nf *nixfile.Nixfile, buildArgs map[string]string, src *dockerui.Source) (*checks, error) {
	cfg, err := nf.CheckConfig()
	if err != nil {
		return nil, err
	}
	if v, ok := buildArgs["BUILDKIT_DOCKERFILE_CHECK"]; ok {
		if cfg, err = linter.ParseLintOptions(v); err != nil {
			return nil, err
		}
	}
	return &checks{cfg: cfg, src: src}, nil
}

// warn shows warnings as BuildKit shows a Dockerfile's; with error=true
// they fail the build.
func (c *checks) warn(ctx context.Context, ws []nixfile.Warning) error {
	ws, err := nixfile.FilterWarnings(ws, c.cfg)
	for _, w := range ws {
		c.src.Warn(ctx, linter.LintFormatShort(w.RuleName, w.Message, line(w.Location)), warnOpts(w.Location, [][]byte{[]byte(w.Description)}, w.URL))
	}
	return err
}

// report adds warnings to --call=check's results.
func (c *checks) report(res *lint.LintResults, ws []nixfile.Warning) {
	ws, _ = nixfile.FilterWarnings(ws, c.cfg)
	for _, w := range ws {
		res.AddWarning(w.RuleName, w.Description, w.URL, w.Message, 0, w.Location)
	}
}

// dockerfileWarn shows a warning of BuildKit's Dockerfile converter, which
// applied the check configuration itself.
func (c *checks) dockerfileWarn(ctx context.Context) func(rule, description, url, msg string, location []parser.Range) {
	return func(rule, description, url, msg string, location []parser.Range) {
		c.src.Warn(ctx, linter.LintFormatShort(rule, msg, line(location)), warnOpts(location, [][]byte{[]byte(description)}, url))
	}
}

func line(loc []parser.Range) int {
	if len(loc) == 0 {
		return 0
	}
	return loc[0].Start.Line
}
