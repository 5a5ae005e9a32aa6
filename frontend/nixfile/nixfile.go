// Package nixfile parses and validates Nixfiles: Dockerfiles with one more
// instruction, INSTALL, which adds Nix store paths to a stage.
//
// The Dockerfile part is handled by BuildKit's own parser and instruction
// parser so that a Nixfile accepts exactly what a Dockerfile accepts, minus
// the few instructions listed in unsupported. Dockerfile turns a parsed
// Nixfile back into a Dockerfile with the same line numbers, so that
// BuildKit's errors and lint warnings point at the right lines of the user's
// Nixfile.
package nixfile

import (
	"bytes"
	"fmt"
	"runtime/debug"
	"strings"

	"github.com/moby/buildkit/frontend/dockerfile/command"
	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/linter"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
	"github.com/moby/buildkit/frontend/dockerfile/shell"
)

// Nixfile is a parsed, validated Nixfile.
type Nixfile struct {
	Name   string
	Source []byte
	AST    *parser.Node
	// Directives are the parser directives at the top of the file
	// (# syntax=, # escape=, # check=).
	Directives []*parser.Directive
	// EscapeToken is the file's escape character (\ unless # escape=`).
	// Expand INSTALL words with a lexer using it, see Lex.
	EscapeToken rune
	MetaArgs    []instructions.ArgCommand
	Stages      []*Stage
	// Warnings are the lint findings BuildKit cannot make itself because
	// it never sees INSTALL (see the Rule* variables), in source order and
	// not yet filtered by the file's # check= directive: see FilterWarnings.
	Warnings []Warning
}

// Stage is one FROM and the instructions up to the next FROM.
type Stage struct {
	Index int
	// Name is the AS name, lowercased as BuildKit does; "" if unnamed.
	Name string
	// BaseName is the FROM argument as written: an image, "scratch", an
	// earlier stage's name or an expression like ${BASE}.
	BaseName string
	// Platform is the --platform value as written, "" if none.
	Platform string
	Location []parser.Range
	Installs []*InstallLine
	// Commands are the stage's other instructions, typed by BuildKit, in
	// source order. ARGs are included so the caller can scope variables;
	// InstallLine.CommandIndex says where each INSTALL sits among them.
	Commands []instructions.Command

	from  *parser.Node
	items []stageItem
}

// stageItem keeps the source node of every instruction of a stage in order,
// INSTALL included, for the lint rules that depend on instruction order.
type stageItem struct {
	node    *parser.Node
	cmd     instructions.Command
	install *InstallLine
}

// Lex returns a shell lexer with the file's escape token, the one to pass to
// InstallLine.Expand.
func (n *Nixfile) Lex() *shell.Lex {
	return shell.NewLex(n.EscapeToken)
}

// unsupported are Dockerfile instructions a Nixfile rejects, with what to
// use instead.
var unsupported = map[string]string{
	command.Add: "use COPY for files of the build context; for URLs, git repositories and archives " +
		"use a Nix fetcher (fetchurl, fetchTarball, fetchGit) in a .nix file and INSTALL --file it, " +
		"so the download is pinned by its hash",
	command.Onbuild: "triggers would run in another build that cannot see how this image was made; " +
		"write the step in the Nixfile that builds on this image",
	command.Maintainer: "use LABEL org.opencontainers.image.authors=...",
}

// knownInstructions is what "did you mean" suggests from: every instruction
// a Nixfile accepts.
var knownInstructions = func() []string {
	var out []string
	for c := range command.Commands {
		if _, bad := unsupported[c]; !bad {
			out = append(out, strings.ToUpper(c))
		}
	}
	return append(out, "INSTALL")
}()

// Parse parses and validates a Nixfile. name is the file name shown in errors
// (e.g. "Nixfile"). On validation problems it returns *Errors holding every
// problem of the file, each located.
func Parse(name string, dt []byte) (nf *Nixfile, err error) {
	if name == "" {
		name = "Nixfile"
	}
	defer func() {
		// A panic in the parser must not take the whole build service down;
		// report it as a problem of this file instead.
		if r := recover(); r != nil {
			nf = nil
			err = &Errors{File: name, List: []*Error{{
				Msg: fmt.Sprintf("internal error while parsing: %v\n%s", r, debug.Stack()),
			}}}
		}
	}()

	res, perr := parser.Parse(bytes.NewReader(dt))
	if perr != nil {
		var c errorsCollector
		c.addErr(nil, perr)
		return nil, c.result(name)
	}

	p := &parseState{
		nf: &Nixfile{
			Name:        name,
			Source:      dt,
			AST:         res.AST,
			EscapeToken: res.EscapeToken,
		},
	}
	p.lex = shell.NewLex(res.EscapeToken)
	p.lex.SkipUnsetEnv = true
	p.lint = linter.New(&linter.Config{Warn: p.warn})
	// A linter without Warn makes BuildKit's instruction parser skip its own
	// rules: BuildKit runs them again on the transpiled Dockerfile.
	p.quiet = linter.New(&linter.Config{})

	p.directives(dt)
	for _, node := range res.AST.Children {
		p.node(node)
	}
	if len(p.nf.Stages) == 0 && len(p.errs.list) == 0 {
		p.errs.add(nil, "the Nixfile has no FROM instruction", "every stage starts with FROM <image>, FROM scratch or FROM <earlier stage>")
	}
	if err := p.errs.result(name); err != nil {
		return nil, err
	}
	p.runLint(res)
	return p.nf, nil
}

type parseState struct {
	nf    *Nixfile
	errs  errorsCollector
	lex   *shell.Lex // SkipUnsetEnv: used to check words that have no variables
	lint  *linter.Linter
	quiet *linter.Linter

	metaArgNodes []*parser.Node
}

func (p *parseState) directives(dt []byte) {
	var dp parser.DirectiveParser
	ds, _ := dp.ParseAll(bytes.TrimPrefix(dt, []byte{0xEF, 0xBB, 0xBF}))
	p.nf.Directives = ds
	for _, d := range ds {
		if d.Name != "check" {
			continue
		}
		// Validate it here, where the line is known, rather than fail later
		// in BuildKit with no location.
		v, _, _ := strings.Cut(d.Value, " ")
		if _, err := linter.ParseLintOptions(v); err != nil {
			p.errs.add(d.Location, "invalid check directive: "+err.Error(),
				"e.g. # check=skip=UnusedArg,DuplicateInstallable;error=true")
		}
	}
}

func (p *parseState) current() *Stage {
	if len(p.nf.Stages) == 0 {
		return nil
	}
	return p.nf.Stages[len(p.nf.Stages)-1]
}

func (p *parseState) node(node *parser.Node) {
	kw := strings.ToLower(node.Value)
	loc := node.Location()
	if kw == "install" {
		p.install(node)
		return
	}
	if alt, ok := unsupported[kw]; ok {
		if kw == command.Maintainer {
			if _, rest := firstWord(node.Original); rest != "" {
				alt = fmt.Sprintf("use LABEL org.opencontainers.image.authors=%q", rest)
			}
		}
		p.errs.add(loc, node.Value+" is not supported in a Nixfile", alt)
		if len(p.nf.Stages) == 0 {
			return
		}
		p.current().items = append(p.current().items, stageItem{node: node})
		return
	}
	if _, ok := command.Commands[kw]; !ok {
		hint := ""
		if m, ok := closest(node.Value, knownInstructions); ok {
			hint = "did you mean " + m + "?"
		}
		p.errs.add(loc, "unknown instruction "+node.Value, hint)
		return
	}

	v, err := instructions.ParseInstructionWithLinter(node, p.quiet)
	if err != nil {
		p.errs.addErr(loc, err)
		if kw == command.From {
			// Keep a placeholder stage so that the instructions below are
			// not also reported as coming before the first FROM.
			p.nf.Stages = append(p.nf.Stages, &Stage{Index: len(p.nf.Stages), Location: loc, from: node})
		}
		return
	}
	switch c := v.(type) {
	case *instructions.Stage:
		p.nf.Stages = append(p.nf.Stages, &Stage{
			Index:    len(p.nf.Stages),
			Name:     c.Name,
			BaseName: c.BaseName,
			Platform: c.Platform,
			Location: c.Location,
			from:     node,
		})
	case instructions.Command:
		st := p.current()
		if st == nil {
			if a, ok := c.(*instructions.ArgCommand); ok {
				p.nf.MetaArgs = append(p.nf.MetaArgs, *a)
				p.metaArgNodes = append(p.metaArgNodes, node)
				return
			}
			p.errs.add(loc, node.Value+" before the first FROM", "only ARG may come before the first FROM; start a stage with FROM <image>")
			return
		}
		st.Commands = append(st.Commands, c)
		st.items = append(st.items, stageItem{node: node, cmd: c})
	default:
		p.errs.add(loc, fmt.Sprintf("%s: unexpected instruction type %T", node.Value, v), "")
	}
}
