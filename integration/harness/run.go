package harness

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// RunOpts select what to run of an image.
type RunOpts struct {
	Args     []string // replace the image's entrypoint+cmd
	Platform string   // for an index: "linux/arm64" picks that image
}

// Run pulls ref from the local registry, unpacks it with umoci and runs it
// with runc as the image config says, returning its stdout. It fails the test
// when the container exits non-zero.
func (e *Env) Run(t testing.TB, ref string, o RunOpts) string {
	t.Helper()
	out, err := e.TryRun(t, ref, o)
	if err != nil {
		t.Fatalf("run %s: %v\n%s", ref, err, out)
	}
	return out
}

// TryRun is Run returning the error.
func (e *Env) TryRun(t testing.TB, ref string, o RunOpts) (string, error) {
	t.Helper()
	work := t.TempDir()
	layout := filepath.Join(work, "oci")
	copyArgs := []string{"copy", "--src-tls-verify=false"}
	if o.Platform != "" {
		os, arch, _ := strings.Cut(o.Platform, "/")
		arch, variant, _ := strings.Cut(arch, "/")
		copyArgs = append(copyArgs, "--override-os", os, "--override-arch", arch)
		if variant != "" {
			copyArgs = append(copyArgs, "--override-variant", variant)
		}
	}
	copyArgs = append(copyArgs, "docker://"+ref, "oci:"+layout+":img")
	if out, err := exec.Command("skopeo", copyArgs...).CombinedOutput(); err != nil {
		return string(out), fmt.Errorf("skopeo copy: %w", err)
	}
	bundle := filepath.Join(work, "bundle")
	if out, err := exec.Command("umoci", "unpack", "--image", layout+":img", bundle).CombinedOutput(); err != nil {
		return string(out), fmt.Errorf("umoci unpack: %w", err)
	}
	if err := patchRuntimeConfig(filepath.Join(bundle, "config.json"), o.Args); err != nil {
		return "", err
	}
	id := fmt.Sprintf("nf-test-%d", time.Now().UnixNano())
	cmd := exec.Command("runc", "--root", filepath.Join(work, "runc"), "run", "-b", bundle, id)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if err != nil {
		return stdout.String() + stderr.String(), fmt.Errorf("runc run: %w", err)
	}
	return stdout.String(), nil
}

// patchRuntimeConfig makes umoci's runtime config run without a terminal
// and, if asked, with other arguments.
func patchRuntimeConfig(path string, args []string) error {
	dt, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	var spec map[string]any
	if err := json.Unmarshal(dt, &spec); err != nil {
		return err
	}
	proc, _ := spec["process"].(map[string]any)
	if proc == nil {
		return fmt.Errorf("%s has no process", path)
	}
	proc["terminal"] = false
	if len(args) > 0 {
		proc["args"] = args
	}
	dt, err = json.Marshal(spec)
	if err != nil {
		return err
	}
	return os.WriteFile(path, dt, 0o644)
}
