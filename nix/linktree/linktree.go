// Package linktree joins the top-level directories of Nix store paths (bin/,
// lib/, share/, etc/ …) into one symlink tree, the way nixpkgs' buildEnv and
// Nix profiles do, so an image can put installed programs on PATH.
//
// The top two directory levels under the link root are always real
// directories, so the tree merges with a base image's /usr/local/bin or
// /usr/local/share/man instead of hiding them; deeper directories that only
// one store path provides are a single symlink into the store.
package linktree

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/nix-frontend/nix-frontend/nix/internal/fstime"
	"golang.org/x/sys/unix"
)

// Package is one store path to link, with its priority: as in nix-env and
// buildEnv, the lower number wins a collision.
type Package struct {
	Path     string
	Priority int
}

// realDepth is how many directory levels below the root are always real.
const realDepth = 2

// skipped top-level entries: Nix's own metadata, not user-facing files.
var skipped = map[string]bool{"nix-support": true}

// CollisionError says two store paths provide the same file.
type CollisionError struct {
	Path string // relative to the link root
	A, B string // the two store paths
}

func (e *CollisionError) Error() string {
	return fmt.Sprintf("%s is provided by both %s and %s", e.Path, e.A, e.B)
}

// Tree is a link tree being built; the zero value is not usable, use New.
type Tree struct {
	root *node
	// storeRoot is where store paths are read from (the store as mounted in
	// the build step); link targets always name /nix/store paths.
	storeRoot string
}

type node struct {
	dir      bool
	target   string // symlink target (under /nix/store) when !dir
	src      string // the same, on this machine's filesystem
	pkg      string
	prio     int
	children map[string]*node
}

// New starts a tree. storeRoot is the directory that holds /nix/store as
// seen by this process ("" or "/" for the real root).
func New(storeRoot string) *Tree {
	return &Tree{root: &node{dir: true, children: map[string]*node{}}, storeRoot: storeRoot}
}

// Add links every top-level directory of a store path into the tree.
func (t *Tree) Add(p Package) error {
	src := t.local(p.Path)
	entries, err := os.ReadDir(src)
	if err != nil {
		if os.IsNotExist(err) {
			return fmt.Errorf("store path %s is missing", p.Path)
		}
		// A store path that is a single file has nothing to link.
		if isNotDir(err) {
			return nil
		}
		return err
	}
	for _, e := range entries {
		if skipped[e.Name()] || !isDirFollow(filepath.Join(src, e.Name())) {
			continue
		}
		if err := t.add(t.root, e.Name(), 1, filepath.Join(p.Path, e.Name()), p); err != nil {
			return err
		}
	}
	return nil
}

func (t *Tree) local(storePath string) string {
	if t.storeRoot == "" || t.storeRoot == "/" {
		return storePath
	}
	return filepath.Join(t.storeRoot, storePath)
}

func (t *Tree) add(parent *node, name string, depth int, target string, p Package) error {
	src := t.local(target)
	srcIsDir := isDirFollow(src)
	ex := parent.children[name]
	if ex == nil {
		if srcIsDir && depth <= realDepth {
			n := &node{dir: true, children: map[string]*node{}, pkg: p.Path, prio: p.Priority}
			parent.children[name] = n
			return t.addChildren(n, depth, target, p)
		}
		parent.children[name] = &node{target: target, src: src, pkg: p.Path, prio: p.Priority}
		return nil
	}
	if ex.dir {
		if srcIsDir {
			return t.addChildren(ex, depth, target, p)
		}
		return t.collide(ex, parent, name, target, p)
	}
	if srcIsDir && isDirFollow(ex.src) {
		// Two store paths provide this directory: unfold the existing
		// symlink into a real directory holding both.
		n := &node{dir: true, children: map[string]*node{}, pkg: ex.pkg, prio: ex.prio}
		parent.children[name] = n
		if err := t.addChildren(n, depth, ex.target, Package{Path: ex.pkg, Priority: ex.prio}); err != nil {
			return err
		}
		return t.addChildren(n, depth, target, p)
	}
	return t.collide(ex, parent, name, target, p)
}

func (t *Tree) addChildren(n *node, depth int, target string, p Package) error {
	entries, err := os.ReadDir(t.local(target))
	if err != nil {
		return err
	}
	for _, e := range entries {
		if err := t.add(n, e.Name(), depth+1, filepath.Join(target, e.Name()), p); err != nil {
			return err
		}
	}
	return nil
}

func (t *Tree) collide(ex, parent *node, name, target string, p Package) error {
	switch {
	case p.Priority < ex.prio:
		parent.children[name] = &node{target: target, src: t.local(target), pkg: p.Path, prio: p.Priority}
		return nil
	case p.Priority > ex.prio:
		return nil
	case !ex.dir && sameFile(ex.src, t.local(target)):
		return nil
	}
	rel := strings.TrimPrefix(strings.TrimPrefix(target, p.Path), "/")
	return &CollisionError{Path: rel, A: ex.pkg, B: p.Path}
}

// Write creates the tree under dir (which may exist), with directories of
// mode 0755 and every entry's modification time at the Unix epoch, so the
// layer holding it depends only on its contents.
func (t *Tree) Write(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if err := write(dir, t.root); err != nil {
		return err
	}
	return epoch(dir)
}

func write(dir string, n *node) error {
	names := make([]string, 0, len(n.children))
	for name := range n.children {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		c := n.children[name]
		p := filepath.Join(dir, name)
		if c.dir {
			if err := os.Mkdir(p, 0o755); err != nil {
				return err
			}
			if err := write(p, c); err != nil {
				return err
			}
			if err := epoch(p); err != nil {
				return err
			}
			continue
		}
		if err := os.Symlink(c.target, p); err != nil {
			return err
		}
		if err := epoch(p); err != nil {
			return err
		}
	}
	return nil
}

// Empty reports whether nothing was linked.
func (t *Tree) Empty() bool { return len(t.root.children) == 0 }

// epoch is the time every entry of a link tree carries.
var epoch0 = time.Unix(0, 0)

func epoch(p string) error { return fstime.Set(p, epoch0) }

// EpochTimes sets the times of dir and every parent up to (not including)
// stop to the Unix epoch, for directories a step creates around a tree.
func EpochTimes(dir, stop string) error { return fstime.SetUpTo(dir, stop, epoch0) }

func isDirFollow(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.IsDir()
}

func isNotDir(err error) bool {
	pe, ok := err.(*os.PathError)
	return ok && pe.Err == unix.ENOTDIR
}

func sameFile(a, b string) bool {
	fa, err1 := os.Stat(a)
	fb, err2 := os.Stat(b)
	if err1 != nil || err2 != nil || !fa.Mode().IsRegular() || !fb.Mode().IsRegular() || fa.Size() != fb.Size() {
		return false
	}
	da, err1 := os.ReadFile(a)
	db, err2 := os.ReadFile(b)
	return err1 == nil && err2 == nil && bytes.Equal(da, db)
}
