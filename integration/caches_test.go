package integration

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/nix-frontend/nix-frontend/integration/harness"
)

// TestPrunedCaches checks that builds work, and give the same image, when
// either cache is gone: the /nix cache mount (a new runner, BuildKit's
// cache warm) or BuildKit's cache (the store warm), and when only part of
// the work is cached.
func TestPrunedCaches(t *testing.T) {
	env := harness.Require(t)
	dir := projectContext(t, env)
	opts := harness.BuildOpts{BuildArgs: map[string]string{"SALT": salt(t)}}
	first := env.Build(t, harness.InProcess, dir, opts)
	firstLayers := harness.StoreLayers(env.Inspect(t, first.Ref).Images[0])

	t.Run("empty /nix, warm BuildKit cache", func(t *testing.T) {
		env.Prune(t, "type==exec.cachemount")
		res := env.Build(t, harness.InProcess, dir, opts)
		if got := harness.Built(res.Log); len(got) != 0 {
			t.Errorf("built %v", got)
		}
		if res.Digest != first.Digest {
			t.Errorf("digest %s, first build %s", res.Digest, first.Digest)
		}
	})

	t.Run("empty /nix, export not cached", func(t *testing.T) {
		// A new INSTALL line changes the export step; the builds of app
		// and other stay cached, but their outputs are no longer in the
		// store, so the export realises them again.
		env.Prune(t, "type==exec.cachemount")
		harness.WriteFile(t, filepath.Join(dir, "Nixfile"), env.WithSyntax("FROM scratch\nARG SALT\n"+
			"INSTALL --file=default.nix --argstr salt=${SALT} app other\n"+
			"INSTALL --file=default.nix --argstr salt=${SALT} --link=none leaf\n"+
			"ENTRYPOINT [\"app\"]\n"))
		res := env.Build(t, harness.InProcess, dir, opts)
		if out := env.Run(t, res.Ref, harness.RunOpts{}); out != "leaf v1\n" {
			t.Errorf("image printed %q", out)
		}
		layers := harness.StoreLayers(env.Inspect(t, res.Ref).Images[0])
		for p, d := range firstLayers {
			if layers[p] != d {
				t.Errorf("%s: layer %s, first build %s", p, layers[p], d)
			}
		}
	})

	t.Run("empty /nix, new layers", func(t *testing.T) {
		// Builds and links cached, but a smaller layer budget groups
		// busybox and leaf: the new layer step finds the store empty and
		// runs again, under a new key, once the builds refilled it.
		env.Prune(t, "type==exec.cachemount")
		o := opts
		o.BuildArgs = map[string]string{"SALT": opts.BuildArgs["SALT"], "NIX_MAX_LAYERS": "5"}
		res := env.Build(t, harness.InProcess, dir, o)
		if out := env.Run(t, res.Ref, harness.RunOpts{}); out != "leaf v1\n" {
			t.Errorf("image printed %q", out)
		}
		if n := len(env.Inspect(t, res.Ref).Images[0].Manifest.Layers); n != 5 {
			t.Errorf("%d layers, want the budget of 5", n)
		}
		if !strings.Contains(res.Log, "realising them again") {
			t.Errorf("no step found the store empty; the test did not test anything:\n%s", res.Log)
		}
	})

	t.Run("warm /nix, empty BuildKit cache", func(t *testing.T) {
		harness.WriteFile(t, filepath.Join(dir, "Nixfile"), env.WithSyntax("FROM scratch\nARG SALT\n"+
			"INSTALL --file=default.nix --argstr salt=${SALT} app other\n"+
			"ENTRYPOINT [\"app\"]\n"))
		// On a new daemon a cold build fills the store, then everything
		// but the store goes.
		other := env.StartDaemon(t)
		other.Build(t, harness.InProcess, dir, opts)
		other.Prune(t, "type!=exec.cachemount")
		res := other.Build(t, harness.InProcess, dir, opts)
		if got := harness.Built(res.Log); len(got) != 0 {
			t.Errorf("built %v with the store warm", got)
		}
		if res.Digest != first.Digest {
			t.Errorf("digest %s, first build %s", res.Digest, first.Digest)
		}
		var ran []string
		for _, v := range res.Status.Ran("[nix") {
			if nixStep.MatchString(v.Name) {
				ran = append(ran, v.Name)
			}
		}
		// The steps ran again, so the store, not BuildKit, had the work.
		if len(ran) == 0 {
			t.Errorf("no Nix step ran after BuildKit's cache was pruned; the test did not test anything")
		}
	})
}
