package evaljobs

import (
	"os"
	"slices"
	"strings"
	"testing"
)

func readFixture(t *testing.T, name string) []Job {
	t.Helper()
	f, err := os.Open("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	jobs, err := ReadJobs(f)
	if err != nil {
		t.Fatalf("ReadJobs(%s): %v", name, err)
	}
	return jobs
}

func TestReadJobsReadmeExample(t *testing.T) {
	jobs := readFixture(t, "readme-patchelf-hydrajobs.jsonl")
	if len(jobs) != 5 {
		t.Fatalf("%d jobs, want 5", len(jobs))
	}
	j := jobs[0]
	if j.Attr != "coverage" || !slices.Equal(j.AttrPath, []string{"coverage"}) ||
		j.DrvPath != "/nix/store/fmbqzaq8mim1423879lhn9whs6imx5w4-patchelf-coverage-0.18.0.drv" ||
		j.Name != "patchelf-coverage-0.18.0" || j.System != "x86_64-linux" ||
		j.Outputs["out"] != "/nix/store/gfni9sbhhwhxxfqziq1fs3n82bvw962l-patchelf-coverage-0.18.0" || j.Error != "" {
		t.Errorf("job 0 = %+v", j)
	}
	if jobs[4].Attr != "tarball" {
		t.Errorf("job 4 = %+v", jobs[4])
	}
}

func TestReadJobsFlakeRoot(t *testing.T) {
	jobs := readFixture(t, "pr325-check-cache-status.jsonl")
	if len(jobs) != 1 {
		t.Fatalf("%d jobs", len(jobs))
	}
	j := jobs[0]
	// A --flake fragment naming a derivation is the root itself: attr "".
	if j.Attr != "" || j.AttrPath == nil || len(j.AttrPath) != 0 {
		t.Errorf("attr %q attrPath %#v", j.Attr, j.AttrPath)
	}
}

func TestReadJobsErrors(t *testing.T) {
	jobs := readFixture(t, "errors.jsonl")
	if len(jobs) != 2 {
		t.Fatalf("%d jobs", len(jobs))
	}
	if jobs[0].Attr != "AAAAAASomeThingsFailToEvaluate" || jobs[0].DrvPath != "" {
		t.Errorf("job 0 = %+v", jobs[0])
	}
	if !strings.Contains(jobs[0].Error, "Please be informed that this pseudo-package is not the only part of\n       Nixpkgs that fails to evaluate.") {
		t.Errorf("error = %q", jobs[0].Error)
	}
	if jobs[1].Attr != "" || jobs[1].AttrPath != nil || jobs[1].Error != "error: unexpected EOF reading a line" {
		t.Errorf("job 1 = %+v", jobs[1])
	}
}

func TestReadJobsTolerance(t *testing.T) {
	in := "\n" +
		`{"attr":"ca","attrPath":["ca"],"drvPath":"/nix/store/x-ca.drv","name":"ca","outputs":{"out":null,"dev":"/nix/store/y-ca-dev"},"system":"x86_64-linux","futureField":{"a":[1]}}` + "\r\n" +
		`{"attr":"old","attrPath":["old"],"isCached":true,"outputs":{}}` + "\n"
	jobs, err := ReadJobs(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	if len(jobs) != 2 {
		t.Fatalf("%d jobs", len(jobs))
	}
	if out, ok := jobs[0].Outputs["out"]; !ok || out != "" || jobs[0].Outputs["dev"] != "/nix/store/y-ca-dev" {
		t.Errorf("outputs = %#v", jobs[0].Outputs)
	}
	if jobs[1].Attr != "old" {
		t.Errorf("job 1 = %+v", jobs[1])
	}
}

func TestReadJobsMalformed(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{`{"attr":"a","attrPath":["a"]}` + "\n" + "warning: not json\n", "line 2"},
		{`{"attr":"a"` + "\n", "line 1"},
		{`{"attr":"a"}{"attr":"b"}` + "\n", "line 1"},
		{"\n\n" + `{"attrPath":"notalist"}`, "line 3"},
	} {
		jobs, err := ReadJobs(strings.NewReader(tt.in))
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("ReadJobs(%q) = %v, %v; want error naming %s", tt.in, jobs, err, tt.want)
		}
	}
}

func TestMatchJobs(t *testing.T) {
	req := Request{Installables: []Installable{
		{FlakeRef: "path:/src", Attr: "a"}, {FlakeRef: "path:/src", Attr: "b"}, {FlakeRef: "path:/src", Attr: "c"},
	}}
	jobs := []Job{
		{Attr: "i2", AttrPath: []string{"i2"}, DrvPath: "/nix/store/c.drv"},
		{Attr: "i0", AttrPath: []string{"i0"}, Error: "error: boom"},
		{Attr: "i7", AttrPath: []string{"i7"}, DrvPath: "/nix/store/stray.drv"},
		{Attr: "i01", AttrPath: []string{"i01"}, DrvPath: "/nix/store/stray.drv"},
		{Attr: "1", AttrPath: []string{"1"}, DrvPath: "/nix/store/stray.drv"},
	}
	got := MatchJobs(req, jobs)
	if len(got) != 3 || got[0].Error != "error: boom" || got[2].DrvPath != "/nix/store/c.drv" {
		t.Fatalf("got %+v", got)
	}
	if got[1].Attr != "i1" || !strings.Contains(got[1].Error, "path:/src#b") {
		t.Errorf("missing job = %+v", got[1])
	}
	got = MatchJobs(req, append(jobs, Job{Error: "error: unexpected EOF reading a line"}))
	if got[1].Error != "error: unexpected EOF reading a line" {
		t.Errorf("global error not used: %+v", got[1])
	}
}

// Stderr of real failed evaluations.
func TestTrimNixError(t *testing.T) {
	tests := []struct{ name, stderr, trimmed string }{
		{
			name:    "nix 2.8 throw",
			stderr:  "warning: unknown setting 'foo'\n\x1b[31;1merror:\x1b[0m boom\n\x1b[34;1m(use '--show-trace' to show detailed location information)\x1b[0m\n",
			trimmed: "error: boom",
		},
		{
			name:    "nix 2.8 missing attribute",
			stderr:  "error: attribute 'nope' missing\n\n       at «string»:1:1:\n\n            1| (import /tmp/exp/default.nix {}).nope\n             | ^\n(use '--show-trace' to show detailed location information)\n",
			trimmed: "error: attribute 'nope' missing\n\n       at «string»:1:1:\n\n            1| (import /tmp/exp/default.nix {}).nope\n             | ^",
		},
		{
			// NixOS/nix issue 11576, Nix 2.2x.
			name: "newer nix with trace",
			stderr: "error:\n       … while evaluating attribute 'gid'\n\n       … while evaluating the option `programs._1password.gid':\n\n" +
				"       (stack trace truncated; use '--show-trace' to show the full, detailed trace)\n\n" +
				"       error: The option `programs._1password.gid' can no longer be used since it's been removed.\n",
			trimmed: "error:\n\n       … while evaluating attribute 'gid'\n\n       … while evaluating the option `programs._1password.gid':\n\n" +
				"       error: The option `programs._1password.gid' can no longer be used since it's been removed.",
		},
		{
			// Nix 2.26, a throw reached through Expr's wrapper: only the
			// user's frames and the message are kept.
			name: "frames in the generated expression",
			stderr: "error:\n       … while evaluating attribute 'drvPath'\n         at «string»:68:5:\n           67| in {\n           68|     drvPath = v.drvPath;\n             |     ^\n\n" +
				"       … while calling the 'throw' builtin\n         at /src/default.nix:9:12:\n            8|   good = 1;\n            9|   throws = throw \"boom\";\n             |            ^\n\n" +
				"       … in the left operand of the AND (&&) operator\n         at «string»:4:33:\n            4|   isDrv = v: builtins.isAttrs v;\n\n\n" +
				"       error: boom\n",
			trimmed: "error:\n\n       … while calling the 'throw' builtin\n         at /src/default.nix:9:12:\n            8|   good = 1;\n            9|   throws = throw \"boom\";\n             |            ^\n\n       error: boom",
		},
		{
			name:    "only frames in the generated expression",
			stderr:  "error:\n       … while evaluating a branch condition\n         at «string»:52:8:\n           52|     in if isDrv v then v;\n\n       error: attribute 'nope' in selection path 'nope' not found\n",
			trimmed: "error: attribute 'nope' in selection path 'nope' not found",
		},
		{
			name:    "no error line",
			stderr:  "Segmentation fault\n",
			trimmed: "Segmentation fault",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := TrimNixError(tt.stderr)
			if got != tt.trimmed {
				t.Errorf("TrimNixError:\n%q\nwant\n%q", got, tt.trimmed)
			}
		})
	}
}
