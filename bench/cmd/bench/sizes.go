package main

import (
	"archive/tar"
	"compress/gzip"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path"
	"strings"
	"time"

	"github.com/nix-frontend/nix-frontend/integration/harness"
	digest "github.com/opencontainers/go-digest"
)

// pathSize is one store path of a pushed nix-frontend image.
type pathSize struct {
	Path string
	// Own says the path has a layer of its own; Compressed is then that
	// layer's size in the registry. A path that shares a layer (past the
	// layer budget) gets the size of a gzip layer of it alone, made here
	// the way BuildKit makes layers (tar, gzip at the default level).
	Own        bool
	Compressed int64
	Raw        int64         // bytes of its files
	Layer      digest.Digest // the layer holding it
}

type closure map[string]*pathSize

func (c closure) total(paths []string) (n int64) {
	for _, p := range paths {
		n += c[p].Compressed
	}
	return n
}

func (c closure) raw() (n int64) {
	for _, p := range c {
		n += p.Raw
	}
	return n
}

// minus returns the paths of c that are not in o, sorted.
func (c closure) minus(o closure) []string {
	var out []string
	for p := range c {
		if _, ok := o[p]; !ok {
			out = append(out, p)
		}
	}
	return sortStrings(out)
}

// and returns the paths in both c and o, sorted.
func (c closure) and(o closure) []string {
	var out []string
	for p := range c {
		if _, ok := o[p]; ok {
			out = append(out, p)
		}
	}
	return sortStrings(out)
}

// closureOf reads every layer of a nix-frontend image and returns its store
// paths with their compressed sizes.
func (b *bench) closureOf(img *harness.Image) closure {
	own := map[digest.Digest]bool{}
	for _, d := range harness.StoreLayers(img) {
		own[d] = true
	}
	out := closure{}
	for _, l := range img.Manifest.Layers {
		if !strings.Contains(l.MediaType, "gzip") {
			panic(fatal{fmt.Sprintf("layer %s is %s; the benchmark reads gzip layers", l.Digest, l.MediaType)})
		}
		body := b.openBlob(img, l.Digest)
		paths, err := splitLayer(body, !own[l.Digest])
		body.Close()
		must(err, "reading layer "+l.Digest.String())
		for _, p := range paths {
			p.Layer = l.Digest
			if own[l.Digest] {
				if len(paths) != 1 {
					panic(fatal{fmt.Sprintf("layer %s of one store path holds %d", l.Digest, len(paths))})
				}
				p.Own, p.Compressed = true, l.Size
			}
			out[p.Path] = p
		}
	}
	return out
}

func (b *bench) openBlob(img *harness.Image, d digest.Digest) io.ReadCloser {
	repo := strings.TrimPrefix(img.Ref, b.env.Registry+"/")
	resp, err := http.Get(fmt.Sprintf("http://%s/v2/%s/blobs/%s", b.env.Registry, repo, d))
	must(err, "fetching blob")
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		panic(fatal{fmt.Sprintf("blob %s: %s", d, resp.Status)})
	}
	return resp.Body
}

type entry struct {
	hdr  *tar.Header
	data []byte
}

// splitLayer lists the store paths of a gzip layer with their sizes; with
// recompress, it also gives each the size of a layer of its own.
func splitLayer(r io.Reader, recompress bool) ([]*pathSize, error) {
	zr, err := gzip.NewReader(r)
	if err != nil {
		return nil, err
	}
	tr := tar.NewReader(zr)
	var dirs []entry // nix/, nix/store/
	byPath := map[string][]entry{}
	sizes := map[string]*pathSize{}
	var order []string
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
		name := strings.TrimPrefix(path.Clean("/"+h.Name), "/")
		rest, ok := strings.CutPrefix(name, "nix/store/")
		if !ok {
			if name == "nix" || name == "nix/store" {
				dirs = append(dirs, entry{hdr: h})
			}
			continue
		}
		base, _, _ := strings.Cut(rest, "/")
		p := "/nix/store/" + base
		ps := sizes[p]
		if ps == nil {
			ps = &pathSize{Path: p}
			sizes[p] = ps
			order = append(order, p)
		}
		ps.Raw += h.Size
		if recompress {
			data, err := io.ReadAll(tr)
			if err != nil {
				return nil, err
			}
			byPath[p] = append(byPath[p], entry{h, data})
		}
	}
	var out []*pathSize
	for _, p := range order {
		ps := sizes[p]
		if recompress {
			n, err := gzipSize(append(append([]entry(nil), dirs...), byPath[p]...))
			if err != nil {
				return nil, err
			}
			ps.Compressed = n
		}
		out = append(out, ps)
	}
	return out, nil
}

type counter struct{ n int64 }

func (c *counter) Write(p []byte) (int, error) { c.n += int64(len(p)); return len(p), nil }

func gzipSize(entries []entry) (int64, error) {
	var c counter
	zw := gzip.NewWriter(&c)
	tw := tar.NewWriter(zw)
	for _, e := range entries {
		if err := tw.WriteHeader(e.hdr); err != nil {
			return 0, err
		}
		if _, err := tw.Write(e.data); err != nil {
			return 0, err
		}
	}
	if err := tw.Close(); err != nil {
		return 0, err
	}
	if err := zw.Close(); err != nil {
		return 0, err
	}
	return c.n, nil
}

// reference is the plain-tools cost of turning a closure into a compressed
// archive: the W1 closure, unpacked from the baseline image's single layer,
// archived by tar and compressed by zstd (all cores) and by gzip.
type reference struct {
	Raw       int64
	TarZstd   time.Duration
	ZstdBytes int64
	TarGzip   time.Duration
	GzipBytes int64
}

func (b *bench) tarReference(img *harness.Image) reference {
	if len(img.Manifest.Layers) != 1 {
		panic(fatal{fmt.Sprintf("the baseline image has %d layers, want 1", len(img.Manifest.Layers))})
	}
	dir := b.t.TempDir()
	root := dir + "/root"
	must(os.MkdirAll(root, 0o755), "mkdir")
	body := b.openBlob(img, img.Manifest.Layers[0].Digest)
	cmd := exec.Command("tar", "-xzf", "-", "-C", root)
	cmd.Stdin = body
	out, err := cmd.CombinedOutput()
	body.Close()
	must(errorWith(err, out), "unpacking the baseline layer")
	var ref reference
	du, err := exec.Command("du", "-sb", root+"/nix").Output()
	must(err, "du")
	fmt.Sscan(string(du), &ref.Raw)
	timeIt := func(pipeline, dest string) (time.Duration, int64) {
		start := time.Now()
		out, err := exec.Command("sh", "-c", pipeline).CombinedOutput()
		must(errorWith(err, out), pipeline)
		d := time.Since(start)
		fi, err := os.Stat(dest)
		must(err, "stat")
		return d, fi.Size()
	}
	// Once to warm the page cache as a build's copy finds it, then timed.
	timeIt(fmt.Sprintf("tar -C %s -cf - nix > /dev/null", root), "/dev/null")
	ref.TarZstd, ref.ZstdBytes = timeIt(fmt.Sprintf("tar -C %s -cf - nix | zstd -q -T0 -3 -f -o %s/closure.tar.zst", root, dir), dir+"/closure.tar.zst")
	ref.TarGzip, ref.GzipBytes = timeIt(fmt.Sprintf("tar -C %s -cf - nix | gzip -6 > %s/closure.tar.gz", root, dir), dir+"/closure.tar.gz")
	exec.Command("rm", "-rf", dir).Run()
	return ref
}

func errorWith(err error, out []byte) error {
	if err != nil {
		return fmt.Errorf("%v: %s", err, strings.TrimSpace(string(out)))
	}
	return nil
}
