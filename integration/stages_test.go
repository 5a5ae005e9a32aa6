package integration

import (
	"strings"
	"testing"

	"github.com/nix-frontend/nix-frontend/integration/harness"
)

// TestStageOnStage installs into a stage built FROM another stage with
// INSTALL lines and RUN steps: the second stage's store paths and links go
// on top of everything the first stage made.
func TestStageOnStage(t *testing.T) {
	env := harness.Require(t)
	dir := projectContext(t, env)
	harness.WriteFile(t, dir+"/Nixfile", env.WithSyntax(`FROM `+env.NixImage+` AS base
ARG SALT
INSTALL --file=default.nix --argstr salt=${SALT} app
RUN app > /from-base.txt

FROM base AS final
ARG SALT
INSTALL --file=default.nix --argstr salt=${SALT} other
CMD ["/bin/sh", "-c", "cat /from-base.txt && app && cat /usr/local/share/other && ls /usr/local/bin"]
`))
	res := env.Build(t, harness.InProcess, dir, harness.BuildOpts{BuildArgs: map[string]string{"SALT": salt(t)}})
	out := env.Run(t, res.Ref, harness.RunOpts{})
	if out != "leaf v1\nleaf v1\nother\napp\n" {
		t.Errorf("image printed %q", out)
	}
	layers := harness.StoreLayers(env.Inspect(t, res.Ref).Images[0])
	var names []string
	for p := range layers {
		names = append(names, p[strings.IndexByte(p[len("/nix/store/"):], '-')+len("/nix/store/")+1:])
	}
	if len(layers) != 4 {
		t.Errorf("store path layers %v, want busybox, leaf and app from base, other from final", names)
	}
}
