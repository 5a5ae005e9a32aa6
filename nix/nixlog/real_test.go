package nixlog

import (
	"bytes"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// requireNix returns the nix binary, or skips the test when there is none.
// With NIX_FRONTEND_REQUIRE_NIX set (CI) a missing nix fails the test, so
// the real tests can never pass by silently not running.
func requireNix(t *testing.T) string {
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

// requireBusybox returns a directory holding bin/busybox, a static shell the
// test derivations use as their builder, since there is no nixpkgs offline.
func requireBusybox(t *testing.T, dir string) string {
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

// nixEnv is an environment for a private, offline Nix store under root:
// the store lives in root/store (so paths differ from /nix/store), nothing
// is substituted, builds run without a sandbox or build users.
func nixEnv(root, state string) []string {
	env := []string{}
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "NIX_") {
			continue
		}
		env = append(env, kv)
	}
	return append(env,
		"NIX_STORE_DIR="+filepath.Join(root, "store"),
		"NIX_STATE_DIR="+filepath.Join(root, state),
		"NIX_LOG_DIR="+filepath.Join(root, state, "log"),
		"NIX_CONF_DIR="+filepath.Join(root, "etc"),
		"XDG_CACHE_HOME="+filepath.Join(root, "cache"),
		"HOME="+root,
		"NIX_CONFIG=sandbox = false\nbuild-users-group =\nsubstituters =\nexperimental-features = nix-command flakes\n",
	)
}

const buildsNix = `
let
  bb = builtins.path { path = ./bb; name = "busybox"; };
  mk = name: script: derivation {
    inherit name;
    system = builtins.currentSystem;
    builder = "${bb}/bin/busybox";
    args = [ "sh" "-c" script ];
  };
in {
  ok = mk "ok-2.1" ''
    echo '@nix {"action":"setPhase","phase":"buildPhase"}' >&2
    echo compiling
    printf '\033[32mgreen\033[0m\n'
    mkdir $out
  '';
  broken = mk "broken-1.0" ''
    i=1; while [ $i -le 40 ]; do echo "step $i"; i=$((i+1)); done
    echo "fatal: no" >&2
    exit 3
  '';
}
`

// TestRealNixBuild runs a real `nix build` of two busybox derivations, one
// of which fails, and decodes what Nix writes on stderr.
func TestRealNixBuild(t *testing.T) {
	nix := requireNix(t)
	root := storeTempDir(t)
	requireBusybox(t, root)
	if err := os.WriteFile(filepath.Join(root, "builds.nix"), []byte(buildsNix), 0o644); err != nil {
		t.Fatal(err)
	}
	env := nixEnv(root, "state")

	var out bytes.Buffer
	dec := NewDecoder(&out)
	cmd := exec.Command(nix, "build", "--impure", "--no-link", "--keep-going",
		"-L", "--log-format", "internal-json", // -L first: Nix 2.8 resets the format on -L
		"-f", filepath.Join(root, "builds.nix"), "ok", "broken")
	cmd.Env = env
	cmd.Stderr = dec
	err := cmd.Run()
	if cerr := dec.Close(); cerr != nil {
		t.Fatal(cerr)
	}
	t.Logf("decoded:\n%s", out.String())
	if err == nil {
		t.Fatal("nix build succeeded, but broken's builder exits 3")
	}
	if _, ok := err.(*exec.ExitError); !ok {
		t.Fatalf("running nix: %v", err)
	}
	text := out.String()
	if strings.Contains(text, "@nix") || strings.Contains(text, "\x1b") {
		t.Errorf("raw JSON or escape sequences left in output")
	}
	if n := strings.Count(text, "\nnix: building ") + btoi(strings.HasPrefix(text, "nix: building ")); n != 2 {
		t.Errorf("%d `nix: building` lines, want 2", n)
	}
	for _, want := range []string{
		"nix: building ok-2.1\n",
		"nix: building broken-1.0\n",
		"ok: phase buildPhase\n",
		"ok> compiling\n",
		"ok> green\n",
		"broken> step 1\n",
		"broken> fatal: no\n",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("output lacks %q", want)
		}
	}

	sum := dec.Summary()
	if len(sum.Builds) != 2 {
		t.Errorf("Builds = %q", sum.Builds)
	}
	if len(sum.Failed) != 1 || DrvName(sum.Failed[0]) != "broken-1.0" {
		t.Fatalf("Failed = %q", sum.Failed)
	}
	tail := sum.Tail(sum.Failed[0])
	if len(tail) != DefaultTailLines || tail[0] != "step 12" || tail[len(tail)-1] != "fatal: no" {
		t.Errorf("Tail = %q", tail)
	}
	if !slices.ContainsFunc(sum.Errors, func(e string) bool { return strings.Contains(e, "broken-1.0.drv") }) {
		t.Errorf("Errors = %q", sum.Errors)
	}

	// Substitution: push ok to a local binary cache, then fetch it into a
	// store with a fresh database, which has to substitute it.
	okOut := runNix(t, nix, env, "eval", "--raw", "--impure", "-f", filepath.Join(root, "builds.nix"), "ok.outPath")
	cache := "file://" + filepath.Join(root, "binary-cache")
	runNix(t, nix, env, "copy", "--to", cache, okOut)

	out.Reset()
	dec = NewDecoder(&out)
	cmd = exec.Command(nix, "build", "--no-link", "-L", "--log-format", "internal-json",
		"--option", "substituters", cache, "--option", "require-sigs", "false", okOut)
	cmd.Env = nixEnv(root, "state2")
	cmd.Stderr = dec
	if err := cmd.Run(); err != nil {
		t.Fatalf("substituting build: %v\n%s", err, out.String())
	}
	dec.Close()
	t.Logf("decoded:\n%s", out.String())
	if out.String() != "nix: substituting "+okOut+"\n" {
		t.Errorf("substitution output = %q", out.String())
	}
	if sum := dec.Summary(); !slices.Equal(sum.Substituted, []string{okOut}) || len(sum.Builds) != 0 {
		t.Errorf("Substituted = %q, Builds = %q", sum.Substituted, sum.Builds)
	}
}

func runNix(t *testing.T, nix string, env []string, args ...string) string {
	t.Helper()
	cmd := exec.Command(nix, args...)
	cmd.Env = env
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("nix %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return strings.TrimSpace(string(out))
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// storeTempDir is t.TempDir for a Nix store: Nix makes store paths read-only,
// which would stop the test's cleanup when it does not run as root.
func storeTempDir(t *testing.T) string {
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
