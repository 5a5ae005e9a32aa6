package nixfile

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/moby/buildkit/frontend/dockerfile/shell"
)

// FuzzParse checks that Parse never panics, that it fails only with *Errors,
// and that a Nixfile it accepts transpiles to a Dockerfile BuildKit accepts,
// line for line.
func FuzzParse(f *testing.F) {
	files, _ := filepath.Glob("testdata/*/*.Nixfile")
	for _, file := range files {
		if dt, err := os.ReadFile(file); err == nil {
			f.Add(dt)
		}
	}
	for _, s := range []string{
		"FROM scratch\nINSTALL nixpkgs#hello\n",
		"FROM a AS b\r\nINSTALL --file=x.nix --arg a='{ }' y\r\n",
		"# escape=`\nFROM a `\n AS b\nINSTALL `\n x#y\n",
		"\xEF\xBB\xBFFROM --platform=\"linux/amd64\" a\nINSTALL \"${X:-a b}\"\n",
		"FROM a\nRUN <<EOT\nINSTALL x\nEOT\nINSTALL y\n",
		"ARG B=x\nFROM --platform=$P ${B} AS s\nARG C\nINSTALL --link=/a --priority=${C} nixpkgs#$C\nFROM s\nINSTALL .\n",
		"FROM --platform=a\\ b -- x as y\nINSTALL --impure --system=x86_64-linux -- z\n",
		"FROM a\n# check=skip=all\nINSTALL \\\n\n x \\\n# c\n y\n",
		// BuildKit reads flags byte by byte: non-ASCII values must survive.
		"FROM --platform=\"linux/\u00e9\" a\nINSTALL x\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, dt []byte) {
		nf, err := Parse("Nixfile", dt)
		if err != nil {
			var errs *Errors
			if !errors.As(err, &errs) || len(errs.List) == 0 {
				t.Fatalf("Parse failed with %T without problems: %v", err, err)
			}
			if strings.Contains(err.Error(), "internal error") {
				t.Fatalf("Parse panicked: %v", err)
			}
			if errs.First() == nil || err.Error() == "" {
				t.Fatal("empty error")
			}
			return
		}
		checkTranspiled(t, nf)
		env := shell.EnvsFromSlice([]string{"A=a", "EMPTY="})
		for _, st := range nf.Stages {
			for _, in := range st.Installs {
				_, _ = in.Expand(nf.Lex(), env)
			}
		}
		_, _ = nf.CheckConfig()
	})
}
