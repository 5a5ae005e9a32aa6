package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nix-community/go-nix/pkg/nar"

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
// paths with their compressed sizes. Layers read before (other images of
// the run share most of theirs) are not read again.
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
		paths, ok := b.layers[l.Digest.String()]
		if !ok {
			body := b.openBlob(img, l.Digest)
			var err error
			paths, err = splitLayer(body, !own[l.Digest])
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
			}
			b.layers[l.Digest.String()] = paths
		}
		for _, p := range paths {
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
	return gzippedTarSize(func(tw *tar.Writer) error {
		for _, e := range entries {
			if err := tw.WriteHeader(e.hdr); err != nil {
				return err
			}
			if _, err := tw.Write(e.data); err != nil {
				return err
			}
		}
		return nil
	})
}

// gzippedTarSize is the size of the tar that write writes, gzipped at the
// default level.
func gzippedTarSize(write func(*tar.Writer) error) (int64, error) {
	var c counter
	zw := gzip.NewWriter(&c)
	tw := tar.NewWriter(zw)
	if err := write(tw); err != nil {
		return 0, err
	}
	if err := tw.Close(); err != nil {
		return 0, err
	}
	if err := zw.Close(); err != nil {
		return 0, err
	}
	return c.n, nil
}

// reference is the cost of turning the W1 closure into compressed archives
// with plain tools, timed on the closure unpacked from the baseline image's
// single layer: tar | zstd (all cores), tar | gzip -6 (one core), and
// Go's compress/gzip at the default level — BuildKit's compressor for gzip
// layers — over a tar of each store path, one goroutine per path, as many
// at once as there are cores.
type reference struct {
	Raw        int64
	TarZstd    time.Duration
	ZstdBytes  int64
	TarGzip    time.Duration
	GzipBytes  int64
	ParGzip    time.Duration
	ParGzBytes int64
	Paths      int
}

// unpackBaseline unpacks the baseline image's layer (the whole closure)
// into a new directory and returns it; the caller removes it.
func (b *bench) unpackBaseline(img *harness.Image) string {
	if len(img.Manifest.Layers) != 1 {
		panic(fatal{fmt.Sprintf("the baseline image has %d layers, want 1", len(img.Manifest.Layers))})
	}
	root, err := os.MkdirTemp(b.t.TempDir(), "closure-")
	must(err, "mkdir")
	body := b.openBlob(img, img.Manifest.Layers[0].Digest)
	cmd := exec.Command("tar", "-xzf", "-", "-C", root)
	cmd.Stdin = body
	out, err := cmd.CombinedOutput()
	body.Close()
	must(errorWith(err, out), "unpacking the baseline layer")
	return root
}

func tarReference(root string) reference {
	var ref reference
	du, err := exec.Command("du", "-sb", root+"/nix").Output()
	must(err, "du")
	fmt.Sscan(string(du), &ref.Raw)
	out, err := os.MkdirTemp("", "nf-bench-ref-")
	must(err, "mkdir")
	defer os.RemoveAll(out)
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
	ref.TarZstd, ref.ZstdBytes = timeIt(fmt.Sprintf("tar -C %s -cf - nix | zstd -q -T0 -3 -f -o %s/closure.tar.zst", root, out), out+"/closure.tar.zst")
	ref.TarGzip, ref.GzipBytes = timeIt(fmt.Sprintf("tar -C %s -cf - nix | gzip -6 > %s/closure.tar.gz", root, out), out+"/closure.tar.gz")
	ref.ParGzip, ref.ParGzBytes, ref.Paths = parallelGzip(root)
	return ref
}

// storePaths lists the store paths under root/nix/store, largest first.
func storePaths(root string) []string {
	ents, err := os.ReadDir(filepath.Join(root, "nix", "store"))
	must(err, "reading the unpacked store")
	type sized struct {
		p string
		n int64
	}
	var ps []sized
	for _, e := range ents {
		p := filepath.Join(root, "nix", "store", e.Name())
		var n int64
		filepath.Walk(p, func(_ string, fi os.FileInfo, err error) error {
			if err == nil && fi.Mode().IsRegular() {
				n += fi.Size()
			}
			return nil
		})
		ps = append(ps, sized{p, n})
	}
	sort.Slice(ps, func(i, j int) bool { return ps[i].n > ps[j].n })
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.p
	}
	return out
}

// parallelGzip compresses a tar of each store path under root with Go's
// compress/gzip at the default level, largest paths first, as many at once
// as there are cores, and returns the time it took and the bytes out.
func parallelGzip(root string) (time.Duration, int64, int) {
	paths := storePaths(root)
	work := make(chan string)
	var total atomic.Int64
	errs := make(chan error, len(paths))
	var wg sync.WaitGroup
	start := time.Now()
	for w := 0; w < runtime.NumCPU(); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for p := range work {
				n, err := gzipTree(root, p)
				if err != nil {
					errs <- fmt.Errorf("%s: %w", p, err)
					continue
				}
				total.Add(n)
			}
		}()
	}
	for _, p := range paths {
		work <- p
	}
	close(work)
	wg.Wait()
	d := time.Since(start)
	close(errs)
	for err := range errs {
		must(err, "parallel gzip")
	}
	return d, total.Load(), len(paths)
}

// gzipTree writes a tar of dir (named relative to root) through gzip and
// returns the compressed size.
func gzipTree(root, dir string) (int64, error) {
	return gzippedTarSize(func(tw *tar.Writer) error {
		return filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
			if err != nil {
				return err
			}
			link := ""
			if fi.Mode()&os.ModeSymlink != 0 {
				if link, err = os.Readlink(p); err != nil {
					return err
				}
			}
			h, err := tar.FileInfoHeader(fi, link)
			if err != nil {
				return err
			}
			rel, _ := filepath.Rel(root, p)
			h.Name = rel
			if err := tw.WriteHeader(h); err != nil {
				return err
			}
			if fi.Mode().IsRegular() {
				f, err := os.Open(p)
				if err != nil {
					return err
				}
				_, err = io.Copy(tw, f)
				f.Close()
				return err
			}
			return nil
		})
	})
}

// narCost is what the layer steps' NAR hash check costs, measured on the
// W1 closure unpacked from the baseline's layer: every store path
// serialised as a NAR as the layer steps serialise it (go-nix's
// nar.DumpPath), and SHA-256 over each NAR, the hash the steps compute on
// the way, timed apart, one path after the other on one core.
type narCost struct {
	NarBytes int64
	Dump     time.Duration // serialising
	Hash     time.Duration // hashing the serialised NARs
	Paths    int
}

func narReference(root string) narCost {
	paths := storePaths(root)
	c := narCost{Paths: len(paths)}
	// The better of three runs of each, for a noisy machine.
	c.Dump, c.Hash = time.Duration(math.MaxInt64), time.Duration(math.MaxInt64)
	for i := 0; i < 3; i++ {
		var dump, hash time.Duration
		var n int64
		var buf bytes.Buffer
		for _, p := range paths {
			buf.Reset()
			start := time.Now()
			must(nar.DumpPath(&buf, p), "serialising "+p)
			dump += time.Since(start)
			start = time.Now()
			sha256.Sum256(buf.Bytes())
			hash += time.Since(start)
			n += int64(buf.Len())
		}
		c.NarBytes, c.Dump, c.Hash = n, min(c.Dump, dump), min(c.Hash, hash)
	}
	return c
}

func errorWith(err error, out []byte) error {
	if err != nil {
		return fmt.Errorf("%v: %s", err, strings.TrimSpace(string(out)))
	}
	return nil
}
