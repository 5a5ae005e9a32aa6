package nixfile

import (
	"fmt"
	"path"
	"regexp"
	"strconv"
	"strings"

	"github.com/moby/buildkit/frontend/dockerfile/parser"
	"github.com/moby/buildkit/frontend/dockerfile/shell"
	"github.com/pkg/errors"
)

// Install is one INSTALL instruction.
//
// Until Expand is called, every string field holds the word as written in the
// Nixfile: quotes, escapes and ${VAR} references included, exactly like the
// fields of BuildKit's typed Dockerfile commands. Expand returns the final
// values.
type Install struct {
	Location []parser.Range
	// Installables are flake references (".#hello", "./sub#pkgs.app",
	// "path:./x#a", "github:o/r#x", "nixpkgs#hello") or, when File is set,
	// attribute paths in that file ("hello", "tools.jq"). Empty only with
	// File set, meaning the file's own value.
	Installables []string
	// File is the --file path in the build context; "" selects flake mode.
	File string
	// Args are --arg and --argstr, in order.
	Args []NixArg
	// Link is the directory the symlink tree of the installed paths goes to.
	// "" leaves it to the converter ("/" on FROM scratch, "/usr/local"
	// otherwise); "none" means no link tree.
	Link string
	// Priority resolves conflicting files in the link tree the way
	// nix-env --set-flag priority does: the LOWER number wins. Only
	// meaningful when HasPriority; final after Expand.
	Priority    int
	HasPriority bool
	// Impure evaluates without pure-eval restrictions (nix --impure).
	Impure bool
	// System is the Nix system to build for (x86_64-linux, ...); "" derives
	// it from the stage's target platform.
	System string
	// CommandIndex is how many of the stage's Commands come before this
	// INSTALL: an ARG in Commands[:CommandIndex] is in scope for it.
	CommandIndex int

	priority string // --priority as written; parsed by Expand
}

// NixArg is a --arg NAME=EXPR (a Nix expression) or, with String set,
// an --argstr NAME=VALUE (a plain string).
type NixArg struct {
	Name   string
	Value  string
	String bool
}

// installFlags are INSTALL's flags in the order they are listed to users.
var installFlags = []string{"file", "arg", "argstr", "link", "priority", "impure", "system"}

// flagHints answer the flags people bring from the nix CLI or from other
// Dockerfile instructions.
var flagHints = map[string]string{
	"-f":         "--file=<path> selects a Nix file; -f is the nix CLI spelling",
	"--platform": "use --system=<nix system>; without it INSTALL builds for the stage's target platform",
	"--expr":     "put the expression in a .nix file in the build context and use --file=<path>",
	"-A":         "with --file, list the attribute paths as words: INSTALL --file=default.nix hello",
	"--attr":     "with --file, list the attribute paths as words: INSTALL --file=default.nix hello",
}

var (
	reNixIdent  = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_'-]*$`)
	reNixSystem = regexp.MustCompile(`^[a-z0-9_]+-[a-z0-9_]+$`)
)

func flagList() string {
	return "--" + strings.Join(installFlags, ", --")
}

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
	if in == nil {
		in = &Install{}
	}
	in.Location = loc
	in.CommandIndex = len(st.Commands)
	for _, pr := range probs {
		p.errs.add(loc, pr.msg, pr.suggest)
	}
	if len(probs) == 0 {
		for _, pr := range checkInstall(in, p.staticValue) {
			p.errs.add(loc, pr.msg, pr.suggest)
		}
	}
	st.Installs = append(st.Installs, in)
	st.items = append(st.items, stageItem{node: node, install: in})
}

type problem struct{ msg, suggest string }

func parseInstall(original string, escape rune) (*Install, []problem) {
	_, rest := firstWord(original)
	words, err := splitWords(rest, escape)
	if err != nil {
		return nil, []problem{{msg: "INSTALL: " + err.Error(), suggest: "close every quote and ${...} on the same instruction"}}
	}
	in := &Install{}
	var probs []problem
	seen := map[string]bool{}
	flagsDone := false
	for i := 0; i < len(words); i++ {
		w := words[i]
		if flagsDone || !strings.HasPrefix(w, "-") || w == "-" {
			in.Installables = append(in.Installables, w)
			continue
		}
		if w == "--" {
			// Everything after -- is an installable, as in the nix CLI.
			flagsDone = true
			continue
		}
		name, val, hasVal := strings.Cut(w, "=")
		flag := strings.TrimPrefix(name, "--")
		if !strings.HasPrefix(name, "--") || !isInstallFlag(flag) {
			probs = append(probs, problem{msg: fmt.Sprintf("unknown flag %s for INSTALL", name), suggest: unknownFlagHint(name)})
			continue
		}
		if flag != "arg" && flag != "argstr" {
			if seen[flag] {
				probs = append(probs, problem{msg: fmt.Sprintf("--%s is given more than once", flag), suggest: "keep one"})
			}
			seen[flag] = true
		}
		if flag == "impure" {
			switch {
			case !hasVal || val == "true":
				in.Impure = true
			case val == "false":
				in.Impure = false
			default:
				probs = append(probs, problem{msg: fmt.Sprintf("--impure takes no value or true/false, got %q", val)})
			}
			continue
		}
		if !hasVal {
			// Accept the nix CLI spelling "--file path" too.
			if i+1 >= len(words) || strings.HasPrefix(words[i+1], "--") {
				probs = append(probs, problem{msg: fmt.Sprintf("--%s needs a value", flag), suggest: flagUsage(flag)})
				continue
			}
			i++
			val = words[i]
		}
		switch flag {
		case "file":
			in.File = val
		case "link":
			in.Link = val
		case "system":
			in.System = val
		case "priority":
			in.priority = val
			in.HasPriority = true
		case "arg", "argstr":
			n, v, ok := splitAssign(val, escape)
			if !ok {
				probs = append(probs, problem{
					msg:     fmt.Sprintf("--%s expects NAME=VALUE, got %q", flag, val),
					suggest: flagUsage(flag) + "; the nix CLI form --" + flag + " NAME VALUE is written --" + flag + " NAME=VALUE here",
				})
				continue
			}
			in.Args = append(in.Args, NixArg{Name: n, Value: v, String: flag == "argstr"})
		}
	}
	return in, probs
}

func isInstallFlag(name string) bool {
	for _, f := range installFlags {
		if f == name {
			return true
		}
	}
	return false
}

func unknownFlagHint(name string) string {
	valid := "valid flags: " + flagList()
	if h, ok := flagHints[name]; ok {
		return h + "; " + valid
	}
	opts := make([]string, len(installFlags))
	for i, f := range installFlags {
		opts[i] = "--" + f
	}
	if m, ok := closest(name, opts); ok {
		return "did you mean " + m + "? " + valid
	}
	return valid
}

func flagUsage(flag string) string {
	switch flag {
	case "file":
		return "--file=<path of a .nix file in the build context>"
	case "arg":
		return "--arg NAME=<Nix expression>, e.g. --arg enableX=true"
	case "argstr":
		return "--argstr NAME=<string>, e.g. --argstr version=1.2"
	case "link":
		return "--link=<absolute directory> or --link=none"
	case "priority":
		return "--priority=<integer>; lower wins"
	case "system":
		return "--system=<arch>-<os>, e.g. x86_64-linux"
	}
	return ""
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

// checkInstall validates an INSTALL with ev resolving its words. It also
// stores the resolved priority in in (when known), and normalises nothing
// else: callers decide what to keep.
func checkInstall(in *Install, ev evalFunc) []problem {
	var probs []problem
	add := func(msg, sug string) { probs = append(probs, problem{msg, sug}) }
	value := func(what, raw string) (string, bool) {
		v, known, err := ev(raw)
		if err != nil {
			add(fmt.Sprintf("%s %s: %v", what, raw, err), "")
			return "", false
		}
		return v, known
	}

	fileMode := in.File != ""
	if fileMode {
		if f, ok := value("--file", in.File); ok && f == "" {
			add("--file is empty", flagUsage("file"))
		}
	}
	if !fileMode && len(in.Installables) == 0 {
		add("INSTALL needs at least one installable",
			"e.g. INSTALL nixpkgs#hello, or INSTALL --file=default.nix to install the value of a Nix file")
	}
	if !fileMode && len(in.Args) > 0 {
		a := "--arg"
		if in.Args[0].String {
			a = "--argstr"
		}
		add(a+" needs --file: flake installables take no arguments, a flake's outputs are already-applied values",
			"evaluate a .nix file that is a function with --file=<path>, or add the configured package to the flake's outputs")
	}
	for _, raw := range in.Installables {
		v, ok := value("installable", raw)
		if !ok {
			continue
		}
		if fileMode {
			probs = append(probs, checkAttrPath(v)...)
		} else {
			probs = append(probs, checkFlakeRef(v)...)
		}
	}
	for _, a := range in.Args {
		flag := "--arg"
		if a.String {
			flag = "--argstr"
		}
		if n, ok := value(flag+" name", a.Name); ok && !reNixIdent.MatchString(n) {
			add(fmt.Sprintf("%s: %q is not a Nix identifier", flag, n), "argument names are letters, digits, _, ' and -, not starting with a digit")
		}
		if v, ok := value(flag+" value", a.Value); ok && v == "" && !a.String {
			add(fmt.Sprintf("--arg %s= has no Nix expression", a.Name), "use --argstr "+a.Name+"= to pass an empty string")
		}
	}
	if in.Link != "" {
		if l, ok := value("--link", in.Link); ok && l != "none" && !path.IsAbs(l) {
			add(fmt.Sprintf("--link must be an absolute directory or none, got %q", l), "e.g. --link=/usr/local")
		}
	}
	if in.HasPriority {
		if s, ok := value("--priority", in.priority); ok {
			n, err := strconv.Atoi(strings.TrimSpace(s))
			if err != nil {
				add(fmt.Sprintf("--priority must be an integer, got %q", s), "lower numbers win, as with nix-env --set-flag priority")
			} else {
				in.Priority = n
			}
		}
	}
	if in.System != "" {
		if s, ok := value("--system", in.System); ok && !reNixSystem.MatchString(s) {
			add(fmt.Sprintf("--system=%q is not a Nix system", s), "use <arch>-<os>, e.g. x86_64-linux or aarch64-linux")
		}
	}
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

// Expand returns a copy of the Install with ${VAR} in every word and flag
// value expanded by BuildKit's shell lexer using env, and validates the
// result. ARG scoping is the caller's job. Use a lexer with the file's escape
// token (Nixfile.Lex); nil means the default backslash. Errors are located at
// the INSTALL instruction.
func (i *Install) Expand(lex *shell.Lex, env shell.EnvGetter) (*Install, error) {
	out, _, err := i.ExpandWithMatches(lex, env)
	return out, err
}

// Matches are the variable names an expansion found and did not find in its
// environment, for BuildKit-style UndefinedVar warnings.
type Matches struct {
	Matched   map[string]struct{}
	Unmatched map[string]struct{}
}

// ExpandWithMatches is Expand that also reports which variables were used.
func (i *Install) ExpandWithMatches(lex *shell.Lex, env shell.EnvGetter) (*Install, Matches, error) {
	if lex == nil {
		lex = shell.NewLex(parser.DefaultEscapeToken)
	}
	if env == nil {
		env = emptyEnv{}
	}
	m := Matches{Matched: map[string]struct{}{}, Unmatched: map[string]struct{}{}}
	var firstErr error
	expand := func(raw string) string {
		res, err := lex.ProcessWordWithMatches(raw, env)
		if err != nil {
			if firstErr == nil {
				firstErr = errors.Wrapf(err, "INSTALL: failed to expand %s", raw)
			}
			return ""
		}
		for k := range res.Matched {
			m.Matched[k] = struct{}{}
		}
		for k := range res.Unmatched {
			m.Unmatched[k] = struct{}{}
		}
		return res.Result
	}

	out := *i
	out.Installables = make([]string, len(i.Installables))
	for k, w := range i.Installables {
		out.Installables[k] = expand(w)
	}
	out.Args = make([]NixArg, len(i.Args))
	for k, a := range i.Args {
		out.Args[k] = NixArg{Name: expand(a.Name), Value: expand(a.Value), String: a.String}
	}
	out.File = expand(i.File)
	out.Link = expand(i.Link)
	out.System = expand(i.System)
	out.priority = expand(i.priority)
	if firstErr != nil {
		return nil, m, parser.WithLocation(firstErr, i.Location)
	}
	if out.File == "" && i.File != "" {
		return nil, m, parser.WithLocation(errors.Errorf("INSTALL: --file=%s expands to an empty path", i.File), i.Location)
	}
	if out.Link == "" && i.Link != "" {
		return nil, m, parser.WithLocation(errors.Errorf("INSTALL: --link=%s expands to an empty path", i.Link), i.Location)
	}
	if out.System == "" && i.System != "" {
		return nil, m, parser.WithLocation(errors.Errorf("INSTALL: --system=%s expands to an empty value", i.System), i.Location)
	}

	// Re-check against the copy whose words are final values: ev returns
	// them unchanged.
	if probs := checkInstall(&out, func(v string) (string, bool, error) { return v, true, nil }); len(probs) > 0 {
		e := &Error{Msg: "INSTALL: " + probs[0].msg, Suggest: probs[0].suggest}
		return nil, m, parser.WithLocation(e, i.Location)
	}
	if out.Link != "" && out.Link != "none" {
		out.Link = path.Clean(out.Link)
	}
	return &out, m, nil
}
