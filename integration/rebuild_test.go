package integration

import (
	"fmt"
	"path/filepath"
	"reflect"
	"regexp"
	"testing"
	"time"

	"github.com/nix-frontend/nix-frontend/integration/harness"
)

// projectNix is a small package set: app depends on leaf, other stands
// alone. salt makes every test run's derivations new to the shared /nix
// cache, so the test sees real builds.
const projectNix = `{ salt }:
let
  bb = builtins.path { path = ./busybox; name = "busybox"; };
  sh = "${bb}/bin/busybox";
  mk = name: script: derivation {
    inherit name salt;
    system = builtins.currentSystem;
    builder = sh;
    args = [ "sh" "-c" script ];
  };
in rec {
  # leaf's contents come from leaf.txt through its own store path, so
  # other files of the context do not affect it.
  leafSrc = builtins.path { path = ./leaf.txt; name = "leaf.txt"; };
  leaf = mk "leaf-1" "${sh} mkdir -p $out; ${sh} cp ${leafSrc} $out/leaf.txt";
  app = mk "app-1" ''
    ${sh} mkdir -p $out/bin
    ${sh} printf '#!${sh} sh\n${sh} cat ${leaf}/leaf.txt\n' > $out/bin/app
    ${sh} chmod 555 $out/bin/app
  '';
  other = mk "other-1" "${sh} mkdir -p $out/share; echo other > $out/share/other";
}
`

func projectContext(t *testing.T, env *harness.Env) string {
	t.Helper()
	dir := env.Context(t, map[string]string{
		"Nixfile": "FROM scratch\n" +
			"ARG SALT\n" +
			"INSTALL --file=default.nix --argstr salt=${SALT} app other\n" +
			"ENTRYPOINT [\"app\"]\n",
		"default.nix": projectNix,
		"leaf.txt":    "leaf v1\n",
		"README.md":   "A file no derivation reads.\n",
	})
	env.AddBusybox(t, dir)
	return dir
}

// nixStep matches the names of the steps that run Nix.
var nixStep = regexp.MustCompile(`^\[nix [^\]]*\] (evaluate|build|export) `)

func salt(t *testing.T) string { return fmt.Sprintf("%s-%d", t.Name(), time.Now().UnixNano()) }

// TestRebuilds checks the caching promises: a no-op rebuild and an edit of
// a file no derivation reads build nothing and give the same image; a
// changed leaf rebuilds only it and its dependents, and every other layer
// keeps its digest.
func TestRebuilds(t *testing.T) {
	env := harness.Require(t)
	for _, via := range []harness.Via{harness.InProcess, harness.Buildctl} {
		t.Run(string(via), func(t *testing.T) {
			dir := projectContext(t, env)
			opts := harness.BuildOpts{BuildArgs: map[string]string{"SALT": salt(t)}}

			cold := env.Build(t, via, dir, opts)
			if got, want := harness.Built(cold.Log), []string{"app-1", "leaf-1", "other-1"}; !reflect.DeepEqual(got, want) {
				t.Fatalf("cold build built %v, want %v\n%s", got, want, cold.Log)
			}
			if out := env.Run(t, cold.Ref, harness.RunOpts{}); out != "leaf v1\n" {
				t.Fatalf("image printed %q", out)
			}
			coldImg := env.Inspect(t, cold.Ref).Images[0]

			noop := env.Build(t, via, dir, opts)
			if got := harness.Built(noop.Log); len(got) != 0 {
				t.Errorf("no-op rebuild built %v", got)
			}
			if noop.Digest != cold.Digest {
				t.Errorf("no-op rebuild gave %s, first build %s", noop.Digest, cold.Digest)
			}
			if noop.Status != nil {
				for _, v := range noop.Status.Ran("[nix") {
					if nixStep.MatchString(v.Name) {
						t.Errorf("no-op rebuild ran %q", v.Name)
					}
				}
			}

			harness.WriteFile(t, filepath.Join(dir, "README.md"), "Edited, and still read by no derivation.\n")
			edited := env.Build(t, via, dir, opts)
			if got := harness.Built(edited.Log); len(got) != 0 {
				t.Errorf("after editing an unrelated file the build built %v", got)
			}
			if edited.Digest != cold.Digest {
				t.Errorf("after editing an unrelated file: digest %s, first build %s", edited.Digest, cold.Digest)
			}

			harness.WriteFile(t, filepath.Join(dir, "leaf.txt"), "leaf v2\n")
			leaf := env.Build(t, via, dir, opts)
			if got, want := harness.Built(leaf.Log), []string{"app-1", "leaf-1"}; !reflect.DeepEqual(got, want) {
				t.Errorf("after changing the leaf the build built %v, want %v", got, want)
			}
			if out := env.Run(t, leaf.Ref, harness.RunOpts{}); out != "leaf v2\n" {
				t.Fatalf("image printed %q after the change", out)
			}
			before := harness.StoreLayers(coldImg)
			after := harness.StoreLayers(env.Inspect(t, leaf.Ref).Images[0])
			kept, changed := 0, 0
			for p, d := range after {
				if old, ok := before[p]; ok {
					kept++
					if old != d {
						t.Errorf("%s: layer %s, was %s", p, d, old)
					}
				} else {
					changed++
				}
			}
			// busybox and other keep their layers; leaf and app are new paths.
			if kept != 2 || changed != 2 {
				t.Errorf("%d store layers kept, %d new; want 2 and 2 (before %v, after %v)", kept, changed, before, after)
			}
		})
	}
}
