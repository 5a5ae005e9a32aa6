package integration

import (
	"strings"
	"testing"

	"github.com/nix-frontend/nix-frontend/integration/harness"
)

// TestHarnessEndToEnd proves each way into the frontend reaches a real
// buildkitd, pushes to the registry and yields an image runc runs.
func TestHarnessEndToEnd(t *testing.T) {
	env := harness.Require(t)
	for _, via := range harness.AllVias {
		t.Run(string(via), func(t *testing.T) {
			dir := env.Context(t, map[string]string{"Nixfile": "FROM scratch\n"})
			res := env.Build(t, via, dir, harness.BuildOpts{})
			pushed := env.Inspect(t, res.Ref)
			if res.Digest != "" && res.Digest != pushed.Digest {
				t.Errorf("build reported digest %s, registry has %s", res.Digest, pushed.Digest)
			}
			out := env.Run(t, res.Ref, harness.RunOpts{})
			if !strings.HasPrefix(out, "nix-frontend ") {
				t.Fatalf("image printed %q, want the frontend's version line", out)
			}
		})
	}
}
