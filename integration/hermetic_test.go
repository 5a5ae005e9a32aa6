package integration

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nix-frontend/nix-frontend/integration/harness"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"
)

// testServer is an HTTP server on loopback for the steps to reach.
type testServer struct {
	addr string
	mu   sync.Mutex
	hits map[string]int
}

// serve starts a server whose handler is h; every request is counted by
// path.
func serve(t *testing.T, h http.HandlerFunc) *testServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &testServer{addr: ln.Addr().String(), hits: map[string]int{}}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.hits[r.URL.Path]++
		s.mu.Unlock()
		h(w, r)
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return s
}

func (s *testServer) count(path string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.hits[path]
}

// startAgent starts an ssh-agent and returns its socket.
func startAgent(t *testing.T) string {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "agent.sock")
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
	return sock
}

// thiefNix is an ordinary derivation whose builder tries everything a
// builder in Nix's sandbox cannot: read the build's secrets, use the SSH
// agent, reach the network, and change another store path.
const thiefNix = `{ salt, addr }:
let
  bb = builtins.path { path = ./busybox; name = "busybox"; };
  sh = "${bb}/bin/busybox";
in {
  thief = derivation {
    name = "thief-1";
    inherit salt;
    system = builtins.currentSystem;
    builder = sh;
    args = [ "sh" "-c" ''
      ${sh} mkdir -p $out/bin
      for f in /run/secrets/nix-frontend/* /run/secrets/* /root/.aws/credentials; do ${sh} cat $f; done > $out/stolen 2>/dev/null
      ${sh} ls -la /run/nix-frontend/ > $out/agent 2>&1
      ${sh} wget -q -O $out/net http://${addr}/exfil > $out/net-err 2>&1
      echo tampered > ${bb}/tampered 2>/dev/null
      ${sh} id > $out/id
      ${sh} printf '#!${sh} sh\n${sh} cat '$out'/stolen '$out'/net\n' > $out/bin/thief
      ${sh} chmod 555 $out/bin/thief
    '' ];
  };
}
`

// TestHostileBuilder builds a derivation whose builder tries to steal the
// build's credentials and reach the network, with every credential given
// to the build: it gets none of them and reaches nothing. With
// INSTALL --network=default, and only then, it reaches the network, and
// still no credential.
func TestHostileBuilder(t *testing.T) {
	env := harness.Require(t)
	secret := fmt.Sprintf("pw-%d", time.Now().UnixNano())
	srv := serve(t, func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "reachable") })
	dir := env.Context(t, map[string]string{
		"Nixfile":     "FROM scratch\nARG SALT\nARG ADDR\nARG NET=none\nINSTALL --network=${NET} --file=default.nix --argstr salt=${SALT} --argstr addr=${ADDR} thief\n",
		"default.nix": thiefNix,
	})
	env.AddBusybox(t, dir)
	dirS := t.TempDir()
	secrets := map[string]string{}
	for _, id := range []string{"netrc", "access-tokens", "nix-signing-key", "aws"} {
		secrets[id] = filepath.Join(dirS, id)
		harness.WriteFile(t, secrets[id], "machine example.com password "+secret+"\n")
	}
	agent := startAgent(t)
	check := func(t *testing.T, res *harness.Result, wantNet bool) {
		img := env.Inspect(t, res.Ref).Images[0]
		files := map[string][]byte{}
		env.EachLayerFile(t, img, func(l ocispecs.Descriptor, f harness.LayerFile) bool {
			if bytes.Contains(f.Data, []byte(secret)) {
				t.Errorf("the secret is in %s of layer %s", f.Header.Name, l.Digest)
			}
			files[filepath.Base(f.Header.Name)] = f.Data
			return true
		})
		if strings.Contains(res.Log, secret) {
			t.Error("the secret is in the build log")
		}
		if len(files["stolen"]) != 0 {
			t.Errorf("the builder read %q", files["stolen"])
		}
		if strings.Contains(string(files["agent"]), "ssh-agent.sock") {
			t.Errorf("the builder saw the SSH agent: %s", files["agent"])
		}
		if bytes.Contains(files["id"], []byte("uid=0(")) {
			t.Errorf("the builder ran as root: %s", files["id"])
		}
		if got := string(files["net"]) == "reachable"; got != wantNet {
			t.Errorf("builder reached the network: %v, want %v (%s)", got, wantNet, files["net-err"])
		}
	}

	for _, via := range []harness.Via{harness.Buildctl, harness.Buildx} {
		t.Run(string(via), func(t *testing.T) {
			before := srv.count("/exfil")
			res := env.Build(t, via, dir, harness.BuildOpts{Secrets: secrets, SSH: agent, BuildArgs: map[string]string{"SALT": salt(t), "ADDR": srv.addr}})
			check(t, res, false)
			if n := srv.count("/exfil") - before; n != 0 {
				t.Errorf("the server saw %d requests from the builder", n)
			}
		})
	}
	t.Run("--network=default", func(t *testing.T) {
		before := srv.count("/exfil")
		res := env.Build(t, harness.Buildctl, dir, harness.BuildOpts{Secrets: secrets, SSH: agent,
			BuildArgs: map[string]string{"SALT": salt(t), "ADDR": srv.addr, "NET": "default"}})
		check(t, res, true)
		if n := srv.count("/exfil") - before; n != 1 {
			t.Errorf("the server saw %d requests from the builder, want 1", n)
		}
		if !strings.Contains(res.Log, "build thief-1 (network: default)") {
			t.Errorf("the progress line does not say the builder has the network:\n%s", res.Log)
		}
	})
}

// fetchNix downloads with Nix's own fetcher (builtin:fetchurl, which reads
// netrc-file) and with a fetcher program that is an ordinary derivation
// itself, then builds from both.
const fetchNix = `{ salt, private, public, privateHash, publicHash }:
let
  bb = builtins.path { path = ./busybox; name = "busybox"; };
  sh = "${bb}/bin/busybox";
  greeting = import <nix/fetchurl.nix> { url = private; sha256 = privateHash; };
  # The fetcher program is built, hermetically, before the download runs.
  fetcher = derivation {
    name = "fetcher-1";
    inherit salt;
    system = builtins.currentSystem;
    builder = sh;
    args = [ "sh" "-c" "${sh} mkdir -p $out/bin; ${sh} cp ${sh} $out/bin/busybox" ];
  };
  farewell = derivation {
    name = "farewell.txt";
    system = builtins.currentSystem;
    builder = "${fetcher}/bin/busybox";
    args = [ "sh" "-c" "${fetcher}/bin/busybox wget -q -O $out ${public}" ];
    outputHashMode = "flat";
    outputHashAlgo = "sha256";
    outputHash = publicHash;
  };
in {
  app = derivation {
    name = "app-1";
    inherit salt;
    system = builtins.currentSystem;
    builder = sh;
    args = [ "sh" "-c" "${sh} mkdir -p $out/bin; ${sh} printf '#!${sh} sh\n${sh} cat ${greeting} ${farewell}\n' > $out/bin/app; ${sh} chmod 555 $out/bin/app" ];
  };
}
`

// TestFetchSteps checks that downloads still work when builders have no
// network: a fixed-output derivation fetched with a netrc secret from a
// server that wants it, and one whose fetcher program is an ordinary
// derivation, which a hermetic step builds first.
func TestFetchSteps(t *testing.T) {
	env := harness.Require(t)
	password := fmt.Sprintf("pw-%d", time.Now().UnixNano())
	// The downloads' contents, and so their fixed-output paths, are new
	// in every run: a store that has them from an earlier run would skip
	// the fetches this test is about.
	s := salt(t)
	private, public := "a private greeting "+s+"\n", "a public farewell "+s+"\n"
	srv := serve(t, func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/private/") {
			if u, p, ok := r.BasicAuth(); !ok || u != "nf" || p != password {
				w.Header().Set("WWW-Authenticate", `Basic realm="test"`)
				http.Error(w, "who are you", http.StatusUnauthorized)
				return
			}
			fmt.Fprint(w, private)
			return
		}
		fmt.Fprint(w, public)
	})
	sum := func(s string) string { h := sha256.Sum256([]byte(s)); return hex.EncodeToString(h[:]) }
	dir := env.Context(t, map[string]string{
		"Nixfile": "FROM scratch\nARG SALT\nARG PRIVATE\nARG PUBLIC\n" +
			"INSTALL --file=default.nix --argstr salt=${SALT} --argstr private=${PRIVATE} --argstr public=${PUBLIC} " +
			"--argstr privateHash=" + sum(private) + " --argstr publicHash=" + sum(public) + " app\nENTRYPOINT [\"app\"]\n",
		"default.nix": fetchNix,
	})
	env.AddBusybox(t, dir)
	netrc := filepath.Join(t.TempDir(), "netrc")
	harness.WriteFile(t, netrc, "machine 127.0.0.1 login nf password "+password+"\n")
	args := map[string]string{"SALT": s,
		"PRIVATE": fmt.Sprintf("http://%s/private/%s", srv.addr, s), "PUBLIC": fmt.Sprintf("http://%s/public/%s", srv.addr, s)}
	res := env.Build(t, harness.InProcess, dir, harness.BuildOpts{BuildArgs: args, Secrets: map[string]string{"netrc": netrc}})
	if out := env.Run(t, res.Ref, harness.RunOpts{}); out != private+public {
		t.Errorf("image printed %q", out)
	}
	var names []string
	for _, v := range res.Status.Ran("[nix") {
		names = append(names, v.Name)
	}
	joined := strings.Join(names, "\n")
	for _, want := range []string{"fetch for app-1", "build what downloads of app-1 need: fetcher-1", "fetch for app-1 (round 2)", "build app-1"} {
		if !strings.Contains(joined, want) {
			t.Errorf("no step %q ran:\n%s", want, joined)
		}
	}
	if strings.Contains(res.Log, password) {
		t.Error("the password is in the build log")
	}
}

// flakyNix reads a URL while it evaluates (builtins.fetchurl) and downloads
// another in a fixed-output derivation: the test's server fails both the
// first time.
const flakyNix = `{ salt, evalURL, fetchURL, fetchHash }:
let
  bb = builtins.path { path = ./busybox; name = "busybox"; };
  sh = "${bb}/bin/busybox";
  greeting = builtins.replaceStrings [ "\n" ] [ "" ] (builtins.readFile (builtins.fetchurl evalURL));
  farewell = import <nix/fetchurl.nix> { url = fetchURL; sha256 = fetchHash; };
in {
  app = derivation {
    name = "app-1";
    inherit salt;
    system = builtins.currentSystem;
    builder = sh;
    args = [ "sh" "-c" "${sh} mkdir -p $out/bin; ${sh} printf '#!${sh} sh\necho ${greeting}; ${sh} cat ${farewell}\n' > $out/bin/app; ${sh} chmod 555 $out/bin/app" ];
  };
}
`

// TestFailuresNotCached checks that a failure caused by something outside
// the build's inputs is not remembered: a server that answers 503 fails
// evaluation, then a download; once it answers, the same build succeeds.
func TestFailuresNotCached(t *testing.T) {
	env := harness.Require(t)
	var mu sync.Mutex
	down := map[string]bool{"/eval": true, "/fetch": true}
	srv := serve(t, func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		if down[filepath.Dir(r.URL.Path)] {
			http.Error(w, "try again later", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintf(w, "content of %s\n", filepath.Dir(r.URL.Path))
	})
	h := sha256.Sum256([]byte("content of /fetch\n"))
	dir := env.Context(t, map[string]string{
		"Nixfile": "FROM scratch\nARG SALT\nARG EVAL\nARG FETCH\n" +
			"INSTALL --file=default.nix --argstr salt=${SALT} --argstr evalURL=${EVAL} --argstr fetchURL=${FETCH} --argstr fetchHash=" + hex.EncodeToString(h[:]) + " app\n" +
			"ENTRYPOINT [\"app\"]\n",
		"default.nix": flakyNix,
	})
	env.AddBusybox(t, dir)
	s := salt(t)
	opts := harness.BuildOpts{BuildArgs: map[string]string{"SALT": s,
		"EVAL": fmt.Sprintf("http://%s/eval/%s", srv.addr, s), "FETCH": fmt.Sprintf("http://%s/fetch/%s", srv.addr, s)}}

	for _, stage := range []string{"/eval", "/fetch"} {
		res, err := env.TryBuild(t, harness.InProcess, dir, opts)
		if err == nil {
			t.Fatalf("the build succeeded while %s answered 503", stage)
		}
		if line := sourceLine(err); line != 6 {
			t.Errorf("%s failure points at line %d, want the INSTALL line 6: %v", stage, line, err)
		}
		if !strings.Contains(err.Error()+res.Log, "503") {
			t.Errorf("%s failure does not say what the server answered: %v", stage, err)
		}
		mu.Lock()
		down[stage] = false
		mu.Unlock()
	}
	res := env.Build(t, harness.InProcess, dir, opts)
	if out := env.Run(t, res.Ref, harness.RunOpts{}); out != "content of /eval\ncontent of /fetch\n" {
		t.Errorf("image printed %q", out)
	}
}

// TestEvaluatorOutputValidated checks that what an evaluation returns is
// checked before it shapes LLB: an attribute set that only claims to be a
// derivation, and a derivation whose system would add lines to nix.conf.
func TestEvaluatorOutputValidated(t *testing.T) {
	env := harness.Require(t)
	dir := env.Context(t, map[string]string{
		"Nixfile": "FROM scratch\nINSTALL --file=default.nix fake\nINSTALL --file=default.nix badSystem\n",
		"default.nix": `{
  fake = { type = "derivation"; name = "fake"; system = "x86_64-linux"; drvPath = "/etc/passwd";
    outputs = [ "out" ]; outPath = "/nix/store/00000000000000000000000000000000-fake"; out.outPath = "/etc"; };
  badSystem = derivation { name = "bad"; builder = "/bin/sh"; system = "x86_64-linux\nsandbox = relaxed"; };
}
`,
	})
	_, err := env.TryBuild(t, harness.InProcess, dir, harness.BuildOpts{})
	if err == nil {
		t.Fatal("the build succeeded")
	}
	for _, want := range []string{`INSTALL fake:`, `"/etc/passwd" is not a Nix store path`, `INSTALL badSystem:`, `is not a Nix system`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not say %q:\n%v", want, err)
		}
	}
	if line := sourceLine(err); line != 3 {
		t.Errorf("error points at line %d, want 3", line)
	}
}

// TestTamperedStore checks that a layer holds exactly what Nix registered:
// a derivation whose builder changes another store path (which it may not,
// as a build user) cannot get the change into an image.
func TestTamperedStore(t *testing.T) {
	env := harness.Require(t)
	dir := env.Context(t, map[string]string{
		"Nixfile": "FROM scratch\nARG SALT\nINSTALL --file=default.nix --argstr salt=${SALT} victim vandal\n",
		"default.nix": `{ salt }:
let
  bb = builtins.path { path = ./busybox; name = "busybox"; };
  sh = "${bb}/bin/busybox";
  mk = name: script: derivation { inherit name salt; system = builtins.currentSystem; builder = sh; args = [ "sh" "-c" script ]; };
in rec {
  victim = mk "victim-1" "${sh} mkdir -p $out; echo original > $out/data";
  vandal = mk "vandal-1" "${sh} chmod u+w ${victim} ${victim}/data; echo vandalised > ${victim}/data; ${sh} mkdir -p $out; ${sh} cat ${victim}/data > $out/saw";
}
`,
	})
	env.AddBusybox(t, dir)
	res, err := env.TryBuild(t, harness.InProcess, dir, harness.BuildOpts{BuildArgs: map[string]string{"SALT": salt(t)}})
	if err != nil {
		if !strings.Contains(err.Error(), "victim-1") {
			t.Errorf("the build failed without naming the changed path: %v", err)
		}
		return
	}
	img := env.Inspect(t, res.Ref).Images[0]
	env.EachLayerFile(t, img, func(l ocispecs.Descriptor, f harness.LayerFile) bool {
		if strings.HasSuffix(f.Header.Name, "-victim-1/data") && string(f.Data) != "original\n" {
			t.Errorf("the image has the vandalised %s: %q", f.Header.Name, f.Data)
		}
		if strings.HasSuffix(f.Header.Name, "-vandal-1/saw") && string(f.Data) != "original\n" {
			t.Errorf("the vandal changed the store: it saw %q", f.Data)
		}
		return true
	})
}

// TestCredentialArgsRefused checks that credentials given as build
// arguments, which BuildKit records in provenance and cache records, are
// refused before any step runs, and not repeated.
func TestCredentialArgsRefused(t *testing.T) {
	env := harness.Require(t)
	dir := env.Context(t, map[string]string{"Nixfile": "FROM scratch\nINSTALL --file=default.nix hello\n"})
	password := fmt.Sprintf("pw-%d", time.Now().UnixNano())
	for _, c := range []struct{ arg, value, want string }{
		{"NIX_PUSH_CACHE", "https://nf:" + password + "@cache.example.com", "--secret id=netrc"},
		{"NIX_CONFIG", harness.OfflineNixConfig + "\nextra-substituters = https://nf:" + password + "@cache.example.com", "--secret id=netrc"},
		{"NIX_CONFIG", harness.OfflineNixConfig + "\naccess-tokens = github.com=" + password, "--secret id=access-tokens"},
	} {
		for _, via := range []harness.Via{harness.InProcess, harness.Buildctl} {
			res, err := env.TryBuild(t, via, dir, harness.BuildOpts{BuildArgs: map[string]string{c.arg: c.value}})
			if err == nil {
				t.Fatalf("%s: %s with a credential was accepted", via, c.arg)
			}
			text := err.Error() + res.Log
			if !strings.Contains(text, c.want) || !strings.Contains(text, c.arg) {
				t.Errorf("%s: the error does not say to use %s for %s: %v", via, c.want, c.arg, err)
			}
			if strings.Contains(text, password) {
				t.Errorf("%s: the error repeats the credential", via)
			}
		}
	}
}

// TestHelperImageIsTheFrontend checks that a client cannot choose the
// image whose helper binary receives the build's credentials: an option
// that once did is not read.
func TestHelperImageIsTheFrontend(t *testing.T) {
	env := harness.Require(t)
	res := env.Build(t, harness.Buildctl, exampleContext(t, env, ""), harness.BuildOpts{
		Attrs: map[string]string{"nix-frontend-image": env.NixImage}})
	if out := env.Run(t, res.Ref, harness.RunOpts{}); !strings.Contains(out, "Hello from Nix") {
		t.Errorf("image printed %q", out)
	}
}

// escapeTarballNix packs the layer tar from the build context into an image
// tarball, as dockerTools would.
const escapeTarballNix = `let
  bb = builtins.path { path = ./busybox; name = "busybox"; };
  layer = builtins.path { path = ./evil-layer.tar; name = "layer.tar"; };
in {
  image = derivation {
    name = "evil-image.tar";
    system = builtins.currentSystem;
    builder = "${bb}/bin/busybox";
    args = [ "sh" "-c" ''
      set -e
      ${bb}/bin/busybox mkdir archive
      ${bb}/bin/busybox cp ${layer} archive/layer.tar
      printf '{"architecture":"amd64","os":"linux","config":{"Cmd":["/bin/true"]},"rootfs":{"type":"layers","diff_ids":[]}}' > archive/config.json
      printf '[{"Config":"config.json","Layers":["layer.tar"]}]' > archive/manifest.json
      cd archive && ${bb}/bin/busybox tar -cf $out manifest.json config.json layer.tar
    '' ];
  };
}
`

// TestImageTarballEscape gives an image tarball whose layer holds a
// symlink to /nix and then a file beneath it: the file must stay inside the
// image, never reach the shared /nix store.
func TestImageTarballEscape(t *testing.T) {
	env := harness.Require(t)
	marker := fmt.Sprintf("pwned-%d", time.Now().UnixNano())
	var layer bytes.Buffer
	tw := tar.NewWriter(&layer)
	for _, h := range []*tar.Header{
		{Name: "escape", Typeflag: tar.TypeSymlink, Linkname: "/nix/store", Mode: 0o777},
		{Name: "escape/" + marker, Typeflag: tar.TypeReg, Mode: 0o644, Size: 6},
		{Name: "up", Typeflag: tar.TypeSymlink, Linkname: "../../../../../../nix/store", Mode: 0o777},
		{Name: "up/" + marker + "-up", Typeflag: tar.TypeReg, Mode: 0o644, Size: 6},
	} {
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if h.Size > 0 {
			tw.Write([]byte("pwned\n"))
		}
	}
	tw.Close()
	dir := env.Context(t, map[string]string{"default.nix": "# syntax=" + env.FrontendImage + "\n" + escapeTarballNix})
	env.AddBusybox(t, dir)
	harness.WriteFile(t, filepath.Join(dir, "evil-layer.tar"), layer.String())
	if res, err := env.TryBuild(t, harness.InProcess, dir, harness.BuildOpts{File: "default.nix", Target: "image"}); err == nil {
		t.Logf("the tarball was accepted; its files stay in the image:\n%s", strings.Join(layerNames(t, env, res.Ref), "\n"))
	} else {
		t.Logf("the tarball was refused: %v", err)
	}

	// A builder of the same store looks for the files.
	check := env.Context(t, map[string]string{
		"Nixfile": "FROM scratch\nARG MARKER\nINSTALL --file=default.nix --argstr marker=${MARKER} look\nENTRYPOINT [\"look\"]\n",
		"default.nix": `{ marker }:
let bb = builtins.path { path = ./busybox; name = "busybox"; }; sh = "${bb}/bin/busybox"; in {
  # The marker is an attribute, not part of the name: ls /nix/store
  # would find this derivation's own paths otherwise.
  look = derivation {
    name = "look";
    inherit marker;
    system = builtins.currentSystem;
    builder = sh;
    args = [ "sh" "-c" "${sh} mkdir -p $out/bin; if ${sh} ls /nix/store | ${sh} grep -q ${marker}; then r=escaped; else r=contained; fi; ${sh} printf '#!${sh} sh\necho '$r'\n' > $out/bin/look; ${sh} chmod 555 $out/bin/look" ];
  };
}
`})
	env.AddBusybox(t, check)
	res := env.Build(t, harness.InProcess, check, harness.BuildOpts{BuildArgs: map[string]string{"MARKER": marker}})
	if out := env.Run(t, res.Ref, harness.RunOpts{}); out != "contained\n" {
		t.Errorf("the tarball's files reached the shared /nix store: %q", out)
	}
}

func layerNames(t *testing.T, env *harness.Env, ref string) []string {
	var names []string
	env.EachLayerFile(t, env.Inspect(t, ref).Images[0], func(_ ocispecs.Descriptor, f harness.LayerFile) bool {
		names = append(names, f.Header.Name)
		return true
	})
	return names
}
