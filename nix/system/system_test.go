package system

import (
	"testing"

	"github.com/containerd/platforms"
)

func TestTable(t *testing.T) {
	for platform, want := range map[string]string{
		"linux/amd64": "x86_64-linux", "linux/amd64/v3": "x86_64-linux", "linux/arm64": "aarch64-linux",
		"linux/arm64/v8": "aarch64-linux", "linux/arm/v7": "armv7l-linux", "linux/arm": "armv7l-linux",
		"linux/arm/v6": "armv6l-linux", "linux/riscv64": "riscv64-linux", "linux/386": "i686-linux",
		"linux/ppc64le": "powerpc64le-linux", "linux/s390x": "s390x-linux",
	} {
		got, err := ForPlatform(platforms.MustParse(platform))
		if err != nil || got != want {
			t.Errorf("ForPlatform(%s) = %q, %v; want %q", platform, got, err, want)
			continue
		}
		p, err := Platform(got)
		if err != nil {
			t.Errorf("Platform(%s): %v", got, err)
			continue
		}
		if back, _ := ForPlatform(p); back != got {
			t.Errorf("%s -> %s -> %s -> %s: the table does not map back", platform, got, platforms.Format(p), back)
		}
	}
	for _, bad := range []string{"windows/amd64", "linux/mips64", "linux/arm/v5"} {
		if got, err := ForPlatform(platforms.MustParse(bad)); err == nil {
			t.Errorf("ForPlatform(%s) = %q, want an error", bad, got)
		}
	}
	if Host() == "" {
		t.Error("no host system")
	}
}
