package nixfile

import (
	"errors"
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/moby/buildkit/frontend/dockerfile/parser"
	"github.com/moby/buildkit/frontend/dockerfile/shell"
)

// parseInstalls parses "FROM scratch" followed by src and returns the
// installs of that stage.
func parseInstalls(t *testing.T, src string) []*InstallLine {
	t.Helper()
	nf, err := Parse("Nixfile", []byte("FROM scratch\n"+src+"\n"))
	if err != nil {
		t.Fatalf("Parse(%q): %v", src, err)
	}
	return nf.Stages[0].Installs
}

// TestInstallForms parses and expands every form of INSTALL, with no
// variables set.
func TestInstallForms(t *testing.T) {
	tests := []struct {
		src          string
		installables []string
		file         string
		args         []NixArg
		link         string
		priority     int
		impure       bool
		system       string
		network      string
	}{
		{src: "INSTALL nixpkgs#hello", installables: []string{"nixpkgs#hello"}},
		{src: "install nixpkgs#hello", installables: []string{"nixpkgs#hello"}},
		{src: "INSTALL .#hello ./sub#pkgs.app path:./x#a github:o/r#x nixpkgs .",
			installables: []string{".#hello", "./sub#pkgs.app", "path:./x#a", "github:o/r#x", "nixpkgs", "."}},
		{src: "INSTALL nixpkgs#hello^bin,man", installables: []string{"nixpkgs#hello^bin,man"}},
		{src: "INSTALL --file=default.nix", file: "default.nix"},
		{src: "INSTALL --file=default.nix hello tools.jq", installables: []string{"hello", "tools.jq"}, file: "default.nix"},
		{src: "INSTALL --file default.nix hello", installables: []string{"hello"}, file: "default.nix"},
		{src: "INSTALL --file=f.nix --arg a=1 --arg=b=true --argstr c=x --argstr=d= y", installables: []string{"y"}, file: "f.nix",
			args: []NixArg{{"a", "1", false}, {"b", "true", false}, {"c", "x", true}, {"d", "", true}}},
		{src: `INSTALL --file=f.nix --arg cfg='{ a = 1; }' --argstr "m=a b" y`, installables: []string{"y"}, file: "f.nix",
			args: []NixArg{{"cfg", "{ a = 1; }", false}, {"m", "a b", true}}},
		{src: "INSTALL --link=/opt/tools nixpkgs#jq", installables: []string{"nixpkgs#jq"}, link: "/opt/tools"},
		{src: "INSTALL --link=none nixpkgs#jq", installables: []string{"nixpkgs#jq"}, link: "none"},
		{src: "INSTALL --link / nixpkgs#jq", installables: []string{"nixpkgs#jq"}, link: "/"},
		{src: "INSTALL --priority=5 nixpkgs#jq", installables: []string{"nixpkgs#jq"}, priority: 5},
		{src: "INSTALL --priority=-3 nixpkgs#jq", installables: []string{"nixpkgs#jq"}, priority: -3},
		{src: "INSTALL --impure nixpkgs#jq", installables: []string{"nixpkgs#jq"}, impure: true},
		{src: "INSTALL --impure=true nixpkgs#jq", installables: []string{"nixpkgs#jq"}, impure: true},
		{src: "INSTALL --impure=false nixpkgs#jq", installables: []string{"nixpkgs#jq"}},
		{src: "INSTALL --system=aarch64-linux nixpkgs#jq", installables: []string{"nixpkgs#jq"}, system: "aarch64-linux"},
		{src: "INSTALL --network=default nixpkgs#jq", installables: []string{"nixpkgs#jq"}, network: "default"},
		{src: "INSTALL --network=none nixpkgs#jq", installables: []string{"nixpkgs#jq"}},
		{src: "INSTALL nixpkgs#jq --impure", installables: []string{"nixpkgs#jq"}, impure: true},
		{src: "INSTALL -- nixpkgs#jq", installables: []string{"nixpkgs#jq"}},
		{src: `INSTALL "nixpkgs#ripgrep" 'nixpkgs#fd'`, installables: []string{"nixpkgs#ripgrep", "nixpkgs#fd"}},
		{src: `INSTALL nixpkgs#a\ b`, installables: []string{"nixpkgs#a b"}},
		{src: "INSTALL ${REF:-nixpkgs}#${PKG:-hello}", installables: []string{"nixpkgs#hello"}},
		{src: "INSTALL nixpkgs#hello \\\n  nixpkgs#jq", installables: []string{"nixpkgs#hello", "nixpkgs#jq"}},
		{src: "INSTALL \\\n# comment\n  nixpkgs#jq", installables: []string{"nixpkgs#jq"}},
	}
	for _, tt := range tests {
		t.Run(tt.src, func(t *testing.T) {
			lines := parseInstalls(t, tt.src)
			if len(lines) != 1 {
				t.Fatalf("got %d installs", len(lines))
			}
			if s, e := lineSpan(lines[0].Location); s != 2 || e < s {
				t.Errorf("location %d-%d", s, e)
			}
			in, err := lines[0].Expand(nil, nil)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(in.Installables, tt.installables) {
				t.Errorf("installables %q, want %q", in.Installables, tt.installables)
			}
			if in.File != tt.file || in.Link != tt.link || in.Impure != tt.impure || in.System != tt.system || in.Priority != tt.priority || in.Network != tt.network {
				t.Errorf("file/link/impure/system/priority/network = %q/%q/%v/%q/%d/%q, want %q/%q/%v/%q/%d/%q",
					in.File, in.Link, in.Impure, in.System, in.Priority, in.Network, tt.file, tt.link, tt.impure, tt.system, tt.priority, tt.network)
			}
			if !reflect.DeepEqual(in.Args, tt.args) {
				t.Errorf("args %+v, want %+v", in.Args, tt.args)
			}
		})
	}
}

// TestInstallRaw checks that a line keeps its words and flag values as
// written until it is expanded.
func TestInstallRaw(t *testing.T) {
	l := parseInstalls(t, `INSTALL --system=${SYS} --priority=$P --argstr "m=a b" --file f.nix ${PKG}`)[0]
	if !reflect.DeepEqual(l.Words, []string{"${PKG}"}) {
		t.Errorf("words %q", l.Words)
	}
	want := []Flag{{"system", "${SYS}"}, {"priority", "$P"}, {"argstr", `"m=a b"`}, {"file", "f.nix"}}
	if !reflect.DeepEqual(l.Flags, want) {
		t.Errorf("flags %q, want %q", l.Flags, want)
	}
}

// TestFlagTable walks the table of INSTALL flags: each flag parses with
// its example value in both spellings, is listed in unknown-flag hints and
// in the Nixfile reference, and is refused twice unless it may repeat.
func TestFlagTable(t *testing.T) {
	docs, err := os.ReadFile("../../docs/nixfile.md")
	if err != nil {
		t.Fatal(err)
	}
	hint := unknownFlagHint("--nope")
	for _, f := range installFlags {
		t.Run(f.name, func(t *testing.T) {
			words := "default.nix"
			if f.name == "file" {
				words = "hello"
			}
			pre := "--file=default.nix "
			if f.name == "file" {
				pre = ""
			}
			for _, form := range []string{"--" + f.name + "=" + f.example, "--" + f.name + " " + f.example} {
				l := parseInstalls(t, "INSTALL "+pre+form+" "+words)[0]
				if _, err := l.Expand(nil, nil); err != nil {
					t.Errorf("%s: %v", form, err)
				}
			}
			if !strings.Contains(hint, "--"+f.name) {
				t.Errorf("the unknown-flag hint does not list --%s: %s", f.name, hint)
			}
			if !strings.Contains(string(docs), "`--"+f.name) {
				t.Errorf("docs/nixfile.md does not document --%s", f.name)
			}
			if f.usage == "" {
				t.Error("no usage")
			}
			twice := "INSTALL " + pre + "--" + f.name + "=" + f.example + " --" + f.name + "=" + f.example + " " + words
			_, err := Parse("Nixfile", []byte("FROM scratch\n"+twice+"\n"))
			if gotErr := err != nil && strings.Contains(err.Error(), "more than once"); gotErr == f.repeat {
				t.Errorf("given twice: %v (repeat %v)", err, f.repeat)
			}
		})
	}
}

func TestInstallErrors(t *testing.T) {
	tests := []struct{ src, want string }{
		{"INSTALL --foo nixpkgs#x", "unknown flag --foo for INSTALL (valid flags: --file, --arg, --argstr, --link, --priority, --impure, --system, --network)"},
		{"INSTALL --network=host nixpkgs#x", `--network="host" is not a network mode INSTALL knows`},
		{"INSTALL --fil=x hello", "did you mean --file?"},
		{"INSTALL --sytsem=x86_64-linux nixpkgs#x", "did you mean --system?"},
		{"INSTALL --platform=linux/amd64 nixpkgs#x", "use --system=<nix system>"},
		{"INSTALL -f default.nix hello", "unknown flag -f for INSTALL (--file=<path> selects a Nix file"},
		{"INSTALL --expr '(import <nixpkgs> {}).hello'", "unknown flag --expr"},
		{"INSTALL --arg x=1 nixpkgs#hello", "--arg needs --file: flake installables take no arguments"},
		{"INSTALL --argstr x=1 nixpkgs#hello", "--argstr needs --file"},
		{"INSTALL", "INSTALL needs at least one installable"},
		{"INSTALL --impure", "INSTALL needs at least one installable"},
		{"INSTALL -- ", "INSTALL needs at least one installable"},
		{"INSTALL --file=default.nix pkgs#hello", `attribute path "pkgs#hello" contains '#'`},
		{"INSTALL --file=default.nix .hello", "empty attribute name"},
		{"INSTALL --file=default.nix a..b", "empty attribute name"},
		{"INSTALL --file=default.nix ''", "empty attribute path"},
		{"INSTALL --file='' hello", "--file is empty"},
		{"INSTALL --file", "--file needs a value"},
		{"INSTALL --file --impure x", "--file needs a value"},
		{"INSTALL --link=usr/local nixpkgs#x", `--link must be an absolute directory or none, got "usr/local"`},
		{"INSTALL --link=None nixpkgs#x", `--link must be an absolute directory or none, got "None"`},
		{"INSTALL --system=x86 nixpkgs#x", `--system="x86" is not a Nix system`},
		{"INSTALL --system=linux/amd64 nixpkgs#x", "e.g. x86_64-linux"},
		{"INSTALL --priority=high nixpkgs#x", `--priority must be an integer, got "high"`},
		{"INSTALL --priority=1.5 nixpkgs#x", "--priority must be an integer"},
		{"INSTALL --impure=yes nixpkgs#x", `--impure takes no value or true/false, got "yes"`},
		{"INSTALL --file=a --file=b x", "--file is given more than once"},
		{"INSTALL --link=/a --link=/b nixpkgs#x", "--link is given more than once"},
		{"INSTALL --file=a --arg x y", `--arg expects NAME=VALUE, got "x"`},
		{"INSTALL --file=a --arg 1x=2 y", `"1x" is not a Nix identifier`},
		{"INSTALL --file=a --arg x= y", "--arg x= has no Nix expression (use --argstr x= to pass an empty string)"},
		{"INSTALL #hello", `installable "#hello" has no flake reference before '#' (write .#hello`},
		{"INSTALL nixpkgs#", `installable "nixpkgs#" has an empty attribute path after '#'`},
		{`INSTALL ""`, "empty installable"},
		{`INSTALL "nixpkgs#hello`, "unterminated double quote"},
		{`INSTALL 'nixpkgs#hello`, "unterminated single quote"},
		{`INSTALL nixpkgs#${PKG`, "missing '}'"},
		{`INSTALL nixpkgs#${}`, "bad substitution"},
	}
	for _, tt := range tests {
		t.Run(tt.src, func(t *testing.T) {
			_, err := Parse("Nixfile", []byte("FROM scratch\n"+tt.src+"\n"))
			var errs *Errors
			if !errors.As(err, &errs) {
				t.Fatalf("want *Errors, got %v", err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not contain %q", err, tt.want)
			}
			for _, e := range errs.List {
				if e.Line() != 2 {
					t.Errorf("problem %q on line %d, want 2", e, e.Line())
				}
			}
		})
	}
}

// All problems of a file are reported at once, sorted by line.
func TestAllErrorsSorted(t *testing.T) {
	src := "RUN a\nFROM alpine\nINSTALL --foo x\nADD a b\nINSTAL y\nCOPY --bad a b\n"
	_, err := Parse("my.Nixfile", []byte(src))
	var errs *Errors
	if !errors.As(err, &errs) {
		t.Fatalf("want *Errors, got %v", err)
	}
	var got []int
	for _, e := range errs.List {
		got = append(got, e.Line())
	}
	if !reflect.DeepEqual(got, []int{1, 3, 4, 5, 6}) {
		t.Errorf("lines %v\n%v", got, err)
	}
	want := "my.Nixfile:1: RUN before the first FROM (only ARG may come before the first FROM; start a stage with FROM <image>)\n" +
		"my.Nixfile:3: unknown flag --foo for INSTALL"
	if !strings.HasPrefix(err.Error(), want) {
		t.Errorf("Error():\n%s\nwant prefix\n%s", err, want)
	}

	first := errs.First()
	var le *parser.LocationError
	if !errors.As(first, &le) || le.Locations[0][0].Start.Line != 1 {
		t.Fatalf("First() is not located at line 1: %#v", first)
	}
	if !strings.Contains(first.Error(), "RUN before the first FROM") || !strings.Contains(first.Error(), "[and 4 more problems]") {
		t.Errorf("First(): %v", first)
	}
	var one *Error
	if !errors.As(first, &one) || one.Line() != 1 {
		t.Errorf("First() does not unwrap to *Error")
	}
}

func TestExpand(t *testing.T) {
	env := shell.EnvsFromSlice([]string{"PKG=hello", "REF=github:NixOS/nixpkgs/nixos-24.05", "L=/opt//x/", "P=7", "SYS=aarch64-linux", "V=1.2"})
	tests := []struct {
		src   string
		check func(t *testing.T, in *Install)
	}{
		{"INSTALL ${REF}#${PKG} nixpkgs#${MISSING:-jq}", func(t *testing.T, in *Install) {
			want := []string{"github:NixOS/nixpkgs/nixos-24.05#hello", "nixpkgs#jq"}
			if !reflect.DeepEqual(in.Installables, want) {
				t.Errorf("got %q", in.Installables)
			}
		}},
		{`INSTALL "nixpkgs#$PKG" 'nixpkgs#$PKG' nixpkgs#\$PKG`, func(t *testing.T, in *Install) {
			want := []string{"nixpkgs#hello", "nixpkgs#$PKG", "nixpkgs#$PKG"}
			if !reflect.DeepEqual(in.Installables, want) {
				t.Errorf("got %q", in.Installables)
			}
		}},
		{`INSTALL --file=nix/$PKG.nix --arg cfg='{ v = "${x}"; }' --argstr "ver=$V" --argstr "msg=a b" $PKG`, func(t *testing.T, in *Install) {
			if in.File != "nix/hello.nix" || !reflect.DeepEqual(in.Installables, []string{"hello"}) {
				t.Errorf("got %q %q", in.File, in.Installables)
			}
			want := []NixArg{{"cfg", `{ v = "${x}"; }`, false}, {"ver", "1.2", true}, {"msg", "a b", true}}
			if !reflect.DeepEqual(in.Args, want) {
				t.Errorf("args %+v", in.Args)
			}
		}},
		{"INSTALL --link=$L --priority=$P --system=$SYS nixpkgs#jq", func(t *testing.T, in *Install) {
			if in.Link != "/opt/x" || in.Priority != 7 || in.System != "aarch64-linux" {
				t.Errorf("got %q %d %q", in.Link, in.Priority, in.System)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.src, func(t *testing.T) {
			in := parseInstalls(t, tt.src)[0]
			orig := *in
			out, err := in.Expand(shell.NewLex('\\'), env)
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, out)
			if !reflect.DeepEqual(*in, orig) {
				t.Errorf("Expand modified its receiver")
			}
		})
	}
}

func TestExpandErrors(t *testing.T) {
	env := shell.EnvsFromSlice([]string{"REL=usr/local", "EMPTY=", "BAD=x86", "HASH=a#b", "NAN=x"})
	tests := []struct{ src, want string }{
		{"INSTALL --link=$REL nixpkgs#x", `--link must be an absolute directory or none, got "usr/local"`},
		{"INSTALL --system=$BAD nixpkgs#x", "is not a Nix system"},
		{"INSTALL --system=$EMPTY nixpkgs#x", "expands to an empty value"},
		{"INSTALL --file=$EMPTY x", "expands to an empty value"},
		{"INSTALL --file=f.nix $HASH", "contains '#'"},
		{"INSTALL --priority=$NAN nixpkgs#x", "--priority must be an integer"},
		{"INSTALL $EMPTY", "empty installable"},
		{"INSTALL nixpkgs#${X:?must be set}", "must be set"},
	}
	for _, tt := range tests {
		t.Run(tt.src, func(t *testing.T) {
			in := parseInstalls(t, tt.src)[0]
			_, err := in.Expand(nil, env)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want %q", err, tt.want)
			}
			var le *parser.LocationError
			if !errors.As(err, &le) || le.Locations[0][0].Start.Line != 2 {
				t.Errorf("error is not located at the INSTALL line: %#v", err)
			}
		})
	}
}

func TestExpandMatchesAndEscapeToken(t *testing.T) {
	nf, err := Parse("Nixfile", []byte("# escape=`\nFROM scratch\nINSTALL nixpkgs#${A} nixpkgs#`$B nixpkgs#x$C\n"))
	if err != nil {
		t.Fatal(err)
	}
	in := nf.Stages[0].Installs[0]
	out, m, err := in.ExpandWithMatches(nf.Lex(), shell.EnvsFromSlice([]string{"A=a"}))
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"nixpkgs#a", "nixpkgs#$B", "nixpkgs#x"}; !reflect.DeepEqual(out.Installables, want) {
		t.Errorf("got %q, want %q", out.Installables, want)
	}
	if _, ok := m.Matched["A"]; !ok {
		t.Errorf("A not matched: %v", m)
	}
	if _, ok := m.Unmatched["C"]; !ok {
		t.Errorf("C not unmatched: %v", m)
	}
}
