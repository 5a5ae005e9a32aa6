package nixlog

import (
	"bytes"
	"github.com/nix-frontend/nix-frontend/nix/internal/nixtest"
	"github.com/nix-frontend/nix-frontend/nix/storepath"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

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
	nix := nixtest.RequireNix(t)
	root := nixtest.StoreTempDir(t)
	nixtest.Busybox(t, root)
	if err := os.WriteFile(filepath.Join(root, "builds.nix"), []byte(buildsNix), 0o644); err != nil {
		t.Fatal(err)
	}
	env := nixtest.Env(t, root, "state", "experimental-features = nix-command flakes\n")

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
	if len(sum.Failed) != 1 || storepath.DrvName(sum.Failed[0]) != "broken-1.0" {
		t.Fatalf("Failed = %q", sum.Failed)
	}
	if !slices.ContainsFunc(sum.Errors, func(e string) bool { return strings.Contains(e, "broken-1.0.drv") }) {
		t.Errorf("Errors = %q", sum.Errors)
	}

	// Substitution: push ok to a local binary cache, then fetch it into a
	// store with a fresh database, which has to substitute it.
	okOut := nixtest.Output(t, nix, env, "eval", "--raw", "--impure", "-f", filepath.Join(root, "builds.nix"), "ok.outPath")
	cache := "file://" + filepath.Join(root, "binary-cache")
	nixtest.Output(t, nix, env, "copy", "--to", cache, okOut)

	out.Reset()
	dec = NewDecoder(&out)
	cmd = exec.Command(nix, "build", "--no-link", "-L", "--log-format", "internal-json",
		"--option", "substituters", cache, "--option", "require-sigs", "false", okOut)
	cmd.Env = nixtest.Env(t, root, "state2", "experimental-features = nix-command flakes\n")
	cmd.Stderr = dec
	if err := cmd.Run(); err != nil {
		t.Fatalf("substituting build: %v\n%s", err, out.String())
	}
	dec.Close()
	t.Logf("decoded:\n%s", out.String())
	if out.String() != "nix: substituting "+okOut+"\n" {
		t.Errorf("substitution output = %q", out.String())
	}
	if sum := dec.Summary(); len(sum.Builds) != 0 {
		t.Errorf("Builds = %q", sum.Builds)
	}
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}
