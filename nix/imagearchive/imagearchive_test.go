package imagearchive

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"os"
	"path/filepath"
	"testing"
	"time"
)

type entry struct {
	name, body, link string
	typ              byte
	mode             int64
}

func tarball(t *testing.T, entries []entry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := &tar.Header{Name: e.name, Typeflag: e.typ, Mode: e.mode, Size: int64(len(e.body)), Linkname: e.link, ModTime: time.Unix(1, 0)}
		if e.typ != tar.TypeReg {
			h.Size = 0
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if e.typ == tar.TypeReg {
			tw.Write([]byte(e.body))
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestSplit(t *testing.T) {
	layer0 := tarball(t, []entry{
		{name: "bin/", typ: tar.TypeDir, mode: 0o755},
		{name: "bin/hello", typ: tar.TypeReg, mode: 0o555, body: "#!/bin/sh\necho hi\n"},
		{name: "bin/hi", typ: tar.TypeSymlink, link: "hello"},
	})
	layer1 := tarball(t, []entry{{name: "etc/motd", typ: tar.TypeReg, mode: 0o644, body: "welcome\n"}})
	archive := tarball(t, []entry{
		{name: "manifest.json", typ: tar.TypeReg, mode: 0o644, body: `[{"Config":"cfg.json","RepoTags":["hello:latest"],"Layers":["a/layer.tar","b/layer.tar"]}]`},
		{name: "cfg.json", typ: tar.TypeReg, mode: 0o644, body: `{"architecture":"amd64","os":"linux","config":{"Cmd":["/bin/hello"]}}`},
		{name: "a/layer.tar", typ: tar.TypeReg, mode: 0o644, body: string(layer0)},
		{name: "b/layer.tar", typ: tar.TypeReg, mode: 0o644, body: string(layer1)},
	})
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(archive)
	zw.Close()
	file := filepath.Join(t.TempDir(), "image.tar.gz")
	if err := os.WriteFile(file, gz.Bytes(), 0o444); err != nil {
		t.Fatal(err)
	}
	if !IsArchive(file) {
		t.Fatal("IsArchive = false for a gzipped docker archive")
	}
	dir := t.TempDir()
	n, err := Split(file, dir)
	if err != nil {
		t.Fatal(err)
	}
	if n != 2 {
		t.Errorf("%d layers, want 2", n)
	}
	if dt, _ := os.ReadFile(filepath.Join(dir, ConfigFile)); !bytes.Contains(dt, []byte(`"Cmd":["/bin/hello"]`)) {
		t.Errorf("config %s", dt)
	}
	for i, want := range [][]byte{layer0, layer1} {
		if dt, _ := os.ReadFile(filepath.Join(dir, LayerFile(i))); !bytes.Equal(dt, want) {
			t.Errorf("layer %d: %d bytes, want the archive's %d", i, len(dt), len(want))
		}
	}
	plain := filepath.Join(t.TempDir(), "not-an-image")
	os.WriteFile(plain, layer1, 0o644)
	if IsArchive(plain) {
		t.Error("IsArchive = true for a tarball without manifest.json")
	}
}
