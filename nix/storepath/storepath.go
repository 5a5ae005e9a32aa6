// Package storepath is nix-frontend's one home for Nix store paths: their
// syntax (validated with go-nix's parser, so nothing the evaluator or the
// store prints shapes LLB or a layer unchecked), the names derived from
// them, and NAR hashes in every notation Nix prints.
package storepath

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"path"
	"regexp"
	"strings"

	"github.com/nix-community/go-nix/pkg/nixbase32"
	gonix "github.com/nix-community/go-nix/pkg/storepath"
)

// StoreDir is the Nix store. nix-frontend supports the default only, which
// is what every binary cache and nixpkgs build assumes.
const StoreDir = gonix.StoreDir

// maxNameLen is Nix's limit on the name part of a store path.
const maxNameLen = 211

// Validate checks that p is a store path: /nix/store/<32 characters of
// Nix's base32>-<name>, nothing below it.
func Validate(p string) error {
	if err := gonix.Validate(p); err != nil {
		return fmt.Errorf("%.200q is not a Nix store path: %v", p, err)
	}
	if !gonix.PathRe.MatchString(p) {
		return fmt.Errorf("%.200q is not a Nix store path: /nix/store/<hash>-<name> expected", p)
	}
	if len(Base(p)) > 33+maxNameLen {
		return fmt.Errorf("%.200q is not a Nix store path: its name is longer than %d characters", p, maxNameLen)
	}
	return nil
}

// ValidateDrv checks that p is the store path of a derivation (.drv).
func ValidateDrv(p string) error {
	if err := Validate(p); err != nil {
		return err
	}
	if !strings.HasSuffix(p, ".drv") {
		return fmt.Errorf("%.200q is not a derivation: a .drv store path was expected", p)
	}
	return nil
}

// reOutputName is what Nix accepts as an output name: the characters of a
// store path name (it becomes part of one), not starting with a dot.
var reOutputName = regexp.MustCompile(`^[a-zA-Z0-9+\-_?=][.a-zA-Z0-9+\-_?=]*$`)

// ValidateOutputName checks the name of a derivation output ("out", "dev").
func ValidateOutputName(name string) error {
	if len(name) > maxNameLen || !reOutputName.MatchString(name) {
		return fmt.Errorf("%.100q is not a derivation output name", name)
	}
	return nil
}

// reSystem is a Nix system: <arch>-<os> ("x86_64-linux", "aarch64-darwin").
var reSystem = regexp.MustCompile(`^[a-z0-9_]+-[a-z0-9_]+$`)

// ValidateSystem checks a Nix system name. "builtin" is the system of
// derivations Nix builds itself (<nix/fetchurl.nix>).
func ValidateSystem(s string) error {
	if s != "builtin" && (len(s) > 64 || !reSystem.MatchString(s)) {
		return fmt.Errorf("%.100q is not a Nix system (<arch>-<os>, e.g. x86_64-linux)", s)
	}
	return nil
}

// Base is the store path's last element: "<hash>-hello-2.12".
func Base(p string) string { return path.Base(p) }

// Name is the store path's name, without the store directory and the hash:
// "hello-2.12" for "/nix/store/<hash>-hello-2.12", "hello-2.12.drv" for a
// derivation. Anything that is not a store path is returned as its base.
func Name(p string) string {
	base := path.Base(p)
	if len(base) > 33 && base[32] == '-' {
		return base[33:]
	}
	return base
}

// DrvName is a derivation's name: Name without ".drv".
func DrvName(p string) string { return strings.TrimSuffix(Name(p), ".drv") }

// PName strips the version from a derivation name the way Nix's DrvName
// does: the name ends at the first '-' followed by a character that is not
// a letter ("hello-2.12" → "hello", "gnu-config-2024" → "gnu-config"). It is
// the prefix `nix build -L` puts on a builder's log lines.
func PName(name string) string {
	for i := 0; i+1 < len(name); i++ {
		if name[i] == '-' && !isAlpha(name[i+1]) {
			return name[:i]
		}
	}
	return name
}

// NameVersion splits a store path's name into package name and version
// ("hello", "2.12.1"), as Nix's parseDrvName does: the version starts after
// the first '-' that is followed by a digit.
func NameVersion(p string) (string, string) {
	name := Name(p)
	for i := 0; i+1 < len(name); i++ {
		if name[i] == '-' && name[i+1] >= '0' && name[i+1] <= '9' {
			return name[:i], name[i+1:]
		}
	}
	return name, ""
}

func isAlpha(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }

// NarHash is the SHA-256 of a store path's NAR serialisation.
type NarHash [sha256.Size]byte

// ParseNarHash reads a NAR hash as Nix prints it: "sha256:<base32>" (Nix's
// own base32, as nix-store -q --hash and Nix 2.8's path-info print it),
// "sha256-<base64>" (SRI, newer path-info) or "sha256:<hex>".
func ParseNarHash(s string) (NarHash, error) {
	var h NarHash
	var dt []byte
	var err error
	switch {
	case strings.HasPrefix(s, "sha256-"):
		dt, err = base64.StdEncoding.DecodeString(s[len("sha256-"):])
	case strings.HasPrefix(s, "sha256:") && len(s) == len("sha256:")+nixbase32.EncodedLen(sha256.Size):
		dt, err = nixbase32.DecodeString(s[len("sha256:"):])
	case strings.HasPrefix(s, "sha256:") && len(s) == len("sha256:")+hex.EncodedLen(sha256.Size):
		dt, err = hex.DecodeString(s[len("sha256:"):])
	default:
		err = fmt.Errorf("unknown notation")
	}
	if err == nil && len(dt) != sha256.Size {
		err = fmt.Errorf("%d bytes, want %d", len(dt), sha256.Size)
	}
	if err != nil {
		return h, fmt.Errorf("%.100q is not a SHA-256 NAR hash: %v", s, err)
	}
	copy(h[:], dt)
	return h, nil
}

// String renders the hash as Nix's database and nix-store -q --hash do:
// "sha256:<base32>".
func (h NarHash) String() string { return "sha256:" + nixbase32.EncodeToString(h[:]) }

// Hex is the hash in hexadecimal, as SPDX checksums take it.
func (h NarHash) Hex() string { return hex.EncodeToString(h[:]) }
