package storecopy

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

func TestCopyKeepsModesLinksAndTimes(t *testing.T) {
	src := filepath.Join(t.TempDir(), "abc-pkg")
	must(t, os.MkdirAll(filepath.Join(src, "bin"), 0o755))
	must(t, os.WriteFile(filepath.Join(src, "bin", "tool"), []byte("#!/bin/sh\n"), 0o555))
	must(t, os.WriteFile(filepath.Join(src, "data"), []byte("x"), 0o444))
	must(t, os.Link(filepath.Join(src, "data"), filepath.Join(src, "data2")))
	must(t, os.Symlink("bin/tool", filepath.Join(src, "link")))
	one := time.Unix(1, 0)
	for _, p := range []string{"bin/tool", "data", "bin", ""} {
		must(t, os.Chtimes(filepath.Join(src, p), one, one))
	}
	must(t, os.Chmod(filepath.Join(src, "bin"), 0o555))
	must(t, os.Chmod(src, 0o555))

	dst := filepath.Join(t.TempDir(), "out")
	must(t, Copy(src, dst))

	cases := []struct {
		path string
		mode os.FileMode
	}{{"", 0o555}, {"bin", 0o555}, {"bin/tool", 0o555}, {"data", 0o444}}
	for _, c := range cases {
		fi, err := os.Lstat(filepath.Join(dst, c.path))
		must(t, err)
		if fi.Mode().Perm() != c.mode {
			t.Errorf("%s: mode %v, want %v", c.path, fi.Mode().Perm(), c.mode)
		}
		if !fi.ModTime().Equal(one) {
			t.Errorf("%s: mtime %v, want %v", c.path, fi.ModTime(), one)
		}
	}
	if target, err := os.Readlink(filepath.Join(dst, "link")); err != nil || target != "bin/tool" {
		t.Errorf("symlink: %q, %v", target, err)
	}
	a, _ := os.Stat(filepath.Join(dst, "data"))
	b, _ := os.Stat(filepath.Join(dst, "data2"))
	if a.Sys().(*syscall.Stat_t).Ino != b.Sys().(*syscall.Stat_t).Ino {
		t.Errorf("hard link between data and data2 was not kept")
	}
}

func TestCopyRefusesExistingDestination(t *testing.T) {
	src, dst := t.TempDir(), t.TempDir()
	if err := Copy(src, dst); err == nil {
		t.Fatal("copy onto an existing directory succeeded")
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
