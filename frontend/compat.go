package frontend

import (
	"fmt"
	"path"
	"strings"
)

// Compatibility mode: a flake.nix or another .nix file given as the build
// file (docker buildx build -f flake.nix, with `# syntax=` as its first
// line, which Nix reads as a comment) builds like the peer frontends: the
// image is the closure of one package with its link tree, and its program as
// the entrypoint. The file must be at the root of the build context.

// isNixExpression says whether the build file is a Nix file rather than a
// Nixfile.
func isNixExpression(filename string) bool {
	return strings.HasSuffix(filename, ".nix")
}

// compatNixfile is the Nixfile equivalent of building filename: the flake's
// package (target names it, else the default package) or the file's
// attribute (target names it, else the file's value).
func compatNixfile(filename, target string) []byte {
	base := path.Base(filename)
	install := "INSTALL --file=" + quoteWord(base)
	if base == "flake.nix" {
		installable := "."
		if target != "" {
			installable = ".#" + target
		}
		install = "INSTALL " + quoteWord(installable)
	} else if target != "" {
		install += " " + quoteWord(target)
	}
	return []byte(fmt.Sprintf("# Built from %s by nix-frontend's compatibility mode.\nFROM scratch\n%s\n", base, install))
}

// quoteWord quotes a word for a Nixfile line when it needs it.
func quoteWord(s string) string {
	if s != "" && !strings.ContainsAny(s, " \t'\"$\\") {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
