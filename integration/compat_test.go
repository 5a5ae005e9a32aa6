package integration

import (
	"os"
	"strings"
	"testing"

	"github.com/nix-frontend/nix-frontend/integration/harness"
)

// compatFlake is a flake.nix that is also a build file: its first line is a
// Nix comment BuildKit reads as the syntax directive.
const compatFlake = `{
  outputs = { self }:
    let
      system = "x86_64-linux";
      bb = builtins.path { path = ./busybox; name = "busybox"; };
      sh = "${bb}/bin/busybox";
      prog = name: bin: text: (derivation {
        inherit name system;
        builder = sh;
        args = [ "sh" "-c" "${sh} mkdir -p $out/bin; ${sh} printf '#!${sh} sh\necho ${text}\n' > $out/bin/${bin}; ${sh} chmod 555 $out/bin/${bin}" ];
      }) // { meta.mainProgram = bin; };
    in {
      packages.${system} = {
        default = prog "hello-2.0" "greet" "hello from the flake";
        goodbye = prog "goodbye-1.0" "goodbye" "goodbye from the flake";
      };
    };
}
`

// imageTarballNix builds what dockerTools.buildImage would: a `docker save`
// archive with one layer (a static busybox and a script) and a config.
const imageTarballNix = `let
  bb = builtins.path { path = ./busybox; name = "busybox"; };
in {
  image = derivation {
    name = "hello-image.tar.gz";
    system = builtins.currentSystem;
    builder = "${bb}/bin/busybox";
    args = [ "sh" "-c" ''
      set -e
      mkdir -p layer/bin archive
      cp ${bb}/bin/busybox layer/bin/busybox
      printf '#!/bin/busybox sh\necho hello from a dockerTools-style image\n' > layer/bin/hello
      chmod 555 layer/bin/hello layer/bin/busybox
      (cd layer && tar -cf ../archive/layer.tar .)
      diff=$(sha256sum archive/layer.tar | cut -d' ' -f1)
      printf '{"architecture":"amd64","os":"linux","config":{"Cmd":["/bin/hello"],"Labels":{"built-by":"nix"}},"rootfs":{"type":"layers","diff_ids":["sha256:%s"]}}' $diff > archive/config.json
      printf '[{"Config":"config.json","RepoTags":["hello:latest"],"Layers":["layer.tar"]}]' > archive/manifest.json
      cd archive && tar -cf - manifest.json config.json layer.tar | gzip -n > $out
    '' ];
  };
}
`

// TestCompatibilityMode builds a flake.nix and a default.nix given as the
// build file, as peer frontends do: the package's closure, its link tree,
// and its program as the entrypoint.
func TestCompatibilityMode(t *testing.T) {
	env := harness.Require(t)
	t.Run("flake.nix", func(t *testing.T) {
		dir := env.Context(t, map[string]string{"flake.nix": "# syntax=" + env.FrontendImage + "\n" + compatFlake})
		env.AddBusybox(t, dir)
		res := env.Build(t, harness.Buildx, dir, harness.BuildOpts{File: "flake.nix"})
		if out := env.Run(t, res.Ref, harness.RunOpts{}); out != "hello from the flake\n" {
			t.Errorf("default package printed %q", out)
		}
		res = env.Build(t, harness.Buildx, dir, harness.BuildOpts{File: "flake.nix", Target: "goodbye"})
		if out := env.Run(t, res.Ref, harness.RunOpts{}); out != "goodbye from the flake\n" {
			t.Errorf("--target goodbye printed %q", out)
		}
	})
	t.Run("image tarball", func(t *testing.T) {
		dir := env.Context(t, map[string]string{"default.nix": "# syntax=" + env.FrontendImage + "\n" + imageTarballNix})
		env.AddBusybox(t, dir)
		res := env.Build(t, harness.Buildx, dir, harness.BuildOpts{File: "default.nix", Target: "image"})
		if out := env.Run(t, res.Ref, harness.RunOpts{}); out != "hello from a dockerTools-style image\n" {
			t.Errorf("image printed %q", out)
		}
		img := env.Inspect(t, res.Ref).Images[0]
		if len(img.Manifest.Layers) != 1 || strings.Join(img.Config.Config.Cmd, " ") != "/bin/hello" || img.Config.Config.Labels["built-by"] != "nix" {
			t.Errorf("%d layers, config %+v; want the tarball's one layer and config", len(img.Manifest.Layers), img.Config.Config)
		}
	})
	t.Run("default.nix", func(t *testing.T) {
		dir := exampleContext(t, env, "")
		src := readFile(t, dir+"/default.nix")
		harness.WriteFile(t, dir+"/default.nix", "# syntax="+env.FrontendImage+"\n"+src)
		res := env.Build(t, harness.Buildctl, dir, harness.BuildOpts{File: "default.nix", Target: "hello"})
		if out := env.Run(t, res.Ref, harness.RunOpts{}); !strings.Contains(out, "Hello from Nix") {
			t.Errorf("image printed %q", out)
		}
		img := env.Inspect(t, res.Ref).Images[0]
		if got := strings.Join(img.Config.Config.Entrypoint, " "); got != "/bin/hello" {
			t.Errorf("entrypoint %q, want /bin/hello (the package name, as nix run finds it)", got)
		}
	})
}

func readFile(t *testing.T, p string) string {
	t.Helper()
	dt, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(dt)
}
