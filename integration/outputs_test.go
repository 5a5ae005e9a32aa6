package integration

import (
	"archive/tar"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nix-frontend/nix-frontend/integration/harness"
)

// TestNixInStoreLayout builds with a Nix image laid out like nixos/nix:
// Nix itself lives in /nix/store and is on PATH through a profile. The
// /nix cache mount must start as a copy of the image's /nix, or the build
// steps would find no Nix.
func TestNixInStoreLayout(t *testing.T) {
	env := harness.Require(t)
	img := env.Context(t, map[string]string{"Nixfile": "FROM " + env.NixImage + "\n" +
		"RUN set -e; d=/nix/store/0000000000000000000000000000000a-nix-2.8.0; " +
		"mkdir -p $d/bin /nix/var/nix/profiles; mv /usr/bin/nix /usr/bin/nix-* $d/bin/; " +
		"ln -s $d /nix/var/nix/profiles/default; ln -sf $d/bin/nix /usr/libexec/nix/build-remote\n" +
		"ENV PATH=/nix/var/nix/profiles/default/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n"})
	nixImage := env.Build(t, harness.InProcess, img, harness.BuildOpts{}).Ref

	ctx := exampleContext(t, env, "")
	for _, via := range []harness.Via{harness.InProcess, harness.Buildx} {
		res := env.Build(t, via, ctx, harness.BuildOpts{BuildArgs: map[string]string{"NIX_IMAGE": nixImage}})
		if out := env.Run(t, res.Ref, harness.RunOpts{}); !strings.Contains(out, "Hello from Nix") {
			t.Errorf("%s: image printed %q", via, out)
		}
	}
}

// TestExporters checks that the result is a native image every exporter
// takes: OCI and Docker tarballs (with zstd and gzip), a local directory, a
// plain tarball, and an eStargz push. They run on a daemon of their own:
// BuildKit keeps every compression it made of a layer, and a later cache
// export of the shared test daemon could carry the zstd or eStargz blobs
// (TestScalingCacheAfterEstargz).
func TestExporters(t *testing.T) {
	env := harness.Require(t)
	own := env.StartDaemon(t)
	ctx := exampleContext(t, env, "")
	out := t.TempDir()
	cases := []struct {
		name, output string
		check        func(t *testing.T, dest string)
	}{
		{"oci zstd", "type=oci,compression=zstd,force-compression=true,dest=" + filepath.Join(out, "oci.tar"), func(t *testing.T, dest string) {
			mts := layerMediaTypes(t, dest)
			if len(mts) != 4 || !strings.HasSuffix(mts[0], "+zstd") {
				t.Errorf("layer media types %v, want 4 zstd layers (2 store paths, links, basics)", mts)
			}
		}},
		{"docker gzip", "type=docker,name=nix-frontend-test,dest=" + filepath.Join(out, "docker.tar"), func(t *testing.T, dest string) {
			names := tarNames(t, dest)
			if !names["manifest.json"] {
				t.Errorf("docker tarball has no manifest.json: %v", names)
			}
		}},
		{"local", "type=local,dest=" + filepath.Join(out, "local"), func(t *testing.T, dest string) {
			target, err := os.Readlink(filepath.Join(dest, "bin", "hello"))
			if err != nil || !strings.HasPrefix(target, "/nix/store/") || !strings.HasSuffix(target, "-hello-1.0/bin/hello") {
				t.Errorf("bin/hello -> %q, %v", target, err)
			}
			if _, err := os.Stat(filepath.Join(dest, target)); err != nil {
				t.Errorf("the link's target is not in the output: %v", err)
			}
		}},
		{"tar", "type=tar,dest=" + filepath.Join(out, "rootfs.tar"), func(t *testing.T, dest string) {
			names := tarNames(t, dest)
			if !names["bin/hello"] {
				t.Errorf("rootfs tarball lacks bin/hello")
			}
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			own.Build(t, harness.Buildctl, ctx, harness.BuildOpts{Output: c.output})
			dest := c.output[strings.LastIndex(c.output, "dest=")+5:]
			c.check(t, dest)
		})
	}
	t.Run("estargz push", func(t *testing.T) {
		ref := env.NewRef("estargz")
		own.Build(t, harness.Buildctl, ctx, harness.BuildOpts{Output: "type=image,name=" + ref +
			",push=true,registry.insecure=true,oci-mediatypes=true,compression=estargz,force-compression=true"})
		img := env.Inspect(t, ref).Images[0]
		for _, l := range img.Manifest.Layers {
			if l.Annotations["containerd.io/snapshot/stargz/toc.digest"] == "" {
				t.Errorf("layer %s is not eStargz", l.Digest)
			}
		}
		if got := env.Run(t, ref, harness.RunOpts{}); !strings.Contains(got, "Hello from Nix") {
			t.Errorf("image printed %q", got)
		}
	})
}

func tarNames(t *testing.T, path string) map[string]bool {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	names := map[string]bool{}
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return names
		}
		if err != nil {
			t.Fatal(err)
		}
		names[strings.TrimPrefix(h.Name, "./")] = true
	}
}

// layerMediaTypes reads the first manifest of an OCI layout tarball.
func layerMediaTypes(t *testing.T, path string) []string {
	t.Helper()
	blobs := map[string][]byte{}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if h.Size < 1<<20 {
			dt, _ := io.ReadAll(tr)
			blobs[h.Name] = dt
		}
	}
	var idx struct {
		Manifests []struct{ Digest string } `json:"manifests"`
	}
	if err := json.Unmarshal(blobs["index.json"], &idx); err != nil || len(idx.Manifests) == 0 {
		t.Fatalf("index.json: %v", err)
	}
	var man struct {
		Layers []struct{ MediaType string } `json:"layers"`
	}
	if err := json.Unmarshal(blobs["blobs/sha256/"+strings.TrimPrefix(idx.Manifests[0].Digest, "sha256:")], &man); err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, l := range man.Layers {
		out = append(out, l.MediaType)
	}
	return out
}
