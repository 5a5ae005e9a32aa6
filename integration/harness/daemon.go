package harness

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	bkclient "github.com/moby/buildkit/client"
)

var daemonCounter struct {
	sync.Mutex
	n int
}

// StartDaemon starts a second buildkitd, a machine of its own: its own
// state directory (so its own BuildKit cache and its own /nix cache
// mounts), its own socket, and the worker configuration hack/setup gives
// the first (OCI worker with runc and overlayfs, host network, the local
// registry over plain HTTP). It returns a copy of the environment whose
// builds, prunes and buildx builder use the new daemon; the daemon stops
// and its state is removed when the test ends.
func (e *Env) StartDaemon(t testing.TB) *Env {
	t.Helper()
	daemonCounter.Lock()
	daemonCounter.n++
	n := daemonCounter.n
	daemonCounter.Unlock()

	// A short directory outside t.TempDir: unix socket paths are limited to
	// 108 bytes, and overlay mounts list snapshot paths in one page of
	// mount options, so long roots cost layers.
	dir, err := os.MkdirTemp("", fmt.Sprintf("nfd%d-", n))
	if err != nil {
		t.Fatal(err)
	}
	root := filepath.Join(dir, "root")
	sock := filepath.Join(dir, "buildkitd.sock")
	config := filepath.Join(dir, "buildkitd.toml")
	logPath := filepath.Join(dir, "buildkitd.log")
	WriteFile(t, config, fmt.Sprintf(`[worker.oci]
  enabled = true
  snapshotter = "overlayfs"
  gc = false
[worker.containerd]
  enabled = false
[registry.%q]
  http = true
  insecure = true
`, e.Registry))
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("buildkitd", "--root", root, "--addr", "unix://"+sock, "--config", config,
		// The default is one socket for every daemon of the host, under
		// /run/buildkit; a second daemon would replace the first's.
		"--otel-socket-path", filepath.Join(dir, "otel-grpc.sock"))
	cmd.Stdout, cmd.Stderr = logFile, logFile
	// Its own process group, so a test's Ctrl-C reaches the daemon only
	// through the cleanup below.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		logFile.Close()
		os.RemoveAll(dir)
		t.Fatalf("starting buildkitd: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()

	d := *e
	d.BuildkitHost = "unix://" + sock
	d.Builder = ""

	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(30 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
		logFile.Close()
		if t.Failed() {
			t.Logf("second buildkitd's log (%s):\n%s", d.BuildkitHost, tail(logPath, 40))
		}
		unmountUnder(t, dir)
		// Store files are read-only; root removes them all the same.
		if err := os.RemoveAll(dir); err != nil {
			t.Logf("removing the second buildkitd's state: %v", err)
		}
	}
	t.Cleanup(stop)

	deadline := time.Now().Add(60 * time.Second)
	for {
		out, err := exec.Command("buildctl", "--addr", d.BuildkitHost, "debug", "workers").CombinedOutput()
		if err == nil && len(strings.TrimSpace(string(out))) > 0 && strings.Count(string(out), "\n") >= 2 {
			break
		}
		select {
		case werr := <-exited:
			exited <- werr
			t.Fatalf("buildkitd exited: %v\n%s", werr, tail(logPath, 40))
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("buildkitd at %s does not answer: %v\n%s\n%s", d.BuildkitHost, err, out, tail(logPath, 40))
		}
		time.Sleep(200 * time.Millisecond)
	}

	// A buildx builder for the new daemon, so every way in works on it.
	name := fmt.Sprintf("nf-test-%d-%d", os.Getpid(), n)
	if out, err := exec.Command("docker", "buildx", "create", "--name", name, "--driver", "remote", d.BuildkitHost).CombinedOutput(); err != nil {
		t.Fatalf("docker buildx create: %v\n%s", err, out)
	}
	d.Builder = name
	// Registered after stop, so it runs first: the builder goes before
	// its daemon.
	t.Cleanup(func() {
		if out, err := exec.Command("docker", "buildx", "rm", "--force", name).CombinedOutput(); err != nil {
			t.Logf("docker buildx rm %s: %v\n%s", name, err, out)
		}
	})
	return &d
}

// unmountUnder detaches whatever is still mounted below dir (a daemon
// killed mid-build leaves overlay mounts), deepest first, so removing dir
// never reaches through a mount.
func unmountUnder(t testing.TB, dir string) {
	f, err := os.Open("/proc/self/mounts")
	if err != nil {
		return
	}
	defer f.Close()
	var mounts []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) > 1 && strings.HasPrefix(fields[1], dir+"/") {
			mounts = append(mounts, fields[1])
		}
	}
	for i := len(mounts) - 1; i >= 0; i-- {
		if err := syscall.Unmount(mounts[i], syscall.MNT_DETACH); err != nil {
			t.Logf("unmount %s: %v", mounts[i], err)
		}
	}
}

func tail(path string, n int) string {
	dt, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(dt), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// Workers returns `buildctl debug workers` of the environment's daemon.
func (e *Env) Workers(t testing.TB) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "buildctl", "--addr", e.BuildkitHost, "debug", "workers").CombinedOutput()
	if err != nil {
		t.Fatalf("buildctl debug workers: %v\n%s", err, out)
	}
	return string(out)
}

// CacheMounts returns the IDs of the daemon's cache mounts (the /nix
// stores of the Nix steps that ran on it): none on a daemon where no Nix
// step ran.
func (e *Env) CacheMounts(t testing.TB) []string {
	t.Helper()
	var out []string
	for _, r := range e.DiskUsage(t, "type=="+string(bkclient.UsageRecordTypeCacheMount)) {
		out = append(out, r.Description)
	}
	return out
}

// DiskUsage is the daemon's `buildctl du`: its cache records, with filters
// in buildctl's syntax.
func (e *Env) DiskUsage(t testing.TB, filters ...string) []*bkclient.UsageInfo {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := bkclient.New(ctx, e.BuildkitHost)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	du, err := c.DiskUsage(ctx, bkclient.WithFilter(filters))
	if err != nil {
		t.Fatalf("disk usage of %s: %v", e.BuildkitHost, err)
	}
	return du
}
