package integration

import (
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nix-frontend/nix-frontend/integration/harness"
)

// binaryCacheServer serves a directory as a writable Nix binary cache
// (GET, HEAD and PUT) on loopback.
func binaryCacheServer(t *testing.T) (string, string) {
	t.Helper()
	dir := t.TempDir()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	files := http.FileServer(http.Dir(dir))
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPut {
			p := filepath.Join(dir, filepath.Clean("/"+r.URL.Path))
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				http.Error(w, err.Error(), 500)
				return
			}
			f, err := os.Create(p)
			if err == nil {
				_, err = io.Copy(f, r.Body)
				f.Close()
			}
			if err != nil {
				http.Error(w, err.Error(), 500)
			}
			return
		}
		files.ServeHTTP(w, r)
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return "http://" + ln.Addr().String(), dir
}

// TestPushCache checks NIX_PUSH_CACHE: one runner uploads the signed
// closure, and a new runner (an empty /nix and no cached steps) substitutes
// everything from it, builds nothing, and makes the same image.
func TestPushCache(t *testing.T) {
	env := harness.Require(t)
	url, cacheDir := binaryCacheServer(t)
	keys := t.TempDir()
	sk, pk := filepath.Join(keys, "sk"), filepath.Join(keys, "pk")
	if out, err := exec.Command("nix-store", "--generate-binary-cache-key", "nix-frontend-test-1", sk, pk).CombinedOutput(); err != nil {
		t.Fatalf("generating a signing key: %v\n%s", err, out)
	}
	pub, err := os.ReadFile(pk)
	if err != nil {
		t.Fatal(err)
	}

	dir := projectContext(t, env)
	args := map[string]string{"SALT": salt(t), "NIX_PUSH_CACHE": url}
	first := env.Build(t, harness.Buildctl, dir, harness.BuildOpts{BuildArgs: args, Args: []string{"--secret", "id=nix-signing-key,src=" + sk}})
	if !strings.Contains(first.Log, "store paths are in "+url) {
		t.Fatalf("no push in the log:\n%s", first.Log)
	}
	narinfos, _ := filepath.Glob(filepath.Join(cacheDir, "*.narinfo"))
	if len(narinfos) < 3 {
		t.Fatalf("the cache has %d narinfo files, want the closure (busybox, leaf, app, other)", len(narinfos))
	}
	for _, n := range narinfos {
		if dt, _ := os.ReadFile(n); !strings.Contains(string(dt), "Sig: nix-frontend-test-1:") {
			t.Errorf("%s is not signed:\n%s", filepath.Base(n), dt)
		}
	}

	// A new runner: the same Nix with another image digest has its own,
	// empty /nix cache mount, and every step's cache key changes.
	img := env.Context(t, map[string]string{"Nixfile": "FROM " + env.NixImage + "\nLABEL runner=" + salt(t) + "\n"})
	newRunner := env.Build(t, harness.InProcess, img, harness.BuildOpts{}).Ref
	args = map[string]string{
		"SALT":       args["SALT"],
		"NIX_IMAGE":  newRunner,
		"NIX_CONFIG": harness.OfflineNixConfig + "\nsubstituters = " + url + "\ntrusted-public-keys = " + strings.TrimSpace(string(pub)),
	}
	second := env.Build(t, harness.Buildctl, dir, harness.BuildOpts{BuildArgs: args})
	if got := harness.Built(second.Log); len(got) != 0 {
		t.Errorf("the new runner built %v instead of substituting", got)
	}
	if !strings.Contains(second.Log, "nix: substituting ") {
		t.Errorf("the new runner substituted nothing:\n%s", second.Log)
	}
	if second.Digest != first.Digest {
		t.Errorf("the new runner made %s, the first %s", second.Digest, first.Digest)
	}
}
