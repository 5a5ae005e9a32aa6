package steps

import (
	"context"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sync/atomic"

	"github.com/nix-frontend/nix-frontend/nix/narcopy"
	"github.com/nix-frontend/nix-frontend/nix/protocol"
	"github.com/nix-frontend/nix-frontend/nix/storepath"
	"golang.org/x/sync/errgroup"
	"golang.org/x/sys/unix"
)

// Layer copies store paths into the step's outputs, one per layer. Each
// path's contents must serialise to the NAR hash the build step read from
// Nix's database when the path was built or fetched: a path changed since
// (by a builder, by another build sharing the store, with or without its
// database entry) fails the step with the path named; a path a Nix process
// is making again is copied once it is done. It runs no Nix command, so its
// cost is the copy and little else, and it records itself for later builds
// (see protocol.LayerRequest).
func Layer(ctx context.Context, req protocol.LayerRequest, stderr io.Writer) error {
	return layer(req, layerDirs{root: "/", out: protocol.LayerDir, records: protocol.LayerRecordsDir}, stderr)
}

// layerDirs are where a layer step reads, writes and records: the root
// the store paths are under, each layer's output and the records.
type layerDirs struct {
	root    string
	out     func(int) string
	records string
}

func layer(req protocol.LayerRequest, dirs layerDirs, stderr io.Writer) error {
	if err := req.Validate(); err != nil {
		return err
	}
	var missing []string
	for _, p := range req.StorePaths() {
		local := filepath.Join(dirs.root, p)
		if err := awaitBuilder(local); err != nil {
			return err
		}
		if _, err := os.Lstat(local); os.IsNotExist(err) {
			missing = append(missing, p)
		} else if err != nil {
			return err
		}
	}
	if len(missing) > 0 {
		return &StoreLostError{Missing: missing}
	}
	var g errgroup.Group
	g.SetLimit(min(runtime.NumCPU(), 4))
	var total atomic.Int64
	for i, l := range req.Layers {
		g.Go(func() error {
			n, err := copyLayer(l, dirs.root, dirs.out(i))
			total.Add(n)
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	if err := record(req, dirs.records); err != nil {
		return err
	}
	fmt.Fprintf(stderr, "nix-frontend: copied %d store paths, %s, NAR hashes verified\n", len(req.StorePaths()), humanBytes(total.Load()))
	return nil
}

// copyLayer copies a layer's paths from under root into out, checking
// their NAR hashes, and returns their NAR size.
func copyLayer(l []protocol.LayerPath, root, out string) (int64, error) {
	store := filepath.Join(out, storepath.StoreDir)
	if err := os.MkdirAll(store, 0o755); err != nil {
		return 0, err
	}
	var total int64
	for _, p := range l {
		want, err := storepath.ParseNarHash(p.NarHash)
		if err != nil {
			return total, err
		}
		res, err := narcopy.Copy(filepath.Join(root, p.Path), filepath.Join(store, storepath.Base(p.Path)))
		if err != nil {
			return total, fmt.Errorf("copying %s: %w", p.Path, err)
		}
		if res.NarHash != want {
			return total, fmt.Errorf("the contents of %s do not match the NAR hash Nix registered for it (%s, now %s): the store path was changed after Nix made it; remove it with nix-store --delete, or prune the /nix cache mount (buildctl prune --filter type=exec.cachemount), and build again", p.Path, want, res.NarHash)
		}
		total += res.NarSize
	}
	return total, narcopy.SetTimes(store, out)
}

// record notes in dir that the step of req wrote its paths: its request
// under its digest, and the digest under each path. Every file is written
// whole (renamed into place) or not at all, and concurrent steps write
// different files.
func record(req protocol.LayerRequest, dir string) error {
	dt, err := protocol.Encode(req)
	if err != nil {
		return err
	}
	dgst := protocol.Digest(dt)
	if err := writeFileAtomic(filepath.Join(dir, "steps", dgst+".json"), dt); err != nil {
		return err
	}
	for _, p := range req.StorePaths() {
		if err := writeFileAtomic(filepath.Join(dir, "paths", storepath.Base(p), dgst), nil); err != nil {
			return err
		}
	}
	return nil
}

// layerSteps reads the recorded layer steps that wrote paths, ordered by
// request digest. Records that do not read back as a valid request are
// skipped: they only save copying.
func layerSteps(paths []string, dir string) []protocol.LayerRequest {
	seen := map[string]bool{}
	for _, p := range paths {
		entries, _ := os.ReadDir(filepath.Join(dir, "paths", storepath.Base(p)))
		for _, e := range entries {
			seen[e.Name()] = true
		}
	}
	var out []protocol.LayerRequest
	for _, dgst := range slices.Sorted(maps.Keys(seen)) {
		dt, err := os.ReadFile(filepath.Join(dir, "steps", dgst+".json"))
		if err != nil || protocol.Digest(dt) != dgst {
			continue
		}
		req, err := protocol.Decode[protocol.LayerRequest](dt)
		if err != nil || req.Validate() != nil {
			continue
		}
		out = append(out, req)
	}
	return out
}

// writeFileAtomic writes name through a temporary file renamed into place.
func writeFileAtomic(name string, dt []byte) error {
	if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
		return err
	}
	f, err := os.CreateTemp(filepath.Dir(name), ".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(dt); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), name)
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
