package nixfile

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/linter"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
)

var update = flag.Bool("update", false, "rewrite the .golden files of testdata/good")

// testContextName is the named-context naming used by the tests.
func testContextName(s *Stage) string { return fmt.Sprintf("nixfile-stage-%d", s.Index) }

type dumpFile struct {
	Directives []string      `json:"directives,omitempty"`
	MetaArgs   []dumpCommand `json:"metaArgs,omitempty"`
	Stages     []dumpStage   `json:"stages"`
	Warnings   []dumpWarning `json:"warnings,omitempty"`
	Dockerfile []string      `json:"dockerfile"`
}

type dumpStage struct {
	Index    int           `json:"index"`
	Name     string        `json:"name,omitempty"`
	BaseName string        `json:"baseName"`
	Platform string        `json:"platform,omitempty"`
	Lines    [2]int        `json:"lines"`
	Installs []dumpInstall `json:"installs,omitempty"`
	Commands []dumpCommand `json:"commands,omitempty"`
}

type dumpInstall struct {
	Lines        [2]int   `json:"lines"`
	CommandIndex int      `json:"commandIndex"`
	Words        []string `json:"words,omitempty"`
	Flags        []string `json:"flags,omitempty"`
}

type dumpCommand struct {
	Type  string `json:"type"`
	Lines [2]int `json:"lines"`
	Code  string `json:"code,omitempty"`
}

type dumpWarning struct {
	Rule    string `json:"rule"`
	Line    int    `json:"line"`
	Message string `json:"message"`
}

func lines(loc []parser.Range) [2]int {
	s, e := lineSpan(loc)
	return [2]int{s, e}
}

func dumpCmd(c instructions.Command) dumpCommand {
	d := dumpCommand{Type: strings.TrimPrefix(fmt.Sprintf("%T", c), "*instructions."), Lines: lines(c.Location())}
	if s, ok := c.(fmt.Stringer); ok {
		d.Code = s.String()
	}
	return d
}

func dump(nf *Nixfile) dumpFile {
	d := dumpFile{Stages: []dumpStage{}}
	for _, x := range nf.Directives {
		d.Directives = append(d.Directives, fmt.Sprintf("%d: %s=%s", x.Location[0].Start.Line, x.Name, x.Value))
	}
	for i := range nf.MetaArgs {
		d.MetaArgs = append(d.MetaArgs, dumpCmd(&nf.MetaArgs[i]))
	}
	for _, st := range nf.Stages {
		ds := dumpStage{Index: st.Index, Name: st.Name, BaseName: st.BaseName, Platform: st.Platform, Lines: lines(st.Location)}
		for _, in := range st.Installs {
			di := dumpInstall{Lines: lines(in.Location), CommandIndex: in.CommandIndex, Words: in.Words}
			for _, f := range in.Flags {
				di.Flags = append(di.Flags, f.Name+"="+f.Value)
			}
			ds.Installs = append(ds.Installs, di)
		}
		for _, c := range st.Commands {
			ds.Commands = append(ds.Commands, dumpCmd(c))
		}
		d.Stages = append(d.Stages, ds)
	}
	for _, w := range nf.Warnings {
		d.Warnings = append(d.Warnings, dumpWarning{Rule: w.RuleName, Line: firstLine(w.Location), Message: w.Message})
	}
	d.Dockerfile = strings.Split(string(nf.Dockerfile(testContextName)), "\n")
	return d
}

func TestGood(t *testing.T) {
	files, _ := filepath.Glob("testdata/good/*.Nixfile")
	if len(files) == 0 {
		t.Fatal("no testdata")
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			dt, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			nf, err := Parse(filepath.Base(f), dt)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			got, err := json.MarshalIndent(dump(nf), "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, '\n')
			golden := strings.TrimSuffix(f, ".Nixfile") + ".golden"
			if *update {
				if err := os.WriteFile(golden, got, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test -update to create it)", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("%s differs from the parse result (go test -update rewrites it):\n%s", golden, got)
			}
			checkTranspiled(t, nf)
		})
	}
}

// expectation is a "# error: LINE: MESSAGE" line of a bad testdata file.
var reExpect = regexp.MustCompile(`^# error: (\d+): (.*)$`)

func TestBad(t *testing.T) {
	files, _ := filepath.Glob("testdata/bad/*.Nixfile")
	if len(files) == 0 {
		t.Fatal("no testdata")
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			dt, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			type want struct {
				line int
				msg  string
			}
			var wants []want
			sc := bufio.NewScanner(bytes.NewReader(dt))
			for sc.Scan() {
				if m := reExpect.FindStringSubmatch(sc.Text()); m != nil {
					l, _ := strconv.Atoi(m[1])
					wants = append(wants, want{l, m[2]})
				}
			}
			if len(wants) == 0 {
				t.Fatal("no # error: lines")
			}
			nf, err := Parse("Nixfile", dt)
			if err == nil {
				t.Fatalf("Parse succeeded: %+v", nf)
			}
			var errs *Errors
			if !errors.As(err, &errs) {
				t.Fatalf("error is %T, not *Errors: %v", err, err)
			}
			if len(errs.List) != len(wants) {
				t.Errorf("got %d problems, want %d:\n%v", len(errs.List), len(wants), err)
			}
			for i, w := range wants {
				if i >= len(errs.List) {
					break
				}
				g := errs.List[i]
				if g.Line() != w.line || !strings.Contains(g.Error(), w.msg) {
					t.Errorf("problem %d: got %d: %q, want %d: %q", i, g.Line(), g.Error(), w.line, w.msg)
				}
			}
		})
	}
}

// checkTranspiled checks the Dockerfile() contract on a parsed Nixfile.
func checkTranspiled(t testing.TB, nf *Nixfile) {
	t.Helper()
	out := nf.Dockerfile(testContextName)
	// Split at every \n, so that a blanked last line without a newline
	// still counts as a line.
	src, dst := bytes.Split(nf.Source, []byte("\n")), bytes.Split(out, []byte("\n"))
	if len(src) != len(dst) {
		t.Fatalf("transpiled Dockerfile has %d lines, the Nixfile %d", len(dst), len(src))
	}
	changed := map[int]string{} // line -> what it must be ("" = blank)
	for _, st := range nf.Stages {
		for _, in := range st.Installs {
			s, e := lineSpan(in.Location)
			for l := s; l <= e; l++ {
				changed[l] = ""
			}
		}
		if len(st.Installs) > 0 {
			s, e := lineSpan(st.Location)
			for l := s + 1; l <= e; l++ {
				changed[l] = ""
			}
			changed[s] = "FROM"
		}
	}
	for i := range src {
		l := i + 1
		want, ok := changed[l]
		got := strings.TrimRight(string(dst[i]), "\r\n")
		switch {
		case !ok:
			if !bytes.Equal(src[i], dst[i]) && !(l == 1 && bytes.Equal(bytes.TrimPrefix(src[i], []byte{0xEF, 0xBB, 0xBF}), dst[i])) {
				t.Errorf("line %d changed: %q -> %q", l, src[i], dst[i])
			}
		case want == "":
			if got != "" {
				t.Errorf("line %d is not blank: %q", l, got)
			}
		default:
			if f := strings.Fields(got); len(f) == 0 || !strings.EqualFold(f[0], "FROM") || !strings.Contains(got, "nixfile-stage-") {
				t.Errorf("line %d is not a rewritten FROM: %q", l, got)
			}
		}
	}
	res, err := parser.Parse(bytes.NewReader(out))
	if err != nil {
		t.Fatalf("BuildKit cannot parse the transpiled Dockerfile: %v\n%s", err, out)
	}
	// A linter is needed: BuildKit dereferences a nil one when an
	// instruction has a # check= comment.
	stages, _, err := instructions.Parse(res.AST, linter.New(&linter.Config{}))
	if err != nil {
		t.Fatalf("BuildKit rejects the transpiled Dockerfile: %v\n%s", err, out)
	}
	if len(stages) != len(nf.Stages) {
		t.Fatalf("transpiled Dockerfile has %d stages, the Nixfile %d", len(stages), len(nf.Stages))
	}
	for i, st := range nf.Stages {
		bs := stages[i]
		if bs.Name != st.Name || bs.Platform != st.Platform {
			t.Errorf("stage %d: transpiled name/platform %q/%q, want %q/%q", i, bs.Name, bs.Platform, st.Name, st.Platform)
		}
		if len(st.Installs) > 0 && bs.BaseName != testContextName(st) {
			t.Errorf("stage %d: transpiled base %q, want %q", i, bs.BaseName, testContextName(st))
		}
		if len(st.Installs) == 0 && bs.BaseName != st.BaseName {
			t.Errorf("stage %d: transpiled base %q, want %q", i, bs.BaseName, st.BaseName)
		}
		if len(bs.Commands) != len(st.Commands) {
			t.Errorf("stage %d: transpiled has %d commands, want %d", i, len(bs.Commands), len(st.Commands))
		}
	}
}
