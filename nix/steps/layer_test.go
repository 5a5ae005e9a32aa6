package steps

import (
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"testing"
	"time"

	"github.com/nix-frontend/nix-frontend/nix/narcopy"
	"github.com/nix-frontend/nix-frontend/nix/protocol"
	"golang.org/x/sys/unix"
)

// A layer step that finds its path while a Nix process writes it again
// (the store lost it and a concurrent build remakes it without Nix's
// sandbox, in place) must wait for Nix's lock on the path and copy the
// finished path, not fail on a half-written one.
func TestLayerWaitsForTheBuilder(t *testing.T) {
	const p = "/nix/store/0c2kjgqgzgbkjqa0mh9l2qw8b2pfvxml-lib-1"
	root, out := t.TempDir(), t.TempDir()
	dir := filepath.Join(root, p)
	write := func(name, data string) {
		t.Helper()
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// The NAR hash Nix will register: that of the finished path.
	write("a", "first half\n")
	write("b", "second half\n")
	done, err := narcopy.Copy(dir, filepath.Join(t.TempDir(), "x"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}

	// The builder has written half of the path and holds its lock.
	write("a", "first half\n")
	lock, err := os.Create(filepath.Join(root, p+".lock"))
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Close()
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	req := protocol.LayerRequest{Layers: [][]protocol.LayerPath{{{Path: p, NarHash: done.NarHash.String(), NarSize: done.NarSize}}}}
	dirs := testDirs(root, out, t.TempDir())
	res := make(chan error, 1)
	go func() { res <- layer(req, dirs, io.Discard) }()
	select {
	case err := <-res:
		t.Fatalf("the layer step did not wait for the builder: %v", err)
	case <-time.After(300 * time.Millisecond):
	}
	write("b", "second half\n")
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_UN); err != nil {
		t.Fatal(err)
	}
	if err := <-res; err != nil {
		t.Fatalf("after the builder finished: %v", err)
	}
	if got, err := os.ReadFile(filepath.Join(out, "0", p, "b")); err != nil || string(got) != "second half\n" {
		t.Errorf("the layer has %q, %v", got, err)
	}

	// A lock file a dead Nix process left is not locked: no wait.
	if err := os.RemoveAll(filepath.Join(out, "0")); err != nil {
		t.Fatal(err)
	}
	if err := layer(req, dirs, io.Discard); err != nil {
		t.Errorf("with a stale lock file: %v", err)
	}
}

func testDirs(root, out, records string) layerDirs {
	return layerDirs{root: root, out: func(i int) string { return filepath.Join(out, strconv.Itoa(i)) }, records: records}
}

// A layer step writes each layer into its own output, and records itself
// so that a later build step reports it for the paths it wrote; a step
// that failed records nothing.
func TestLayerStepsRecorded(t *testing.T) {
	root, out := t.TempDir(), t.TempDir()
	mk := func(p, data string) protocol.LayerPath {
		t.Helper()
		dir := filepath.Join(root, p)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "f"), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
		res, err := narcopy.Copy(dir, filepath.Join(t.TempDir(), "x"))
		if err != nil {
			t.Fatal(err)
		}
		return protocol.LayerPath{Path: p, NarHash: res.NarHash.String(), NarSize: res.NarSize}
	}
	a := mk("/nix/store/0c2kjgqgzgbkjqa0mh9l2qw8b2pfvxml-a-1", "a")
	b := mk("/nix/store/1c2kjgqgzgbkjqa0mh9l2qw8b2pfvxml-b-1", "b")
	c := mk("/nix/store/2c2kjgqgzgbkjqa0mh9l2qw8b2pfvxml-c-1", "c")
	dirs := testDirs(root, out, t.TempDir())
	req := protocol.LayerRequest{Layers: [][]protocol.LayerPath{{a}, {b, c}}}
	if err := layer(req, dirs, io.Discard); err != nil {
		t.Fatal(err)
	}
	for dir, want := range map[string]string{"0/nix/store/0c2kjgqgzgbkjqa0mh9l2qw8b2pfvxml-a-1/f": "a", "1/nix/store/2c2kjgqgzgbkjqa0mh9l2qw8b2pfvxml-c-1/f": "c"} {
		if got, err := os.ReadFile(filepath.Join(out, dir)); err != nil || string(got) != want {
			t.Errorf("%s: %q %v", dir, got, err)
		}
	}
	if _, err := os.Stat(filepath.Join(out, "0", b.Path)); err == nil {
		t.Errorf("layer 0 has layer 1's %s", b.Path)
	}
	bad := c
	bad.NarHash = a.NarHash
	if err := layer(protocol.LayerRequest{Layers: [][]protocol.LayerPath{{bad}}}, testDirs(root, t.TempDir(), dirs.records), io.Discard); err == nil {
		t.Fatal("a path with another NAR hash was copied")
	}
	got := layerSteps([]string{c.Path}, dirs.records)
	if len(got) != 1 || !reflect.DeepEqual(got[0], req) {
		t.Errorf("recorded for %s: %+v, want only %+v", c.Path, got, req)
	}
	if got := layerSteps([]string{"/nix/store/3c2kjgqgzgbkjqa0mh9l2qw8b2pfvxml-d-1"}, dirs.records); len(got) != 0 {
		t.Errorf("recorded for a path no step wrote: %+v", got)
	}
}
