package sbom

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func TestNameVersion(t *testing.T) {
	cases := []struct{ in, name, version string }{
		{"/nix/store/0c5w3dzs5lvhpnqjkqd4w8pkjcg0x0yc-hello-2.12.1", "hello", "2.12.1"},
		{"/nix/store/0c5w3dzs5lvhpnqjkqd4w8pkjcg0x0yc-busybox", "busybox", ""},
		{"/nix/store/0c5w3dzs5lvhpnqjkqd4w8pkjcg0x0yc-python3.11-requests-2.31.0", "python3.11-requests", "2.31.0"},
		{"/nix/store/0c5w3dzs5lvhpnqjkqd4w8pkjcg0x0yc-glibc-2.38-27-bin", "glibc", "2.38-27-bin"},
	}
	for _, c := range cases {
		if n, v := NameVersion(c.in); n != c.name || v != c.version {
			t.Errorf("NameVersion(%s) = %q, %q; want %q, %q", c.in, n, v, c.name, c.version)
		}
	}
}

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

func TestNarSHA256(t *testing.T) {
	// The same hash in both of Nix's notations (from nix hash to-base32
	// and to-sri of one NAR hash).
	const want = "39c53a524721e57d6ded3eeefbf8c7a719cf6a49bccba86ce9295c82f5d55a49"
	for _, h := range []string{
		"sha256-OcU6Ukch5X1t7T7u+/jHpxnPakm8y6hs6SlcgvXVWkk=",
		"sha256:0jasspsq4p19x5naijxw95mcy6d7qzwgpviyxmnpvr918x93mi9r",
	} {
		if got, ok := narSHA256(h); !ok || got != want {
			t.Errorf("narSHA256(%s) = %q, %v; want %s", h, got, ok, want)
		}
	}
	if _, ok := narSHA256("md5-abc"); ok {
		t.Error("accepted an md5 hash")
	}
}

func TestDocument(t *testing.T) {
	hello := "/nix/store/0c5w3dzs5lvhpnqjkqd4w8pkjcg0x0yc-hello-2.12"
	bb := "/nix/store/71fc7s32zl20dc955bhghy5dvalm7ndz-busybox"
	doc := New("hello image", "nix-frontend test", []Path{
		{Path: hello, NarHash: "sha256-OcU6Ukch5X1t7T7u+/jHpxnPakm8y6hs6SlcgvXVWkk=", References: []string{bb, hello}},
		{Path: bb, NarHash: "sha256-OcU6Ukch5X1t7T7u+/jHpxnPakm8y6hs6SlcgvXVWkk="},
	}, []Package{{DrvPath: "/nix/store/x-hello-2.12.drv", Outputs: []string{hello}, Meta: json.RawMessage(`{"license":{"spdxId":"GPL-3.0-or-later"}}`)}},
		time.Unix(0, 0))
	dt, err := doc.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	s := string(dt)
	for _, want := range []string{`"spdxVersion": "SPDX-2.3"`, `"name": "hello"`, `"versionInfo": "2.12"`,
		`"licenseDeclared": "GPL-3.0-or-later"`, `built from /nix/store/x-hello-2.12.drv`, `"relationshipType": "DESCRIBES"`,
		`"relationshipType": "DEPENDS_ON"`, `"created": "1970-01-01T00:00:00Z"`, `pkg:nix/hello@2.12`} {
		if !strings.Contains(s, want) {
			t.Errorf("document lacks %s:\n%s", want, s)
		}
	}
}
