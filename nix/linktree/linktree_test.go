package linktree

import (
	"errors"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// fakeStore makes store paths under root/nix/store from "pkg/rel/path" keys.
func fakeStore(t *testing.T, files map[string]string) string {
	t.Helper()
	root := t.TempDir()
	for k, v := range files {
		p := filepath.Join(root, "nix/store", k)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(v), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

// listing returns "rel -> target" for links and "rel/" for directories.
func listing(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil || p == dir {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		switch {
		case fi.Mode()&os.ModeSymlink != 0:
			target, _ := os.Readlink(p)
			out = append(out, rel+" -> "+target)
		case fi.IsDir():
			out = append(out, rel+"/")
		default:
			out = append(out, rel+" (file)")
		}
		if fi.ModTime().Unix() != 0 {
			t.Errorf("%s: mtime %v, want the epoch", rel, fi.ModTime())
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(out)
	return out
}

func TestLinkTree(t *testing.T) {
	store := fakeStore(t, map[string]string{
		"aaa-hello/bin/hello":              "hello",
		"aaa-hello/share/man/man1/hello.1": "man",
		"aaa-hello/share/doc/hello/README": "doc",
		"aaa-hello/nix-support/propagated": "x",
		"bbb-jq/bin/jq":                    "jq",
		"bbb-jq/share/man/man1/jq.1":       "man",
		"ccc-lib/lib/libfoo.so":            "so",
		"ddd-same/bin/hello":               "hello", // identical content: no collision
	})
	tree := New(store)
	for _, p := range []string{"aaa-hello", "bbb-jq", "ccc-lib", "ddd-same"} {
		if err := tree.Add(Package{Path: "/nix/store/" + p}); err != nil {
			t.Fatal(err)
		}
	}
	out := filepath.Join(t.TempDir(), "links", "usr", "local")
	if err := tree.Write(out); err != nil {
		t.Fatal(err)
	}
	got := strings.Join(listing(t, out), "\n")
	want := strings.Join([]string{
		"bin/",
		"bin/hello -> /nix/store/aaa-hello/bin/hello",
		"bin/jq -> /nix/store/bbb-jq/bin/jq",
		"lib/",
		"lib/libfoo.so -> /nix/store/ccc-lib/lib/libfoo.so",
		"share/",
		"share/doc/",
		"share/doc/hello -> /nix/store/aaa-hello/share/doc/hello",
		"share/man/",
		"share/man/man1/",
		"share/man/man1/hello.1 -> /nix/store/aaa-hello/share/man/man1/hello.1",
		"share/man/man1/jq.1 -> /nix/store/bbb-jq/share/man/man1/jq.1",
	}, "\n")
	if got != want {
		t.Errorf("tree:\n%s\nwant:\n%s", got, want)
	}
}

func TestCollisions(t *testing.T) {
	store := fakeStore(t, map[string]string{
		"aaa-one/bin/tool": "one",
		"bbb-two/bin/tool": "two",
	})
	cases := []struct {
		name       string
		prioA      int
		prioB      int
		wantErr    bool
		wantTarget string
	}{
		{"equal priorities collide", 0, 0, true, ""},
		{"lower number wins (second)", 5, 1, false, "/nix/store/bbb-two/bin/tool"},
		{"lower number wins (first)", 1, 5, false, "/nix/store/aaa-one/bin/tool"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tree := New(store)
			if err := tree.Add(Package{Path: "/nix/store/aaa-one", Priority: c.prioA}); err != nil {
				t.Fatal(err)
			}
			err := tree.Add(Package{Path: "/nix/store/bbb-two", Priority: c.prioB})
			if c.wantErr {
				var ce *CollisionError
				if !errors.As(err, &ce) || ce.Path != "bin/tool" || ce.A != "/nix/store/aaa-one" || ce.B != "/nix/store/bbb-two" {
					t.Fatalf("err = %v, want a collision on bin/tool naming both paths", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			out := t.TempDir()
			if err := tree.Write(out); err != nil {
				t.Fatal(err)
			}
			if target, _ := os.Readlink(filepath.Join(out, "bin/tool")); target != c.wantTarget {
				t.Errorf("bin/tool -> %s, want %s", target, c.wantTarget)
			}
		})
	}
}

func TestSingleFileStorePathLinksNothing(t *testing.T) {
	store := fakeStore(t, map[string]string{"aaa-script": "#!/bin/sh"})
	tree := New(store)
	if err := tree.Add(Package{Path: "/nix/store/aaa-script"}); err != nil {
		t.Fatal(err)
	}
	if !tree.Empty() {
		t.Error("a single-file store path produced links")
	}
}
