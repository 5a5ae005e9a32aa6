package evaljobs

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/nix-frontend/nix-frontend/nix/system"
)

// JobAttr is the attribute name, and so the job's attr, of the installable
// at index i: "i0", "i1", ... Not plain numbers: nix-eval-jobs looks jobs up
// with Nix's findAlongAttrPath, which reads a numeric component as a list
// index.
func JobAttr(i int) string { return "i" + strconv.Itoa(i) }

// jobIndex is JobAttr's inverse; -1 for other names.
func jobIndex(attr string) int {
	n, ok := strings.CutPrefix(attr, "i")
	if !ok {
		return -1
	}
	i, err := strconv.Atoi(n)
	if err != nil || i < 0 || JobAttr(i) != attr {
		return -1
	}
	return i
}

// Expr returns the Nix expression both evaluators evaluate: an attribute set
// with one attribute per installable (see the package documentation). It
// uses only builtins present since Nix 2.4 (getFlake needs the "flakes"
// experimental feature).
func Expr(req Request) (string, error) {
	if err := req.validate(); err != nil {
		return "", err
	}
	var b strings.Builder
	b.WriteString("let\n")
	if req.System != "" {
		fmt.Fprintf(&b, "  system = %s;\n", nixString(req.System))
	} else {
		// Pure evaluation hides currentSystem; then assume the host's.
		fmt.Fprintf(&b, "  system = builtins.currentSystem or %s;\n", nixString(system.Host()))
	}
	b.WriteString(exprHelpers)

	ts := req.targets()
	flakes := map[string]string{}
	for _, t := range ts {
		if ref := t.flakeRef(); ref != "" {
			if _, ok := flakes[ref]; !ok {
				name := fmt.Sprintf("flake%d", len(flakes))
				flakes[ref] = name
				fmt.Fprintf(&b, "  %s = builtins.getFlake %s;\n", name, nixString(ref))
			}
		}
	}
	if req.File != "" {
		b.WriteString("  args = {\n")
		for _, a := range req.Args {
			if a.String {
				fmt.Fprintf(&b, "    %s = %s;\n", a.Name, nixString(a.Value))
			} else {
				// Newlines keep a trailing comment in the value from
				// swallowing the closing parenthesis.
				fmt.Fprintf(&b, "    %s = (\n%s\n);\n", a.Name, a.Value)
			}
		}
		b.WriteString("  };\n")
		fmt.Fprintf(&b, "  file = autoCall args (import (/. + %s));\n", nixString(req.File))
	}
	b.WriteString("in {\n")
	for i, t := range ts {
		fmt.Fprintf(&b, "  %s = ", nixString(JobAttr(i)))
		if t.FlakeRef != "" {
			cands, err := flakeCandidates(t.Attr)
			if err != nil {
				return "", err
			}
			fmt.Fprintf(&b, "flakeAttr %s %s [", flakes[t.flakeRef()], nixString(t.FlakeRef))
			for _, c := range cands {
				b.WriteString(" " + c)
			}
			b.WriteString(" ];\n")
			continue
		}
		p, err := ParseAttrPath(t.Attr)
		if err != nil {
			return "", err
		}
		what := fmt.Sprintf("'%s'", req.File)
		if len(p) > 0 {
			what = fmt.Sprintf("attribute '%s' of '%s'", t.Attr, req.File)
		}
		fmt.Fprintf(&b, "fileAttr args %s %s %s file;\n", nixString(what), nixString(t.Attr), nixList(p))
	}
	b.WriteString("}\n")
	return b.String(), nil
}

// flakeCandidates lists, as Nix list expressions, the attribute paths `nix
// build` tries for a fragment, in order (InstallableFlake's
// getActionableAttrPaths).
func flakeCandidates(frag string) ([]string, error) {
	if frag == "" {
		return []string{`[ "packages" system "default" ]`, `[ "defaultPackage" system ]`}, nil
	}
	if strings.HasPrefix(frag, ".") {
		p, err := ParseAttrPath(frag[1:])
		if err != nil {
			return nil, err
		}
		return []string{nixList(p)}, nil
	}
	p, err := ParseAttrPath(frag)
	if err != nil {
		return nil, err
	}
	rest := strings.TrimPrefix(nixList(p), "[")
	return []string{
		`[ "packages" system` + rest,
		`[ "legacyPackages" system` + rest,
		nixList(p),
	}, nil
}

// exprHelpers are the functions Expr's attributes use. The error messages
// are Nix's own, so users see what `nix build` would have told them.
const exprHelpers = `
  isDrv = v: builtins.isAttrs v && (v.type or null) == "derivation";
  showPath = p: builtins.concatStringsSep "." p;
  hasPath = p: v: p == [ ] || (builtins.isAttrs v && builtins.hasAttr (builtins.head p) v
    && hasPath (builtins.tail p) (builtins.getAttr (builtins.head p) v));
  getPath = p: v: builtins.foldl' (a: n: builtins.getAttr n a) v p;
  firstPath = cs: v: if cs == [ ] then null
    else if hasPath (builtins.head cs) v then builtins.head cs
    else firstPath (builtins.tail cs) v;
  showCandidates = cs:
    let
      qs = map (c: "'" + showPath c + "'") cs;
      n = builtins.length qs;
    in if n == 1 then builtins.head qs
    else builtins.concatStringsSep ", " (builtins.genList (builtins.elemAt qs) (n - 1))
      + " or " + builtins.elemAt qs (n - 1);

  # Flake outputs: the first candidate attribute path that exists.
  flakeAttr = flake: ref: cs:
    let p = firstPath cs flake; in
    if p == null then throw "flake '${ref}' does not provide attribute ${showCandidates cs}"
    else let v = getPath p flake; in
      if isDrv v then v else throw "flake output attribute '${showPath p}' is not a derivation";

  # nix-build's auto-calling: a function is called with the arguments it
  # declares. builtins.functionArgs cannot tell "{ ... }:" from "x:", so a
  # function without declared arguments gets all of them.
  autoCall = args: f:
    if builtins.isFunction f then
      let
        fa = builtins.functionArgs f;
        missing = builtins.filter (n: !fa.${n} && !(args ? ${n})) (builtins.attrNames fa);
      in
      if missing != [ ] then
        throw "cannot evaluate a function that has an argument without a value ('${builtins.head missing}'); pass it with --arg or --argstr"
      else if fa == { } then f args
      else f (builtins.intersectAttrs fa args)
    else f;

  # nix-build -A: auto-call at every step; numbers index lists.
  fileAttr = args: what: attr: p: v0:
    let
      step = a: n:
        let a' = autoCall args a; in
        if builtins.isAttrs a' && builtins.hasAttr n a' then builtins.getAttr n a'
        else if builtins.isList a' && builtins.match "0|[1-9][0-9]*" n != null
          && builtins.fromJSON n < builtins.length a' then builtins.elemAt a' (builtins.fromJSON n)
        else throw "attribute '${n}' in selection path '${attr}' not found";
      v = autoCall args (builtins.foldl' step v0 p);
    in if isDrv v then v else throw "${what} does not evaluate to a derivation";
`

// infoExpr extracts what a nix-eval-jobs line reports from a derivation v.
func infoExpr(meta bool) string {
	s := `{
    drvPath = v.drvPath;
    name = v.name;
    system = v.system or "";
    outputs = builtins.listToAttrs (map (o: { name = o; value = (builtins.getAttr o v).outPath; }) (v.outputs or [ "out" ]));`
	if meta {
		// nix-eval-jobs keeps the meta attributes Nix's checkMeta accepts.
		s += `
    meta = let
      ok = x: if builtins.isList x then builtins.all ok x
        else if builtins.isAttrs x then !(x ? outPath) && builtins.all ok (builtins.attrValues x)
        else builtins.isInt x || builtins.isBool x || builtins.isString x || builtins.isFloat x;
      m = v.meta or { };
    in builtins.listToAttrs (builtins.concatMap
      (n: if ok m.${n} then [ { name = n; value = m.${n}; } ] else [ ]) (builtins.attrNames m));`
	}
	return s + "\n  }"
}

// nixString quotes s as a Nix string literal.
func nixString(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch r {
		case '"', '\\', '$':
			b.WriteByte('\\')
			b.WriteRune(r)
		case '\n':
			b.WriteString(`\n`)
		case '\r':
			b.WriteString(`\r`)
		case '\t':
			b.WriteString(`\t`)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}

func nixList(ss []string) string {
	var b strings.Builder
	b.WriteString("[")
	for _, s := range ss {
		b.WriteString(" " + nixString(s))
	}
	b.WriteString(" ]")
	return b.String()
}
