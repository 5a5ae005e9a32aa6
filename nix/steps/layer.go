package steps

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/nix-frontend/nix-frontend/nix/narcopy"
	"github.com/nix-frontend/nix-frontend/nix/protocol"
	"github.com/nix-frontend/nix-frontend/nix/storepath"
)

// Layer copies store paths into the step's output, the layer, each checked
// twice: Nix's database must record the NAR hash the build step saw, and the
// path's contents must serialise to it. A path a builder changed after Nix
// registered it, or a database that disagrees with the build, fails the
// step with the path named.
func Layer(ctx context.Context, req protocol.LayerRequest, stderr io.Writer) error {
	if err := requireNix(); err != nil {
		return err
	}
	want := make([]storepath.NarHash, len(req.Paths))
	paths := make([]string, len(req.Paths))
	for i, p := range req.Paths {
		if err := storepath.Validate(p.Path); err != nil {
			return err
		}
		h, err := storepath.ParseNarHash(p.NarHash)
		if err != nil {
			return err
		}
		want[i], paths[i] = h, p.Path
	}
	if missing, err := invalidPaths(ctx, paths); err != nil {
		return err
	} else if len(missing) > 0 {
		return &StoreLostError{Missing: missing}
	}
	registered, err := registeredHashes(ctx, paths)
	if err != nil {
		return err
	}
	store := filepath.Join(protocol.OutDir, storepath.StoreDir)
	if err := os.MkdirAll(store, 0o755); err != nil {
		return err
	}
	var total int64
	for i, p := range paths {
		if registered[i] != want[i] {
			return fmt.Errorf("the Nix database records the NAR hash %s for %s, but the build step recorded %s: the store was changed outside Nix", registered[i], p, want[i])
		}
		res, err := narcopy.Copy(p, filepath.Join(store, storepath.Base(p)))
		if err != nil {
			return fmt.Errorf("copying %s: %w", p, err)
		}
		if res.NarHash != registered[i] {
			return fmt.Errorf("the contents of %s do not match Nix's database (NAR hash %s, registered %s): the store path was changed after Nix built it; remove it with nix-store --delete, or prune the /nix cache mount (buildctl prune --filter type=exec.cachemount), and build again", p, res.NarHash, registered[i])
		}
		total += res.NarSize
	}
	if err := narcopy.SetTimes(store, protocol.OutDir); err != nil {
		return err
	}
	fmt.Fprintf(stderr, "nix-frontend: copied %d store paths, %s, NAR hashes verified\n", len(paths), humanBytes(total))
	return nil
}

// registeredHashes asks Nix's database for the NAR hashes of paths.
func registeredHashes(ctx context.Context, paths []string) ([]storepath.NarHash, error) {
	out, err := nixOutput(ctx, "nix-store", append([]string{"--query", "--hash"}, paths...)...)
	if err != nil {
		return nil, err
	}
	lines := strings.Fields(string(out))
	if len(lines) != len(paths) {
		return nil, fmt.Errorf("nix-store --query --hash printed %d hashes for %d paths", len(lines), len(paths))
	}
	hashes := make([]storepath.NarHash, len(lines))
	for i, l := range lines {
		if hashes[i], err = storepath.ParseNarHash(l); err != nil {
			return nil, err
		}
	}
	return hashes, nil
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
