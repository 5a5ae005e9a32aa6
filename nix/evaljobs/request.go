// Package evaljobs evaluates the installables of a Nixfile to derivations.
//
// The evaluation step runs nix-eval-jobs when the Nix image ships it, and
// otherwise Evaluate, which drives the image's own `nix` CLI (Nix 2.8 and
// later). Both write the same JSON lines, one per installable, and ReadJobs
// parses either.
//
// Both evaluators evaluate the same Nix expression, built by Expr: an
// attribute set with one attribute per installable, named after the
// installable's index in the request ("i0", "i1", ...; see JobAttr).
// nix-eval-jobs emits one line per derivation in that set, so a job's attr
// (and attrPath[0]) names the installable it belongs to; MatchJobs puts the
// lines back in request order. Doing the attribute lookup in our own expression, rather
// than with nix-eval-jobs' --flake, lets one process evaluate installables
// from several flakes and files at once, and gives both evaluators the same
// semantics on every Nix version:
//
//   - Flake fragments are looked up as `nix build` does: "hello" tries
//     packages.<system>.hello, legacyPackages.<system>.hello, then hello; an
//     empty fragment tries packages.<system>.default, then
//     defaultPackage.<system>; a fragment starting with "." is an exact
//     attribute path (as in current Nix).
//   - Files are evaluated as nix-build does: the file's value is called with
//     the --arg/--argstr arguments if it is a function, and again at every
//     step of the attribute path; a number in the path indexes a list. One
//     difference: Nix cannot tell `{ ... }:` from `x:` in an expression, so
//     a function that declares no arguments is called with all of them
//     (nix-build would pass them to `{ ... }:` and not call `x:`).
//   - Every installable must evaluate to a derivation.
//   - Evaluation is pure, as `nix build` evaluates flakes, only when every
//     flake reference is locked (see Request.Pure and LockRequest);
//     otherwise, and always with files, it is impure, as nix-build is.
//
// Flakes are read with builtins.getFlake, which never updates a lock file:
// a flake with inputs needs an up-to-date flake.lock.
package evaljobs

import (
	"errors"
	"fmt"
	"net/url"
	"path"
	"strings"
)

// Installable is one thing to build: a flake output or an attribute of a
// Nix file.
type Installable struct {
	// FlakeRef is the flake reference without fragment, e.g. "path:/src",
	// "github:owner/repo" or "nixpkgs". Empty for an attribute of
	// Request.File.
	FlakeRef string
	// Attr is the flake fragment (the part after '#', "" for the default
	// package) or, for a file, the attribute path ("" for the file's value).
	// Components are separated by dots; quote a component that contains a
	// dot: `packages.x86_64-linux."foo.bar"`.
	Attr string
	// Outputs is the output selection after '^' ("out", "dev", or "*"), nil
	// when none was given. Evaluation always reports every output; building
	// the selected ones is the caller's business.
	Outputs []string
	// Locked is FlakeRef pinned by LockRequest (with a narHash), which the
	// evaluation reads; messages show FlakeRef as the user wrote it.
	Locked string
}

// flakeRef is the reference the evaluation reads.
func (i Installable) flakeRef() string {
	if i.Locked != "" {
		return i.Locked
	}
	return i.FlakeRef
}

// String returns the installable as a user would write it.
func (i Installable) String() string {
	s := i.Attr
	if i.FlakeRef != "" {
		s = i.FlakeRef + "#" + i.Attr
	}
	if len(i.Outputs) > 0 {
		s += "^" + strings.Join(i.Outputs, ",")
	}
	return s
}

// Arg is a --arg (Nix expression) or --argstr (String) argument for a file's
// function.
type Arg struct {
	Name, Value string
	String      bool
}

// Request describes one evaluation: the installables of an INSTALL line.
type Request struct {
	// Installables are evaluated in order; a result's attr is JobAttr of
	// its index here. An installable without FlakeRef is an attribute of
	// File.
	Installables []Installable
	// File is the absolute path of a .nix file (or of a directory with a
	// default.nix). When set and Installables is empty, the file's value
	// itself is the only installable.
	File string
	// Args are passed to File's function; flakes take no arguments.
	Args []Arg
	// Impure allows impure evaluation (environment variables, absolute
	// paths, builtins.currentSystem) even where it would be pure: see Pure.
	Impure bool
	// System is the Nix system to evaluate for ("x86_64-linux"); it picks
	// packages.<system> and sets builtins.currentSystem. Empty means the
	// system Nix is configured for, or in pure evaluation (where Nix hides
	// currentSystem) the system of the machine this code runs on.
	System string
	// Meta includes each derivation's meta attributes (as nix-eval-jobs
	// --meta: only attributes made of strings, numbers, booleans, lists and
	// attribute sets are kept).
	Meta bool
}

// targets returns the installables with the implicit "whole file" one.
func (r Request) targets() []Installable {
	if len(r.Installables) == 0 && r.File != "" {
		return []Installable{{}}
	}
	return r.Installables
}

// Targets returns what is evaluated, in result order: Installables, or the
// single value of File when there are none.
func (r Request) Targets() []Installable {
	return append([]Installable(nil), r.targets()...)
}

func (r Request) validate() error {
	ts := r.targets()
	if len(ts) == 0 {
		return errors.New("evaljobs: nothing to evaluate: no installables and no file")
	}
	if r.File != "" && !path.IsAbs(r.File) {
		return fmt.Errorf("evaljobs: file %q must be an absolute path", r.File)
	}
	for i, t := range ts {
		if t.FlakeRef == "" && r.File == "" {
			return fmt.Errorf("evaljobs: installable %d (%q) has no flake reference and the request has no file", i, t.Attr)
		}
		attr := t.Attr
		if t.FlakeRef != "" {
			attr = strings.TrimPrefix(attr, ".")
		}
		if _, err := ParseAttrPath(attr); err != nil {
			return fmt.Errorf("evaljobs: installable %d (%s): %w", i, t, err)
		}
	}
	for _, a := range r.Args {
		if !isIdent(a.Name) {
			return fmt.Errorf("evaljobs: argument name %q is not a Nix identifier", a.Name)
		}
	}
	return nil
}

// Pure reports whether the request is evaluated in pure mode, as `nix build`
// evaluates flakes: only when it has no file installables (nix-build is
// always impure), Impure is not set and every flake reference is locked
// (has a narHash; see LockRequest). builtins.getFlake refuses unlocked
// references in pure mode, so anything else is evaluated impurely.
func (r Request) Pure() bool {
	if r.Impure {
		return false
	}
	for _, t := range r.targets() {
		if t.FlakeRef == "" || !IsLocked(t.flakeRef()) {
			return false
		}
	}
	return true
}

func (r Request) hasFlakes() bool {
	for _, t := range r.targets() {
		if t.FlakeRef != "" {
			return true
		}
	}
	return false
}

// IsLocked reports whether a flake reference pins its content with a
// narHash, which is what lets builtins.getFlake read it in pure mode.
func IsLocked(ref string) bool {
	_, q, ok := strings.Cut(ref, "?")
	if !ok {
		return false
	}
	v, err := url.ParseQuery(q)
	return err == nil && v.Get("narHash") != ""
}

// splitOutputs splits the output selection off an installable word, as Nix
// does first: "app^out,dev" is app with outputs out and dev.
func splitOutputs(word string) (string, []string, error) {
	i := strings.LastIndexByte(word, '^')
	if i < 0 || strings.Contains(word[i:], "/") {
		return word, nil, nil
	}
	spec := word[i+1:]
	if spec == "" {
		return "", nil, fmt.Errorf("%q: empty output selection after '^'", word)
	}
	return word[:i], strings.Split(spec, ","), nil
}

// FileInstallable parses an installable word of an INSTALL line with
// --file: an attribute path, optionally with an output selection
// ("lib.app^out,dev").
func FileInstallable(word string) (Installable, error) {
	attr, outputs, err := splitOutputs(word)
	if err != nil {
		return Installable{}, err
	}
	if _, err := ParseAttrPath(attr); err != nil {
		return Installable{}, fmt.Errorf("%q: %w", word, err)
	}
	return Installable{Attr: attr, Outputs: outputs}, nil
}

// ResolveFlakeRef parses an installable word of a Nixfile, such as
// ".#hello", "./sub#app^out" or "github:owner/repo#x", and makes a path
// reference absolute against contextDir, the absolute directory where the
// build context is mounted:
//
//	.#hello         → path:/src#hello
//	./sub#a         → path:/src/sub#a
//	path:./x#a      → path:/src/x#a
//	/abs/dir#a      → path:/abs/dir#a
//	github:o/r#x    → github:o/r#x    (unchanged)
//	nixpkgs#hello   → nixpkgs#hello   (registry name, unchanged)
//	.               → path:/src with Attr "" (the default package)
//
// Relative paths may not leave contextDir. Query parameters (?dir=sub) are
// kept. Local paths become path: references, not git+file:, because the
// build context is a plain directory: files that git does not track are part
// of the flake, as they are in the context.
func ResolveFlakeRef(word, contextDir string) (Installable, error) {
	if word == "" {
		return Installable{}, errors.New("empty flake reference")
	}
	if !path.IsAbs(contextDir) {
		return Installable{}, fmt.Errorf("context directory %q is not absolute", contextDir)
	}
	rest, outputs, err := splitOutputs(word)
	if err != nil {
		return Installable{}, err
	}
	inst := Installable{Outputs: outputs}
	ref, frag, _ := strings.Cut(rest, "#")
	if ref == "" {
		return Installable{}, fmt.Errorf("%q: missing flake reference before '#'", word)
	}
	f, err := url.PathUnescape(frag)
	if err != nil {
		return Installable{}, fmt.Errorf("%q: bad fragment: %w", word, err)
	}
	inst.Attr = f
	if _, err := ParseAttrPath(strings.TrimPrefix(f, ".")); err != nil {
		return Installable{}, fmt.Errorf("%q: %w", word, err)
	}

	base, query, hasQuery := strings.Cut(ref, "?")
	if hasQuery {
		query = "?" + query
	}
	var dir string
	switch {
	case base == "." || base == ".." || strings.HasPrefix(base, "./") || strings.HasPrefix(base, "../"):
		dir = base
	case strings.HasPrefix(base, "path:"):
		dir = strings.TrimPrefix(base, "path:")
		if dir == "" {
			return Installable{}, fmt.Errorf("%q: empty path", word)
		}
	case strings.HasPrefix(base, "/"):
		dir = base
	default:
		inst.FlakeRef = ref
		return inst, nil
	}
	if path.IsAbs(dir) {
		dir = path.Clean(dir)
	} else {
		dir = path.Join(contextDir, dir)
		if dir != path.Clean(contextDir) && !strings.HasPrefix(dir, strings.TrimSuffix(path.Clean(contextDir), "/")+"/") {
			return Installable{}, fmt.Errorf("%q: points outside the build context", word)
		}
	}
	inst.FlakeRef = "path:" + dir + query
	return inst, nil
}

// ParseAttrPath splits an attribute path at dots, honouring double quotes
// around components that contain dots: `a."b.c".d` → [a b.c d]. An empty
// string is the empty path.
func ParseAttrPath(s string) ([]string, error) {
	if s == "" {
		return nil, nil
	}
	var (
		parts  []string
		cur    strings.Builder
		quoted bool
	)
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"':
			quoted = !quoted
		case c == '.' && !quoted:
			if cur.Len() == 0 {
				return nil, fmt.Errorf("attribute path %q has an empty component", s)
			}
			parts = append(parts, cur.String())
			cur.Reset()
		default:
			cur.WriteByte(c)
		}
	}
	if quoted {
		return nil, fmt.Errorf("attribute path %q has an unterminated quote", s)
	}
	if cur.Len() == 0 {
		return nil, fmt.Errorf("attribute path %q has an empty component", s)
	}
	return append(parts, cur.String()), nil
}

func isIdent(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c == '_':
		case i > 0 && (c >= '0' && c <= '9' || c == '-' || c == '\''):
		default:
			return false
		}
	}
	return true
}
