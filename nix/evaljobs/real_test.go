package evaljobs

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nix-frontend/nix-frontend/nix/internal/nixtest"
)

func writeFile(t *testing.T, name, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(name, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func nixOut(t *testing.T, nix string, env []string, args ...string) string {
	t.Helper()
	return nixtest.Output(t, nix, env, append([]string{"--extra-experimental-features", "nix-command flakes"}, args...)...)
}

func evaluate(t *testing.T, nix string, req Request, env []string) []Job {
	t.Helper()
	var out bytes.Buffer
	if err := Evaluate(context.Background(), nix, req, 2, env, &out); err != nil {
		t.Fatalf("Evaluate: %v", err)
	}
	t.Logf("output:\n%s", out.String())
	jobs, err := ReadJobs(&out)
	if err != nil {
		t.Fatalf("ReadJobs: %v", err)
	}
	if len(jobs) != len(req.Targets()) {
		t.Fatalf("%d lines for %d installables", len(jobs), len(req.Targets()))
	}
	for i, j := range jobs {
		if j.Attr != JobAttr(i) || !slices.Equal(j.AttrPath, []string{JobAttr(i)}) {
			t.Errorf("line %d has attr %q attrPath %q: not in request order", i, j.Attr, j.AttrPath)
		}
	}
	return jobs
}

const flakeNix = `{
  outputs = { self }:
    let
      bb = builtins.path { path = ./bb; name = "busybox"; };
      mk = system: name: derivation {
        inherit name system;
        builder = "${bb}/bin/busybox";
        args = [ "sh" "-c" "echo ${name} > $out" ];
      };
    in {
      packages.x86_64-linux = {
        a = mk "x86_64-linux" "a";
        b = mk "x86_64-linux" "b" // { meta = { description = "the b"; mainProgram = "b"; fn = x: x; }; };
        default = mk "x86_64-linux" "def";
        boom = throw "boom";
        usesCurrentSystem = mk builtins.currentSystem "impure";
      };
      packages.aarch64-linux.a = mk "aarch64-linux" "a-arm";
      legacyPackages.x86_64-linux.leg = mk "x86_64-linux" "leg";
      top = mk "x86_64-linux" "top";
    };
}
`

func setupFlake(t *testing.T) (nix, dir string, env []string) {
	nix = nixtest.RequireNix(t)
	root := nixtest.StoreTempDir(t)
	dir = filepath.Join(root, "src")
	nixtest.Busybox(t, dir)
	writeFile(t, filepath.Join(dir, "flake.nix"), flakeNix)
	return nix, dir, nixtest.Env(t, root, "state", "")
}

func TestEvaluateFlake(t *testing.T) {
	nix, dir, env := setupFlake(t)
	ref := "path:" + dir
	words := []string{".#a", ".#b", ".", ".#leg", ".#top", ".#.packages.x86_64-linux.a", ".#nope", ".#packages.x86_64-linux", ".#boom"}
	req := Request{Meta: true}
	for _, w := range words {
		inst, err := ResolveFlakeRef(w, dir)
		if err != nil {
			t.Fatal(err)
		}
		req.Installables = append(req.Installables, inst)
	}
	jobs := evaluate(t, nix, req, env)

	// Resolution must agree with the nix CLI's own.
	for i, native := range []string{"a", "b", "", "leg", "top", "packages.x86_64-linux.a"} {
		j := jobs[i]
		if j.Error != "" {
			t.Errorf("%s: %s", words[i], j.Error)
			continue
		}
		frag := ref + "#" + native
		if want := nixOut(t, nix, env, "eval", "--raw", frag, "--apply", "d: d.drvPath"); j.DrvPath != want {
			t.Errorf("%s: drvPath %s, nix eval says %s", words[i], j.DrvPath, want)
		}
		if want := nixOut(t, nix, env, "eval", "--raw", frag, "--apply", "d: d.outPath"); j.Outputs["out"] != want || len(j.Outputs) != 1 {
			t.Errorf("%s: outputs %v, nix eval says out = %s", words[i], j.Outputs, want)
		}
		if j.System != "x86_64-linux" {
			t.Errorf("%s: system %q", words[i], j.System)
		}
		if _, err := os.Stat(filepath.Join(filepath.Dir(dir), "store", filepath.Base(j.DrvPath))); err != nil {
			t.Errorf("%s: .drv not in the store: %v", words[i], err)
		}
	}
	if jobs[0].Name != "a" || jobs[2].Name != "def" || jobs[3].Name != "leg" {
		t.Errorf("names: %q %q %q", jobs[0].Name, jobs[2].Name, jobs[3].Name)
	}
	var meta map[string]any
	if err := json.Unmarshal(jobs[1].Meta, &meta); err != nil || meta["mainProgram"] != "b" || meta["description"] != "the b" || meta["fn"] != nil {
		t.Errorf("meta = %s (%v)", jobs[1].Meta, err)
	}

	for i, want := range map[int][]string{
		6: {"does not provide attribute", "'packages.x86_64-linux.nope', 'legacyPackages.x86_64-linux.nope' or 'nope'"},
		7: {"flake output attribute 'packages.x86_64-linux' is not a derivation"},
		8: {"boom"},
	} {
		j := jobs[i]
		if j.DrvPath != "" || !strings.HasPrefix(j.Error, "error:") {
			t.Errorf("%s: want an error line, got %+v", words[i], j)
		}
		for _, w := range want {
			if !strings.Contains(j.Error, w) {
				t.Errorf("%s: error %q lacks %q", words[i], j.Error, w)
			}
		}
		if strings.Contains(j.Error, "--show-trace") || strings.Contains(j.Error, "\x1b") {
			t.Errorf("%s: untrimmed error %q", words[i], j.Error)
		}
	}
}

func TestEvaluateFlakeSystemAndPurity(t *testing.T) {
	nix, dir, env := setupFlake(t)
	req := Request{
		Installables: []Installable{{FlakeRef: "path:" + dir, Attr: "a"}},
		System:       "aarch64-linux",
	}
	jobs := evaluate(t, nix, req, env)
	if jobs[0].Error != "" || jobs[0].Name != "a-arm" || jobs[0].System != "aarch64-linux" {
		t.Errorf("System not honoured: %+v", jobs[0])
	}

	// Unlocked: impure, like --impure; builtins.currentSystem works.
	impure := Request{Installables: []Installable{{FlakeRef: "path:" + dir, Attr: "usesCurrentSystem"}, {FlakeRef: "path:" + dir, Attr: "a"}}}
	jobs = evaluate(t, nix, impure, env)
	if jobs[0].Error != "" {
		t.Errorf("impure evaluation failed: %s", jobs[0].Error)
	}

	// Locked: pure, as `nix build` evaluates flakes.
	locked, err := LockRequest(context.Background(), nix, impure, env)
	if err != nil {
		t.Fatal(err)
	}
	if !locked.Pure() || !IsLocked(locked.Installables[0].Locked) || locked.Installables[0].Locked != locked.Installables[1].Locked ||
		locked.Installables[0].FlakeRef != impure.Installables[0].FlakeRef {
		t.Fatalf("LockRequest: %+v", locked.Installables)
	}
	pure := evaluate(t, nix, locked, env)
	if !strings.Contains(pure[0].Error, "currentSystem") {
		t.Errorf("pure evaluation allowed builtins.currentSystem: %+v", pure[0])
	}
	if pure[1].Error != "" || pure[1].DrvPath != jobs[1].DrvPath {
		t.Errorf("pure evaluation of a: %+v, impure drv %s", pure[1], jobs[1].DrvPath)
	}

	if _, err := LockFlakeRef(context.Background(), nix, "path:"+filepath.Join(dir, "missing"), env); err == nil {
		t.Error("locking a missing flake succeeded")
	}
}

const fileNix = `{ greeting, count ? 1, note ? "" }:
let
  bb = builtins.path { path = ./bb; name = "busybox"; };
  mk = name: derivation {
    inherit name;
    system = builtins.currentSystem;
    builder = "${bb}/bin/busybox";
    args = [ "sh" "-c" "echo ${name} > $out" ];
    outputs = [ "out" "doc" ];
  };
in {
  hello = derivation {
    name = "hello-${greeting}-${toString count}";
    system = builtins.currentSystem;
    builder = "${bb}/bin/busybox";
    args = [ "sh" "-c" "echo > $out; echo > $doc" ];
    outputs = [ "out" "doc" ];
    inherit note;
  };
  nested = { n ? count }: { inner = mk "inner-${toString n}"; };
  list = [ (mk "l0") ];
  boom = throw "boom";
  notdrv = 42;
}
`

func TestEvaluateFile(t *testing.T) {
	nix := nixtest.RequireNix(t)
	root := nixtest.StoreTempDir(t)
	src := filepath.Join(root, "src")
	nixtest.Busybox(t, src)
	file := filepath.Join(src, "default.nix")
	writeFile(t, file, fileNix)
	env := nixtest.Env(t, root, "state", "")
	// Reaches the .drv unchanged only if it is quoted right.
	const note = "a \"quoted\" ${not.interpolated} $HOME \\ back\nslash"

	req := Request{
		File: file,
		Args: []Arg{
			{Name: "greeting", Value: "world", String: true},
			{Name: "count", Value: "2 + 1 # a comment"},
			{Name: "note", Value: note, String: true},
		},
		Installables: []Installable{
			{Attr: "hello"}, {Attr: "nested.inner"}, {Attr: "list.0"},
			{Attr: "missing.x"}, {Attr: "boom"}, {Attr: "notdrv"}, {Attr: ""},
		},
	}
	jobs := evaluate(t, nix, req, env)

	if j := jobs[0]; j.Error != "" || j.Name != "hello-world-3" || len(j.Outputs) != 2 || j.Outputs["doc"] == "" {
		t.Errorf("hello: %+v", j)
	}
	native := nixOut(t, nix, env, "eval", "--raw", "--impure", "-f", file,
		"--argstr", "greeting", "world", "--arg", "count", "2 + 1", "--argstr", "note", note, "hello.drvPath")
	if jobs[0].DrvPath != native {
		t.Errorf("hello drvPath %s, nix eval -f says %s", jobs[0].DrvPath, native)
	}
	if j := jobs[1]; j.Error != "" || j.Name != "inner-3" {
		t.Errorf("nested.inner (function auto-called on the way): %+v", j)
	}
	if j := jobs[2]; j.Error != "" || j.Name != "l0" {
		t.Errorf("list.0: %+v", j)
	}
	for i, want := range map[int]string{
		3: "attribute 'missing' in selection path 'missing.x' not found",
		4: "boom",
		5: "attribute 'notdrv' of '" + file + "' does not evaluate to a derivation",
		6: "'" + file + "' does not evaluate to a derivation",
	} {
		if !strings.Contains(jobs[i].Error, want) || jobs[i].DrvPath != "" {
			t.Errorf("%s: error %q, want it to contain %q", req.Installables[i], jobs[i].Error, want)
		}
	}

	// A missing required argument is the installable's error, with Nix's
	// message naming the argument.
	noArgs := Request{File: file, Installables: []Installable{{Attr: "hello"}}}
	jobs = evaluate(t, nix, noArgs, env)
	if !strings.Contains(jobs[0].Error, "argument without a value ('greeting')") || strings.Contains(jobs[0].Error, "«string»") {
		t.Errorf("missing argument: %q", jobs[0].Error)
	}
}

func TestEvaluateMixedAndExpressionShape(t *testing.T) {
	nix, dir, env := setupFlake(t)
	file := filepath.Join(dir, "default.nix")
	writeFile(t, file, fileNix)
	req := Request{
		File: file, Args: []Arg{{Name: "greeting", Value: "x", String: true}},
		Installables: []Installable{{FlakeRef: "path:" + dir, Attr: "b"}, {Attr: "hello"}},
	}
	jobs := evaluate(t, nix, req, env)
	if jobs[0].Name != "b" || jobs[1].Name != "hello-x-1" {
		t.Errorf("mixed request: %+v", jobs)
	}

	// nix-eval-jobs walks the top-level attribute set of the expression it
	// is given: it must have exactly one attribute per installable.
	args, err := NixEvalJobsArgs(req, 1)
	if err != nil {
		t.Fatal(err)
	}
	expr := args[len(args)-1]
	names := nixOut(t, nix, env, "eval", "--json", "--impure", "--expr", "builtins.attrNames ("+expr+")")
	if names != `["i0","i1"]` {
		t.Errorf("attribute names %s", names)
	}
	// It then looks each job up with Nix's findAlongAttrPath, auto-calling
	// with its --arg arguments (none here). nix-instantiate -A does the
	// same, so it must find the same derivations.
	for i, j := range jobs {
		got := nixOut(t, filepath.Join(filepath.Dir(nix), "nix-instantiate"), env, "--expr", expr, "-A", JobAttr(i))
		if got != j.DrvPath {
			t.Errorf("nix-instantiate -A %s = %s, Evaluate said %s", JobAttr(i), got, j.DrvPath)
		}
	}
}

func TestEvaluateWithoutNix(t *testing.T) {
	req := Request{Installables: []Installable{{FlakeRef: "path:/src", Attr: "a"}}}
	var out bytes.Buffer
	err := Evaluate(context.Background(), filepath.Join(t.TempDir(), "no-such-nix"), req, 1, nil, &out)
	if err == nil || out.Len() != 0 {
		t.Fatalf("Evaluate without nix: err %v, output %q", err, out.String())
	}
}

// fakeNix writes a shell script standing in for nix.
func fakeNix(t *testing.T, script string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "nix")
	if err := os.WriteFile(p, []byte("#!/bin/sh\n"+script), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestEvaluateErrorClassification(t *testing.T) {
	req := Request{Installables: []Installable{{FlakeRef: "path:/src", Attr: "a"}, {FlakeRef: "path:/src", Attr: "b"}}}

	// A failing nix eval is that installable's error line, not a Go error.
	nix := fakeNix(t, "echo 'warning: something' >&2; printf '\\033[31;1merror:\\033[0m it broke\\n(use '\\''--show-trace'\\'' to show detailed location information)\\n' >&2; exit 1\n")
	var out bytes.Buffer
	if err := Evaluate(context.Background(), nix, req, 1, nil, &out); err != nil {
		t.Fatalf("Evaluate: %v", err)
	}
	jobs, err := ReadJobs(&out)
	if err != nil || len(jobs) != 2 || jobs[0].Error != "error: it broke" || jobs[1].Attr != "i1" {
		t.Fatalf("jobs %+v, %v", jobs, err)
	}

	// Output that is not what we asked nix for means the wrong program.
	nix = fakeNix(t, "echo hello\n")
	if err := Evaluate(context.Background(), nix, req, 1, nil, &bytes.Buffer{}); err == nil {
		t.Error("garbage output accepted")
	}

	// Cancellation stops the evaluations and is reported.
	nix = fakeNix(t, "exec sleep 30\n")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Evaluate(ctx, nix, req, 1, nil, &bytes.Buffer{}) }()
	cancel()
	select {
	case err := <-done:
		if err == nil {
			t.Error("cancelled evaluation returned no error")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Evaluate did not return after cancellation")
	}
}
