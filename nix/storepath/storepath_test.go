package storepath

import (
	"strings"
	"testing"
)

func TestValidate(t *testing.T) {
	good := []string{
		"/nix/store/0c5w3dzs5lvhpnqjkqd4w8pkjcg0x0yc-hello-2.12",
		"/nix/store/0c5w3dzs5lvhpnqjkqd4w8pkjcg0x0yc-a+b_c?d=e.f-1",
	}
	for _, p := range good {
		if err := Validate(p); err != nil {
			t.Errorf("Validate(%q) = %v", p, err)
		}
	}
	bad := []string{
		"", "/etc/passwd", "/nix/store/short-hello",
		"/nix/store/0c5w3dzs5lvhpnqjkqd4w8pkjcg0x0yc-hello/bin",    // below a store path
		"/nix/store/0c5w3dzs5lvhpnqjkqd4w8pkjcg0x0ye-hello",        // 'e' is not in Nix's base32
		"/nix/store/0c5w3dzs5lvhpnqjkqd4w8pkjcg0x0yc-hello\nworld", // a newline
		"/nix/store/0c5w3dzs5lvhpnqjkqd4w8pkjcg0x0yc-.hidden",
		"/other/store/0c5w3dzs5lvhpnqjkqd4w8pkjcg0x0yc-hello",
		"/nix/store/0c5w3dzs5lvhpnqjkqd4w8pkjcg0x0yc-" + strings.Repeat("a", 212),
	}
	for _, p := range bad {
		if err := Validate(p); err == nil {
			t.Errorf("Validate(%q) accepted it", p)
		}
	}
	if err := ValidateDrv("/nix/store/0c5w3dzs5lvhpnqjkqd4w8pkjcg0x0yc-hello-2.12"); err == nil {
		t.Error("ValidateDrv accepted an output path")
	}
	if err := ValidateDrv("/nix/store/0c5w3dzs5lvhpnqjkqd4w8pkjcg0x0yc-hello-2.12.drv"); err != nil {
		t.Error(err)
	}
}

func TestValidateOutputNameAndSystem(t *testing.T) {
	for _, n := range []string{"out", "dev", "lib32", "man-pages", "a.b"} {
		if err := ValidateOutputName(n); err != nil {
			t.Errorf("%q: %v", n, err)
		}
	}
	for _, n := range []string{"", "../x", "a/b", ".hidden", "x y", "out\n"} {
		if err := ValidateOutputName(n); err == nil {
			t.Errorf("ValidateOutputName(%q) accepted it", n)
		}
	}
	for _, s := range []string{"x86_64-linux", "aarch64-darwin", "armv7l-linux", "powerpc64le-linux"} {
		if err := ValidateSystem(s); err != nil {
			t.Errorf("%q: %v", s, err)
		}
	}
	for _, s := range []string{"", "x86_64-linux\nsandbox = false", "x86_64", "X86-linux", "a-b-c"} {
		if err := ValidateSystem(s); err == nil {
			t.Errorf("ValidateSystem(%q) accepted it", s)
		}
	}
}

func TestNames(t *testing.T) {
	p := "/nix/store/0c5w3dzs5lvhpnqjkqd4w8pkjcg0x0yc-gnu-config-2024-01-01"
	if got := Name(p); got != "gnu-config-2024-01-01" {
		t.Errorf("Name = %q", got)
	}
	if got := PName(Name(p)); got != "gnu-config" {
		t.Errorf("PName = %q", got)
	}
	if n, v := NameVersion(p); n != "gnu-config" || v != "2024-01-01" {
		t.Errorf("NameVersion = %q %q", n, v)
	}
	if n, v := NameVersion("/nix/store/0c5w3dzs5lvhpnqjkqd4w8pkjcg0x0yc-busybox"); n != "busybox" || v != "" {
		t.Errorf("NameVersion without version = %q %q", n, v)
	}
	if got := DrvName("/nix/store/0c5w3dzs5lvhpnqjkqd4w8pkjcg0x0yc-hello-2.12.drv"); got != "hello-2.12" {
		t.Errorf("DrvName = %q", got)
	}
}

// The same NAR hash as Nix prints it in each notation (nix-hash --type
// sha256 [--base32], nix hash path).
func TestParseNarHash(t *testing.T) {
	const hexSum = "654e63a5f84e8a0f2d821212918877dd9917b9171aa9677f17e17792019411a0"
	for _, s := range []string{
		"sha256:180ijh0r4xz12xznga8s2ywig6fxfy4924hjh8nhz2jfz2jn6kk5",
		"sha256-ZU5jpfhOig8tghISkYh33ZkXuRcaqWd/F+F3kgGUEaA=",
		"sha256:" + hexSum,
	} {
		h, err := ParseNarHash(s)
		if err != nil {
			t.Fatalf("%s: %v", s, err)
		}
		if h.Hex() != hexSum || h.String() != "sha256:180ijh0r4xz12xznga8s2ywig6fxfy4924hjh8nhz2jfz2jn6kk5" {
			t.Errorf("%s parsed to %s (%s)", s, h.Hex(), h)
		}
	}
	for _, s := range []string{"", "sha256:", "md5:abc", "sha256-AAAA", "sha512-ZU5jpfhOig8tghISkYh33ZkXuRcaqWd/F+F3kgGUEaA="} {
		if _, err := ParseNarHash(s); err == nil {
			t.Errorf("ParseNarHash(%q) accepted it", s)
		}
	}
}
