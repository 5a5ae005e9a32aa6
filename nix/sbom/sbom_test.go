package sbom

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/nix-frontend/nix-frontend/nix/protocol"
)

func TestLicense(t *testing.T) {
	cases := []struct{ meta, want string }{
		{`{"license":{"spdxId":"GPL-3.0-or-later","fullName":"GNU GPL v3+"}}`, "GPL-3.0-or-later"},
		{`{"license":[{"spdxId":"MIT"},{"spdxId":"Apache-2.0"}]}`, "MIT AND Apache-2.0"},
		{`{"license":"MIT"}`, "MIT"},
		{`{"description":"no license"}`, ""},
		{``, ""},
	}
	for _, c := range cases {
		if got := License(json.RawMessage(c.meta)); got != c.want {
			t.Errorf("License(%s) = %q, want %q", c.meta, got, c.want)
		}
	}
}

func TestDocument(t *testing.T) {
	hello := "/nix/store/0c5w3dzs5lvhpnqjkqd4w8pkjcg0x0yc-hello-2.12"
	bb := "/nix/store/71fc7s32zl20dc955bhghy5dvalm7ndz-busybox"
	hash := "sha256-OcU6Ukch5X1t7T7u+/jHpxnPakm8y6hs6SlcgvXVWkk="
	doc := New("hello image", "nix-frontend test", []protocol.PathInfo{
		{Path: hello, NarHash: hash, References: []string{bb, hello}},
		{Path: bb, NarHash: hash},
	}, []Package{{DrvPath: "/nix/store/0c5w3dzs5lvhpnqjkqd4w8pkjcg0x0yc-hello-2.12.drv", Outputs: []string{hello}, Meta: json.RawMessage(`{"license":{"spdxId":"GPL-3.0-or-later"}}`)}},
		time.Unix(0, 0))
	var buf bytes.Buffer
	if err := Write(doc, &buf); err != nil {
		t.Fatal(err)
	}
	s := buf.String()
	for _, want := range []string{`"spdxVersion": "SPDX-2.3"`, `"name": "hello"`, `"versionInfo": "2.12"`,
		`"licenseDeclared": "GPL-3.0-or-later"`, `built from /nix/store/0c5w3dzs5lvhpnqjkqd4w8pkjcg0x0yc-hello-2.12.drv`,
		`"relationshipType": "DESCRIBES"`, `"relationshipType": "DEPENDS_ON"`, `"created": "1970-01-01T00:00:00Z"`,
		`pkg:nix/hello@2.12?store_path=%2Fnix%2Fstore%2F0c5w3dzs5lvhpnqjkqd4w8pkjcg0x0yc-hello-2.12`,
		// The NAR hash in hexadecimal.
		`"checksumValue": "39c53a524721e57d6ded3eeefbf8c7a719cf6a49bccba86ce9295c82f5d55a49"`} {
		if !strings.Contains(s, want) {
			t.Errorf("document lacks %s:\n%s", want, s)
		}
	}
	// A store path refers to itself; the document does not say so.
	if strings.Count(s, `"DEPENDS_ON"`) != 1 {
		t.Errorf("want one DEPENDS_ON:\n%s", s)
	}
}
