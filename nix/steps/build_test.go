package steps

import (
	"strings"
	"testing"

	"github.com/nix-frontend/nix-frontend/nix/system"
)

func TestBuildFailedErrorMessage(t *testing.T) {
	other := "aarch64-linux"
	if system.Host() == other {
		other = "x86_64-linux"
	}
	cases := []struct {
		name string
		err  BuildFailedError
		want []string
		not  []string
	}{
		{"first error, not the hint", BuildFailedError{Name: "hello", DrvPath: "/nix/store/a-hello.drv",
			Errors: []string{"builder for '/nix/store/a-hello.drv' failed with exit code 2", "(use '--show-trace' to show detailed location information)"}},
			[]string{"building hello failed: builder for '/nix/store/a-hello.drv' failed with exit code 2"}, []string{"show-trace"}},
		{"dependency named", BuildFailedError{Name: "app", DrvPath: "/nix/store/b-app.drv", Failed: []string{"/nix/store/0c5w3dzs5lvhpnqjkqd4w8pkjcg0x0yc-lib-1.drv"}},
			[]string{"its dependency lib-1 failed"}, nil},
		{"foreign system that cannot run", BuildFailedError{Name: "x", DrvPath: "/nix/store/d-x.drv", System: other,
			Errors: []string{"executing '/nix/store/e-busybox/bin/busybox': Exec format error"}},
			[]string{"cannot run " + other + " programs", "binfmt", "builders ="}, nil},
		{"host system gets no platform hint", BuildFailedError{Name: "x", DrvPath: "/nix/store/d-x.drv", System: system.Host(),
			Errors: []string{"Exec format error"}},
			nil, []string{"binfmt"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			msg := c.err.Error()
			for _, w := range c.want {
				if !strings.Contains(msg, w) {
					t.Errorf("%q does not say %q", msg, w)
				}
			}
			for _, n := range c.not {
				if strings.Contains(msg, n) {
					t.Errorf("%q says %q", msg, n)
				}
			}
		})
	}
}
