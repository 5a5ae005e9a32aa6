package integration

import (
	"bytes"
	"debug/elf"
	"strings"
	"testing"

	"github.com/nix-frontend/nix-frontend/integration/harness"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"
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
	var machine elf.Machine
	env.EachLayerFile(t, img, func(_ ocispecs.Descriptor, f harness.LayerFile) bool {
		if !strings.HasSuffix(f.Header.Name, "-busybox/bin/busybox") || f.Data == nil {
			return true
		}
		ef, err := elf.NewFile(bytes.NewReader(f.Data))
		if err != nil {
			t.Fatal(err)
		}
		machine = ef.Machine
		return false
	})
	if machine == 0 {
		t.Fatalf("no busybox in %s", img.Digest)
	}
	return machine
}
