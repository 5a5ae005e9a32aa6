package harness

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	digest "github.com/opencontainers/go-digest"
)

var builtLine = regexp.MustCompile(`(?m)nix: building (\S+)$`)

// Built returns the derivations a build's log says Nix built, by name,
// sorted: every build prints one "nix: building <name>" line. Each name is
// listed once, because buildx's plain progress may print a step's log again
// when the step is reported again (as cache exports do).
func Built(log string) []string {
	seen := map[string]bool{}
	var out []string
	for _, m := range builtLine.FindAllStringSubmatch(log, -1) {
		if !seen[m[1]] {
			seen[m[1]] = true
			out = append(out, m[1])
		}
	}
	sort.Strings(out)
	return out
}

// StoreLayers maps each store path with a layer of its own to that layer's
// digest, reading the image history nix-frontend writes.
func StoreLayers(img *Image) map[string]digest.Digest {
	out := map[string]digest.Digest{}
	layer := 0
	for _, h := range img.Config.History {
		if h.EmptyLayer {
			continue
		}
		if p, ok := strings.CutPrefix(h.CreatedBy, "nix-frontend: /nix/store/"); ok && layer < len(img.Manifest.Layers) {
			out["/nix/store/"+p] = img.Manifest.Layers[layer].Digest
		}
		layer++
	}
	return out
}

// Exists reports whether the registry has a reference.
func (e *Env) Exists(ref string) bool {
	_, err := headManifest(ref)
	return err == nil
}

// HostClosure builds attr of the .nix file at file (in a build context made
// with AddBusybox) with the host's own Nix, in a throwaway store, and returns
// the runtime closure `nix-store -qR` reports: an independent check of what
// an image must contain. Store paths do not depend on the store's location
// on disk, so they are the same paths the frontend builds.
func HostClosure(t testing.TB, file, attr string, nixArgs ...string) []string {
	t.Helper()
	store := t.TempDir()
	env := append(os.Environ(),
		"NIX_REMOTE=local?root="+store,
		"NIX_CONFIG="+OfflineNixConfig+"\nexperimental-features = nix-command flakes",
		"HOME="+t.TempDir())
	run := func(name string, args ...string) string {
		cmd := exec.Command(name, args...)
		cmd.Env = env
		cmd.Dir = filepath.Dir(file)
		out, err := cmd.Output()
		if err != nil {
			msg := ""
			if ee, ok := err.(*exec.ExitError); ok {
				msg = string(ee.Stderr)
			}
			t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, msg)
		}
		return string(out)
	}
	args := append([]string{"--no-out-link", file, "-A", attr}, nixArgs...)
	outPath := strings.TrimSpace(run("nix-build", args...))
	// Let the test clean up the read-only store.
	t.Cleanup(func() { exec.Command("chmod", "-R", "u+w", store).Run() })
	return strings.Fields(run("nix-store", "-qR", outPath))
}

// Prune runs `buildctl prune` with filters on the test buildkitd: filter
// "type==exec.cachemount" empties the /nix cache mounts (a new runner's
// store), "type!=exec.cachemount" drops BuildKit's own cache and keeps them.
func (e *Env) Prune(t testing.TB, filter string) {
	t.Helper()
	out, err := exec.Command("buildctl", "--addr", e.BuildkitHost, "prune", "--all", "--filter", filter).CombinedOutput()
	if err != nil {
		t.Fatalf("buildctl prune --filter %s: %v\n%s", filter, err, out)
	}
}
