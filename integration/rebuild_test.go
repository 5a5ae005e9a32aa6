package integration

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nix-frontend/nix-frontend/frontend"
	"github.com/nix-frontend/nix-frontend/integration/harness"
	"github.com/nix-frontend/nix-frontend/llb/storelayers"
	"github.com/nix-frontend/nix-frontend/nix/storepath"
)

// projectNix is a small package set: app depends on leaf, other stands
// alone. salt makes every test run's derivations new to the shared /nix
// cache, so the test sees real builds.
const projectNix = `{ salt }:
let
  bb = builtins.path { path = ./busybox; name = "busybox"; };
  sh = "${bb}/bin/busybox";
  mk = name: script: derivation {
    inherit name salt;
    system = builtins.currentSystem;
    builder = sh;
    args = [ "sh" "-c" script ];
  };
in rec {
  # leaf's contents come from leaf.txt through its own store path, so
  # other files of the context do not affect it.
  leafSrc = builtins.path { path = ./leaf.txt; name = "leaf.txt"; };
  leaf = mk "leaf-1" "${sh} mkdir -p $out; ${sh} cp ${leafSrc} $out/leaf.txt";
  app = mk "app-1" ''
    ${sh} mkdir -p $out/bin
    ${sh} printf '#!${sh} sh\n${sh} cat ${leaf}/leaf.txt\n' > $out/bin/app
    ${sh} chmod 555 $out/bin/app
  '';
  other = mk "other-1" "${sh} mkdir -p $out/share; echo other > $out/share/other";
}
`

func projectContext(t *testing.T, env *harness.Env) string {
	t.Helper()
	dir := env.Context(t, map[string]string{
		"Nixfile": "FROM scratch\n" +
			"ARG SALT\n" +
			"INSTALL --file=default.nix --argstr salt=${SALT} app other\n" +
			"ENTRYPOINT [\"app\"]\n",
		"default.nix": projectNix,
		"leaf.txt":    "leaf v1\n",
		"README.md":   "A file no derivation reads.\n",
	})
	env.AddBusybox(t, dir)
	return dir
}

// nixStep matches the names of the steps that run Nix: evaluation, fetches,
// builds, the link tree and the layers.
var nixStep = regexp.MustCompile(`^\[nix[^\]]*\] (evaluate|fetch|build|link tree|layer) `)

func salt(t *testing.T) string { return fmt.Sprintf("%s-%d", t.Name(), time.Now().UnixNano()) }

// TestRebuilds checks the caching promises: a no-op rebuild, an edit of a
// file no derivation reads and a comment added above the INSTALL line run no
// Nix step and give the same image; a changed leaf rebuilds only it and its
// dependents, copies only the new store paths out of the store, and every
// other layer keeps its digest.
func TestRebuilds(t *testing.T) {
	env := harness.Require(t)
	for _, via := range []harness.Via{harness.InProcess, harness.Buildctl} {
		t.Run(string(via), func(t *testing.T) {
			dir := projectContext(t, env)
			opts := harness.BuildOpts{BuildArgs: map[string]string{"SALT": salt(t)}}

			cold := env.Build(t, via, dir, opts)
			if got, want := harness.Built(cold.Log), []string{"app-1", "leaf-1", "other-1"}; !reflect.DeepEqual(got, want) {
				t.Fatalf("cold build built %v, want %v\n%s", got, want, cold.Log)
			}
			if out := env.Run(t, cold.Ref, harness.RunOpts{}); out != "leaf v1\n" {
				t.Fatalf("image printed %q", out)
			}
			if want := "evaluating 2 installables with " + env.Evaluator(); !strings.Contains(cold.Log, want) {
				t.Errorf("the evaluation step does not say %q", want)
			}
			coldImg := env.Inspect(t, cold.Ref).Images[0]

			noop := env.Build(t, via, dir, opts)
			if got := harness.Built(noop.Log); len(got) != 0 {
				t.Errorf("no-op rebuild built %v", got)
			}
			if noop.Digest != cold.Digest {
				t.Errorf("no-op rebuild gave %s, first build %s", noop.Digest, cold.Digest)
			}
			for name, st := range nixSteps(noop) {
				if st.Ran {
					t.Errorf("no-op rebuild ran %q", name)
				}
			}

			src := readFile(t, filepath.Join(dir, "Nixfile"))
			harness.WriteFile(t, filepath.Join(dir, "Nixfile"), strings.Replace(src, "INSTALL", "# A comment moves INSTALL down a line.\nINSTALL", 1))
			commented := env.Build(t, via, dir, opts)
			for name, st := range nixSteps(commented) {
				if st.Ran {
					t.Errorf("after adding a comment above INSTALL the build ran %q", name)
				}
			}
			if commented.Digest != cold.Digest {
				t.Errorf("after adding a comment: digest %s, first build %s", commented.Digest, cold.Digest)
			}

			harness.WriteFile(t, filepath.Join(dir, "README.md"), "Edited, and still read by no derivation.\n")
			edited := env.Build(t, via, dir, opts)
			if got := harness.Built(edited.Log); len(got) != 0 {
				t.Errorf("after editing an unrelated file the build built %v", got)
			}
			if edited.Digest != cold.Digest {
				t.Errorf("after editing an unrelated file: digest %s, first build %s", edited.Digest, cold.Digest)
			}

			harness.WriteFile(t, filepath.Join(dir, "leaf.txt"), "leaf v2\n")
			leaf := env.Build(t, via, dir, opts)
			if got, want := harness.Built(leaf.Log), []string{"app-1", "leaf-1"}; !reflect.DeepEqual(got, want) {
				t.Errorf("after changing the leaf the build built %v, want %v", got, want)
			}
			if out := env.Run(t, leaf.Ref, harness.RunOpts{}); out != "leaf v2\n" {
				t.Fatalf("image printed %q after the change", out)
			}
			// Only the new store paths were copied out of the store; the
			// layers of the others came from the steps that wrote them in
			// the first build, which shared one step.
			var copied []string
			for name, st := range nixSteps(leaf) {
				if st.Ran {
					copied = append(copied, layerStepNames(name)...)
				}
			}
			slices.Sort(copied)
			if !reflect.DeepEqual(copied, []string{"app-1", "leaf-1"}) {
				t.Errorf("after changing the leaf the layer steps of %v ran, want those of app-1 and leaf-1 alone", copied)
			}
			if n := copiedPaths(leaf.Log); n != 2 {
				t.Errorf("layer steps copied %d store paths, want 2", n)
			}
			before := harness.StoreLayers(coldImg)
			after := harness.StoreLayers(env.Inspect(t, leaf.Ref).Images[0])
			kept, changed := 0, 0
			for p, d := range after {
				if old, ok := before[p]; ok {
					kept++
					if old != d {
						t.Errorf("%s: layer %s, was %s", p, d, old)
					}
				} else {
					changed++
				}
			}
			// busybox and other keep their layers; leaf and app are new paths.
			if kept != 2 || changed != 2 {
				t.Errorf("%d store layers kept, %d new; want 2 and 2 (before %v, after %v)", kept, changed, before, after)
			}
			if t.Failed() {
				t.Logf("the build after the leaf change:\n%s", leaf.Log)
			}
		})
	}
}

// preview is the JSON of docker buildx build --call=push-preview.
type preview struct {
	Stages []struct {
		Layers []struct {
			ID  string `json:"id"`
			New bool   `json:"new"`
		} `json:"layers"`
	} `json:"stages"`
	NewLayers int `json:"newLayers"`
	Layers    int `json:"layers"`
}

// pushPreview runs docker buildx build --call=push-preview,format=json.
func pushPreview(t *testing.T, env *harness.Env, dir string, args map[string]string) (preview, string) {
	t.Helper()
	argv := []string{"buildx", "build", "--builder", env.Builder, "--progress", "plain",
		"--call=push-preview,format=json", "-f", filepath.Join(dir, "Nixfile")}
	for k, v := range args {
		argv = append(argv, "--build-arg", k+"="+v)
	}
	cmd := exec.Command("docker", append(argv, dir)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("push preview: %v\n%s", err, stderr.String())
	}
	var pv preview
	if err := json.Unmarshal(stdout.Bytes(), &pv); err != nil {
		t.Fatalf("push preview printed %q: %v", stdout.String(), err)
	}
	return pv, stderr.String()
}

// TestPushPreview checks --call=push-preview: compared with the image in the
// registry, it marks as new exactly the layers the next push sends, and it
// copies no store path to find out.
func TestPushPreview(t *testing.T) {
	env := harness.Require(t)
	dir := projectContext(t, env)
	args := env.DefaultBuildArgs()
	args["SALT"] = salt(t)
	first := env.Build(t, harness.Buildx, dir, harness.BuildOpts{BuildArgs: args})
	firstImg := env.Inspect(t, first.Ref).Images[0]

	harness.WriteFile(t, filepath.Join(dir, "leaf.txt"), "leaf v2\n")
	args[frontend.ArgPreviousImage] = first.Ref
	pv, log := pushPreview(t, env, dir, args)
	if strings.Contains(log, "] layer ") {
		t.Errorf("the push preview ran layer steps:\n%s", log)
	}
	delete(args, frontend.ArgPreviousImage)
	all, _ := pushPreview(t, env, dir, args)
	if all.NewLayers != all.Layers || all.Layers != pv.Layers {
		t.Errorf("without a previous image %d of %d layers are new, want all %d", all.NewLayers, all.Layers, pv.Layers)
	}

	second := env.Build(t, harness.Buildx, dir, harness.BuildOpts{BuildArgs: args})
	secondImg := env.Inspect(t, second.Ref).Images[0]
	had := map[string]bool{}
	for _, l := range firstImg.Manifest.Layers {
		had[l.Digest.String()] = true
	}
	sent := map[string]bool{}
	history := nonEmptyHistory(secondImg)
	if len(history) != len(secondImg.Manifest.Layers) {
		t.Fatalf("%d layers, %d history entries", len(secondImg.Manifest.Layers), len(history))
	}
	for i, l := range secondImg.Manifest.Layers {
		id, ok := storelayers.HistoryID(history[i].CreatedBy)
		if !ok {
			t.Fatalf("layer %d has no nix-frontend history: %q", i, history[i].CreatedBy)
		}
		if !had[l.Digest.String()] {
			sent[id] = true
		}
	}
	previewed := map[string]bool{}
	for _, s := range pv.Stages {
		for _, l := range s.Layers {
			if l.New {
				previewed[l.ID] = true
			}
		}
	}
	if pv.Layers != len(secondImg.Manifest.Layers) || !reflect.DeepEqual(previewed, sent) || len(sent) == 0 {
		t.Errorf("the preview lists %d layers, %v of them new; the push had %d layers and sent %v",
			pv.Layers, slices.Sorted(maps.Keys(previewed)), len(secondImg.Manifest.Layers), slices.Sorted(maps.Keys(sent)))
	}
}

// layerStepNames are the names of the store paths a layer step's progress
// line names ("[nix] layer /nix/store/…-x", "[nix] layer ×3: x, y, z"),
// none for other steps.
func layerStepNames(step string) []string {
	rest, ok := strings.CutPrefix(step, "[nix] layer ")
	if !ok {
		return nil
	}
	if _, names, ok := strings.Cut(rest, ": "); ok && strings.HasPrefix(rest, "×") {
		return strings.Split(names, ", ")
	}
	return []string{storepath.Name(rest)}
}

var copiedLine = regexp.MustCompile(`nix-frontend: copied ([0-9]+) store paths`)

// copiedPaths sums how many store paths a build's layer steps copied.
func copiedPaths(log string) int {
	n := 0
	for _, m := range copiedLine.FindAllStringSubmatch(log, -1) {
		k, _ := strconv.Atoi(m[1])
		n += k
	}
	return n
}
