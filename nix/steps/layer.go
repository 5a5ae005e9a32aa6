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
)

// Layer copies store paths into the step's output, the layer. Each path's
// contents must serialise to the NAR hash the build step read from Nix's
// database when the path was built or fetched: a path changed since (by a
// builder, by another build sharing the store, with or without its
// database entry) fails the step with the path named. It runs no Nix
// command: a layer step is made for every new store path, so its cost is
// the copy and little else.
func Layer(ctx context.Context, req protocol.LayerRequest, stderr io.Writer) error {
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
		want[i], paths[i] = h, p.Path
		if _, err := os.Lstat(p.Path); os.IsNotExist(err) {
			missing = append(missing, p.Path)
		} else if err != nil {
			return err
		}
	}
	if len(missing) > 0 {
		return &StoreLostError{Missing: missing}
	}
	store := filepath.Join(protocol.OutDir, storepath.StoreDir)
	if err := os.MkdirAll(store, 0o755); err != nil {
		return err
	}
	var total int64
	for i, p := range paths {
		res, err := narcopy.Copy(p, filepath.Join(store, storepath.Base(p)))
		if err != nil {
			return fmt.Errorf("copying %s: %w", p, err)
		}
		if res.NarHash != want[i] {
			return fmt.Errorf("the contents of %s do not match the NAR hash Nix registered for it (%s, now %s): the store path was changed after Nix made it; remove it with nix-store --delete, or prune the /nix cache mount (buildctl prune --filter type=exec.cachemount), and build again", p, want[i], res.NarHash)
		}
		total += res.NarSize
	}
	if err := narcopy.SetTimes(store, protocol.OutDir); err != nil {
		return err
	}
	fmt.Fprintf(stderr, "nix-frontend: copied %d store paths, %s, NAR hashes verified\n", len(paths), humanBytes(total))
	return nil
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
