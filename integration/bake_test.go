package integration

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/nix-frontend/nix-frontend/integration/harness"
)

// bakeFile is a bake target that builds a Nixfile with a build argument,
// two platforms and a local BuildKit cache.
const bakeFile = `variable "REF" {}
variable "CACHE" {}
variable "NIX_IMAGE" {}
variable "NIX_CONFIG" {}

target "greeters" {
  context    = "."
  dockerfile = "Nixfile"
  args = {
    GREETING   = "bonjour"
    NIX_IMAGE  = NIX_IMAGE
    NIX_CONFIG = NIX_CONFIG
  }
  platforms  = ["linux/amd64", "linux/arm64"]
  cache-to   = ["type=local,dest=${CACHE},mode=max"]
  cache-from = ["type=local,src=${CACHE}"]
  output     = ["type=image,name=${REF},push=true,registry.insecure=true,oci-mediatypes=true"]
}
`

// TestBake builds a Nixfile with docker buildx bake and checks the image is
// the one docker buildx build makes from the same arguments.
func TestBake(t *testing.T) {
	env := harness.Require(t)
	dir := exampleContext(t, env, "flake")
	env.AddBusyboxAarch64(t, dir)
	harness.WriteFile(t, filepath.Join(dir, "Nixfile"), env.WithSyntax(
		"FROM scratch\nARG GREETING=hello\nINSTALL .#hello\nENV GREETING=${GREETING}\nENTRYPOINT [\"hello\"]\n"))
	harness.WriteFile(t, filepath.Join(dir, "docker-bake.hcl"), bakeFile)

	baked, cache := env.NewRef("bake"), t.TempDir()
	// Bake asks before it writes outside the context.
	cmd := exec.Command("docker", "buildx", "bake", "--builder", env.Builder, "--progress", "plain", "--allow", "fs="+cache, "greeters")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "REF="+baked, "CACHE="+cache, "NIX_IMAGE="+env.NixImage,
		"NIX_CONFIG="+harness.OfflineNixConfig, "BUILDX_NO_DEFAULT_ATTESTATIONS=1")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("docker buildx bake: %v\n%s", err, out)
	}
	bakedImg := env.Inspect(t, baked)
	if len(bakedImg.Images) != 2 {
		t.Fatalf("bake pushed %d images, want one per platform", len(bakedImg.Images))
	}
	if out := env.Run(t, baked, harness.RunOpts{Args: []string{"hello", "nix"}}); out != "hello, nix!\n" {
		t.Errorf("the baked image printed %q", out)
	}

	built := env.Build(t, harness.Buildx, dir, harness.BuildOpts{
		BuildArgs: map[string]string{"GREETING": "bonjour"},
		Platforms: []string{"linux/amd64", "linux/arm64"},
	})
	if d := env.Inspect(t, built.Ref).Digest; d != bakedImg.Digest {
		t.Errorf("docker buildx build made %s, bake %s", d, bakedImg.Digest)
	}
}
