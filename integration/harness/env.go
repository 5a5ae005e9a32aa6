// Package harness drives a real buildkitd, registry and runc for nix-frontend's
// integration tests and benchmarks: it makes build contexts, runs builds
// through the in-process gateway client, buildctl and docker buildx, and
// inspects and runs the images they push.
package harness

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"

	bkclient "github.com/moby/buildkit/client"
)

// Env is the environment hack/setup starts.
type Env struct {
	BuildkitHost string // BUILDKIT_HOST
	Registry     string // host:port of the plain-HTTP registry
	// NixImage is the Nix image builds run Nix in: NF_NIX_IMAGE, by
	// default Nix 2.26, what users run; hack/test runs a core set of tests
	// again with the 2.8 image and with the one that has nix-eval-jobs.
	NixImage string
	// The Nix images hack/nix-image makes, for tests that need one of them
	// whatever NixImage is.
	OldNixImage      string // Nix 2.8
	EvalJobsNixImage string // Nix 2.26 with nix-eval-jobs
	FrontendImage    string // the nix-frontend image under test
	Builder          string // the docker buildx builder on the same buildkitd
	Busybox          string // a static busybox binary, the builder of offline test derivations
	RepoRoot         string
}

// OfflineNixConfig is what Nix needs on a machine without internet, inside
// unprivileged build steps.
const OfflineNixConfig = "substituters =\nsandbox = false\nbuild-users-group ="

func getenv(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

func repoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

var (
	envOnce sync.Once
	envVal  *Env
	envErr  error
)

// Require returns the environment, skipping the test under -short and failing
// it (never skipping) when the environment is missing: a test run that was
// asked for integration tests must not pass without running them.
func Require(t testing.TB) *Env {
	t.Helper()
	if testing.Short() {
		t.Skip("integration test: needs buildkitd, a registry and runc (run hack/test, or go test without -short after hack/setup)")
	}
	envOnce.Do(func() { envVal, envErr = probe() })
	if envErr != nil {
		t.Fatalf("integration environment missing: %v\nrun hack/setup first (hack/test does it for you)", envErr)
	}
	return envVal
}

func probe() (*Env, error) {
	root := repoRoot()
	e := &Env{
		BuildkitHost: getenv("BUILDKIT_HOST", "unix://"+filepath.Join(root, ".cache/state/buildkitd.sock")),
		Registry:     getenv("NF_REGISTRY", "127.0.0.1:5000"),
		Builder:      getenv("NF_BUILDER", "nix-frontend"),
		Busybox:      getenv("NF_BUSYBOX", "/bin/busybox"),
		RepoRoot:     root,
	}
	e.NixImage = getenv("NF_NIX_IMAGE", e.Registry+"/nix:2.26")
	e.OldNixImage = e.Registry + "/nix:2.8"
	e.EvalJobsNixImage = e.Registry + "/nix:2.26-eval-jobs"
	e.FrontendImage = getenv("NF_FRONTEND_IMAGE", e.Registry+"/nix-frontend:dev")
	os.Setenv("BUILDKIT_HOST", e.BuildkitHost)
	os.Setenv("PATH", filepath.Join(root, ".cache/bin")+string(os.PathListSeparator)+os.Getenv("PATH"))

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := bkclient.New(ctx, e.BuildkitHost)
	if err != nil {
		return nil, fmt.Errorf("buildkitd at %s: %w", e.BuildkitHost, err)
	}
	defer c.Close()
	if _, err := c.ListWorkers(ctx); err != nil {
		return nil, fmt.Errorf("buildkitd at %s does not answer: %w", e.BuildkitHost, err)
	}
	resp, err := http.Get("http://" + e.Registry + "/v2/")
	if err != nil {
		return nil, fmt.Errorf("registry at %s: %w", e.Registry, err)
	}
	resp.Body.Close()
	for _, img := range []string{e.NixImage, e.OldNixImage, e.EvalJobsNixImage, e.FrontendImage} {
		if _, err := headManifest(img); err != nil {
			return nil, fmt.Errorf("image %s: %w", img, err)
		}
	}
	for _, tool := range []string{"buildctl", "runc", "umoci", "skopeo", "docker"} {
		if _, err := exec.LookPath(tool); err != nil {
			return nil, fmt.Errorf("%s not found on PATH", tool)
		}
	}
	if _, err := os.Stat(e.Busybox); err != nil {
		return nil, fmt.Errorf("static busybox: %w (install busybox-static)", err)
	}
	return e, nil
}

// Evaluator is the evaluator builds with the default NIX_EVALUATOR use in
// NixImage: nix-eval-jobs in the image that has it, else the built-in one.
func (e *Env) Evaluator() string {
	if e.NixImage == e.EvalJobsNixImage {
		return "nix-eval-jobs"
	}
	return "nix"
}
