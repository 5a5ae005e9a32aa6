package integration

import (
	"strings"
	"testing"

	"github.com/nix-frontend/nix-frontend/integration/harness"
	digest "github.com/opencontainers/go-digest"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"
)

// basicsNix is an app that looks at what a FROM scratch image gives it, a
// CA bundle as nixpkgs' cacert lays it out, and a TLS library without one.
const basicsNix = `let
  bb = builtins.path { path = ./busybox; name = "busybox"; };
  sh = "${bb}/bin/busybox";
  mk = name: script: derivation { inherit name; system = builtins.currentSystem; builder = sh; args = [ "sh" "-c" script ]; };
in {
  app = mk "app-1" ''
    ${sh} mkdir -p $out/bin
    ${sh} cat > $out/bin/app <<'EOF'
#!${sh} sh
${sh} id -un
${sh} id -gn
echo home $(${sh} stat -c %U $HOME 2>/dev/null || ${sh} stat -c %U /home/$(${sh} id -un))
${sh} touch /tmp/x && echo tmp writable
echo $SSL_CERT_FILE
${sh} cat /etc/ssl/certs/ca-certificates.crt 2>/dev/null || echo no bundle
EOF
    ${sh} chmod 555 $out/bin/app
  '';
  cacert = mk "nss-cacert-3.1" "${sh} mkdir -p $out/etc/ssl/certs; echo a bundle > $out/etc/ssl/certs/ca-bundle.crt";
  openssl = mk "openssl-3.0" "${sh} mkdir -p $out/lib; echo lib > $out/lib/libssl.so";
}
`

// TestScratchBasics checks what a FROM scratch image gets: /etc/passwd and
// /etc/group with the USER, its home, a writable /tmp and, when the closure
// has a CA bundle, the conventional link and the variables TLS libraries
// read. The layer is the same in every build; NIX_SCRATCH_BASICS=false
// leaves it out.
func TestScratchBasics(t *testing.T) {
	env := harness.Require(t)
	dir := env.Context(t, map[string]string{
		"Nixfile":     "FROM scratch\nINSTALL --file=default.nix app cacert\nUSER app\nENTRYPOINT [\"app\"]\n",
		"default.nix": basicsNix,
	})
	env.AddBusybox(t, dir)
	res := env.Build(t, harness.InProcess, dir, harness.BuildOpts{})
	want := "app\napp\nhome app\ntmp writable\n/etc/ssl/certs/ca-certificates.crt\na bundle\n"
	if out := env.Run(t, res.Ref, harness.RunOpts{}); out != want {
		t.Errorf("image printed %q, want %q", out, want)
	}
	img := env.Inspect(t, res.Ref).Images[0]
	if !strings.Contains(strings.Join(img.Config.Config.Env, " "), "NIX_SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt") {
		t.Errorf("env %v lacks NIX_SSL_CERT_FILE", img.Config.Config.Env)
	}
	basics := basicsLayer(img)
	if basics == "" {
		t.Fatal("no basics layer")
	}
	files := map[string]string{}
	for _, f := range layerFiles(t, env, img, basics) {
		files[f.name] = f.mode
	}
	for name, mode := range map[string]string{"etc/passwd": "-rw-r--r--", "etc/group": "-rw-r--r--", "tmp/": "dtrwxrwxrwx", "home/app/": "drwxr-xr-x"} {
		if files[name] != mode {
			t.Errorf("%s: mode %q, want %q (layer: %v)", name, files[name], mode, files)
		}
	}

	// Again: the same layer.
	again := env.Build(t, harness.Buildctl, dir, harness.BuildOpts{})
	if d := basicsLayer(env.Inspect(t, again.Ref).Images[0]); d != basics {
		t.Errorf("basics layer %s, first build %s", d, basics)
	}

	// Switched off: only store paths and links.
	// buildx shows the warnings.
	off := env.Build(t, harness.Buildx, dir, harness.BuildOpts{BuildArgs: map[string]string{"NIX_SCRATCH_BASICS": "false"}})
	offImg := env.Inspect(t, off.Ref).Images[0]
	if d := basicsLayer(offImg); d != "" {
		t.Errorf("NIX_SCRATCH_BASICS=false still added %s", d)
	}
	for _, h := range nonEmptyHistory(offImg) {
		if !strings.HasPrefix(h.CreatedBy, "nix-frontend: /nix/store/") && !strings.HasPrefix(h.CreatedBy, "nix-frontend: links in /;") {
			t.Errorf("NIX_SCRATCH_BASICS=false: layer %q", h.CreatedBy)
		}
	}
	if !strings.Contains(off.Log, "UnknownUser") {
		t.Errorf("no UnknownUser warning for USER app without /etc/passwd:\n%s", off.Log)
	}
	// --call=check knows it without building.
	if out, _ := buildxCall(t, env, dir, "check", "--build-arg", "NIX_SCRATCH_BASICS=false"); !strings.Contains(out, "UnknownUser") || !strings.Contains(out, ">>> USER app") {
		t.Errorf("--call=check does not show UnknownUser at the USER line:\n%s", out)
	}
	if out, _ := buildxCall(t, env, dir, "check"); strings.Contains(out, "UnknownUser") {
		t.Errorf("--call=check shows UnknownUser although the basics define app:\n%s", out)
	}
}

// TestMissingCABundle warns at the INSTALL line when the closure has a TLS
// library and no CA bundle.
func TestMissingCABundle(t *testing.T) {
	env := harness.Require(t)
	dir := env.Context(t, map[string]string{
		"Nixfile":     "FROM scratch\nINSTALL --file=default.nix app openssl\nENTRYPOINT [\"app\"]\n",
		"default.nix": basicsNix,
	})
	env.AddBusybox(t, dir)
	res := env.Build(t, harness.Buildx, dir, harness.BuildOpts{})
	if !strings.Contains(res.Log, "MissingCABundle") || !strings.Contains(res.Log, "openssl-3.0 but no CA bundle") || !strings.Contains(res.Log, "(line 3)") {
		t.Errorf("no MissingCABundle warning at the INSTALL line:\n%s", res.Log)
	}
}

func basicsLayer(img *harness.Image) digest.Digest {
	for i, h := range nonEmptyHistory(img) {
		if strings.Contains(h.CreatedBy, "passwd, group, /tmp") {
			return img.Manifest.Layers[i].Digest
		}
	}
	return ""
}

type layerFile struct{ name, mode string }

func layerFiles(t *testing.T, env *harness.Env, img *harness.Image, layer digest.Digest) []layerFile {
	var out []layerFile
	env.EachLayerFile(t, img, func(l ocispecs.Descriptor, f harness.LayerFile) bool {
		if l.Digest == layer {
			out = append(out, layerFile{f.Header.Name, f.Header.FileInfo().Mode().String()})
		}
		return true
	})
	return out
}
