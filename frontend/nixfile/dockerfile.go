package nixfile

import (
	"bytes"
	"strings"

	"github.com/moby/buildkit/frontend/dockerfile/parser"
)

// Dockerfile returns the Nixfile as a Dockerfile with the same line numbers,
// for BuildKit's own Dockerfile frontend:
//
//   - every line of an INSTALL instruction (continuation lines included)
//     becomes blank;
//   - the FROM of each stage that has INSTALL lines becomes
//     FROM [--platform=...] <contextName(stage)> [AS <name>] on its first
//     line, its other lines blank, so that the stage starts from the named
//     context holding the base image plus the installed store paths.
//
// Everything else, parser directives included, is kept byte for byte, so
// BuildKit's errors, warnings and source maps point at the Nixfile's lines.
func (n *Nixfile) Dockerfile(contextName func(*Stage) string) []byte {
	lines := splitLines(n.Source)
	blank := func(start, end int) {
		for l := start; l <= end && l <= len(lines); l++ {
			if l >= 1 {
				lines[l-1] = lineEnding(lines[l-1])
			}
		}
	}
	for _, st := range n.Stages {
		for _, in := range st.Installs {
			start, end := lineSpan(in.Location)
			blank(start, end)
		}
		if len(st.Installs) == 0 || st.from == nil || contextName == nil {
			continue
		}
		start, end := st.from.StartLine, st.from.EndLine
		if start < 1 || start > len(lines) {
			continue
		}
		first := n.rewriteFrom(st, contextName(st)) + string(lineEnding(lines[start-1]))
		blank(start, end)
		lines[start-1] = []byte(first)
	}
	return bytes.Join(lines, nil)
}

// rewriteFrom keeps the FROM keyword, the flags and the AS part, so
// BuildKit's checks of them (casing, --platform rules) still apply.
// BuildKit's parser gives the flags without their quotes; they are quoted
// again, which keeps their meaning: BuildKit expands variables in a flag's
// value however it was quoted.
func (n *Nixfile) rewriteFrom(st *Stage, ctx string) string {
	kw, _ := firstWord(st.from.Original)
	parts := []string{kw}
	for _, f := range st.from.Flags {
		name, value, ok := strings.Cut(f, "=")
		if ok {
			f = name + "=" + quoteFlag(value, n.EscapeToken)
		}
		parts = append(parts, f)
	}
	parts = append(parts, ctx)
	var args []string
	for a := st.from.Next; a != nil; a = a.Next {
		args = append(args, a.Value)
	}
	if len(args) == 3 {
		parts = append(parts, args[1], args[2])
	}
	return strings.Join(parts, " ")
}

// splitLines splits like BuildKit's scanner: at '\n', endings kept.
func splitLines(dt []byte) [][]byte {
	var out [][]byte
	for len(dt) > 0 {
		i := bytes.IndexByte(dt, '\n')
		if i < 0 {
			out = append(out, bytes.Clone(dt))
			break
		}
		out = append(out, bytes.Clone(dt[:i+1]))
		dt = dt[i+1:]
	}
	return out
}

func lineEnding(l []byte) []byte {
	switch {
	case bytes.HasSuffix(l, []byte("\r\n")):
		return []byte("\r\n")
	case bytes.HasSuffix(l, []byte("\n")):
		return []byte("\n")
	}
	return nil
}

func lineSpan(loc []parser.Range) (int, int) {
	if len(loc) == 0 {
		return 0, -1
	}
	return loc[0].Start.Line, loc[len(loc)-1].End.Line
}

// quoteFlag puts a flag's value, as BuildKit's parser gives it, back in
// double quotes for that parser, escaping what is special inside them.
// BuildKit reads a flag byte by byte and turns each byte into the rune of
// that number (split_command.go: rune(line[pos])), so a value holds only
// runes below 256; they are written back as the bytes they were, and
// BuildKit's second reading gives the same value as its first.
func quoteFlag(s string, escape rune) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		if r == '"' || r == escape {
			b.WriteRune(escape)
		}
		if r < 0x100 {
			b.WriteByte(byte(r))
		} else {
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}
