package steps

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"

	"github.com/nix-frontend/nix-frontend/nix/linktree"
	"github.com/nix-frontend/nix-frontend/nix/protocol"
)

// LinkCollisionError is a link tree collision in one group (INSTALL line).
type LinkCollisionError struct {
	Group int
	Root  string
	*linktree.CollisionError
}

func (e *LinkCollisionError) Error() string {
	return fmt.Sprintf("link tree %s: %s; give one INSTALL line --priority=N (the lower number wins), or --link=none", e.Root, e.CollisionError.Error())
}

// Links writes the link trees of the installed store paths into the step's
// output, the link layer, and what they hold into MetaDir.
func Links(ctx context.Context, req protocol.LinksRequest, stderr io.Writer) error {
	if err := requireNix(); err != nil {
		return err
	}
	paths := slices.Clone(req.Closure)
	for _, g := range req.Groups {
		paths = append(paths, g.Paths...)
	}
	slices.Sort(paths)
	paths = slices.Compact(paths)
	if missing, err := invalidPaths(ctx, paths); err != nil {
		return err
	} else if len(missing) > 0 {
		return &StoreLostError{Missing: missing}
	}
	trees := map[string]*linktree.Tree{}
	for i, g := range req.Groups {
		tree := trees[g.Root]
		if tree == nil {
			tree = linktree.New("/")
			trees[g.Root] = tree
		}
		for _, p := range g.Paths {
			if err := tree.Add(linktree.Package{Path: p, Priority: g.Priority}); err != nil {
				var ce *linktree.CollisionError
				if errors.As(err, &ce) {
					return &LinkCollisionError{Group: i, Root: g.Root, CollisionError: ce}
				}
				return err
			}
		}
	}
	res := protocol.LinksResult{Empty: true}
	if err := os.MkdirAll(protocol.OutDir, 0o755); err != nil {
		return err
	}
	for _, root := range slices.Sorted(maps.Keys(trees)) {
		if trees[root].Empty() {
			continue
		}
		dir := filepath.Join(protocol.OutDir, root)
		if err := trees[root].Write(dir); err != nil {
			return err
		}
		if err := linktree.EpochTimes(dir, protocol.OutDir); err != nil {
			return err
		}
		res.Empty = false
		bins, _ := os.ReadDir(filepath.Join(dir, "bin"))
		for _, b := range bins {
			res.Programs = append(res.Programs, filepath.Join(root, "bin", b.Name()))
		}
	}
	slices.Sort(res.Programs)
	for _, f := range protocol.BasicFiles {
		if _, err := os.Lstat(filepath.Join(protocol.OutDir, f)); err == nil {
			res.Provides = append(res.Provides, f)
		}
	}
	for _, p := range slices.Sorted(slices.Values(req.Closure)) {
		if fi, err := os.Stat(filepath.Join(p, protocol.CABundlePath)); err == nil && fi.Mode().IsRegular() {
			res.CABundle = filepath.Join(p, protocol.CABundlePath)
			break
		}
	}
	return writeJSON(filepath.Join(protocol.MetaDir, protocol.LinksFile), res)
}
