package integration

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nix-frontend/nix-frontend/integration/harness"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"
)

// TestNetrcSecret fetches from a server that wants a password, given to Nix
// with --secret id=netrc, and checks the password ends up nowhere: not in
// the log, the image config, any layer, or BuildKit's records.
func TestNetrcSecret(t *testing.T) {
	env := harness.Require(t)
	password := fmt.Sprintf("pw-%d", time.Now().UnixNano())
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if u, p, ok := r.BasicAuth(); !ok || u != "nf" || p != password {
			w.Header().Set("WWW-Authenticate", `Basic realm="test"`)
			http.Error(w, "who are you", http.StatusUnauthorized)
			return
		}
		io.WriteString(w, "a private greeting")
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })

	dir := env.Context(t, map[string]string{
		"Nixfile": "FROM scratch\nARG URL\nINSTALL --file=default.nix --argstr url=${URL} app\nENTRYPOINT [\"app\"]\n",
		"default.nix": `{ url }:
let
  bb = builtins.path { path = ./busybox; name = "busybox"; };
  sh = "${bb}/bin/busybox";
  greeting = builtins.readFile (builtins.fetchurl url);
in {
  app = derivation {
    name = "app-1";
    system = builtins.currentSystem;
    builder = sh;
    args = [ "sh" "-c" "${sh} mkdir -p $out/bin; ${sh} printf '#!${sh} sh\necho ${greeting}\n' > $out/bin/app; ${sh} chmod 555 $out/bin/app" ];
  };
}
`,
	})
	env.AddBusybox(t, dir)
	netrc := filepath.Join(t.TempDir(), "netrc")
	harness.WriteFile(t, netrc, "machine 127.0.0.1 login nf password "+password+"\n")
	url := func(name string) string {
		return fmt.Sprintf("http://%s/%s-%d", ln.Addr(), name, time.Now().UnixNano())
	}

	for _, via := range []harness.Via{harness.Buildx, harness.Buildctl} {
		t.Run(string(via), func(t *testing.T) {
			secret := []string{"--secret", "id=netrc,src=" + netrc}
			res := env.Build(t, via, dir, harness.BuildOpts{BuildArgs: map[string]string{"URL": url("greeting")}, Args: secret})
			if out := env.Run(t, res.Ref, harness.RunOpts{}); out != "a private greeting\n" {
				t.Errorf("image printed %q", out)
			}
			if strings.Contains(res.Log, password) {
				t.Errorf("the password is in the build log")
			}
			img := env.Inspect(t, res.Ref).Images[0]
			if cfg := env.Blob(t, img, img.Manifest.Config.Digest); bytes.Contains(cfg, []byte(password)) {
				t.Errorf("the password is in the image config")
			}
			env.EachLayerFile(t, img, func(l ocispecs.Descriptor, f harness.LayerFile) bool {
				if bytes.Contains(f.Data, []byte(password)) || strings.Contains(f.Header.Name+f.Header.Linkname, password) {
					t.Errorf("the password is in %s of layer %s", f.Header.Name, l.Digest)
				}
				return true
			})

			bad, err := env.TryBuild(t, via, dir, harness.BuildOpts{BuildArgs: map[string]string{"URL": url("nosecret")}})
			if err == nil || !strings.Contains(bad.Log+err.Error(), "401") {
				t.Errorf("without the secret: err=%v, and no HTTP 401 in the output:\n%s", err, bad.Log)
			}
		})
	}
	// BuildKit's records (cache keys, step metadata) never saw it either.
	dbs, _ := filepath.Glob(filepath.Join(env.RepoRoot, ".cache", "buildkitd", "*.db"))
	if len(dbs) == 0 {
		t.Fatal("found no BuildKit metadata databases to check")
	}
	for _, db := range dbs {
		dt, err := os.ReadFile(db)
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(dt, []byte(password)) {
			t.Errorf("the password is in %s", db)
		}
	}
}
