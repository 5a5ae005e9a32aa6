package integration

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nix-frontend/nix-frontend/integration/harness"
	digest "github.com/opencontainers/go-digest"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"
)

// The tests of this file build on two BuildKit daemons, two machines as far
// as BuildKit and Nix can tell: each has its own BuildKit cache and its own
// /nix cache mount. They check what makes a fleet of builders work: the
// same image on every machine, and the ways one machine's work reaches
// another (BuildKit's exported cache, a Nix binary cache).

var allProjectDrvs = []string{"app-1", "leaf-1", "other-1"}

// TestScalingBitIdentical builds the same context on the test daemon and
// on a new one, which share nothing but the registry: the images must be
// the same bytes, with and without SOURCE_DATE_EPOCH, and their Nix layers
// must carry no owner and no time of the build.
func TestScalingBitIdentical(t *testing.T) {
	env := harness.Require(t)
	// The busybox layer of every build, keyed by subtest: its store path
	// is the same in each, and so must its layer be.
	busybox := map[string]digest.Digest{}
	for _, epoch := range []string{"1700000000", ""} {
		name := "SOURCE_DATE_EPOCH=" + epoch
		if epoch == "" {
			name = "no SOURCE_DATE_EPOCH"
		}
		t.Run(name, func(t *testing.T) {
			other := env.StartDaemon(t)
			dir := projectContext(t, env)
			args := map[string]string{"SALT": salt(t)}
			if epoch != "" {
				args["SOURCE_DATE_EPOCH"] = epoch
			}
			a := env.Build(t, harness.Buildctl, dir, harness.BuildOpts{BuildArgs: args})
			b := other.Build(t, harness.Buildctl, dir, harness.BuildOpts{BuildArgs: args})
			// Both machines did the work: nothing came from a shared cache.
			for _, r := range []*harness.Result{a, b} {
				if got := harness.Built(r.Log); !reflect.DeepEqual(got, allProjectDrvs) {
					t.Fatalf("built %v, want %v\n%s", got, allProjectDrvs, r.Log)
				}
			}
			// The checks TestScalingRegistryCache relies on see work done.
			ran, written := 0, 0
			for name, st := range nixSteps(b) {
				if !st.Ran {
					t.Errorf("daemon B: %q did not run: %+v", name, st)
				}
				ran++
				written += len(layerStepNames(name))
			}
			// The 4 paths' layers are written by a step per build: the
			// paths a build makes share a layer step.
			if ran != 6 || written != 4 {
				t.Errorf("daemon B ran %d Nix steps writing %d layers, want 6 (evaluate, 2 builds, 2 layer steps, the link tree) writing 4", ran, written)
			}
			if mounts := other.CacheMounts(t); !slices.ContainsFunc(mounts, isNixMount) {
				t.Errorf("daemon B has cache mounts %v, want a /nix", mounts)
			}
			imgA, imgB := env.Inspect(t, a.Ref).Images[0], env.Inspect(t, b.Ref).Images[0]
			if a.Digest == "" || a.Digest != b.Digest || imgA.Digest != imgB.Digest {
				t.Errorf("daemon A made %s (registry: %s), daemon B %s (registry: %s)", a.Digest, imgA.Digest, b.Digest, imgB.Digest)
				diffImages(t, env, imgA, imgB)
			}
			if epoch != "" {
				want := time.Unix(1700000000, 0).UTC()
				if imgA.Config.Created == nil || !imgA.Config.Created.Equal(want) {
					t.Errorf("config created %v, want SOURCE_DATE_EPOCH %v", imgA.Config.Created, want)
				}
			} else {
				t.Logf("config created without SOURCE_DATE_EPOCH: %v", imgA.Config.Created)
			}
			for p, d := range harness.StoreLayers(imgA) {
				if strings.HasSuffix(p, "-busybox") {
					busybox[name] = d
				}
			}
			layers := 0
			for i, h := range nonEmptyHistory(imgA) {
				if !strings.HasPrefix(h.CreatedBy, "nix-frontend: ") {
					continue
				}
				layers++
				checkLayerTar(t, h.CreatedBy, env.Blob(t, imgA, imgA.Manifest.Layers[i].Digest), imgA.Manifest.Layers[i].MediaType)
			}
			// busybox, leaf, app, other, the links and the basics.
			if layers != 6 {
				t.Errorf("%d nix-frontend layers, want 6 (4 store paths, the links and FROM scratch's basics)", layers)
			}
		})
	}
	if len(busybox) != 2 || busybox["SOURCE_DATE_EPOCH=1700000000"] != busybox["no SOURCE_DATE_EPOCH"] {
		t.Errorf("busybox's layer differs between builds: %v", busybox)
	}
}

func isNixMount(desc string) bool { return strings.HasPrefix(desc, "cached mount /nix from ") }

func nonEmptyHistory(img *harness.Image) []ocispecs.History {
	var out []ocispecs.History
	for _, h := range img.Config.History {
		if !h.EmptyLayer {
			out = append(out, h)
		}
	}
	return out
}

// diffImages says what differs between two images that should be equal.
func diffImages(t *testing.T, env *harness.Env, a, b *harness.Image) {
	t.Helper()
	if a.ConfigDigest != b.ConfigDigest {
		ca, cb := env.Blob(t, a, a.Manifest.Config.Digest), env.Blob(t, b, b.Manifest.Config.Digest)
		t.Errorf("configs differ:\nA: %s\nB: %s", ca, cb)
	}
	if len(a.Manifest.Layers) != len(b.Manifest.Layers) {
		t.Errorf("A has %d layers, B %d", len(a.Manifest.Layers), len(b.Manifest.Layers))
		return
	}
	if a.Manifest.MediaType != b.Manifest.MediaType || !reflect.DeepEqual(a.Manifest.Annotations, b.Manifest.Annotations) {
		t.Errorf("manifests differ: A %s %v, B %s %v", a.Manifest.MediaType, a.Manifest.Annotations, b.Manifest.MediaType, b.Manifest.Annotations)
	}
	hist := nonEmptyHistory(a)
	for i := range a.Manifest.Layers {
		la, lb := a.Manifest.Layers[i], b.Manifest.Layers[i]
		if !reflect.DeepEqual(la, lb) {
			what := ""
			if i < len(hist) {
				what = hist[i].CreatedBy
			}
			t.Errorf("layer %d (%s):\nA %+v\nB %+v", i, what, la, lb)
		}
	}
}

// storeTime is the time Nix gives every store file; nothing in a Nix
// layer may be later.
var storeTime = time.Unix(1, 0)

// checkLayerTar reads a layer blob and checks it is reproducible by
// construction: entries in walk order (a directory, then its entries by
// name), owned by root, and no time after storeTime.
func checkLayerTar(t *testing.T, what string, blob []byte, mediaType string) {
	t.Helper()
	var r io.Reader = bytes.NewReader(blob)
	switch {
	case strings.HasSuffix(mediaType, "+gzip") || strings.HasSuffix(mediaType, ".gzip"):
		zr, err := gzip.NewReader(r)
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		r = zr
	case strings.HasSuffix(mediaType, ".tar") || strings.HasSuffix(mediaType, "tar"):
	default:
		t.Fatalf("%s: layer media type %s: the test reads gzip and plain tars only", what, mediaType)
	}
	tr := tar.NewReader(r)
	var prev string
	n := 0
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		n++
		name := strings.TrimSuffix(h.Name, "/")
		if prev != "" && !pathLess(prev, name) {
			t.Errorf("%s: %q comes after %q", what, name, prev)
		}
		prev = name
		if h.Uid != 0 || h.Gid != 0 {
			t.Errorf("%s: %s is owned by %d:%d", what, h.Name, h.Uid, h.Gid)
		}
		for kind, tm := range map[string]time.Time{"mtime": h.ModTime, "atime": h.AccessTime, "ctime": h.ChangeTime} {
			if !tm.IsZero() && tm.After(storeTime) {
				t.Errorf("%s: %s has %s %s", what, h.Name, kind, tm.UTC().Format(time.RFC3339))
			}
		}
	}
	if n == 0 {
		t.Errorf("%s: empty layer", what)
	}
}

// pathLess orders paths as a depth-first walk with sorted directories
// visits them: by component.
func pathLess(a, b string) bool {
	ea, eb := strings.Split(a, "/"), strings.Split(b, "/")
	for i := 0; i < len(ea) && i < len(eb); i++ {
		if ea[i] != eb[i] {
			return ea[i] < eb[i]
		}
	}
	return len(ea) < len(eb)
}

// plainLine is a line of buildctl's and buildx's plain progress.
var plainLine = regexp.MustCompile(`(?m)^#(\d+) (.*)$`)

// nixStepState is how a Nix step (evaluate, build, export) of a build
// went.
type nixStepState struct {
	Ran    bool // its container ran
	Cached bool // BuildKit reported a cache hit
	Pulled bool // its cached result was pulled from an imported cache
}

// nixSteps returns the Nix steps of a build by name: from the progress
// data of in-process builds, from the plain progress of buildctl and
// buildx. A step whose result comes from an imported cache is reported
// cached, and then, when its result is read, shows the pull of its blobs
// ("sha256:…", "extracting sha256:…") and a DONE of its own; plain
// progress may print only the latter. A step that runs never pulls blobs.
func nixSteps(res *harness.Result) map[string]nixStepState {
	out := map[string]nixStepState{}
	if res.Status != nil {
		for _, v := range res.Status.List() {
			if nixStep.MatchString(v.Name) {
				out[v.Name] = nixStepState{Ran: !v.Cached && v.Started != nil, Cached: v.Cached}
			}
		}
		return out
	}
	names := map[string]string{}
	states := map[string]*nixStepState{}
	for _, m := range plainLine.FindAllStringSubmatch(res.Log, -1) {
		n, text := m[1], m[2]
		if _, ok := names[n]; !ok {
			names[n] = text
			states[n] = &nixStepState{}
		}
		st := states[n]
		switch {
		case text == "CACHED":
			st.Cached = true
		case strings.HasPrefix(text, "sha256:"), strings.HasPrefix(text, "extracting sha256:"):
			st.Pulled = true
		}
	}
	for n, name := range names {
		if nixStep.MatchString(name) {
			st := *states[n]
			st.Ran = !st.Cached && !st.Pulled
			out[name] = st
		}
	}
	return out
}

// TestScalingRegistryCache exports BuildKit's cache from one daemon and
// imports it on a new one, whose /nix is empty: the new daemon runs no
// Nix step at all, neither builds nor copies a store path, and pushes the
// same image. Once through a registry, once through local directories.
// The busybox layer comes from a layer step an earlier build recorded,
// with layers of paths this image does not have, which no cache holds.
func TestScalingRegistryCache(t *testing.T) {
	env := harness.Require(t)
	env.Build(t, harness.InProcess, projectContext(t, env), harness.BuildOpts{BuildArgs: map[string]string{"SALT": salt(t) + "-earlier"}})
	registry := func(t *testing.T) (harness.Cache, harness.Cache) {
		ref := fmt.Sprintf("%s/cache/%s:%d", env.Registry, strings.ToLower(notRefChar.ReplaceAllString(t.Name(), "-")), time.Now().UnixNano())
		return harness.Cache{Exports: []string{"type=registry,ref=" + ref + ",mode=max,registry.insecure=true"}},
			harness.Cache{Imports: []string{"type=registry,ref=" + ref + ",registry.insecure=true"}}
	}
	local := func(t *testing.T) (harness.Cache, harness.Cache) {
		dir := t.TempDir()
		return harness.Cache{Exports: []string{"type=local,dest=" + dir + ",mode=max"}},
			harness.Cache{Imports: []string{"type=local,src=" + dir}}
	}
	cases := []struct {
		name  string
		via   harness.Via
		cache func(t *testing.T) (harness.Cache, harness.Cache)
	}{
		{"registry/in-process", harness.InProcess, registry},
		{"registry/buildctl", harness.Buildctl, registry},
		{"registry/buildx", harness.Buildx, registry},
		{"local/in-process", harness.InProcess, local},
		{"local/buildctl", harness.Buildctl, local},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			other := env.StartDaemon(t)
			dir := projectContext(t, env)
			opts := harness.BuildOpts{BuildArgs: map[string]string{"SALT": salt(t)}}
			exp, imp := c.cache(t)
			a := env.Build(t, c.via, dir, withCache(opts, exp))
			if got := harness.Built(a.Log); !reflect.DeepEqual(got, allProjectDrvs) {
				t.Fatalf("daemon A built %v, want %v\n%s", got, allProjectDrvs, a.Log)
			}
			recorded := false
			for name, st := range nixSteps(a) {
				recorded = recorded || slices.Contains(layerStepNames(name), "busybox") && !st.Ran
			}
			if !recorded {
				t.Errorf("daemon A copied busybox again: the layer step an earlier build recorded was not reused")
			}
			b := other.Build(t, c.via, dir, withCache(opts, imp))
			if got := harness.Built(b.Log); len(got) != 0 {
				t.Errorf("daemon B built %v with the cache imported", got)
			}
			layers := 0
			for name, st := range nixSteps(b) {
				if st.Ran {
					t.Errorf("daemon B ran %q with the cache imported", name)
				}
				if names := layerStepNames(name); len(names) > 0 {
					layers += len(names)
					if !st.Cached && !st.Pulled {
						t.Errorf("daemon B's %q was no cache hit: store paths were copied", name)
					}
				}
			}
			if layers != 4 {
				t.Errorf("daemon B's layer steps wrote %d store paths, want 4", layers)
			}
			// No Nix step ran at all: the daemon has no /nix.
			if mounts := other.CacheMounts(t); len(mounts) != 0 {
				t.Errorf("daemon B has cache mounts %v: a Nix step ran", mounts)
			}
			if strings.Contains(b.Log, "nix: substituting") || strings.Contains(b.Log, "copying path") {
				t.Errorf("daemon B copied store paths")
			}
			if b.Digest == "" || b.Digest != a.Digest {
				t.Errorf("daemon B made %s, daemon A %s", b.Digest, a.Digest)
				diffImages(t, env, env.Inspect(t, a.Ref).Images[0], env.Inspect(t, b.Ref).Images[0])
			}
			if out := other.Run(t, b.Ref, harness.RunOpts{}); out != "leaf v1\n" {
				t.Errorf("image printed %q", out)
			}
			if t.Failed() {
				t.Logf("daemon A's log:\n%s", a.Log)
				t.Logf("daemon B's log:\n%s", b.Log)
			}
		})
	}
}

// TestScalingCacheAfterEstargz covers a builder that also pushes eStargz
// images. BuildKit keeps every compression it ever made of a layer, and a
// mode=max cache export may carry any of them; a daemon importing that
// cache then pushes the eStargz blob as the gzip layer, and its image
// differs. compression=gzip,force-compression=true on the cache export
// keeps the cache to the blobs the gzip images use.
func TestScalingCacheAfterEstargz(t *testing.T) {
	env := harness.Require(t)
	a, b := env.StartDaemon(t), env.StartDaemon(t)
	dir := projectContext(t, env)
	opts := harness.BuildOpts{BuildArgs: map[string]string{"SALT": salt(t)}}
	gzipped := a.Build(t, harness.Buildctl, dir, opts)

	esgz := opts
	esgz.Output = "type=image,name=" + env.NewRef("estargz") +
		",push=true,registry.insecure=true,oci-mediatypes=true,compression=estargz,force-compression=true"
	a.Build(t, harness.Buildctl, dir, esgz)

	ref := fmt.Sprintf("%s/cache/estargz:%d", env.Registry, time.Now().UnixNano())
	exported := a.Build(t, harness.Buildctl, dir, withCache(opts, harness.Cache{Exports: []string{
		"type=registry,ref=" + ref + ",mode=max,registry.insecure=true,compression=gzip,force-compression=true"}}))
	imported := b.Build(t, harness.Buildctl, dir, withCache(opts, harness.Cache{Imports: []string{
		"type=registry,ref=" + ref + ",registry.insecure=true"}}))
	if got := harness.Built(imported.Log); len(got) != 0 {
		t.Errorf("daemon B built %v with the cache imported", got)
	}
	for _, r := range []*harness.Result{exported, imported} {
		if r.Digest != gzipped.Digest {
			t.Errorf("%s is %s, the first gzip image %s", r.Ref, r.Digest, gzipped.Digest)
			diffImages(t, env, env.Inspect(t, gzipped.Ref).Images[0], env.Inspect(t, r.Ref).Images[0])
		}
	}
}

var notRefChar = regexp.MustCompile(`[^a-zA-Z0-9]+`)

// hostBinaryCache builds attrs of projectNix with the host's Nix into a
// throwaway store, signs their closure with a new key and copies it into a
// file:// binary cache. It returns the cache directory, the public key and
// the closure.
func hostBinaryCache(t *testing.T, dir, salt string, attrs ...string) (cacheDir, pub string, closure []string) {
	t.Helper()
	store := t.TempDir()
	t.Cleanup(func() { exec.Command("chmod", "-R", "u+w", store).Run() })
	cacheDir = t.TempDir()
	keys := t.TempDir()
	sk, pk := filepath.Join(keys, "sk"), filepath.Join(keys, "pk")
	env := append(os.Environ(),
		"NIX_REMOTE=local?root="+store,
		"NIX_CONFIG="+harness.OfflineNixConfig+"\nexperimental-features = nix-command",
		"HOME="+t.TempDir())
	run := func(name string, args ...string) string {
		t.Helper()
		cmd := exec.Command(name, args...)
		cmd.Env, cmd.Dir = env, dir
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, stderr.String())
		}
		return string(out)
	}
	run("nix-store", "--generate-binary-cache-key", "nix-frontend-scaling-1", sk, pk)
	args := []string{"--no-out-link", "default.nix", "--argstr", "salt", salt}
	for _, a := range attrs {
		args = append(args, "-A", a)
	}
	outs := strings.Fields(run("nix-build", args...))
	closure = strings.Fields(run("nix-store", append([]string{"-qR"}, outs...)...))
	run("nix", append([]string{"store", "sign", "--key-file", sk}, closure...)...)
	run("nix", append([]string{"copy", "--to", "file://" + cacheDir}, closure...)...)
	dt, err := os.ReadFile(pk)
	if err != nil {
		t.Fatal(err)
	}
	return cacheDir, strings.TrimSpace(string(dt)), closure
}

// serveDir serves a directory over HTTP on loopback. Build steps use the
// host's network (buildkitd has no CNI configuration here), so the
// address works inside them.
func serveDir(t *testing.T, dir string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.FileServer(http.Dir(dir))}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return "http://" + ln.Addr().String()
}

// TestScalingBinaryCache fills a Nix binary cache on the host, with the
// host's Nix, and builds on a new daemon (an empty /nix) that substitutes
// from it: nothing is built, and every store path of the host's closure is
// a layer of the image. With the wrong public key Nix refuses the
// substitutes, says so, and builds.
func TestScalingBinaryCache(t *testing.T) {
	env := harness.Require(t)
	dir := projectContext(t, env)
	s := salt(t)
	cacheDir, pub, closure := hostBinaryCache(t, dir, s, "app", "other")
	url := serveDir(t, cacheDir)
	narinfos, _ := filepath.Glob(filepath.Join(cacheDir, "*.narinfo"))
	if len(narinfos) != len(closure) {
		t.Fatalf("the cache has %d narinfos for a closure of %d paths", len(narinfos), len(closure))
	}
	nixConfig := func(key string) string {
		return "substituters = " + url + "\ntrusted-public-keys = " + key + "\nsandbox = false\nbuild-users-group ="
	}

	t.Run("signed", func(t *testing.T) {
		other := env.StartDaemon(t)
		res := other.Build(t, harness.Buildctl, dir, harness.BuildOpts{BuildArgs: map[string]string{"SALT": s, "NIX_CONFIG": nixConfig(pub)}})
		if got := harness.Built(res.Log); len(got) != 0 {
			t.Errorf("built %v instead of substituting", got)
		}
		for _, p := range closure {
			if strings.Contains(p, "-busybox") || strings.HasSuffix(p, "-leaf.txt") {
				continue // sources: evaluation adds them to the store
			}
			if !strings.Contains(res.Log, "nix: substituting "+p+"\n") {
				t.Errorf("the log does not show %s substituted", p)
			}
		}
		layers := harness.StoreLayers(other.Inspect(t, res.Ref).Images[0])
		for _, p := range closure {
			if _, ok := layers[p]; !ok {
				t.Errorf("%s of the host's closure has no layer; layers: %v", p, layers)
			}
		}
		if len(layers) != len(closure) {
			t.Errorf("%d store layers for a closure of %d paths", len(layers), len(closure))
		}
		if out := other.Run(t, res.Ref, harness.RunOpts{}); out != "leaf v1\n" {
			t.Errorf("image printed %q", out)
		}
		if t.Failed() {
			t.Logf("build log:\n%s", res.Log)
		}
	})

	t.Run("wrong key", func(t *testing.T) {
		// A key pair the cache was not signed with.
		keys := t.TempDir()
		if out, err := exec.Command("nix-store", "--generate-binary-cache-key", "nix-frontend-scaling-1",
			filepath.Join(keys, "sk"), filepath.Join(keys, "pk")).CombinedOutput(); err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		wrong, err := os.ReadFile(filepath.Join(keys, "pk"))
		if err != nil {
			t.Fatal(err)
		}
		other := env.StartDaemon(t)
		res, err := other.TryBuild(t, harness.Buildctl, dir, harness.BuildOpts{BuildArgs: map[string]string{
			"SALT": s, "NIX_CONFIG": nixConfig(strings.TrimSpace(string(wrong)))}})
		if err != nil {
			t.Fatalf("the build failed: %v\n%s", err, res.Log)
		}
		if strings.Contains(res.Log, "nix: substituting ") {
			t.Errorf("Nix substituted paths signed with a key it does not trust")
		}
		if got := harness.Built(res.Log); !reflect.DeepEqual(got, allProjectDrvs) {
			t.Errorf("built %v, want %v: Nix falls back to building", got, allProjectDrvs)
		}
		// Each refused path is named.
		for _, p := range closure {
			if strings.Contains(p, "-busybox") || strings.HasSuffix(p, "-leaf.txt") {
				continue
			}
			// Nix 2.8, then 2.2x.
			msgs := []string{
				"warning: the substitute for '" + p + "' from '" + url + "' is not signed by any of the keys in 'trusted-public-keys'",
				"warning: ignoring substitute for '" + p + "' from '" + url + "', as it's not signed by any of the keys in 'trusted-public-keys'",
			}
			if !strings.Contains(res.Log, msgs[0]) && !strings.Contains(res.Log, msgs[1]) {
				t.Errorf("the log does not say why Nix did not substitute %s (want %q):\n%s", p, msgs, res.Log)
			}
		}
	})
}

func withCache(o harness.BuildOpts, c harness.Cache) harness.BuildOpts {
	o.Cache = c
	return o
}

// TestScalingPushCache has one daemon upload its closure with
// NIX_PUSH_CACHE and a new daemon (an empty /nix, no BuildKit cache)
// substitute all of it: the new daemon builds nothing and makes the same
// image.
func TestScalingPushCache(t *testing.T) {
	env := harness.Require(t)
	url, cacheDir := binaryCacheServer(t)
	keys := t.TempDir()
	sk, pk := filepath.Join(keys, "sk"), filepath.Join(keys, "pk")
	if out, err := exec.Command("nix-store", "--generate-binary-cache-key", "nix-frontend-scaling-1", sk, pk).CombinedOutput(); err != nil {
		t.Fatalf("generating a signing key: %v\n%s", err, out)
	}
	pub, err := os.ReadFile(pk)
	if err != nil {
		t.Fatal(err)
	}
	dir := projectContext(t, env)
	s := salt(t)
	a := env.Build(t, harness.Buildctl, dir, harness.BuildOpts{
		BuildArgs: map[string]string{"SALT": s, "NIX_PUSH_CACHE": url},
		Args:      []string{"--secret", "id=nix-signing-key,src=" + sk}})
	if got := harness.Built(a.Log); !reflect.DeepEqual(got, allProjectDrvs) {
		t.Fatalf("daemon A built %v, want %v\n%s", got, allProjectDrvs, a.Log)
	}
	narinfos, _ := filepath.Glob(filepath.Join(cacheDir, "*.narinfo"))
	if len(narinfos) < 4 {
		t.Fatalf("the cache has %d narinfos, want the closure (busybox, leaf, app, other)\n%s", len(narinfos), a.Log)
	}
	for _, n := range narinfos {
		if dt, _ := os.ReadFile(n); !strings.Contains(string(dt), "Sig: nix-frontend-scaling-1:") {
			t.Errorf("%s is not signed:\n%s", filepath.Base(n), dt)
		}
	}

	other := env.StartDaemon(t)
	b := other.Build(t, harness.Buildctl, dir, harness.BuildOpts{BuildArgs: map[string]string{
		"SALT":       s,
		"NIX_CONFIG": "substituters = " + url + "\ntrusted-public-keys = " + strings.TrimSpace(string(pub)) + "\nsandbox = false\nbuild-users-group =",
	}})
	if got := harness.Built(b.Log); len(got) != 0 {
		t.Errorf("daemon B built %v instead of substituting\n%s", got, b.Log)
	}
	for _, name := range allProjectDrvs {
		if !regexp.MustCompile(`nix: substituting /nix/store/[a-z0-9]{32}-` + name + `\n`).MatchString(b.Log) {
			t.Errorf("daemon B did not substitute %s\n%s", name, b.Log)
		}
	}
	if b.Digest == "" || b.Digest != a.Digest {
		t.Errorf("daemon B made %s, daemon A %s", b.Digest, a.Digest)
	}
}
