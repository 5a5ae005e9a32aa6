package integration

import (
	"strconv"
	"strings"
	"testing"

	"github.com/moby/buildkit/solver/errdefs"
	"github.com/nix-frontend/nix-frontend/integration/harness"
)

// errorsNix has one thing wrong per attribute.
const errorsNix = `let
  bb = builtins.path { path = ./busybox; name = "busybox"; };
  sh = "${bb}/bin/busybox";
  mk = name: script: derivation { inherit name; system = builtins.currentSystem; builder = sh; args = [ "sh" "-c" script ]; };
in {
  good = mk "good-1" "${sh} mkdir -p $out";
  throws = throw "the package set says boom";
  fails = mk "fails-1" "echo the compiler exploded; exit 3";
  dependsOnFailure = mk "downstream-1" "${sh} mkdir -p $out; echo ${mk "upstream-1" "echo upstream broke; exit 1"}";
  hangs = mk "hangs-1" "${sh} sleep 60";
}
`

// TestErrors checks that each kind of failure says what went wrong, points
// at the Nixfile line that caused it, and pushes nothing.
func TestErrors(t *testing.T) {
	env := harness.Require(t)
	cases := []struct {
		name    string
		nixfile string // after the syntax line
		args    map[string]string
		line    int // the line the error points at (the syntax line is 1), 0 for none
		want    []string
	}{
		{name: "evaluation error", line: 3,
			nixfile: "FROM scratch\nINSTALL --file=default.nix good throws\n",
			want:    []string{"INSTALL throws", "the package set says boom"}},
		{name: "missing attribute", line: 4,
			nixfile: "FROM scratch\nINSTALL --file=default.nix good\nINSTALL --file=default.nix nope\n",
			want:    []string{"INSTALL nope", "attribute 'nope'", "not found"}},
		{name: "missing file", line: 3,
			nixfile: "FROM scratch\nINSTALL --file=missing.nix good\n",
			want:    []string{"INSTALL good: missing.nix does not exist in the build context"}},
		{name: "build failure", line: 3,
			nixfile: "FROM scratch\nINSTALL --file=default.nix fails\n",
			want:    []string{"building fails-1 failed", "the compiler exploded"}},
		{name: "dependency build failure", line: 3,
			nixfile: "FROM scratch\nINSTALL --file=default.nix dependsOnFailure\n",
			want:    []string{"building downstream-1 failed", "upstream-1", "upstream broke"}},
		{name: "Nix image without Nix", line: 3,
			nixfile: "FROM scratch\nINSTALL --file=default.nix good\n",
			args:    map[string]string{"NIX_IMAGE": imageWithoutNix(t, env)},
			want:    []string{"no nix-store and nix on its PATH", "NIX_IMAGE"}},
		{name: "Nix image is the frontend image", line: 3,
			nixfile: "FROM scratch\nINSTALL --file=default.nix good\n",
			args:    map[string]string{"NIX_IMAGE": env.FrontendImage},
			want:    []string{"is the nix-frontend image itself, which has no Nix", "NIX_IMAGE"}},
		{name: "build timeout", line: 3,
			nixfile: "FROM scratch\nINSTALL --file=default.nix hangs\n",
			args:    map[string]string{"NIX_CONFIG": harness.OfflineNixConfig + "\ntimeout = 2"},
			want:    []string{"building hangs-1 failed", "timeout = 2"}},
		{name: "silent build", line: 3,
			nixfile: "FROM scratch\nINSTALL --file=default.nix hangs\n",
			args:    map[string]string{"NIX_CONFIG": harness.OfflineNixConfig + "\nmax-silent-time = 2"},
			want:    []string{"building hangs-1 failed", "max-silent-time = 2"}},
		{name: "layer budget over what runtimes accept",
			nixfile: "FROM scratch\nINSTALL --file=default.nix good\n",
			args:    map[string]string{"NIX_MAX_LAYERS": "200"},
			want:    []string{"NIX_MAX_LAYERS=200", "127"}},
		{name: "unknown instruction", line: 3,
			nixfile: "FROM scratch\nINSTAL --file=default.nix good\n",
			want:    []string{"INSTAL", "did you mean INSTALL"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := env.Context(t, map[string]string{"Nixfile": c.nixfile, "default.nix": errorsNix})
			env.AddBusybox(t, dir)
			for _, via := range []harness.Via{harness.InProcess, harness.Buildctl} {
				ref := env.NewRef("errors")
				res, err := env.TryBuild(t, via, dir, harness.BuildOpts{Ref: ref, BuildArgs: c.args})
				if err == nil {
					t.Fatalf("%s: build succeeded", via)
				}
				if env.Exists(ref) {
					t.Errorf("%s: a failed build pushed %s", via, ref)
				}
				text := err.Error() + "\n" + res.Log
				for _, w := range c.want {
					if !strings.Contains(text, w) {
						t.Errorf("%s: error does not mention %q:\n%s", via, w, text)
					}
				}
				switch via {
				case harness.InProcess:
					if line := sourceLine(err); line != c.line {
						t.Errorf("in-process: error points at line %d, want %d: %v", line, c.line, err)
					}
				case harness.Buildctl:
					// buildctl prints the offending lines with a marker.
					if c.line != 0 && !strings.Contains(res.Log, "Nixfile:"+itoa(c.line)) {
						t.Errorf("buildctl output does not point at Nixfile:%d:\n%s", c.line, res.Log)
					}
				}
			}
		})
	}
}

// imageWithoutNix pushes the Nix image with Nix removed from every
// directory of its PATH: a Debian image like any other, for the error a
// wrong NIX_IMAGE gives.
func imageWithoutNix(t *testing.T, env *harness.Env) string {
	t.Helper()
	dir := env.Context(t, map[string]string{"Nixfile": "FROM " + env.NixImage + "\n" +
		"RUN for d in $(echo \"$PATH\" | tr : ' '); do rm -f \"$d\"/nix \"$d\"/nix-*; done; ! command -v nix\n"})
	return env.Build(t, harness.InProcess, dir, harness.BuildOpts{}).Ref
}

// sourceLine is the first Nixfile line an error carries, 0 if none.
func sourceLine(err error) int {
	for _, s := range errdefs.Sources(err) {
		if len(s.Ranges) > 0 {
			return int(s.Ranges[0].Start.Line)
		}
	}
	return 0
}

func itoa(i int) string { return strconv.Itoa(i) }
