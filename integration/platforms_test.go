package integration

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"debug/elf"
	"io"
	"strings"
	"testing"

	"github.com/nix-frontend/nix-frontend/integration/harness"
)

// multiNix builds the same program for whichever system it is evaluated
// for, with that system's busybox as builder and interpreter.
const multiNix = `let
  busyboxes = { x86_64-linux = ./busybox; aarch64-linux = ./busybox-aarch64; };
  bb = builtins.path { path = busyboxes.${builtins.currentSystem}; name = "busybox"; };
  sh = "${bb}/bin/busybox";
in {
  hello = derivation {
    name = "hello-multi";
    system = builtins.currentSystem;
    builder = sh;
    args = [ "sh" "-c" ''
      ${sh} mkdir -p $out/bin
      ${sh} printf '#!${sh} sh\necho "hello from $(${sh} uname -m)"\n' > $out/bin/hello
      ${sh} chmod 555 $out/bin/hello
    '' ];
  };
}
`

// TestMultiPlatform builds one index for linux/amd64 and linux/arm64: each
// image is built by Nix for its own system (aarch64 through QEMU binfmt on
// this amd64 host), names its platform, carries binaries of the right
// machine, and runs.
func TestMultiPlatform(t *testing.T) {
	env := harness.Require(t)
	dir := env.Context(t, map[string]string{
		"Nixfile":     "FROM scratch\nINSTALL --file=default.nix hello\nENTRYPOINT [\"hello\"]\n",
		"default.nix": multiNix,
	})
	env.AddBusybox(t, dir)
	env.AddBusyboxAarch64(t, dir)
	for _, via := range []harness.Via{harness.InProcess, harness.Buildx} {
		t.Run(string(via), func(t *testing.T) {
			res := env.Build(t, via, dir, harness.BuildOpts{Platforms: []string{"linux/amd64", "linux/arm64"}})
			pushed := env.Inspect(t, res.Ref)
			if pushed.Index == nil || len(pushed.Images) != 2 {
				t.Fatalf("want an index of 2 images, got index=%v images=%d", pushed.Index != nil, len(pushed.Images))
			}
			want := map[string]elf.Machine{"amd64": elf.EM_X86_64, "arm64": elf.EM_AARCH64}
			for _, img := range pushed.Images {
				arch := img.Config.Architecture
				m, ok := want[arch]
				if !ok || img.Config.OS != "linux" {
					t.Errorf("image for %s/%s", img.Config.OS, arch)
					continue
				}
				delete(want, arch)
				if got := busyboxMachine(t, env, img); got != m {
					t.Errorf("%s image: busybox is for %v, want %v", arch, got, m)
				}
			}
			if len(want) > 0 {
				t.Errorf("no image for %v", want)
			}
			wantOut := map[string]string{"linux/amd64": "hello from x86_64\n", "linux/arm64": "hello from aarch64\n"}
			for platform, w := range wantOut {
				if out := env.Run(t, res.Ref, harness.RunOpts{Platform: platform}); out != w {
					t.Errorf("%s image printed %q, want %q", platform, out, w)
				}
			}
		})
	}
}

// busyboxMachine finds the busybox store path in an image's layers and
// returns the machine its ELF header names.
func busyboxMachine(t *testing.T, env *harness.Env, img *harness.Image) elf.Machine {
	t.Helper()
	for _, l := range img.Manifest.Layers {
		gz, err := gzip.NewReader(bytes.NewReader(env.Blob(t, img, l.Digest)))
		if err != nil {
			t.Fatal(err)
		}
		tr := tar.NewReader(gz)
		for {
			h, err := tr.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			if strings.HasSuffix(h.Name, "-busybox/bin/busybox") && h.Typeflag == tar.TypeReg {
				dt, err := io.ReadAll(tr)
				if err != nil {
					t.Fatal(err)
				}
				f, err := elf.NewFile(bytes.NewReader(dt))
				if err != nil {
					t.Fatal(err)
				}
				return f.Machine
			}
		}
	}
	t.Fatalf("no busybox in %s", img.Digest)
	return 0
}
