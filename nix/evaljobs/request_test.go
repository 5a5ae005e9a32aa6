package evaljobs

import (
	"slices"
	"strings"
	"testing"
)

func TestResolveFlakeRef(t *testing.T) {
	tests := []struct {
		word    string
		ref     string
		attr    string
		outputs []string
	}{
		{".#hello", "path:/src", "hello", nil},
		{".", "path:/src", "", nil},
		{"./sub#a", "path:/src/sub", "a", nil},
		{"./sub/../other#a", "path:/src/other", "a", nil},
		{"path:./x#a", "path:/src/x", "a", nil},
		{"path:x#a", "path:/src/x", "a", nil},
		{"path:/abs/dir#a", "path:/abs/dir", "a", nil},
		{"/abs/dir#a", "path:/abs/dir", "a", nil},
		{".?dir=sub#a", "path:/src?dir=sub", "a", nil},
		{"github:o/r#x", "github:o/r", "x", nil},
		{"github:o/r/v1.2#packages.x86_64-linux.app", "github:o/r/v1.2", "packages.x86_64-linux.app", nil},
		{"nixpkgs#hello", "nixpkgs", "hello", nil},
		{"nixpkgs", "nixpkgs", "", nil},
		{"git+https://example.org/r.git?ref=main#x", "git+https://example.org/r.git?ref=main", "x", nil},
		{".#hello^out,dev", "path:/src", "hello", []string{"out", "dev"}},
		{"nixpkgs#hello^*", "nixpkgs", "hello", []string{"*"}},
		{`.#"a.b".c`, "path:/src", `"a.b".c`, nil},
		{".#foo%20bar", "path:/src", "foo bar", nil},
		{".#.packages.x86_64-linux.hello", "path:/src", ".packages.x86_64-linux.hello", nil},
	}
	for _, tt := range tests {
		got, err := ResolveFlakeRef(tt.word, "/src")
		if err != nil {
			t.Errorf("ResolveFlakeRef(%q): %v", tt.word, err)
			continue
		}
		if got.FlakeRef != tt.ref || got.Attr != tt.attr || !slices.Equal(got.Outputs, tt.outputs) {
			t.Errorf("ResolveFlakeRef(%q) = %+v, want ref %q attr %q outputs %q", tt.word, got, tt.ref, tt.attr, tt.outputs)
		}
	}
	for _, bad := range []string{"", "#hello", "../x#a", "..", "./a/../../b#c", `.#"a`, ".#a..b", ".#a^", "path:#a"} {
		if got, err := ResolveFlakeRef(bad, "/src"); err == nil {
			t.Errorf("ResolveFlakeRef(%q) = %+v, want error", bad, got)
		}
	}
	if _, err := ResolveFlakeRef(".#a", "src"); err == nil {
		t.Error("relative context directory accepted")
	}
}

func TestParseAttrPath(t *testing.T) {
	for in, want := range map[string][]string{
		"":                            nil,
		"a":                           {"a"},
		"packages.x86_64-linux.hello": {"packages", "x86_64-linux", "hello"},
		`a."b.c".d`:                   {"a", "b.c", "d"},
		`"dotted.attr"`:               {"dotted.attr"},
		"list.0":                      {"list", "0"},
	} {
		got, err := ParseAttrPath(in)
		if err != nil || !slices.Equal(got, want) {
			t.Errorf("ParseAttrPath(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
}

func TestRequestValidation(t *testing.T) {
	for name, req := range map[string]Request{
		"empty":             {},
		"relative file":     {File: "default.nix"},
		"attr without file": {Installables: []Installable{{Attr: "hello"}}},
		"bad arg name":      {File: "/src/default.nix", Args: []Arg{{Name: "a b", Value: "1"}}},
		"bad attr path":     {File: "/src/default.nix", Installables: []Installable{{Attr: `a."b`}}},
	} {
		if _, err := Expr(req); err == nil {
			t.Errorf("%s: Expr accepted %+v", name, req)
		}
	}
}

func TestPure(t *testing.T) {
	locked := "path:/src?lastModified=1&narHash=sha256-18SbtVeFQwCFFb6hKuCgjBHHdF%2BefeVf8nHrPlvtJgA%3D"
	for _, tt := range []struct {
		req  Request
		pure bool
	}{
		{Request{Installables: []Installable{{FlakeRef: locked, Attr: "a"}}}, true},
		{Request{Installables: []Installable{{FlakeRef: locked, Attr: "a"}}, Impure: true}, false},
		{Request{Installables: []Installable{{FlakeRef: "path:/src", Attr: "a"}}}, false},
		{Request{Installables: []Installable{{FlakeRef: locked}, {Attr: "x"}}, File: "/src/default.nix"}, false},
		{Request{File: "/src/default.nix"}, false},
	} {
		if got := tt.req.Pure(); got != tt.pure {
			t.Errorf("%+v: Pure() = %v", tt.req, got)
		}
	}
}

func TestNixEvalJobsArgs(t *testing.T) {
	req := Request{
		Installables: []Installable{{FlakeRef: "path:/src", Attr: "hello"}, {FlakeRef: "github:o/r", Attr: ""}},
		System:       "aarch64-linux", Meta: true,
	}
	args, err := NixEvalJobsArgs(req, 3)
	if err != nil {
		t.Fatal(err)
	}
	joined := strings.Join(args, " ")
	for _, w := range []string{"--workers 3", "--meta", "--impure", "--option system aarch64-linux", "--expr"} {
		if !strings.Contains(joined, w) {
			t.Errorf("args %q lack %s", args, w)
		}
	}
	expr := args[len(args)-1]
	for _, s := range []string{
		`builtins.getFlake "path:/src"`, `builtins.getFlake "github:o/r"`,
		`system = "aarch64-linux"`, `"i0" = flakeAttr flake0`, `"i1" = flakeAttr flake1`,
		`[ "packages" system "hello" ]`, `[ "legacyPackages" system "hello" ]`, `[ "defaultPackage" system ]`,
	} {
		if !strings.Contains(expr, s) {
			t.Errorf("expression lacks %s:\n%s", s, expr)
		}
	}

	locked := "path:/src?lastModified=1&narHash=sha256-AAAA"
	args, _ = NixEvalJobsArgs(Request{Installables: []Installable{{FlakeRef: locked, Attr: "a"}}}, 1)
	joined = strings.Join(args, " ")
	if strings.Contains(joined, "--impure") || !strings.Contains(joined, "--option pure-eval true") {
		t.Errorf("locked flake not evaluated purely: %q", args)
	}
}

func TestNixString(t *testing.T) {
	for in, want := range map[string]string{
		`plain`:         `"plain"`,
		`a"b\c`:         `"a\"b\\c"`,
		"${x} $y":       `"\${x} \$y"`,
		"line\nnext\tt": `"line\nnext\tt"`,
	} {
		if got := nixString(in); got != want {
			t.Errorf("nixString(%q) = %s, want %s", in, got, want)
		}
	}
}
