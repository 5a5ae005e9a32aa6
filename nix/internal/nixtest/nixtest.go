// Package nixtest runs tests against the real Nix on this machine: a
// private, offline store per test and a static busybox as the builder of
// test derivations, since there is no nixpkgs offline.
package nixtest

import (
	"bytes"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// RequireNix returns the nix binary, or skips the test when there is none.
// With NIX_FRONTEND_REQUIRE_NIX set (the test command, CI) a missing nix
// fails the test, so real tests never pass by silently not running.
func RequireNix(t testing.TB) string {
	t.Helper()
	nix, err := exec.LookPath("nix")
	if err != nil {
		if os.Getenv("NIX_FRONTEND_REQUIRE_NIX") != "" {
			t.Fatalf("NIX_FRONTEND_REQUIRE_NIX is set but nix is not on PATH: %v", err)
		}
		t.Skip("nix is not on PATH (set NIX_FRONTEND_REQUIRE_NIX to make this a failure)")
	}
	return nix
}

// Busybox puts a static busybox at dir/bb/bin/busybox and returns dir/bb.
func Busybox(t testing.TB, dir string) string {
	t.Helper()
	src, err := exec.LookPath("busybox")
	if err != nil {
		src = "/bin/busybox"
	}
	data, err := os.ReadFile(src)
	if err != nil {
		if os.Getenv("NIX_FRONTEND_REQUIRE_NIX") != "" {
			t.Fatalf("static busybox needed for test builds: %v", err)
		}
		t.Skipf("static busybox needed for test builds: %v", err)
	}
	bb := filepath.Join(dir, "bb")
	if err := os.MkdirAll(filepath.Join(bb, "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(bb, "bin", "busybox"), data, 0o755); err != nil {
		t.Fatal(err)
	}
	return bb
}

// StoreTempDir is t.TempDir for a Nix store: Nix makes store paths
// read-only, which would stop the test's cleanup when it does not run as
// root.
func StoreTempDir(t testing.TB) string {
	t.Helper()
	root := t.TempDir()
	t.Cleanup(func() {
		filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				os.Chmod(p, 0o755)
			}
			return nil
		})
	})
	return root
}

// Env is an environment for a private, offline Nix store under root: the
// store lives in root/store (so paths differ from /nix/store), state in
// root/<state>; nothing is substituted; builds run without a sandbox or
// build users. extraConfig is appended to NIX_CONFIG. The store is
// initialised before Env returns, as the build steps initialise theirs:
// Nix 2.8 processes that start at once on an empty store race to create
// its state, and one fails ("creating symlink ... File exists").
func Env(t testing.TB, root, state, extraConfig string) []string {
	t.Helper()
	env := envFor(root, state, extraConfig)
	Output(t, "nix-store", env, "--init")
	return env
}

func envFor(root, state, extraConfig string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "NIX_") {
			env = append(env, kv)
		}
	}
	return append(env,
		"NIX_STORE_DIR="+filepath.Join(root, "store"),
		"NIX_STATE_DIR="+filepath.Join(root, state),
		"NIX_LOG_DIR="+filepath.Join(root, state, "log"),
		"NIX_CONF_DIR="+filepath.Join(root, "etc"),
		"XDG_CACHE_HOME="+filepath.Join(root, "cache"),
		"HOME="+root,
		"NIX_CONFIG=sandbox = false\nbuild-users-group =\nsubstituters =\n"+extraConfig,
	)
}

// Output runs nix (or another Nix command) with env and returns its
// stdout, trimmed; it fails the test with Nix's stderr when the command
// fails.
func Output(t testing.TB, nix string, env []string, args ...string) string {
	t.Helper()
	cmd := exec.Command(nix, args...)
	cmd.Env = env
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", filepath.Base(nix), strings.Join(args, " "), err, stderr.String())
	}
	return strings.TrimSpace(string(out))
}
