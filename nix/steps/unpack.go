package steps

import (
	"context"
	"fmt"
	"io"
	"path/filepath"

	"github.com/nix-frontend/nix-frontend/nix/imagearchive"
	"github.com/nix-frontend/nix-frontend/nix/protocol"
	"github.com/nix-frontend/nix-frontend/nix/storepath"
)

// Unpack splits an image tarball Nix built into its config and layer tars,
// for the frontend to make the image of.
func Unpack(ctx context.Context, req protocol.UnpackRequest, stderr io.Writer) error {
	if err := requireNix(); err != nil {
		return err
	}
	if err := storepath.Validate(req.Archive); err != nil {
		return err
	}
	if missing, err := invalidPaths(ctx, []string{req.Archive}); err != nil {
		return err
	} else if len(missing) > 0 {
		return &StoreLostError{Missing: missing}
	}
	n, err := imagearchive.Split(req.Archive, filepath.Join(protocol.OutDir, protocol.ArchiveDir))
	if err != nil {
		return err
	}
	fmt.Fprintf(stderr, "nix-frontend: %s is an image tarball of %d layers; its layers and config become the image\n", req.Archive, n)
	res := protocol.ArchiveResult{Layers: n}
	if err := res.Validate(); err != nil {
		return err
	}
	return writeJSON(filepath.Join(protocol.OutDir, protocol.ArchiveFile), res)
}
