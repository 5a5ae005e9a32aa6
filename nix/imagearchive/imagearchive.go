// Package imagearchive splits an image tarball made by Nix (dockerTools'
// buildImage and buildLayeredImage write `docker save` archives, gzipped or
// not) into its config and one tar file per layer. It extracts nothing:
// BuildKit unpacks each layer tar into a layer of its own (a copy with
// AttemptUnpack, as for ADD), with its own extraction, which keeps entries
// inside the layer whatever symlinks the archive holds.
package imagearchive

import (
	"archive/tar"
	"bufio"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
)

// ConfigFile is the image config in the directory Split writes; the n-th
// layer is LayerFile(n).
const ConfigFile = "config.json"

// LayerFile is the name of the n-th layer's tar in the directory Split writes.
func LayerFile(n int) string { return fmt.Sprintf("%d.tar", n) }

// IsArchive reports whether file looks like a tarball (gzipped or not) with
// a manifest.json, the shape of `docker save` output.
func IsArchive(file string) bool {
	fi, err := os.Stat(file)
	if err != nil || !fi.Mode().IsRegular() {
		return false
	}
	found := false
	_ = walk(file, func(h *tar.Header, _ io.Reader) error {
		if path.Clean(h.Name) == "manifest.json" {
			found = true
			return errStop
		}
		return nil
	})
	return found
}

var errStop = errors.New("stop")

// walk calls fn for each entry of a tarball, gzipped or not.
func walk(file string, fn func(*tar.Header, io.Reader) error) error {
	f, err := os.Open(file)
	if err != nil {
		return err
	}
	defer f.Close()
	br := bufio.NewReader(f)
	var r io.Reader = br
	if magic, _ := br.Peek(2); len(magic) == 2 && magic[0] == 0x1f && magic[1] == 0x8b {
		gz, err := gzip.NewReader(br)
		if err != nil {
			return err
		}
		defer gz.Close()
		r = gz
	}
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if err := fn(h, tr); err != nil {
			if err == errStop {
				return nil
			}
			return err
		}
	}
}

type manifestEntry struct {
	Config string   `json:"Config"`
	Layers []string `json:"Layers"`
}

// Split writes the archive's config and layers under dir and returns how
// many layers there are.
func Split(file, dir string) (int, error) {
	// Members are written as they come, under numbered names, then renamed
	// after the manifest says what they are: archives list it last.
	tmp := filepath.Join(dir, ".members")
	if err := os.MkdirAll(tmp, 0o755); err != nil {
		return 0, err
	}
	defer os.RemoveAll(tmp)
	members := map[string]string{}
	err := walk(file, func(h *tar.Header, r io.Reader) error {
		if h.Typeflag != tar.TypeReg {
			return nil
		}
		p := filepath.Join(tmp, fmt.Sprint(len(members)))
		if err := writeFile(p, r); err != nil {
			return err
		}
		members[path.Clean(h.Name)] = p
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("reading image archive %s: %w", file, err)
	}
	mf, ok := members["manifest.json"]
	if !ok {
		return 0, fmt.Errorf("%s has no manifest.json: not an image archive", file)
	}
	var manifest []manifestEntry
	if err := readJSON(mf, &manifest); err != nil || len(manifest) != 1 {
		return 0, fmt.Errorf("%s: manifest.json must describe exactly one image (%v)", file, err)
	}
	cfg, ok := members[path.Clean(manifest[0].Config)]
	if !ok {
		return 0, fmt.Errorf("%s: config %s is missing", file, manifest[0].Config)
	}
	if err := os.Rename(cfg, filepath.Join(dir, ConfigFile)); err != nil {
		return 0, err
	}
	for i, l := range manifest[0].Layers {
		lp, ok := members[path.Clean(l)]
		if !ok {
			return 0, fmt.Errorf("%s: layer %s is missing", file, l)
		}
		if err := os.Link(lp, filepath.Join(dir, LayerFile(i))); err != nil {
			return 0, err
		}
	}
	return len(manifest[0].Layers), nil
}

func writeFile(p string, r io.Reader) error {
	f, err := os.Create(p)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, r); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func readJSON(p string, v any) error {
	dt, err := os.ReadFile(p)
	if err != nil {
		return err
	}
	return json.Unmarshal(dt, v)
}
