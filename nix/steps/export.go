package steps

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"

	"github.com/nix-frontend/nix-frontend/nix/imagearchive"
	"github.com/nix-frontend/nix-frontend/nix/linktree"
	"github.com/nix-frontend/nix-frontend/nix/storecopy"
)

// ExportRequest copies the runtime closure of a stage's installed outputs
// out of the shared store, and writes the link tree.
type ExportRequest struct {
	// Results are the build steps' ResultFiles.
	Results []string `json:"results"`
	// DrvClosures are the evaluation's .drv exports, used only when the
	// store lost paths the builds made (a pruned /nix cache).
	DrvClosures []string    `json:"drvClosures"`
	Links       []LinkGroup `json:"links"`
	// LoadImage is an installed output that, when it is an image tarball
	// (dockerTools), becomes the image instead of the closure.
	LoadImage string `json:"loadImage,omitempty"`
	Out       string `json:"out"`
}

// Command implements Request.
func (ExportRequest) Command() string { return "export" }

// LinkGroup links the top-level directories of store paths under Root.
type LinkGroup struct {
	Root     string   `json:"root"` // absolute, e.g. "/usr/local"
	Priority int      `json:"priority"`
	Paths    []string `json:"paths"`
	// Line is the Nixfile line that asked for these links, for errors.
	Line int `json:"line"`
}

// Manifest is what an export step writes to ManifestFile.
type Manifest struct {
	// Paths is the closure, sorted by path: one layer each (or a group).
	Paths []PathInfo `json:"paths"`
	// Links says the step wrote a link tree under LinksDir.
	Links bool `json:"links"`
	// Programs are the link trees' programs, as the image sees them
	// ("/usr/local/bin/hello"), sorted.
	Programs []string `json:"programs,omitempty"`
	// Image is set when the step unpacked an image tarball into ImageDir
	// instead of exporting the closure.
	Image *imagearchive.Result `json:"image,omitempty"`
}

// ImageDir is where an unpacked image tarball is, in the export output.
const ImageDir = "image"

// LinkCollisionError is a link tree collision, with the Nixfile line.
type LinkCollisionError struct {
	Root string
	Line int
	*linktree.CollisionError
}

func (e *LinkCollisionError) Error() string {
	return fmt.Sprintf("link tree %s: %s; give one INSTALL line --priority=N (the lower number wins), or --link=none", e.Root, e.CollisionError.Error())
}

// Export copies the closure and writes the manifest.
func Export(ctx context.Context, req ExportRequest, stderr io.Writer) error {
	if err := requireNix(); err != nil {
		return err
	}
	byPath, paths, err := realisedClosure(ctx, req.Results, req.DrvClosures, stderr)
	if err != nil {
		return err
	}
	if req.LoadImage != "" && imagearchive.IsArchive(req.LoadImage) {
		fmt.Fprintf(stderr, "nix-frontend: %s is an image tarball; its layers and config become the image\n", req.LoadImage)
		res, err := imagearchive.Unpack(req.LoadImage, filepath.Join(req.Out, ImageDir))
		if err != nil {
			return err
		}
		return writeJSON(filepath.Join(req.Out, ManifestFile), Manifest{Image: res})
	}

	store := filepath.Join(req.Out, StoreDir)
	if err := os.MkdirAll(store, 0o755); err != nil {
		return err
	}
	for _, p := range paths {
		if err := storecopy.Copy(p, filepath.Join(store, filepath.Base(p))); err != nil {
			return fmt.Errorf("copying %s: %w", p, err)
		}
	}

	m := Manifest{}
	for _, p := range paths {
		m.Paths = append(m.Paths, byPath[p])
	}
	trees := map[string]*linktree.Tree{}
	var roots []string
	for _, g := range req.Links {
		tree := trees[g.Root]
		if tree == nil {
			tree = linktree.New("/")
			trees[g.Root] = tree
			roots = append(roots, g.Root)
		}
		for _, p := range g.Paths {
			if err := tree.Add(linktree.Package{Path: p, Priority: g.Priority}); err != nil {
				var ce *linktree.CollisionError
				if errors.As(err, &ce) {
					return &LinkCollisionError{Root: g.Root, Line: g.Line, CollisionError: ce}
				}
				return err
			}
		}
	}
	sort.Strings(roots)
	links := filepath.Join(req.Out, LinksDir)
	for _, root := range roots {
		if trees[root].Empty() {
			continue
		}
		dir := filepath.Join(links, root)
		if err := trees[root].Write(dir); err != nil {
			return err
		}
		if err := linktree.EpochTimes(dir, req.Out); err != nil {
			return err
		}
		m.Links = true
		bins, _ := os.ReadDir(filepath.Join(dir, "bin"))
		for _, b := range bins {
			m.Programs = append(m.Programs, filepath.Join(root, "bin", b.Name()))
		}
	}
	sort.Strings(m.Programs)
	return writeJSON(filepath.Join(req.Out, ManifestFile), m)
}

// realisedClosure reads the build steps' results and makes sure the store
// has every path of their closures: a build step may have come from
// BuildKit's cache while the /nix cache mount was emptied (a new runner, a
// prune), and then the derivations are imported from the evaluation's
// exports and realised again. It returns the closure by path, and sorted.
func realisedClosure(ctx context.Context, resultFiles, drvClosures []string, stderr io.Writer) (map[string]PathInfo, []string, error) {
	var results []BuildResult
	byPath := map[string]PathInfo{}
	for _, f := range resultFiles {
		var r BuildResult
		if err := ReadJSON(f, &r); err != nil {
			return nil, nil, err
		}
		results = append(results, r)
		for _, p := range r.Closure {
			byPath[p.Path] = p
		}
	}
	paths := make([]string, 0, len(byPath))
	for p := range byPath {
		paths = append(paths, p)
	}
	sort.Strings(paths)

	if missing := missingPaths(paths); len(missing) > 0 {
		fmt.Fprintf(stderr, "nix-frontend: the /nix cache lacks %d of %d store paths (pruned, or a new runner); realising them again\n", len(missing), len(paths))
		if err := importDrvs(ctx, drvClosures, stderr); err != nil {
			return nil, nil, err
		}
		for _, r := range results {
			if err := Build(ctx, BuildRequest{Name: StorePathName(r.DrvPath), DrvPath: r.DrvPath, System: r.System, Outputs: r.Outputs, Out: filepath.Join(os.TempDir(), "rebuild")}, stderr); err != nil {
				return nil, nil, err
			}
		}
		if missing := missingPaths(paths); len(missing) > 0 {
			return nil, nil, fmt.Errorf("store paths still missing after realising the builds again: %v", missing)
		}
	}
	return byPath, paths, nil
}
