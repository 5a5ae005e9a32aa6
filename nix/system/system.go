// Package system maps OCI platforms to Nix systems and back: the one table
// nix-frontend has of them.
package system

import (
	"fmt"
	"runtime"

	"github.com/containerd/platforms"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"
)

// entry is a Linux platform and the Nix system that builds for it.
type entry struct {
	arch, variant string // OCI architecture and (normalised) variant
	goarch        string // GOARCH of the same machine, "" when Go has none
	system        string
}

// table lists the platforms nix-frontend builds for. A platform whose variant
// is not listed builds with its architecture's entry without a variant
// (amd64/v3 is x86_64-linux), except for 32-bit ARM, whose variants are
// different Nix systems.
var table = []entry{
	{"amd64", "", "amd64", "x86_64-linux"},
	{"arm64", "", "arm64", "aarch64-linux"},
	{"arm", "v7", "arm", "armv7l-linux"},
	{"arm", "v6", "", "armv6l-linux"},
	{"riscv64", "", "riscv64", "riscv64-linux"},
	{"386", "", "386", "i686-linux"},
	{"ppc64le", "", "ppc64le", "powerpc64le-linux"},
	{"s390x", "", "s390x", "s390x-linux"},
	{"loong64", "", "loong64", "loongarch64-linux"},
}

// ForPlatform is the Nix system that builds for an OCI platform.
func ForPlatform(p ocispecs.Platform) (string, error) {
	p = platforms.Normalize(p)
	if p.OS == "linux" {
		for _, e := range table {
			if e.arch != p.Architecture {
				continue
			}
			if e.variant == p.Variant || (e.variant == "" && p.Architecture != "arm") {
				return e.system, nil
			}
		}
	}
	if p.OS != "linux" {
		return "", fmt.Errorf("platform %s: nix-frontend builds Linux images only", platforms.Format(p))
	}
	return "", fmt.Errorf("platform %s has no Nix system nix-frontend knows; use a platform like linux/amd64 or linux/arm64, or INSTALL --system=", platforms.Format(p))
}

// Platform is the OCI platform of a Nix system, the inverse of ForPlatform.
func Platform(system string) (ocispecs.Platform, error) {
	for _, e := range table {
		if e.system == system {
			return ocispecs.Platform{OS: "linux", Architecture: e.arch, Variant: e.variant}, nil
		}
	}
	return ocispecs.Platform{}, fmt.Errorf("no OCI platform nix-frontend knows matches the Nix system %q", system)
}

// Host is the Nix system of the machine this process runs on.
func Host() string {
	for _, e := range table {
		if e.goarch != "" && e.goarch == runtime.GOARCH {
			return e.system
		}
	}
	return runtime.GOARCH + "-" + runtime.GOOS
}
