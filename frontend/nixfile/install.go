package nixfile

import (
	"fmt"
	"path"
	"regexp"
	"strconv"
	"strings"

	"github.com/moby/buildkit/frontend/dockerfile/parser"
	"github.com/moby/buildkit/frontend/dockerfile/shell"
	"github.com/nix-frontend/nix-frontend/nix/storepath"
	"github.com/pkg/errors"
)

// InstallLine is an INSTALL instruction as written: its words and flag
// values hold quotes, escapes and ${VAR} references exactly as in the
// Nixfile, like the fields of BuildKit's typed Dockerfile commands. Expand
// turns it into an Install.
type InstallLine struct {
	Location []parser.Range
	// Words are the installables: flake references (".#hello",
	// "nixpkgs#hello") or, with --file, attribute paths in that file.
	Words []string
	// Flags are the flags in the order written.
	Flags []Flag
	// CommandIndex is how many of the stage's Commands come before this
	// INSTALL: an ARG in Commands[:CommandIndex] is in scope for it.
	CommandIndex int
}

// Flag is one flag of an INSTALL line, its value as written.
type Flag struct {
	Name  string // without "--"
	Value string
}

// Install is an INSTALL line with every word and flag expanded and checked.
type Install struct {
	Location []parser.Range
	// Installables are flake references or, when File is set, attribute
	// paths in that file. Empty only with File set, meaning the file's own
	// value.
	Installables []string
	// File is the --file path in the build context; "" selects flake mode.
	File string
	// Args are --arg and --argstr, in order.
	Args []NixArg
	// Link is the directory the link tree of the installed paths goes to:
	// "" leaves it to the converter ("/" on FROM scratch, "/usr/local"
	// otherwise), "none" means no link tree.
	Link string
	// Priority resolves conflicting files in the link tree the way nix-env
	// --set-flag priority does: the lower number wins.
	Priority int
	// Impure evaluates without pure-eval restrictions (nix --impure).
	Impure bool
	// System is the Nix system to build for; "" derives it from the
	// stage's target platform.
	System string
	// Network lets the line's builders use BuildKit's network: "default",
	// or "" (--network=none, the default) for none.
	Network string
}

// NixArg is a --arg NAME=EXPR (a Nix expression) or, with String set, an
// --argstr NAME=VALUE (a plain string).
type NixArg struct {
	Name   string
	Value  string
	String bool
}

// installFlag is one INSTALL flag: the one place that says how it is
// written, explained, checked and stored. Adding a flag is adding a row.
type installFlag struct {
	name string
	// usage is how the flag is written, shown in errors.
	usage string
	// example is a valid value: the tests use it, and so do checks of a
	// line whose value for the flag depends on variables.
	example string
	// boolean flags take no value, or true/false.
	boolean bool
	// repeat lets the flag be given more than once.
	repeat bool
	// apply checks an expanded value and stores it.
	apply func(in *Install, value string) *problem
}

var installFlags = []installFlag{
	{name: "file", usage: "--file=<path of a .nix file in the build context>", example: "default.nix",
		apply: func(in *Install, v string) *problem {
			if v == "" {
				return &problem{"--file is empty", "--file=<path of a .nix file in the build context>"}
			}
			in.File = v
			return nil
		}},
	{name: "arg", repeat: true, usage: argUsage(false), example: "enable=true", apply: argFlag(false)},
	{name: "argstr", repeat: true, usage: argUsage(true), example: "version=1.2", apply: argFlag(true)},
	{name: "link", usage: "--link=<absolute directory> or --link=none", example: "/opt/tools",
		apply: func(in *Install, v string) *problem {
			if v != "none" && !path.IsAbs(v) {
				return &problem{fmt.Sprintf("--link must be an absolute directory or none, got %q", v), "e.g. --link=/usr/local"}
			}
			if v != "none" {
				v = path.Clean(v)
			}
			in.Link = v
			return nil
		}},
	{name: "priority", usage: "--priority=<integer>; lower wins", example: "5",
		apply: func(in *Install, v string) *problem {
			n, err := strconv.Atoi(strings.TrimSpace(v))
			if err != nil {
				return &problem{fmt.Sprintf("--priority must be an integer, got %q", v), "lower numbers win, as with nix-env --set-flag priority"}
			}
			in.Priority = n
			return nil
		}},
	{name: "impure", boolean: true, usage: "--impure, or --impure=true|false", example: "true",
		apply: func(in *Install, v string) *problem {
			switch v {
			case "", "true":
				in.Impure = true
			case "false":
				in.Impure = false
			default:
				return &problem{fmt.Sprintf("--impure takes no value or true/false, got %q", v), ""}
			}
			return nil
		}},
	{name: "system", usage: "--system=<arch>-<os>, e.g. x86_64-linux", example: "aarch64-linux",
		apply: func(in *Install, v string) *problem {
			if storepath.ValidateSystem(v) != nil {
				return &problem{fmt.Sprintf("--system=%q is not a Nix system", v), "use <arch>-<os>, e.g. x86_64-linux or aarch64-linux"}
			}
			in.System = v
			return nil
		}},
	{name: "network", usage: "--network=none (the default: builders have no network) or --network=default", example: "default",
		apply: func(in *Install, v string) *problem {
			switch v {
			case "none":
				in.Network = ""
			case "default":
				in.Network = v
			default:
				return &problem{fmt.Sprintf("--network=%q is not a network mode INSTALL knows", v), "--network=none (the default: builders have no network) or --network=default"}
			}
			return nil
		}},
}

func lookupFlag(name string) (installFlag, bool) {
	for _, f := range installFlags {
		if f.name == name {
			return f, true
		}
	}
	return installFlag{}, false
}

var reNixIdent = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_'-]*$`)

func argUsage(isString bool) string {
	if isString {
		return "--argstr NAME=<string>, e.g. --argstr version=1.2"
	}
	return "--arg NAME=<Nix expression>, e.g. --arg enableX=true"
}

// argFlag is --arg (a Nix expression) or --argstr (a string): NAME=VALUE.
func argFlag(isString bool) func(*Install, string) *problem {
	flag := "--arg"
	if isString {
		flag = "--argstr"
	}
	return func(in *Install, v string) *problem {
		name, value, ok := strings.Cut(v, "=")
		switch {
		case !ok:
			return &problem{fmt.Sprintf("%s expects NAME=VALUE, got %q", flag, v),
				argUsage(isString) + "; the nix CLI form " + flag + " NAME VALUE is written " + flag + " NAME=VALUE here"}
		case !reNixIdent.MatchString(name):
			return &problem{fmt.Sprintf("%s: %q is not a Nix identifier", flag, name), "argument names are letters, digits, _, ' and -, not starting with a digit"}
		case value == "" && !isString:
			return &problem{fmt.Sprintf("--arg %s= has no Nix expression", name), "use --argstr " + name + "= to pass an empty string"}
		}
		in.Args = append(in.Args, NixArg{Name: name, Value: value, String: isString})
		return nil
	}
}

// flagHints answer the flags people bring from the nix CLI or from other
// Dockerfile instructions.
var flagHints = map[string]string{
	"-f":         "--file=<path> selects a Nix file; -f is the nix CLI spelling",
	"--platform": "use --system=<nix system>; without it INSTALL builds for the stage's target platform",
	"--expr":     "put the expression in a .nix file in the build context and use --file=<path>",
	"-A":         "with --file, list the attribute paths as words: INSTALL --file=default.nix hello",
	"--attr":     "with --file, list the attribute paths as words: INSTALL --file=default.nix hello",
}

func flagList() string {
	names := make([]string, len(installFlags))
	for i, f := range installFlags {
		names[i] = "--" + f.name
	}
	return strings.Join(names, ", ")
}

func unknownFlagHint(name string) string {
	valid := "valid flags: " + flagList()
	if h, ok := flagHints[name]; ok {
		return h + "; " + valid
	}
	opts := make([]string, len(installFlags))
	for i, f := range installFlags {
		opts[i] = "--" + f.name
	}
	if m, ok := closest(name, opts); ok {
		return "did you mean " + m + "? " + valid
	}
	return valid
}

type problem struct{ msg, suggest string }

// install parses an INSTALL node from its joined source line.
func (p *parseState) install(node *parser.Node) {
	loc := node.Location()
	st := p.current()
	if st == nil {
		p.errs.add(loc, node.Value+" before the first FROM",
			"INSTALL adds Nix packages to a stage; put it after the FROM that starts the stage")
		return
	}
	in, probs := parseInstall(node.Original, p.nf.EscapeToken)
	in.Location = loc
	in.CommandIndex = len(st.Commands)
	if len(probs) == 0 {
		probs = in.check(p.staticValue)
	}
	for _, pr := range probs {
		p.errs.add(loc, pr.msg, pr.suggest)
	}
	st.Installs = append(st.Installs, in)
	st.items = append(st.items, stageItem{node: node, install: in})
}

// parseInstall splits an INSTALL line into flags and words, and reports
// what the table says is wrong with the flags' form.
func parseInstall(original string, escape rune) (*InstallLine, []problem) {
	_, rest := firstWord(original)
	words, err := splitWords(rest, escape)
	in := &InstallLine{}
	if err != nil {
		return in, []problem{{msg: "INSTALL: " + err.Error(), suggest: "close every quote and ${...} on the same instruction"}}
	}
	var probs []problem
	seen := map[string]bool{}
	flagsDone := false
	for i := 0; i < len(words); i++ {
		w := words[i]
		if flagsDone || !strings.HasPrefix(w, "-") || w == "-" {
			in.Words = append(in.Words, w)
			continue
		}
		if w == "--" {
			// Everything after -- is an installable, as in the nix CLI.
			flagsDone = true
			continue
		}
		name, val, hasVal := strings.Cut(w, "=")
		f, ok := lookupFlag(strings.TrimPrefix(name, "--"))
		if !strings.HasPrefix(name, "--") || !ok {
			probs = append(probs, problem{msg: fmt.Sprintf("unknown flag %s for INSTALL", name), suggest: unknownFlagHint(name)})
			continue
		}
		if seen[f.name] && !f.repeat {
			probs = append(probs, problem{msg: fmt.Sprintf("--%s is given more than once", f.name), suggest: "keep one"})
		}
		seen[f.name] = true
		if !hasVal && !f.boolean {
			// Accept the nix CLI spelling "--file path" too.
			if i+1 >= len(words) || strings.HasPrefix(words[i+1], "--") {
				probs = append(probs, problem{msg: fmt.Sprintf("--%s needs a value", f.name), suggest: f.usage})
				continue
			}
			i++
			val = words[i]
		}
		in.Flags = append(in.Flags, Flag{Name: f.name, Value: val})
	}
	return in, probs
}

// evalFunc resolves a word as written. known is false when the value depends
// on variables and can only be checked after expansion.
type evalFunc func(raw string) (val string, known bool, err error)

// staticValue resolves words without variables, so that mistakes in them are
// reported with the rest of the file instead of at build time.
func (p *parseState) staticValue(raw string) (string, bool, error) {
	v, _, err := p.lex.ProcessWord(raw, emptyEnv{})
	if err != nil {
		return "", false, err
	}
	return v, !strings.Contains(raw, "$"), nil
}

type emptyEnv struct{}

func (emptyEnv) Get(string) (string, bool) { return "", false }
func (emptyEnv) Keys() []string            { return nil }

// resolve builds the Install of a line with ev resolving its words: flags
// through the table, then what depends on several of them. A value that
// depends on variables is checked when the line is expanded; until then
// its flag's example stands in for it.
func (l *InstallLine) resolve(ev evalFunc) (*Install, []problem) {
	in := &Install{Location: l.Location}
	var probs []problem
	for _, fl := range l.Flags {
		f, _ := lookupFlag(fl.Name)
		v, known, err := ev(fl.Value)
		if err != nil {
			probs = append(probs, problem{msg: fmt.Sprintf("--%s=%s: %v", f.name, fl.Value, err)})
			continue
		}
		if !known {
			v = f.example
		}
		if pr := f.apply(in, v); pr != nil {
			probs = append(probs, *pr)
		}
	}
	fileMode := in.File != ""
	if !fileMode && len(l.Words) == 0 {
		probs = append(probs, problem{"INSTALL needs at least one installable",
			"e.g. INSTALL nixpkgs#hello, or INSTALL --file=default.nix to install the value of a Nix file"})
	}
	if !fileMode && len(in.Args) > 0 {
		a := "--arg"
		if in.Args[0].String {
			a = "--argstr"
		}
		probs = append(probs, problem{a + " needs --file: flake installables take no arguments, a flake's outputs are already-applied values",
			"evaluate a .nix file that is a function with --file=<path>, or add the configured package to the flake's outputs"})
	}
	for _, raw := range l.Words {
		v, known, err := ev(raw)
		switch {
		case err != nil:
			probs = append(probs, problem{msg: fmt.Sprintf("installable %s: %v", raw, err)})
		case !known:
		case fileMode:
			probs = append(probs, checkAttrPath(v)...)
		default:
			probs = append(probs, checkFlakeRef(v)...)
		}
		in.Installables = append(in.Installables, v)
	}
	return in, probs
}

// check validates the line with ev resolving its words.
func (l *InstallLine) check(ev evalFunc) []problem {
	_, probs := l.resolve(ev)
	return probs
}

func checkFlakeRef(v string) []problem {
	switch {
	case v == "":
		return []problem{{msg: "empty installable", suggest: "e.g. nixpkgs#hello or .#app"}}
	case strings.HasPrefix(v, "#"):
		return []problem{{msg: fmt.Sprintf("installable %q has no flake reference before '#'", v), suggest: "write ." + v + " for the flake in the build context"}}
	case strings.HasSuffix(v, "#"):
		return []problem{{msg: fmt.Sprintf("installable %q has an empty attribute path after '#'", v), suggest: "name the package, or leave out '#' to install the flake's default package"}}
	}
	return nil
}

func checkAttrPath(v string) []problem {
	switch {
	case v == "":
		return []problem{{msg: "empty attribute path", suggest: "leave the word out to install the file's own value"}}
	case strings.Contains(v, "#"):
		return []problem{{
			msg:     fmt.Sprintf("attribute path %q contains '#'", v),
			suggest: "with --file the words are attribute paths inside that file, like hello or tools.jq; drop --file to install the flake reference " + v,
		}}
	case !strings.Contains(v, `"`) && (strings.HasPrefix(v, ".") || strings.HasSuffix(v, ".") || strings.Contains(v, "..")):
		return []problem{{msg: fmt.Sprintf("attribute path %q has an empty attribute name", v), suggest: "separate names with single dots, e.g. tools.jq"}}
	}
	return nil
}

// Expand returns the Install of the line with ${VAR} in every word and flag
// value expanded by BuildKit's shell lexer using env, and checked. ARG
// scoping is the caller's job. Use a lexer with the file's escape token
// (Nixfile.Lex); nil means the default backslash. Errors are located at the
// INSTALL instruction.
func (l *InstallLine) Expand(lex *shell.Lex, env shell.EnvGetter) (*Install, error) {
	out, _, err := l.ExpandWithMatches(lex, env)
	return out, err
}

// Matches are the variable names an expansion found and did not find in its
// environment, for BuildKit-style UndefinedVar warnings.
type Matches struct {
	Matched   map[string]struct{}
	Unmatched map[string]struct{}
}

// ExpandWithMatches is Expand that also reports which variables were used.
func (l *InstallLine) ExpandWithMatches(lex *shell.Lex, env shell.EnvGetter) (*Install, Matches, error) {
	if lex == nil {
		lex = shell.NewLex(parser.DefaultEscapeToken)
	}
	if env == nil {
		env = emptyEnv{}
	}
	m := Matches{Matched: map[string]struct{}{}, Unmatched: map[string]struct{}{}}
	expand := func(raw string) (string, bool, error) {
		res, err := lex.ProcessWordWithMatches(raw, env)
		if err != nil {
			return "", false, errors.Wrapf(err, "failed to expand %s", raw)
		}
		for k := range res.Matched {
			m.Matched[k] = struct{}{}
		}
		for k := range res.Unmatched {
			m.Unmatched[k] = struct{}{}
		}
		return res.Result, true, nil
	}
	for _, fl := range l.Flags {
		f, _ := lookupFlag(fl.Name)
		if v, _, err := expand(fl.Value); err == nil && v == "" && fl.Value != "" && !f.boolean {
			return nil, m, parser.WithLocation(errors.Errorf("INSTALL: --%s=%s expands to an empty value", fl.Name, fl.Value), l.Location)
		}
	}
	out, probs := l.resolve(expand)
	if len(probs) > 0 {
		e := &Error{Msg: "INSTALL: " + probs[0].msg, Suggest: probs[0].suggest}
		return nil, m, parser.WithLocation(e, l.Location)
	}
	return out, m, nil
}
