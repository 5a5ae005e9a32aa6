package nixfile

import (
	"fmt"
	"sort"
	"strings"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/linter"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
	"github.com/pkg/errors"
)

// Warning is one lint finding.
type Warning struct {
	RuleName    string
	Description string
	URL         string
	Message     string
	Location    []parser.Range
}

// DocsURL is the Nixfile reference; rule URLs point into it.
const DocsURL = "https://github.com/nix-frontend/nix-frontend/blob/main/docs/nixfile.md"

// The Nixfile lint rules. BuildKit lints everything else on the transpiled
// Dockerfile, so these cover only what BuildKit never sees: INSTALL lines and
// the original FROM lines of stages with INSTALL.
var (
	RuleDuplicateInstallable = linter.LinterRule[func(word string, line int) string]{
		Name:        "DuplicateInstallable",
		Description: "An installable should be installed only once per stage",
		URL:         DocsURL + "#duplicateinstallable",
		Format: func(word string, line int) string {
			return fmt.Sprintf("%s is already installed in this stage on line %d", word, line)
		},
	}
	RuleUnusedArg = linter.LinterRule[func(name string) string]{
		Name:        "UnusedArg",
		Description: "An ARG should be referenced by a later instruction of its scope",
		URL:         DocsURL + "#unusedarg",
		Format: func(name string) string {
			return fmt.Sprintf("ARG %s is declared but never used", name)
		},
	}
	RuleFromStageDeclaredLater = linter.LinterRule[func(name string) string]{
		Name:        "FromStageDeclaredLater",
		Description: "FROM can only refer to stages declared before it",
		URL:         DocsURL + "#fromstagedeclaredlater",
		Format: func(name string) string {
			return fmt.Sprintf("stage %s is declared later; FROM refers to an image named %s", name, name)
		},
	}
	RuleInstallAfterBuildStep = linter.LinterRule[func(instr string, line int) string]{
		Name:        "InstallAfterBuildStep",
		Description: "INSTALL should come right after FROM, because that is where its layers go",
		URL:         DocsURL + "#installafterbuildstep",
		Format: func(instr string, line int) string {
			return fmt.Sprintf("INSTALL after %s on line %d: installed store paths are layered directly on the base image, "+
				"before every RUN/COPY of the stage; move INSTALL right after FROM to make that visible", instr, line)
		},
	}
)

// Rules the converter checks: RuleUnknownProgram once a stage is built,
// when the stage's programs are all known (FROM scratch, with nothing but
// INSTALL adding files); RuleMissingCABundle once its closure is known;
// RuleUnknownUser when the build's arguments are.
var RuleUnknownProgram = linter.LinterRule[func(instr, program string, have []string) string]{
	Name:        "UnknownProgram",
	Description: "CMD and ENTRYPOINT should name a program the image has",
	URL:         DocsURL + "#unknownprogram",
	Format: func(instr, program string, have []string) string {
		msg := fmt.Sprintf("%s runs %s, which no INSTALL line of this FROM scratch stage provides", instr, program)
		if len(have) > 0 {
			msg += "; it has " + strings.Join(have, ", ")
		}
		return msg
	},
}

var RuleMissingCABundle = linter.LinterRule[func(lib string) string]{
	Name:        "MissingCABundle",
	Description: "An image whose closure makes TLS connections should have CA certificates",
	URL:         DocsURL + "#missingcabundle",
	Format: func(lib string) string {
		return fmt.Sprintf("the closure has %s but no CA bundle: TLS connections will fail to verify; install nixpkgs#cacert", lib)
	},
}

var RuleUnknownUser = linter.LinterRule[func(user string) string]{
	Name:        "UnknownUser",
	Description: "USER should name a user the image defines",
	URL:         DocsURL + "#unknownuser",
	Format: func(user string) string {
		return fmt.Sprintf("USER %s names a user no layer of this FROM scratch stage defines (NIX_SCRATCH_BASICS=false); lookups of the current user will fail", user)
	},
}

func (p *parseState) warn(rule, description, url, msg string, loc []parser.Range) {
	p.nf.Warnings = append(p.nf.Warnings, Warning{RuleName: rule, Description: description, URL: url, Message: msg, Location: loc})
}

// runRule runs a rule at node, honouring a # check= comment right above the
// instruction the way BuildKit does.
func (p *parseState) runRule(rule linter.LinterRuleI, node *parser.Node, msg string) {
	p.lint.WithMergedConfigFromComments(node.PrevComment).Run(rule, node.Location(), msg)
}

func (p *parseState) runLint(res *parser.Result) {
	p.lintParserWarnings(res)
	p.lintCasing()
	for _, st := range p.nf.Stages {
		p.lintDuplicates(st)
		p.lintInstallOrder(st)
		p.lintStageArgs(st)
	}
	p.lintFromLater()
	p.lintMetaArgs()
	sort.SliceStable(p.nf.Warnings, func(i, j int) bool {
		return firstLine(p.nf.Warnings[i].Location) < firstLine(p.nf.Warnings[j].Location)
	})
}

func firstLine(loc []parser.Range) int {
	if len(loc) == 0 {
		return 0
	}
	return loc[0].Start.Line
}

// lintParserWarnings keeps the parser's warnings about lines that the
// transpiled Dockerfile no longer has (INSTALL, rewritten FROM); BuildKit
// reports all others itself.
func (p *parseState) lintParserWarnings(res *parser.Result) {
	gone := map[int]bool{} // lines of instructions that disappear
	mark := func(n *parser.Node) {
		for l := n.StartLine; l <= n.EndLine; l++ {
			gone[l] = true
		}
	}
	for _, st := range p.nf.Stages {
		if len(st.Installs) > 0 && st.from != nil {
			mark(st.from)
		}
		for _, it := range st.items {
			if it.install != nil {
				mark(it.node)
			}
		}
	}
	for _, w := range res.Warnings {
		if w.Location == nil || w.URL != linter.RuleNoEmptyContinuation.URL {
			continue
		}
		if _, ok := gone[w.Location.Start.Line]; ok {
			// Located and unfiltered by comments exactly as BuildKit does it.
			p.lint.Run(&linter.RuleNoEmptyContinuation, []parser.Range{*w.Location}, linter.RuleNoEmptyContinuation.Format())
		}
	}
}

// lintCasing applies BuildKit's ConsistentInstructionCasing to INSTALL, with
// the majority counted as BuildKit counts it on the transpiled file.
func (p *parseState) lintCasing() {
	var lower, upper int
	count := func(s string) {
		if s == strings.ToLower(s) {
			lower++
		} else if s == strings.ToUpper(s) {
			upper++
		}
	}
	for _, st := range p.nf.Stages {
		if st.from != nil {
			count(st.from.Value)
		}
		for _, it := range st.items {
			if it.cmd != nil {
				count(it.node.Value)
			}
		}
	}
	majorityLower := lower > upper
	for _, st := range p.nf.Stages {
		for _, it := range st.items {
			if it.install == nil {
				continue
			}
			name := it.node.Value
			want := ""
			if majorityLower && strings.ToLower(name) != name {
				want = "lowercase"
			} else if !majorityLower && strings.ToUpper(name) != name {
				want = "uppercase"
			}
			if want != "" {
				p.runRule(&linter.RuleConsistentInstructionCasing, it.node, linter.RuleConsistentInstructionCasing.Format(name, want))
			}
		}
	}
}

func (p *parseState) lintDuplicates(st *Stage) {
	seen := map[string]int{}
	for _, it := range st.items {
		in := it.install
		if in == nil {
			continue
		}
		// The same attribute of the same file with other arguments is
		// another package, so the file and its arguments are part of the key.
		var ctx, file string
		for _, f := range in.Flags {
			switch f.Name {
			case "file":
				file = f.Value
				ctx += "\x00file\x00" + f.Value
			case "arg", "argstr":
				ctx += "\x00" + f.Name + "\x00" + f.Value
			}
		}
		for _, w := range in.Words {
			key := ctx + "\x01" + w
			if line, ok := seen[key]; ok {
				p.runRule(&RuleDuplicateInstallable, it.node, RuleDuplicateInstallable.Format(w, line))
				continue
			}
			seen[key] = it.node.StartLine
		}
		if len(in.Words) == 0 {
			key := ctx + "\x01"
			if line, ok := seen[key]; ok {
				p.runRule(&RuleDuplicateInstallable, it.node, RuleDuplicateInstallable.Format("--file="+file, line))
			} else {
				seen[key] = it.node.StartLine
			}
		}
	}
}

func (p *parseState) lintInstallOrder(st *Stage) {
	var step *parser.Node
	for _, it := range st.items {
		switch it.cmd.(type) {
		case *instructions.RunCommand, *instructions.CopyCommand, *instructions.WorkdirCommand:
			if step == nil {
				step = it.node
			}
		}
		if it.install != nil && step != nil {
			p.runRule(&RuleInstallAfterBuildStep, it.node, RuleInstallAfterBuildStep.Format(strings.ToUpper(step.Value), step.StartLine))
		}
	}
}

// lintFromLater: BuildKit resolves FROM <name> only against the stages above
// it; a stage with that name further down is silently not used.
func (p *parseState) lintFromLater() {
	first := map[string]int{} // stage name -> index of its first stage
	for i, st := range p.nf.Stages {
		if _, ok := first[st.Name]; st.Name != "" && !ok {
			first[st.Name] = i
		}
	}
	for i, st := range p.nf.Stages {
		if st.from == nil || st.BaseName == "" || strings.Contains(st.BaseName, "$") {
			continue
		}
		if j, ok := first[st.BaseName]; ok && j < i {
			continue
		}
		if p.laterStage(i, strings.ToLower(st.BaseName)) {
			p.runRule(&RuleFromStageDeclaredLater, st.from, RuleFromStageDeclaredLater.Format(st.BaseName))
		}
	}
}

func (p *parseState) laterStage(i int, name string) bool {
	for _, later := range p.nf.Stages[i+1:] {
		if later.Name == name {
			return true
		}
	}
	return false
}

// nodeText is everything of an instruction that can refer to a variable.
func nodeText(n *parser.Node) string {
	s := n.Original
	for _, h := range n.Heredocs {
		s += "\n" + h.Content
	}
	return s
}

// argKeyIgnored are ARGs that mean something to BuildKit without being
// referenced.
func argKeyIgnored(k string) bool {
	return strings.HasPrefix(k, "BUILDKIT_") || k == "SOURCE_DATE_EPOCH"
}

// lintStageArgs reports stage ARGs that no later instruction of the stage
// refers to. A RUN after the ARG sees it as an environment variable, which
// the text cannot show, so then the ARG counts as used.
func (p *parseState) lintStageArgs(st *Stage) {
	// Walk backwards, collecting what the instructions from i on refer to.
	refs := map[string]bool{}
	runAfter := false
	for i := len(st.items) - 1; i >= 0; i-- {
		it := st.items[i]
		for k := range varRefs(nodeText(it.node)) {
			refs[k] = true
		}
		if a, ok := it.cmd.(*instructions.ArgCommand); ok && !runAfter {
			for _, kv := range a.Args {
				if !argKeyIgnored(kv.Key) && !refs[kv.Key] {
					p.runRule(&RuleUnusedArg, it.node, RuleUnusedArg.Format(kv.Key))
				}
			}
		}
		if _, ok := it.cmd.(*instructions.RunCommand); ok {
			runAfter = true
		}
	}
}

// lintMetaArgs reports ARGs before the first FROM that no FROM, later meta
// ARG or stage-level re-declaration uses; those are their only uses.
func (p *parseState) lintMetaArgs() {
	used := map[string]bool{}
	for _, st := range p.nf.Stages {
		if st.from != nil {
			for k := range varRefs(nodeText(st.from)) {
				used[k] = true
			}
		}
		for _, c := range st.Commands {
			if a, ok := c.(*instructions.ArgCommand); ok {
				for _, kv := range a.Args {
					used[kv.Key] = true
				}
			}
		}
	}
	for i := len(p.metaArgNodes) - 1; i >= 0; i-- {
		n := p.metaArgNodes[i]
		for k := range varRefs(nodeText(n)) {
			used[k] = true
		}
		for _, kv := range p.nf.MetaArgs[i].Args {
			if !argKeyIgnored(kv.Key) && !used[kv.Key] {
				p.runRule(&RuleUnusedArg, n, RuleUnusedArg.Format(kv.Key))
			}
		}
	}
}

// varRefs returns the names s refers to as $NAME or ${NAME...}. Escaped or
// quoted references count too: when in doubt, an ARG is used.
func varRefs(s string) map[string]bool {
	refs := map[string]bool{}
	for i := 0; i < len(s); i++ {
		if s[i] != '$' {
			continue
		}
		j := i + 1
		if j < len(s) && s[j] == '{' {
			j++
		}
		k := j
		for k < len(s) && isNameChar(s[k]) {
			k++
		}
		if k > j {
			refs[s[j:k]] = true
		}
	}
	return refs
}

func isNameChar(c byte) bool {
	return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

// CheckConfig returns the settings of the file's # check= directive, as
// BuildKit reads them: which rules are skipped and whether warnings fail the
// build (error=true). A BUILDKIT_DOCKERFILE_CHECK build argument replaces it,
// as with Dockerfiles.
func (n *Nixfile) CheckConfig() (*linter.Config, error) {
	v, _, _, _ := parser.ParseDirective("check", n.Source)
	return linter.ParseLintOptions(v)
}

// FilterWarnings drops the warnings of rules cfg skips. When cfg says
// error=true and warnings remain, it also returns an error naming their
// rules, as BuildKit does for its own rules.
func FilterWarnings(ws []Warning, cfg *linter.Config) ([]Warning, error) {
	if cfg == nil {
		return ws, nil
	}
	if cfg.SkipAll {
		return nil, nil
	}
	skip := map[string]bool{}
	for _, r := range cfg.SkipRules {
		skip[r] = true
	}
	var out []Warning
	rules := map[string]bool{}
	for _, w := range ws {
		if skip[w.RuleName] {
			continue
		}
		out = append(out, w)
		rules[w.RuleName] = true
	}
	if !cfg.ReturnAsError || len(out) == 0 {
		return out, nil
	}
	names := make([]string, 0, len(rules))
	for r := range rules {
		names = append(names, r)
	}
	sort.Strings(names)
	return out, errors.Errorf("lint violation found for rules: %s", strings.Join(names, ", "))
}
