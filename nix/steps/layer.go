package steps

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/nix-frontend/nix-frontend/nix/narcopy"
	"github.com/nix-frontend/nix-frontend/nix/protocol"
	"github.com/nix-frontend/nix-frontend/nix/storepath"
	"golang.org/x/sys/unix"
)

// Layer copies store paths into the step's output, the layer. Each path's
// contents must serialise to the NAR hash the build step read from Nix's
// database when the path was built or fetched: a path changed since (by a
// builder, by another build sharing the store, with or without its
// database entry) fails the step with the path named; a path a Nix process
// is making again is copied once it is done. It runs no Nix
// command: a layer step is made for every new store path, so its cost is
// the copy and little else.
func Layer(ctx context.Context, req protocol.LayerRequest, stderr io.Writer) error {
	return layer(req, "/", protocol.OutDir, stderr)
}

// layer copies the paths of req, found under root, into out.
func layer(req protocol.LayerRequest, root, out string, stderr io.Writer) error {
	want := make([]storepath.NarHash, len(req.Paths))
	paths := make([]string, len(req.Paths))
	var missing []string
	for i, p := range req.Paths {
		if err := storepath.Validate(p.Path); err != nil {
			return err
		}
		h, err := storepath.ParseNarHash(p.NarHash)
		if err != nil {
			return err
		}
		want[i], paths[i] = h, filepath.Join(root, p.Path)
		if err := awaitBuilder(paths[i]); err != nil {
			return err
		}
		if _, err := os.Lstat(paths[i]); os.IsNotExist(err) {
			missing = append(missing, p.Path)
		} else if err != nil {
			return err
		}
	}
	if len(missing) > 0 {
		return &StoreLostError{Missing: missing}
	}
	store := filepath.Join(out, storepath.StoreDir)
	if err := os.MkdirAll(store, 0o755); err != nil {
		return err
	}
	var total int64
	for i, p := range paths {
		res, err := narcopy.Copy(p, filepath.Join(store, storepath.Base(p)))
		if err != nil {
			return fmt.Errorf("copying %s: %w", req.Paths[i].Path, err)
		}
		if res.NarHash != want[i] {
			return fmt.Errorf("the contents of %s do not match the NAR hash Nix registered for it (%s, now %s): the store path was changed after Nix made it; remove it with nix-store --delete, or prune the /nix cache mount (buildctl prune --filter type=exec.cachemount), and build again", req.Paths[i].Path, want[i], res.NarHash)
		}
		total += res.NarSize
	}
	if err := narcopy.SetTimes(store, out); err != nil {
		return err
	}
	fmt.Fprintf(stderr, "nix-frontend: copied %d store paths, %s, NAR hashes verified\n", len(paths), humanBytes(total))
	return nil
}

// awaitBuilder waits while a Nix process holds the path's lock: the path
// is being built or substituted again (the store lost it, or a build
// without Nix's sandbox writes it in place), and copying it now would read
// a half-written path. Nix locks a path with flock on "<path>.lock"; a lock
// file left by a process that died is not locked.
func awaitBuilder(path string) error {
	f, err := os.Open(path + ".lock")
	if os.IsNotExist(err) {
		return nil
	} else if err != nil {
		return err
	}
	defer f.Close()
	if err := unix.Flock(int(f.Fd()), unix.LOCK_SH); err != nil {
		return fmt.Errorf("waiting for the lock of %s: %w", path, err)
	}
	return unix.Flock(int(f.Fd()), unix.LOCK_UN)
}

func humanBytes(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}
