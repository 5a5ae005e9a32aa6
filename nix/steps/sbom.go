package steps

import (
	"context"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/nix-frontend/nix-frontend/nix/protocol"
	"github.com/nix-frontend/nix-frontend/nix/sbom"
)

// SBOM writes the SPDX document of the closures the build results name,
// with the installed packages the evaluations found. It needs no Nix: the
// results hold what Nix said of every store path.
func SBOM(ctx context.Context, req protocol.SBOMRequest, stderr io.Writer) error {
	paths := map[string]protocol.PathInfo{}
	for _, f := range req.Results {
		var r protocol.BuildResult
		if err := readJSON(f, &r); err != nil {
			return err
		}
		if err := r.Validate(); err != nil {
			return err
		}
		for _, p := range r.Closure {
			paths[p.Path] = p
		}
	}
	var pkgs []sbom.Package
	for _, f := range req.Evals {
		var ev protocol.EvalResult
		if err := readJSON(f, &ev); err != nil {
			return err
		}
		for _, in := range ev.Installs {
			for _, j := range in.Jobs {
				pkg := sbom.Package{DrvPath: j.DrvPath, Meta: j.Meta}
				for _, o := range slices.Sorted(maps.Keys(j.Outputs)) {
					pkg.Outputs = append(pkg.Outputs, j.Outputs[o])
				}
				pkgs = append(pkgs, pkg)
			}
		}
	}
	var closure []protocol.PathInfo
	for _, p := range slices.Sorted(maps.Keys(paths)) {
		closure = append(closure, paths[p])
	}
	doc := sbom.New(req.Name, req.Tool, closure, pkgs, time.Unix(req.Created, 0))
	if err := os.MkdirAll(protocol.OutDir, 0o755); err != nil {
		return err
	}
	f, err := os.Create(filepath.Join(protocol.OutDir, protocol.SBOMFile))
	if err != nil {
		return err
	}
	if err := sbom.Write(doc, f); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	// Every file the SBOM's layer has carries the document's time.
	t := time.Unix(req.Created, 0)
	return os.Chtimes(filepath.Join(protocol.OutDir, protocol.SBOMFile), t, t)
}
