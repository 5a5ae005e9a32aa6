package integration

import (
	"fmt"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/nix-frontend/nix-frontend/integration/harness"
	digest "github.com/opencontainers/go-digest"
)

// TestParallelBuilds checks that independent derivations build in
// concurrent steps on the shared store: eight derivations that each take
// two seconds overlap in the progress stream.
func TestParallelBuilds(t *testing.T) {
	env := harness.Require(t)
	var attrs []string
	for i := 0; i < 8; i++ {
		attrs = append(attrs, fmt.Sprintf("slow%d", i))
	}
	dir := env.Context(t, map[string]string{
		"Nixfile": "FROM scratch\nARG SALT\nINSTALL --file=default.nix --argstr salt=${SALT} " + strings.Join(attrs, " ") + "\n",
		"default.nix": `{ salt }:
let
  bb = builtins.path { path = ./busybox; name = "busybox"; };
  slow = i: derivation {
    name = "slow${toString i}";
    inherit salt;
    system = builtins.currentSystem;
    builder = "${bb}/bin/busybox";
    args = [ "sh" "-c" "${bb}/bin/busybox sleep 2; ${bb}/bin/busybox mkdir -p $out/share; echo ${toString i} > $out/share/slow${toString i}" ];
  };
in builtins.listToAttrs (builtins.genList (i: { name = "slow${toString i}"; value = slow i; }) 8)
`,
	})
	env.AddBusybox(t, dir)
	res := env.Build(t, harness.InProcess, dir, harness.BuildOpts{BuildArgs: map[string]string{"SALT": salt(t)}})
	if got := harness.Built(res.Log); len(got) != 8 {
		t.Fatalf("built %v, want 8 derivations", got)
	}
	if want := "evaluating 8 installables with " + env.Evaluator() + ","; !strings.Contains(res.Log, want) {
		t.Errorf("the evaluation step does not say %q:\n%s", want, res.Log)
	}
	var builds []*harness.Vertex
	for _, v := range res.Status.Ran("[nix ") {
		if strings.Contains(v.Name, "] build slow") {
			builds = append(builds, v)
		}
	}
	if len(builds) != 8 {
		t.Fatalf("%d build steps ran, want 8:\n%s", len(builds), res.Log)
	}
	var spans []harness.Span
	for _, v := range builds {
		spans = append(spans, harness.Span{Start: *v.Started, End: *v.Completed})
	}
	most := harness.MostAtOnce(spans)
	t.Logf("at most %d of 8 build steps ran at once", most)
	if most < 4 {
		t.Errorf("at most %d build steps ran at once; independent derivations should build in parallel", most)
	}
}

// TestClosureLayers checks the demo image against the host's own Nix: one
// layer per store path of `nix-store -qR` of the installed output, the link
// layer, and nothing of Nix itself.
func TestClosureLayers(t *testing.T) {
	env := harness.Require(t)
	ctx := exampleContext(t, env, "")
	want := harness.HostClosure(t, filepath.Join(ctx, "default.nix"), "hello")
	res := env.Build(t, harness.InProcess, ctx, harness.BuildOpts{})
	img := env.Inspect(t, res.Ref).Images[0]
	layers := harness.StoreLayers(img)
	var got []string
	for p := range layers {
		got = append(got, p)
	}
	sort.Strings(got)
	sort.Strings(want)
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("image has layers for %v; nix-store -qR says %v", got, want)
	}
	if len(img.Manifest.Layers) != len(want)+2 {
		t.Errorf("%d layers, want %d store paths, the link layer and FROM scratch's basics", len(img.Manifest.Layers), len(want))
	}
	for _, p := range got {
		if strings.Contains(p, "-nix-2.") {
			t.Errorf("the image contains Nix: %s", p)
		}
	}
	// The link layer and the basics come last, and the entrypoint runs
	// through the links.
	h := nonEmptyHistory(img)
	if n := len(h); n < 2 || !strings.HasPrefix(h[n-2].CreatedBy, "nix-frontend: links in /;") ||
		!strings.HasPrefix(h[n-1].CreatedBy, "nix-frontend: passwd, group, /tmp") {
		t.Errorf("the last layers are %v, want the link layer and the basics", h[max(0, n-2):])
	}
	out := env.Run(t, res.Ref, harness.RunOpts{})
	if !strings.Contains(out, "running from /nix/store/") {
		t.Errorf("demo output %q", out)
	}
}

// TestLargeClosure exports a closure of 300 generated paths within the
// layer budget, deterministically.
func TestLargeClosure(t *testing.T) {
	env := harness.Require(t)
	dir := env.Context(t, map[string]string{
		"Nixfile": "FROM scratch\nARG SALT\nARG REV=1\nINSTALL --file=default.nix --argstr salt=${SALT} --argstr rev=${REV} top\n",
		"default.nix": `{ salt, rev ? "1" }:
let
  bb = builtins.path { path = ./busybox; name = "busybox"; };
  sh = "${bb}/bin/busybox";
  mk = name: script: derivation { inherit name salt; system = builtins.currentSystem; builder = sh; args = [ "sh" "-c" script ]; };
  # Sizes spread from a few bytes to 64 KiB, so some paths are larger.
  # part3, one of the smallest, has revisions.
  part = i: mk "part${toString i}" ("${sh} mkdir -p $out; ${sh} head -c ${toString (i * i)} /dev/zero > $out/data"
    + (if i == 3 then "; echo ${rev} > $out/rev" else ""));
  parts = builtins.genList part 300;
in {
  top = mk "top" "${sh} mkdir -p $out/share; echo ${toString parts} > $out/share/parts";
}
`,
	})
	env.AddBusybox(t, dir)
	args := map[string]string{"SALT": salt(t), "NIX_CONFIG": harness.OfflineNixConfig + "\nmax-jobs = 4"}
	first := env.Build(t, harness.InProcess, dir, harness.BuildOpts{BuildArgs: args})
	img := env.Inspect(t, first.Ref).Images[0]
	if n := len(img.Manifest.Layers); n > 100 {
		t.Fatalf("%d layers, over the default budget of 100", n)
	}
	own := harness.StoreLayers(img)
	if len(own) < 50 {
		t.Errorf("only %d store paths have their own layer", len(own))
	}
	// The largest paths, and the root however small, have layers of their own.
	for _, big := range []string{"part299", "part298", "part250", "top"} {
		found := false
		for p := range own {
			if strings.HasSuffix(p, "-"+big) {
				found = true
			}
		}
		if !found {
			t.Errorf("large path %s has no layer of its own", big)
		}
	}
	// Again under another name: the same image.
	second := env.Build(t, harness.Buildctl, dir, harness.BuildOpts{BuildArgs: args})
	if second.Digest != first.Digest {
		t.Errorf("second build gave %s, first %s", second.Digest, first.Digest)
	}
	// A new revision of part3, which shares a layer with other small paths,
	// changes three layers: part3's group (which it stays in), the root
	// that refers to it, and the links.
	args["REV"] = "2"
	third := env.Build(t, harness.InProcess, dir, harness.BuildOpts{BuildArgs: args})
	if got := harness.Built(third.Log); !reflect.DeepEqual(got, []string{"part3", "top"}) {
		t.Errorf("the new revision built %v, want part3 and top", got)
	}
	before := map[digest.Digest]bool{}
	for _, l := range img.Manifest.Layers {
		before[l.Digest] = true
	}
	after := env.Inspect(t, third.Ref).Images[0]
	var changed []string
	for i, h := range nonEmptyHistory(after) {
		if !before[after.Manifest.Layers[i].Digest] {
			changed = append(changed, h.CreatedBy)
		}
	}
	if len(changed) != 3 || len(after.Manifest.Layers) != len(img.Manifest.Layers) {
		t.Errorf("%d of %d layers changed, want 3 of %d: %v", len(changed), len(after.Manifest.Layers), len(img.Manifest.Layers), changed)
	}
}
