package nixfile

import (
	"bytes"
	"testing"
)

func TestDockerfile(t *testing.T) {
	tests := []struct{ name, src, want string }{
		{"no install keeps everything",
			"# syntax=x\nFROM alpine AS a\nRUN echo\n",
			"# syntax=x\nFROM alpine AS a\nRUN echo\n"},
		{"install and from",
			"# syntax=x\n# check=error=true\nFROM alpine AS a\nINSTALL nixpkgs#jq\nRUN jq\n",
			"# syntax=x\n# check=error=true\nFROM nixfile-stage-0 AS a\n\nRUN jq\n"},
		{"casing of FROM and AS kept",
			"from alpine as Build\ninstall nixpkgs#jq\n",
			"from nixfile-stage-0 as Build\n\n"},
		{"platform flag kept, quoted",
			"FROM --platform=\"$BUILDPLATFORM\" alpine\nINSTALL nixpkgs#jq",
			"FROM --platform=\"$BUILDPLATFORM\" nixfile-stage-0\n"},
		{"multi-line FROM and INSTALL",
			"FROM \\\n  --platform=linux/amd64 \\\n  alpine \\\n  AS a\nINSTALL \\\n  nixpkgs#jq \\\n  nixpkgs#hello\nCMD [\"jq\"]\n",
			"FROM --platform=\"linux/amd64\" nixfile-stage-0 AS a\n\n\n\n\n\n\nCMD [\"jq\"]\n"},
		{"CRLF line endings",
			"FROM alpine\r\nINSTALL nixpkgs#jq \\\r\n nixpkgs#a\r\nRUN x\r\n",
			"FROM nixfile-stage-0\r\n\r\n\r\nRUN x\r\n"},
		{"byte order mark",
			"\xEF\xBB\xBFFROM alpine\nINSTALL nixpkgs#jq\n",
			"FROM nixfile-stage-0\n\n"},
		{"only stages with INSTALL",
			"FROM alpine AS a\nRUN x\nFROM a AS b\nINSTALL nixpkgs#jq\nFROM b\n",
			"FROM alpine AS a\nRUN x\nFROM nixfile-stage-1 AS b\n\nFROM b\n"},
		{"escape token",
			"# escape=`\nFROM alpine `\n  AS a\nINSTALL nixpkgs#jq `\n  nixpkgs#x\n",
			"# escape=`\nFROM nixfile-stage-0 AS a\n\n\n\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			nf, err := Parse("Nixfile", []byte(tt.src))
			if err != nil {
				t.Fatal(err)
			}
			got := nf.Dockerfile(testContextName)
			if string(got) != tt.want {
				t.Errorf("got\n%q\nwant\n%q", got, tt.want)
			}
			checkTranspiled(t, nf)
		})
	}
}

// The transpiled text must not depend on the Nixfile being parsed again, and
// Dockerfile must not change the Nixfile.
func TestDockerfileIsPure(t *testing.T) {
	src := []byte("FROM alpine\nINSTALL nixpkgs#jq\n")
	nf, err := Parse("Nixfile", src)
	if err != nil {
		t.Fatal(err)
	}
	a := nf.Dockerfile(testContextName)
	b := nf.Dockerfile(testContextName)
	if !bytes.Equal(a, b) || !bytes.Equal(nf.Source, []byte("FROM alpine\nINSTALL nixpkgs#jq\n")) {
		t.Errorf("Dockerfile is not repeatable or changed the source")
	}
}
