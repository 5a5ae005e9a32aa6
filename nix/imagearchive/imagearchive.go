// Package imagearchive unpacks an image tarball made by Nix (dockerTools'
// buildImage and buildLayeredImage write `docker save` archives, gzipped or
// not) into one directory per layer and the image config, so the image can
// be rebuilt from BuildKit layers.
package imagearchive

import (
	"archive/tar"
	"bufio"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Files in the directory Unpack writes.
const (
	ConfigFile = "config.json" // the image config, as in the archive
	LayersDir  = "layers"      // layers/<n>/, the n-th layer's files
)

// Result says what Unpack found.
type Result struct {
	Layers int `json:"layers"`
}

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
			return io.EOF
		}
		return nil
	})
	return found
}

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
			if err == io.EOF {
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

// Unpack writes the archive's config and layers under dir.
func Unpack(file, dir string) (*Result, error) {
	// The archive's members: small ones in memory, layers to temp files.
	tmp, err := os.MkdirTemp("", "imagearchive")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	members := map[string]string{}
	err = walk(file, func(h *tar.Header, r io.Reader) error {
		if h.Typeflag != tar.TypeReg {
			return nil
		}
		p := filepath.Join(tmp, fmt.Sprint(len(members)))
		f, err := os.Create(p)
		if err != nil {
			return err
		}
		if _, err := io.Copy(f, r); err != nil {
			f.Close()
			return err
		}
		members[path.Clean(h.Name)] = p
		return f.Close()
	})
	if err != nil {
		return nil, fmt.Errorf("reading image archive %s: %w", file, err)
	}
	mf, ok := members["manifest.json"]
	if !ok {
		return nil, fmt.Errorf("%s has no manifest.json: not an image archive", file)
	}
	var manifest []manifestEntry
	if err := readJSON(mf, &manifest); err != nil || len(manifest) != 1 {
		return nil, fmt.Errorf("%s: manifest.json must describe exactly one image (%v)", file, err)
	}
	cfg, ok := members[path.Clean(manifest[0].Config)]
	if !ok {
		return nil, fmt.Errorf("%s: config %s is missing", file, manifest[0].Config)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	dt, err := os.ReadFile(cfg)
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, ConfigFile), dt, 0o644); err != nil {
		return nil, err
	}
	for i, l := range manifest[0].Layers {
		lp, ok := members[path.Clean(l)]
		if !ok {
			return nil, fmt.Errorf("%s: layer %s is missing", file, l)
		}
		if err := extractLayer(lp, filepath.Join(dir, LayersDir, fmt.Sprint(i))); err != nil {
			return nil, fmt.Errorf("%s: layer %s: %w", file, l, err)
		}
	}
	return &Result{Layers: len(manifest[0].Layers)}, nil
}

// extractLayer writes a layer's files with their modes, owners and times.
func extractLayer(layer, dst string) error {
	if err := os.MkdirAll(dst, 0o755); err != nil {
		return err
	}
	type dirTime struct {
		path string
		t    time.Time
	}
	var dirs []dirTime
	err := walk(layer, func(h *tar.Header, r io.Reader) error {
		name := path.Clean("/" + h.Name)
		if name == "/" {
			return nil
		}
		if strings.HasPrefix(path.Base(name), ".wh.") {
			return fmt.Errorf("%s is a whiteout: layers that delete files are not supported", name)
		}
		p := filepath.Join(dst, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		switch h.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(p, 0o700); err != nil {
				return err
			}
			dirs = append(dirs, dirTime{p, h.ModTime})
		case tar.TypeReg:
			f, err := os.OpenFile(p, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
			if err != nil {
				return err
			}
			if _, err := io.Copy(f, r); err != nil {
				f.Close()
				return err
			}
			if err := f.Close(); err != nil {
				return err
			}
		case tar.TypeSymlink:
			if err := os.Symlink(h.Linkname, p); err != nil {
				return err
			}
		case tar.TypeLink:
			if err := os.Link(filepath.Join(dst, path.Clean("/"+h.Linkname)), p); err != nil {
				return err
			}
			return nil
		default:
			return fmt.Errorf("%s: unsupported entry type %q", name, h.Typeflag)
		}
		if err := os.Lchown(p, h.Uid, h.Gid); err != nil {
			return err
		}
		if h.Typeflag != tar.TypeSymlink {
			if err := os.Chmod(p, os.FileMode(h.Mode)&os.ModePerm|modeBits(h.Mode)); err != nil {
				return err
			}
		}
		return setTime(p, h.ModTime)
	})
	if err != nil {
		return err
	}
	for i := len(dirs) - 1; i >= 0; i-- {
		if err := setTime(dirs[i].path, dirs[i].t); err != nil {
			return err
		}
	}
	return setTime(dst, time.Unix(0, 0))
}

func modeBits(m int64) os.FileMode {
	var out os.FileMode
	if m&04000 != 0 {
		out |= os.ModeSetuid
	}
	if m&02000 != 0 {
		out |= os.ModeSetgid
	}
	if m&01000 != 0 {
		out |= os.ModeSticky
	}
	return out
}

func setTime(p string, t time.Time) error {
	ts := unix.NsecToTimespec(t.UnixNano())
	return unix.UtimesNanoAt(unix.AT_FDCWD, p, []unix.Timespec{ts, ts}, unix.AT_SYMLINK_NOFOLLOW)
}

func readJSON(p string, v any) error {
	dt, err := os.ReadFile(p)
	if err != nil {
		return err
	}
	return json.Unmarshal(dt, v)
}
