package steps

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/nix-frontend/nix-frontend/nix/protocol"
)

// Push signs store paths when a signing key was given and copies them to a
// Nix binary cache; Nix skips what the cache already has.
func Push(ctx context.Context, req protocol.PushRequest, stderr io.Writer) error {
	if err := requireNix(); err != nil {
		return err
	}
	useCredentials()
	if missing, err := invalidPaths(ctx, req.Paths); err != nil {
		return err
	} else if len(missing) > 0 {
		return &StoreLostError{Missing: missing}
	}
	if _, err := os.Stat(SigningKeySecret); err == nil {
		args := append([]string{"store", "sign", "--key-file", SigningKeySecret}, req.Paths...)
		if err := nixCmd(ctx, nil, io.Discard, stderr, "nix", args...); err != nil {
			return fmt.Errorf("signing the closure: %w", err)
		}
	}
	args := append([]string{"copy", "--to", req.URL}, req.Paths...)
	if err := nixCmd(ctx, nil, io.Discard, stderr, "nix", args...); err != nil {
		return fmt.Errorf("pushing to the Nix binary cache NIX_PUSH_CACHE=%s: %w", req.URL, err)
	}
	fmt.Fprintf(stderr, "nix-frontend: %d store paths are in %s\n", len(req.Paths), req.URL)
	return writeJSON(filepath.Join(protocol.OutDir, protocol.PushedFile), protocol.PushResult{Paths: len(req.Paths)})
}
