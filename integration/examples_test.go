package integration

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nix-frontend/nix-frontend/integration/harness"
)

// exampleContext copies an examples/ directory into a build context with
// the static busybox the offline derivations use.
func exampleContext(t *testing.T, env *harness.Env, dir string) string {
	t.Helper()
	ctx := t.TempDir()
	src := filepath.Join(env.RepoRoot, "examples", dir)
	err := filepath.Walk(src, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		if fi.IsDir() {
			if rel != "." && filepath.Dir(rel) == "." && p != src && isExampleDir(p) && dir == "" {
				return filepath.SkipDir // other examples
			}
			return os.MkdirAll(filepath.Join(ctx, rel), 0o755)
		}
		dt, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if fi.Name() == "Nixfile" {
			// Build with the frontend under test, whatever the example's
			// syntax line names.
			lines := strings.SplitN(string(dt), "\n", 2)
			if strings.HasPrefix(lines[0], "# syntax=") {
				dt = []byte("# syntax=" + env.FrontendImage + "\n" + lines[1])
			}
		}
		return os.WriteFile(filepath.Join(ctx, rel), dt, fi.Mode().Perm())
	})
	if err != nil {
		t.Fatal(err)
	}
	env.AddBusybox(t, ctx)
	return ctx
}

func isExampleDir(p string) bool {
	_, err := os.Stat(filepath.Join(p, "Nixfile"))
	return err == nil
}

func TestDemoExample(t *testing.T) {
	env := harness.Require(t)
	for _, via := range harness.AllVias {
		t.Run(string(via), func(t *testing.T) {
			ctx := exampleContext(t, env, "")
			res := env.Build(t, via, ctx, harness.BuildOpts{})
			out := env.Run(t, res.Ref, harness.RunOpts{})
			if !strings.Contains(out, "Hello from Nix, packaged by nix-frontend!") {
				t.Fatalf("demo printed %q", out)
			}
			img := env.Inspect(t, res.Ref).Images[0]
			var paths []string
			for _, h := range img.Config.History {
				if p, ok := strings.CutPrefix(h.CreatedBy, "nix-frontend: /nix/store/"); ok {
					paths = append(paths, p)
				}
			}
			// hello's closure is hello and busybox; then the link layer.
			if len(paths) != 2 || len(img.Manifest.Layers) != 3 {
				t.Errorf("store path layers %v, %d layers in all; want hello and busybox, plus links", paths, len(img.Manifest.Layers))
			}
		})
	}
}
