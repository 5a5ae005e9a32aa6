// Package narcopy copies a Nix store path by serialising it as a NAR (Nix's
// archive format, with go-nix's writer) and restoring that stream, hashing it
// on the way. The copy holds exactly what the NAR holds: contents, the
// executable bit and symlinks, in Nix's canonical form (files 0444 or 0555,
// directories 0555, every time one second past the epoch, owned by the copying
// user, no hard links). So a layer made of the copy depends on the store
// path's NAR alone, not on how a store stored it (auto-optimise-store's hard
// links, for one), and the hash that comes out is the one Nix's database
// must record for the path.
//
// Our own restore rather than a library's: go-nix reads and writes NARs but
// restores none, and a tar library would need the stream converted first.
package narcopy

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/nix-community/go-nix/pkg/nar"
	"github.com/nix-frontend/nix-frontend/nix/internal/fstime"
	"github.com/nix-frontend/nix-frontend/nix/storepath"
)

// StoreTime is the modification time Nix gives every store file.
var StoreTime = time.Unix(1, 0).UTC()

// Result is what a copy found.
type Result struct {
	NarHash storepath.NarHash
	NarSize int64
}

// Copy copies the tree at src to dst, which must not exist.
func Copy(src, dst string) (Result, error) {
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(nar.DumpPath(pw, src)) }()
	defer pr.Close()

	h := sha256.New()
	counted := &counter{r: io.TeeReader(pr, h)}
	nr, err := nar.NewReader(counted)
	if err != nil {
		return Result{}, err
	}
	defer nr.Close()
	var dirs []string
	for {
		hdr, err := nr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return Result{}, fmt.Errorf("serialising %s: %w", src, err)
		}
		p := filepath.Join(dst, filepath.FromSlash(strings.TrimPrefix(hdr.Path, "/")))
		switch hdr.Type {
		case nar.TypeDirectory:
			if err := os.Mkdir(p, 0o755); err != nil {
				return Result{}, err
			}
			dirs = append(dirs, p)
		case nar.TypeRegular:
			if err := writeFile(p, nr, hdr); err != nil {
				return Result{}, err
			}
		case nar.TypeSymlink:
			if err := os.Symlink(hdr.LinkTarget, p); err != nil {
				return Result{}, err
			}
			if err := setTime(p); err != nil {
				return Result{}, err
			}
		default:
			return Result{}, fmt.Errorf("%s: unknown NAR entry type %v", hdr.Path, hdr.Type)
		}
	}
	// The NAR stream ends where the dump ends; read what is left so the
	// hash covers everything the writer wrote.
	if _, err := io.Copy(io.Discard, counted); err != nil {
		return Result{}, fmt.Errorf("serialising %s: %w", src, err)
	}
	// Directories last, deepest first: writing into them changes their
	// times, and a read-only directory takes no new entries.
	for i := len(dirs) - 1; i >= 0; i-- {
		if err := os.Chmod(dirs[i], 0o555); err != nil {
			return Result{}, err
		}
		if err := setTime(dirs[i]); err != nil {
			return Result{}, err
		}
	}
	var res Result
	copy(res.NarHash[:], h.Sum(nil))
	res.NarSize = counted.n
	return res, nil
}

func writeFile(p string, r io.Reader, hdr *nar.Header) error {
	f, err := os.OpenFile(p, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	n, err := io.Copy(f, r)
	if err == nil && n != hdr.Size {
		err = fmt.Errorf("%s: %d bytes, the NAR says %d", p, n, hdr.Size)
	}
	mode := os.FileMode(0o444)
	if hdr.Executable {
		mode = 0o555
	}
	if err == nil {
		err = f.Chmod(mode)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	return setTime(p)
}

func setTime(p string) error { return fstime.Set(p, StoreTime) }

// SetTimes sets the times of dir and of every directory between it and stop
// (not included) to StoreTime: for the directories a layer holds around its
// store paths (/nix, /nix/store).
func SetTimes(dir, stop string) error { return fstime.SetUpTo(dir, stop, StoreTime) }

type counter struct {
	r io.Reader
	n int64
}

func (c *counter) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}
