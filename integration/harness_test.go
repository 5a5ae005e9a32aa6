package integration

import (
	"regexp"
	"strings"
	"testing"

	"github.com/nix-frontend/nix-frontend/integration/harness"
)

// TestDockerfileInstructions proves each way into the frontend reaches a
// real buildkitd, and that a Nixfile without INSTALL is an ordinary
// Dockerfile: RUN, COPY and CMD behave as BuildKit's own frontend makes them.
func TestDockerfileInstructions(t *testing.T) {
	env := harness.Require(t)
	for _, via := range harness.AllVias {
		t.Run(string(via), func(t *testing.T) {
			dir := env.Context(t, map[string]string{
				"Nixfile": "FROM " + env.NixImage + "\n" +
					"COPY greeting.txt /srv/\n" +
					"RUN echo \"built by $(nix --version)\" >> /srv/greeting.txt\n" +
					"CMD [\"cat\", \"/srv/greeting.txt\"]\n",
				"greeting.txt": "hello from the context\n",
			})
			res := env.Build(t, via, dir, harness.BuildOpts{})
			pushed := env.Inspect(t, res.Ref)
			if res.Digest != "" && res.Digest != pushed.Digest {
				t.Errorf("build reported digest %s, registry has %s", res.Digest, pushed.Digest)
			}
			out := env.Run(t, res.Ref, harness.RunOpts{})
			if !regexp.MustCompile(`^hello from the context\nbuilt by nix \(Nix\) 2\.[0-9]+\.[0-9]+\n$`).MatchString(out) {
				t.Fatalf("image printed %q", out)
			}
			if !strings.Contains(res.Log, "RUN echo") && via != harness.InProcess {
				t.Errorf("progress does not show the RUN step:\n%s", res.Log)
			}
		})
	}
}
