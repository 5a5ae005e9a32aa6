package integration

import (
	"debug/elf"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
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
		if fi.Name() == "Nixfile" || filepath.Ext(fi.Name()) == ".Nixfile" {
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
			// hello's closure is hello and busybox; then the link layer
			// and FROM scratch's basics.
			if len(paths) != 2 || len(img.Manifest.Layers) != 4 {
				t.Errorf("store path layers %v, %d layers in all; want hello and busybox, plus links and the basics", paths, len(img.Manifest.Layers))
			}
		})
	}
}

// storePathLayers maps the name of each store path layer of img (the part
// after the hash, "app-1.0") to its store path and layer digest.
func storePathLayers(t *testing.T, img *harness.Image) map[string][2]string {
	t.Helper()
	var layers []string
	for _, l := range img.Manifest.Layers {
		layers = append(layers, l.Digest.String())
	}
	got := map[string][2]string{}
	i := 0
	for _, h := range img.Config.History {
		if h.EmptyLayer {
			continue
		}
		if i >= len(layers) {
			t.Fatalf("image %s has more history entries with layers than layers", img.Digest)
		}
		if p, ok := strings.CutPrefix(h.CreatedBy, "nix-frontend: "); ok && strings.HasPrefix(p, "/nix/store/") {
			base := strings.TrimPrefix(p, "/nix/store/")
			if len(base) < 34 || base[32] != '-' {
				t.Fatalf("layer history %q does not name a store path", h.CreatedBy)
			}
			got[base[33:]] = [2]string{p, layers[i]}
		}
		i++
	}
	if i != len(layers) {
		t.Fatalf("image %s has %d layers but %d history entries with layers", img.Digest, len(layers), i)
	}
	return got
}

func sortedNames(m map[string][2]string) []string {
	var names []string
	for n := range m {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

var storeLink = regexp.MustCompile(`^/nix/store/[0-9a-z]{32}-app-1\.0/bin/app$`)

// TestExampleMultistage builds examples/multistage: a scratch stage runs a
// Nix-installed tool, and the final image on a base image has the app linked
// into /usr/local, the file the tool made, the base's own programs, and not
// the tool.
func TestExampleMultistage(t *testing.T) {
	env := harness.Require(t)
	ctx := exampleContext(t, env, "multistage")
	banner := "+---------------------+\n" +
		"| Welcome to app      |\n" +
		"| built in two stages |\n" +
		"+---------------------+\n" +
		"app 1.0 is running\n"

	res := env.Build(t, harness.Buildx, ctx, harness.BuildOpts{})
	if out := env.Run(t, res.Ref, harness.RunOpts{}); out != banner {
		t.Errorf("image printed %q, want %q", out, banner)
	}
	// The base's /bin/sh and coreutils run next to the app; the app is a
	// link in /usr/local/bin, on PATH; the tools stage left nothing behind.
	out := env.Run(t, res.Ref, harness.RunOpts{Args: []string{"/bin/sh", "-c",
		"readlink /usr/local/bin/app; command -v app; ls /usr/local/bin; ls /nix/store | grep -c -- -frame- || true"}})
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if len(lines) != 4 || !storeLink.MatchString(lines[0]) || lines[1] != "/usr/local/bin/app" ||
		lines[2] != "app" || lines[3] != "0" {
		t.Errorf("want the app link, its place on PATH, only app in /usr/local/bin and no frame store path; got:\n%s", out)
	}
	img := env.Inspect(t, res.Ref).Images[0]
	if names := sortedNames(storePathLayers(t, img)); !slices.Equal(names, []string{"app-1.0", "busybox"}) {
		t.Errorf("store path layers %v, want the app's closure: app-1.0 and busybox", names)
	}

	// BASE=scratch swaps the base: then the link tree is at /, and the
	// same CMD finds /bin/app.
	res = env.Build(t, harness.InProcess, ctx, harness.BuildOpts{BuildArgs: map[string]string{"BASE": "scratch"}})
	if out := env.Run(t, res.Ref, harness.RunOpts{}); out != banner {
		t.Errorf("with BASE=scratch the image printed %q, want %q", out, banner)
	}
	img = env.Inspect(t, res.Ref).Images[0]
	if len(img.Manifest.Layers) != 5 {
		t.Errorf("with BASE=scratch: %d layers, want 5: app-1.0, busybox, the links, the basics and the banner", len(img.Manifest.Layers))
	}
}

// TestExampleFlake builds examples/flake: two packages of the context's
// flake, the image's entrypoint running one; an image per platform from
// forAllSystems; and unchanged store path layers when an unrelated file of
// the context changes, thanks to builtins.path.
func TestExampleFlake(t *testing.T) {
	env := harness.Require(t)
	ctx := exampleContext(t, env, "flake")

	res := env.Build(t, harness.Buildx, ctx, harness.BuildOpts{})
	for _, c := range []struct {
		args []string
		want string
	}{
		{nil, "hello, world!\n"},
		{[]string{"hello", "nix"}, "hello, nix!\n"},
		{[]string{"goodbye", "nix"}, "goodbye, nix!\n"},
		{[]string{"/bin/goodbye"}, "goodbye, world!\n"},
	} {
		if out := env.Run(t, res.Ref, harness.RunOpts{Args: c.args}); out != c.want {
			t.Errorf("running %q printed %q, want %q", c.args, out, c.want)
		}
	}
	first := storePathLayers(t, env.Inspect(t, res.Ref).Images[0])
	if names := sortedNames(first); !slices.Equal(names, []string{"busybox", "goodbye-1.0", "hello-1.0"}) {
		t.Errorf("store path layers %v, want busybox, goodbye-1.0 and hello-1.0", names)
	}

	t.Run("unrelated change", func(t *testing.T) {
		harness.WriteFile(t, filepath.Join(ctx, "NOTES.md"), "Not part of any package.\n")
		res := env.Build(t, harness.InProcess, ctx, harness.BuildOpts{})
		if again := storePathLayers(t, env.Inspect(t, res.Ref).Images[0]); !maps.Equal(again, first) {
			t.Errorf("a file no package uses changed the store path layers:\n%v\nnow\n%v", first, again)
		}
	})

	t.Run("multi-platform", func(t *testing.T) {
		env.AddBusyboxAarch64(t, ctx)
		res := env.Build(t, harness.InProcess, ctx, harness.BuildOpts{Platforms: []string{"linux/amd64", "linux/arm64"}})
		pushed := env.Inspect(t, res.Ref)
		if len(pushed.Images) != 2 {
			t.Fatalf("want an image per platform, got %d", len(pushed.Images))
		}
		want := map[string]elf.Machine{"amd64": elf.EM_X86_64, "arm64": elf.EM_AARCH64}
		for _, img := range pushed.Images {
			if m := busyboxMachine(t, env, img); m != want[img.Config.Architecture] {
				t.Errorf("%s image: busybox for %v", img.Config.Architecture, m)
			}
			delete(want, img.Config.Architecture)
		}
		if len(want) > 0 {
			t.Errorf("no image for %v", want)
		}
		for _, platform := range []string{"linux/amd64", "linux/arm64"} {
			if out := env.Run(t, res.Ref, harness.RunOpts{Platform: platform}); out != "hello, world!\n" {
				t.Errorf("%s image printed %q", platform, out)
			}
		}
	})
}

// TestExampleArgs builds examples/args with and without --build-arg
// GREETING: --argstr passes the greeting to Nix verbatim, --arg repeat=3 a
// number.
func TestExampleArgs(t *testing.T) {
	env := harness.Require(t)
	ctx := exampleContext(t, env, "args")
	for _, greeting := range []string{"", `good morning, "nix" $USER`} {
		t.Run("GREETING="+greeting, func(t *testing.T) {
			o := harness.BuildOpts{}
			want := greeting
			if greeting == "" {
				want = "hello" // the ARG's default
			} else {
				o.BuildArgs = map[string]string{"GREETING": greeting}
			}
			res := env.Build(t, harness.Buildx, ctx, o)
			want = strings.Repeat(want+"\n", 3)
			if out := env.Run(t, res.Ref, harness.RunOpts{}); out != want {
				t.Errorf("image printed %q, want %q", out, want)
			}
		})
	}
}

// TestExampleCustom builds examples/custom's two Nixfiles: on Debian with
// RUN useradd, and on scratch with account files from the context. Either
// way the app runs as user app in /data, which it can write.
func TestExampleCustom(t *testing.T) {
	env := harness.Require(t)
	ctx := exampleContext(t, env, "custom")
	want := "user: app (uid 1000)\n" +
		"workdir: /data\n" +
		"visits.log: 1 visit(s), owned by app\n"
	for _, c := range []struct {
		file string
		via  harness.Via
	}{{"Nixfile", harness.Buildx}, {"scratch.Nixfile", harness.InProcess}} {
		t.Run(c.file, func(t *testing.T) {
			res := env.Build(t, c.via, ctx, harness.BuildOpts{File: c.file})
			if out := env.Run(t, res.Ref, harness.RunOpts{}); out != want {
				t.Errorf("image printed %q, want %q", out, want)
			}
			cfg := env.Inspect(t, res.Ref).Images[0].Config.Config
			if cfg.User != "app" || cfg.WorkingDir != "/data" {
				t.Errorf("image config has user %q and workdir %q, want app and /data", cfg.User, cfg.WorkingDir)
			}
		})
	}
}
