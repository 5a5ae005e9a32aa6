package steps

import (
	"io"
	"os"
	"path/filepath"
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
	req := protocol.LayerRequest{Paths: []protocol.LayerPath{{Path: p, NarHash: done.NarHash.String(), NarSize: done.NarSize}}}
	res := make(chan error, 1)
	go func() { res <- layer(req, root, out, io.Discard) }()
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
	if got, err := os.ReadFile(filepath.Join(out, p, "b")); err != nil || string(got) != "second half\n" {
		t.Errorf("the layer has %q, %v", got, err)
	}

	// A lock file a dead Nix process left is not locked: no wait.
	if err := os.RemoveAll(filepath.Join(out, "nix")); err != nil {
		t.Fatal(err)
	}
	if err := layer(req, root, out, io.Discard); err != nil {
		t.Errorf("with a stale lock file: %v", err)
	}
}
