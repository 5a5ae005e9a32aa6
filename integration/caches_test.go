package integration

import (
	"path/filepath"
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
