package nixfile

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
)

func warnings(t *testing.T, src string) []string {
	t.Helper()
	nf, err := Parse("Nixfile", []byte(src))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	var out []string
	for _, w := range nf.Warnings {
		out = append(out, fmt.Sprintf("%d:%s", firstLine(w.Location), w.RuleName))
	}
	return out
}

func TestLintRules(t *testing.T) {
	tests := []struct {
		name string
		src  string
		want []string
	}{
		{"clean", "FROM alpine\nINSTALL nixpkgs#jq\nRUN jq --version\n", nil},
		{"duplicate", "FROM alpine\nINSTALL nixpkgs#jq nixpkgs#jq\nINSTALL nixpkgs#jq\n",
			[]string{"2:DuplicateInstallable", "3:DuplicateInstallable"}},
		{"duplicate per stage only", "FROM alpine\nINSTALL nixpkgs#jq\nFROM alpine\nINSTALL nixpkgs#jq\n", nil},
		{"same attr of other file or args", "FROM alpine\nINSTALL --file=a.nix jq\nINSTALL --file=b.nix jq\n" +
			"INSTALL --file=a.nix --arg x=1 jq\nINSTALL --file=a.nix --arg x=2 jq\nINSTALL nixpkgs#jq\n", nil},
		{"duplicate file value", "FROM alpine\nINSTALL --file=a.nix\nINSTALL --file=a.nix\n", []string{"3:DuplicateInstallable"}},
		{"install after run", "FROM alpine\nRUN x\nINSTALL nixpkgs#jq\n", []string{"3:InstallAfterBuildStep"}},
		{"install after copy", "FROM alpine\nCOPY a b\nINSTALL nixpkgs#jq\n", []string{"3:InstallAfterBuildStep"}},
		{"install after workdir", "FROM alpine\nWORKDIR /a\nINSTALL nixpkgs#jq\n", []string{"3:InstallAfterBuildStep"}},
		{"install after env is fine", "FROM alpine\nENV A=1\nARG B\nLABEL x=y\nUSER nobody\nINSTALL nixpkgs#jq$B\n", nil},
		{"from later stage", "FROM b AS a\nFROM alpine AS b\n", []string{"1:FromStageDeclaredLater"}},
		{"from later stage, any case", "FROM B AS a\nFROM alpine AS b\n", []string{"1:FromStageDeclaredLater"}},
		{"from earlier stage", "FROM alpine AS b\nFROM b AS a\n", nil},
		{"from itself is an image", "FROM node AS node\n", nil},
		{"unused meta arg", "ARG A=1\nFROM alpine\n", []string{"1:UnusedArg"}},
		{"meta arg used in FROM", "ARG A=1\nFROM alpine:$A\n", nil},
		{"meta arg used in --platform", "ARG P\nFROM --platform=${P} alpine\n", nil},
		{"meta arg used by meta arg", "ARG A=1\nARG B=${A}.0\nFROM alpine:$B\n", nil},
		{"meta arg redeclared", "ARG A=1\nFROM alpine\nARG A\nRUN echo $A\n", nil},
		{"meta arg name prefix", "ARG A=1\nARG AB=2\nFROM alpine:$AB\n", []string{"1:UnusedArg"}},
		{"unused stage arg", "FROM alpine\nARG A\nINSTALL nixpkgs#jq\n", []string{"2:UnusedArg"}},
		{"stage arg in install", "FROM alpine\nARG A=jq\nINSTALL nixpkgs#${A}\n", nil},
		{"stage arg in later arg", "FROM alpine\nARG A=1 B=$A\nENV B=$B\n", nil},
		{"stage arg reaches RUN environment", "FROM alpine\nARG A\nRUN ./build.sh\n", nil},
		{"stage arg in heredoc", "FROM alpine\nARG A\nCOPY <<EOF /x\n$A\nEOF\n", nil},
		{"stage arg used before", "FROM alpine\nENV X=$A\nARG A\n", []string{"3:UnusedArg"}},
		{"stage arg scope ends at FROM", "FROM alpine\nARG A\nFROM alpine:$A\n", []string{"2:UnusedArg"}},
		{"buildkit args are ignored", "ARG BUILDKIT_INLINE_CACHE=1\nFROM alpine\nARG SOURCE_DATE_EPOCH\n", nil},
		{"install casing", "from alpine\nrun x\nINSTALL nixpkgs#jq\n", []string{"3:ConsistentInstructionCasing", "3:InstallAfterBuildStep"}},
		{"install mixed casing", "FROM alpine\nInstall nixpkgs#jq\n", []string{"2:ConsistentInstructionCasing"}},
		{"empty continuation in install", "FROM alpine\nINSTALL \\\n\n  nixpkgs#jq\n", []string{"4:NoEmptyContinuation"}},
		{"empty continuation in rewritten FROM", "FROM \\\n\n alpine\nINSTALL nixpkgs#jq\n", []string{"3:NoEmptyContinuation"}},
		{"empty continuation elsewhere is BuildKit's", "FROM alpine\nINSTALL nixpkgs#jq\nRUN a \\\n\n  b\n", nil},
		{"check comment skips a rule", "FROM alpine\nRUN x\n# check=skip=InstallAfterBuildStep\nINSTALL nixpkgs#jq\n", nil},
		{"check comment skips all", "FROM alpine\nARG A\n# check=skip=all\nINSTALL nixpkgs#jq nixpkgs#jq\n", []string{"2:UnusedArg"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := warnings(t, tt.src)
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("warnings %q, want %q", got, tt.want)
			}
		})
	}
}

func TestWarningFields(t *testing.T) {
	nf, err := Parse("Nixfile", []byte("FROM alpine\nINSTALL nixpkgs#jq nixpkgs#jq\n"))
	if err != nil {
		t.Fatal(err)
	}
	if len(nf.Warnings) != 1 {
		t.Fatalf("warnings: %+v", nf.Warnings)
	}
	w := nf.Warnings[0]
	if w.RuleName != "DuplicateInstallable" || w.Description == "" || !strings.HasPrefix(w.URL, DocsURL+"#") ||
		w.Message != "nixpkgs#jq is already installed in this stage on line 2" {
		t.Errorf("warning %+v", w)
	}
}

func TestCheckDirective(t *testing.T) {
	src := "# check=skip=UnusedArg,InstallAfterBuildStep;error=true\nFROM alpine\nARG A\nRUN x\nINSTALL nixpkgs#jq nixpkgs#jq\n"
	nf, err := Parse("Nixfile", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := nf.CheckConfig()
	if err != nil {
		t.Fatal(err)
	}
	if !cfg.ReturnAsError || !reflect.DeepEqual(cfg.SkipRules, []string{"UnusedArg", "InstallAfterBuildStep"}) {
		t.Errorf("config %+v", cfg)
	}
	if len(nf.Warnings) != 2 {
		t.Errorf("Parse should not filter by the directive: %+v", nf.Warnings)
	}
	ws, err := FilterWarnings(nf.Warnings, cfg)
	if len(ws) != 1 || ws[0].RuleName != "DuplicateInstallable" {
		t.Errorf("filtered: %+v", ws)
	}
	if err == nil || err.Error() != "lint violation found for rules: DuplicateInstallable" {
		t.Errorf("error: %v", err)
	}

	cfg.SkipRules = append(cfg.SkipRules, "DuplicateInstallable")
	if ws, err := FilterWarnings(nf.Warnings, cfg); len(ws) != 0 || err != nil {
		t.Errorf("all skipped: %+v %v", ws, err)
	}
	cfg.SkipAll = true
	cfg.SkipRules = nil
	if ws, err := FilterWarnings(nf.Warnings, cfg); len(ws) != 0 || err != nil {
		t.Errorf("skip=all: %+v %v", ws, err)
	}
	if ws, err := FilterWarnings(nf.Warnings, nil); len(ws) != 2 || err != nil {
		t.Errorf("nil config: %+v %v", ws, err)
	}

	nf, err = Parse("Nixfile", []byte("FROM alpine\n"))
	if err != nil {
		t.Fatal(err)
	}
	if cfg, err := nf.CheckConfig(); err != nil || cfg.ReturnAsError || len(cfg.SkipRules) != 0 {
		t.Errorf("no directive: %+v %v", cfg, err)
	}
}

func TestClosest(t *testing.T) {
	tests := []struct{ in, want string }{
		{"INSTAL", "INSTALL"},
		{"RNU", "RUN"},
		{"rnu", "run"},
		{"COYP", "COPY"},
		{"ISNTALL", "INSTALL"},
		{"FORM", "FROM"},
		{"XYZZY", ""},
	}
	for _, tt := range tests {
		got, _ := closest(tt.in, knownInstructions)
		if got != tt.want {
			t.Errorf("closest(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
