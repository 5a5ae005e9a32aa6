package narcopy

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/nix-frontend/nix-frontend/nix/internal/nixtest"
	"github.com/nix-frontend/nix-frontend/nix/storepath"
)

// tree writes a store-path-like tree: directories, an executable, a
// symlink, an empty file and two hard-linked files.
func tree(t *testing.T) string {
	t.Helper()
	src := filepath.Join(t.TempDir(), "src")
	for name, body := range map[string]string{"bin/hello": "#!/bin/sh\necho hi\n", "share/doc/README": "read me\n", "share/empty": "", "lib/a": "same\n"} {
		p := filepath.Join(src, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(filepath.Join(src, "bin/hello"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Link(filepath.Join(src, "lib/a"), filepath.Join(src, "lib/b")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("../share/doc/README", filepath.Join(src, "bin/readme")); err != nil {
		t.Fatal(err)
	}
	return src
}

func TestCopyMatchesNix(t *testing.T) {
	nixtest.RequireNix(t)
	src := tree(t)
	dst := filepath.Join(t.TempDir(), "dst")
	res, err := Copy(src, dst)
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("nix-hash", "--type", "sha256", "--base32", src).Output()
	if err != nil {
		t.Fatal(err)
	}
	want, err := storepath.ParseNarHash("sha256:" + strings.TrimSpace(string(out)))
	if err != nil {
		t.Fatal(err)
	}
	if res.NarHash != want {
		t.Errorf("NAR hash %s, nix-hash says %s", res.NarHash, want)
	}
	// The copy serialises to the same NAR.
	out, _ = exec.Command("nix-hash", "--type", "sha256", "--base32", dst).Output()
	if got := strings.TrimSpace(string(out)); "sha256:"+got != want.String() {
		t.Errorf("the copy hashes to %s, the source to %s", got, want)
	}
	dump, _ := exec.Command("nix-store", "--dump", src).Output()
	if res.NarSize != int64(len(dump)) {
		t.Errorf("NAR size %d, nix-store --dump wrote %d bytes", res.NarSize, len(dump))
	}
}

func TestCopyIsCanonical(t *testing.T) {
	src := tree(t)
	dst := filepath.Join(t.TempDir(), "dst")
	if _, err := Copy(src, dst); err != nil {
		t.Fatal(err)
	}
	want := map[string]os.FileMode{
		".": os.ModeDir | 0o555, "bin": os.ModeDir | 0o555, "bin/hello": 0o555, "share/doc/README": 0o444,
		"share/empty": 0o444, "lib/a": 0o444, "lib/b": 0o444, "bin/readme": os.ModeSymlink,
	}
	for name, mode := range want {
		fi, err := os.Lstat(filepath.Join(dst, name))
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		got := fi.Mode()
		if mode&os.ModeSymlink != 0 {
			got &= os.ModeType
		}
		if got != mode {
			t.Errorf("%s: mode %v, want %v", name, got, mode)
		}
		if !fi.ModTime().Equal(StoreTime) {
			t.Errorf("%s: mtime %v", name, fi.ModTime())
		}
		if st := fi.Sys().(*syscall.Stat_t); !fi.IsDir() && st.Nlink != 1 {
			t.Errorf("%s: %d links; the copy has no hard links", name, st.Nlink)
		}
	}
	if l, _ := os.Readlink(filepath.Join(dst, "bin/readme")); l != "../share/doc/README" {
		t.Errorf("symlink -> %q", l)
	}
}

func TestCopySingleFile(t *testing.T) {
	src := filepath.Join(t.TempDir(), "script")
	if err := os.WriteFile(src, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(t.TempDir(), "copy")
	if _, err := Copy(src, dst); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Lstat(dst); err != nil || fi.Mode() != 0o555 {
		t.Errorf("copy: %v %v", fi, err)
	}
}
