package integration

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nix-frontend/nix-frontend/integration/harness"
)

// TestTarballContext builds a context sent as a tarball on stdin.
func TestTarballContext(t *testing.T) {
	env := harness.Require(t)
	dir := exampleContext(t, env, "")
	tarball := filepath.Join(t.TempDir(), "context.tar.gz")
	if out, err := exec.Command("tar", "-C", dir, "-czf", tarball, ".").CombinedOutput(); err != nil {
		t.Fatalf("tar: %v\n%s", err, out)
	}
	ref := env.NewRef("tarball")
	args := []string{"buildx", "build", "--builder", env.Builder, "-f", "Nixfile",
		"--output", "type=image,name=" + ref + ",push=true,registry.insecure=true"}
	for k, v := range env.DefaultBuildArgs() {
		args = append(args, "--build-arg", k+"="+v)
	}
	cmd := exec.Command("docker", append(args, "-")...)
	in, err := os.Open(tarball)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	cmd.Stdin = in
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("docker buildx build - < context.tar.gz: %v\n%s", err, out)
	}
	if out := env.Run(t, ref, harness.RunOpts{}); !strings.Contains(out, "Hello from Nix") {
		t.Errorf("image printed %q", out)
	}
}

// TestGitLabels checks the OCI source and revision labels buildx adds from
// the context's git repository (BUILDX_GIT_LABELS=full).
func TestGitLabels(t *testing.T) {
	env := harness.Require(t)
	dir := exampleContext(t, env, "")
	git := func(args ...string) string {
		cmd := exec.Command("git", append([]string{"-C", dir, "-c", "user.name=t", "-c", "user.email=t@example.com"}, args...)...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
		return strings.TrimSpace(string(out))
	}
	git("init", "-q")
	git("remote", "add", "origin", "https://example.com/team/app.git")
	git("add", ".")
	git("commit", "-qm", "app")
	rev := git("rev-parse", "HEAD")
	t.Setenv("BUILDX_GIT_LABELS", "full")
	res := env.Build(t, harness.Buildx, dir, harness.BuildOpts{})
	labels := env.Inspect(t, res.Ref).Images[0].Config.Config.Labels
	if labels["org.opencontainers.image.revision"] != rev || labels["org.opencontainers.image.source"] != "https://example.com/team/app.git" {
		t.Errorf("labels %v, want revision %s and the origin as source", labels, rev)
	}
}

// TestGitContext builds a context BuildKit fetches from a git repository,
// served over HTTP on loopback.
func TestGitContext(t *testing.T) {
	env := harness.Require(t)
	work := exampleContext(t, env, "")
	run := func(dir string, args ...string) {
		cmd := exec.Command("git", append([]string{"-c", "user.name=t", "-c", "user.email=t@example.com"}, args...)...)
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
	}
	run(work, "init", "-q", "-b", "main")
	run(work, "add", ".")
	run(work, "commit", "-qm", "app")
	served := t.TempDir()
	run(served, "clone", "-q", "--bare", work, "app.git")
	run(filepath.Join(served, "app.git"), "update-server-info")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.FileServer(http.Dir(served))}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })

	ref := env.NewRef("git-context")
	args := []string{"buildx", "build", "--builder", env.Builder, "-f", "Nixfile",
		"--output", "type=image,name=" + ref + ",push=true,registry.insecure=true"}
	for k, v := range env.DefaultBuildArgs() {
		args = append(args, "--build-arg", k+"="+v)
	}
	url := fmt.Sprintf("http://%s/app.git#main", ln.Addr())
	if out, err := exec.Command("docker", append(args, url)...).CombinedOutput(); err != nil {
		t.Fatalf("docker buildx build %s: %v\n%s", url, err, out)
	}
	if out := env.Run(t, ref, harness.RunOpts{}); !strings.Contains(out, "Hello from Nix") {
		t.Errorf("image printed %q", out)
	}
}
