package integration

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
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

// TestAccessTokensAndSSH checks that --secret id=access-tokens and --ssh
// default reach the Nix processes: evaluation (impure, as file mode is)
// sees Nix's access-tokens setting and the agent socket. The token's value
// ends up nowhere.
func TestAccessTokensAndSSH(t *testing.T) {
	env := harness.Require(t)
	agentDir := t.TempDir()
	sock := filepath.Join(agentDir, "agent.sock")
	agent := exec.Command("ssh-agent", "-D", "-a", sock)
	if err := agent.Start(); err != nil {
		t.Fatalf("ssh-agent: %v", err)
	}
	t.Cleanup(func() { agent.Process.Kill(); agent.Wait() })
	for i := 0; i < 50; i++ {
		if _, err := os.Stat(sock); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	token := fmt.Sprintf("ghp_%d", time.Now().UnixNano())
	tokens := filepath.Join(t.TempDir(), "tokens")
	harness.WriteFile(t, tokens, "github.com="+token+"\n")

	dir := env.Context(t, map[string]string{
		"Nixfile": "FROM scratch\nARG SALT\nINSTALL --file=default.nix --argstr salt=${SALT} app\nENTRYPOINT [\"app\"]\n",
		"default.nix": `{ salt }:
let
  bb = builtins.path { path = ./busybox; name = "busybox"; };
  sh = "${bb}/bin/busybox";
  sock = builtins.getEnv "SSH_AUTH_SOCK";
  ssh = if sock != "" && builtins.pathExists sock then "agent" else "no-agent";
  hasTokens = builtins.match ".*access-tokens = github.com=ghp_[0-9]+.*" (builtins.getEnv "NIX_CONFIG") != null;
  tokens = if hasTokens then "tokens" else "no-tokens";
in {
  app = derivation {
    name = "app-1";
    inherit salt;
    system = builtins.currentSystem;
    builder = sh;
    args = [ "sh" "-c" "${sh} mkdir -p $out/bin; ${sh} printf '#!${sh} sh\\necho ${ssh} ${tokens}\\n' > $out/bin/app; ${sh} chmod 555 $out/bin/app" ];
  };
}
`,
	})
	env.AddBusybox(t, dir)
	for _, via := range []harness.Via{harness.Buildx, harness.Buildctl} {
		t.Run(string(via), func(t *testing.T) {
			res := env.Build(t, via, dir, harness.BuildOpts{
				BuildArgs: map[string]string{"SALT": salt(t)},
				Args:      []string{"--secret", "id=access-tokens,src=" + tokens, "--ssh", "default=" + sock},
			})
			if out := env.Run(t, res.Ref, harness.RunOpts{}); out != "agent tokens\n" {
				t.Errorf("image printed %q, want the agent and the tokens seen", out)
			}
			if strings.Contains(res.Log, token) {
				t.Errorf("the token is in the build log")
			}
			img := env.Inspect(t, res.Ref).Images[0]
			env.EachLayerFile(t, img, func(l ocispecs.Descriptor, f harness.LayerFile) bool {
				if bytes.Contains(f.Data, []byte(token)) {
					t.Errorf("the token is in %s of layer %s", f.Header.Name, l.Digest)
				}
				return true
			})
			without := env.Build(t, via, dir, harness.BuildOpts{BuildArgs: map[string]string{"SALT": salt(t)}})
			if out := env.Run(t, without.Ref, harness.RunOpts{}); out != "no-agent no-tokens\n" {
				t.Errorf("without the flags the image printed %q", out)
			}
		})
	}
}
