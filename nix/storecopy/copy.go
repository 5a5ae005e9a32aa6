// Package storecopy copies Nix store paths out of the shared /nix cache mount
// into a build step's output, byte for byte: modes, symlinks, hard links and
// modification times are kept, and ownership becomes root's, so the layer
// made from a copy depends on nothing but the store path.
package storecopy

import (
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"

	"golang.org/x/sys/unix"
)

// Copy copies the tree at src to dst, which must not exist.
func Copy(src, dst string) error {
	c := copier{links: map[inode]string{}}
	if err := c.copy(src, dst); err != nil {
		return err
	}
	// Directory modes and times are set last: store directories are
	// read-only, and writing their children would change their mtimes.
	for i := len(c.dirs) - 1; i >= 0; i-- {
		d := c.dirs[i]
		if err := os.Chmod(d.path, d.mode); err != nil {
			return err
		}
		if err := setTimes(d.path, d.fi); err != nil {
			return err
		}
	}
	return nil
}

type inode struct{ dev, ino uint64 }

type dir struct {
	path string
	mode fs.FileMode
	fi   fs.FileInfo
}

type copier struct {
	links map[inode]string
	dirs  []dir
}

func (c *copier) copy(src, dst string) error {
	fi, err := os.Lstat(src)
	if err != nil {
		return err
	}
	switch {
	case fi.Mode()&fs.ModeSymlink != 0:
		target, err := os.Readlink(src)
		if err != nil {
			return err
		}
		if err := os.Symlink(target, dst); err != nil {
			return err
		}
		return setTimes(dst, fi)
	case fi.IsDir():
		if err := os.Mkdir(dst, 0o700); err != nil {
			return err
		}
		c.dirs = append(c.dirs, dir{path: dst, mode: fi.Mode().Perm(), fi: fi})
		entries, err := os.ReadDir(src)
		if err != nil {
			return err
		}
		for _, e := range entries {
			if err := c.copy(filepath.Join(src, e.Name()), filepath.Join(dst, e.Name())); err != nil {
				return err
			}
		}
		return nil
	case fi.Mode().IsRegular():
		// The store may hard-link identical files (auto-optimise-store);
		// keep links between files of the same copy so it stays as small.
		if st, ok := fi.Sys().(*syscall.Stat_t); ok && st.Nlink > 1 {
			key := inode{uint64(st.Dev), uint64(st.Ino)}
			if first, ok := c.links[key]; ok {
				return os.Link(first, dst)
			}
			c.links[key] = dst
		}
		if err := copyFile(src, dst, fi.Mode().Perm()); err != nil {
			return err
		}
		return setTimes(dst, fi)
	default:
		return fmt.Errorf("%s: unsupported file type %s in the Nix store", src, fi.Mode().Type())
	}
}

func copyFile(src, dst string, mode fs.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	if err := out.Chmod(mode); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

func setTimes(path string, fi fs.FileInfo) error {
	ts := unix.NsecToTimespec(fi.ModTime().UnixNano())
	return unix.UtimesNanoAt(unix.AT_FDCWD, path, []unix.Timespec{ts, ts}, unix.AT_SYMLINK_NOFOLLOW)
}
