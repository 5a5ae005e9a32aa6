package harness

import (
	"context"
	"fmt"
	"maps"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bkclient "github.com/moby/buildkit/client"
	"github.com/nix-frontend/nix-frontend/frontend"
	digest "github.com/opencontainers/go-digest"
	"github.com/tonistiigi/fsutil"
)

// Cache is where a build exports BuildKit's cache to and imports it from,
// as specs in the CLI syntax: "type=registry,ref=host/repo:tag,mode=max",
// "type=local,dest=dir" for exports, "type=local,src=dir" for imports.
// buildctl gets them as --export-cache/--import-cache, buildx as
// --cache-to/--cache-from, the in-process client as SolveOpt.CacheExports
// and CacheImports.
type Cache struct {
	Exports []string
	Imports []string
}

// BuildWithCache is Build with cache exports and imports.
func (e *Env) BuildWithCache(t testing.TB, via Via, dir string, o BuildOpts, c Cache) *Result {
	t.Helper()
	res, err := e.TryBuildWithCache(t, via, dir, o, c)
	if err != nil {
		t.Fatalf("build via %s failed: %v\n%s", via, err, res.Log)
	}
	return res
}

// TryBuildWithCache is TryBuild with cache exports and imports.
func (e *Env) TryBuildWithCache(t testing.TB, via Via, dir string, o BuildOpts, c Cache) (*Result, error) {
	t.Helper()
	switch via {
	case Buildctl, Buildx:
		exportFlag, importFlag := "--export-cache", "--import-cache"
		if via == Buildx {
			exportFlag, importFlag = "--cache-to", "--cache-from"
		}
		args := append([]string(nil), o.Args...)
		for _, s := range c.Exports {
			args = append(args, exportFlag, s)
		}
		for _, s := range c.Imports {
			args = append(args, importFlag, s)
		}
		o.Args = args
		return e.TryBuild(t, via, dir, o)
	case InProcess:
	default:
		return &Result{}, fmt.Errorf("unknown path %q", via)
	}
	if o.File == "" {
		o.File = "Nixfile"
	}
	if o.Ref == "" && o.Output == "" {
		o.Ref = e.NewRef(t.Name())
	}
	args := e.DefaultBuildArgs()
	maps.Copy(args, o.BuildArgs)
	o.BuildArgs = args
	var exports, imports []bkclient.CacheOptionsEntry
	for _, s := range c.Exports {
		exports = append(exports, parseCacheSpec(s))
	}
	for _, s := range c.Imports {
		imports = append(imports, parseCacheSpec(s))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	return e.buildInProcessCached(ctx, dir, o, exports, imports)
}

func parseCacheSpec(s string) bkclient.CacheOptionsEntry {
	c := bkclient.CacheOptionsEntry{Attrs: map[string]string{}}
	for _, kv := range strings.Split(s, ",") {
		k, v, _ := strings.Cut(kv, "=")
		if k == "type" {
			c.Type = v
		} else {
			c.Attrs[k] = v
		}
	}
	return c
}

// buildInProcessCached is buildInProcess with cache options; the client
// passes the imports on to the frontend as the "cache-imports" option.
func (e *Env) buildInProcessCached(ctx context.Context, dir string, o BuildOpts, exports, imports []bkclient.CacheOptionsEntry) (*Result, error) {
	res := &Result{Ref: o.Ref}
	c, err := bkclient.New(ctx, e.BuildkitHost)
	if err != nil {
		return res, err
	}
	defer c.Close()
	ctxFS, err := fsutil.NewFS(dir)
	if err != nil {
		return res, err
	}
	dfFS, err := fsutil.NewFS(filepath.Dir(filepath.Join(dir, o.File)))
	if err != nil {
		return res, err
	}
	attrs := map[string]string{
		"filename":                filepath.Base(o.File),
		frontend.FrontendImageOpt: e.FrontendImage,
	}
	for k, v := range o.BuildArgs {
		attrs["build-arg:"+k] = v
	}
	maps.Copy(attrs, o.Attrs)
	if o.Target != "" {
		attrs["target"] = o.Target
	}
	if len(o.Platforms) > 0 {
		attrs["platform"] = strings.Join(o.Platforms, ",")
	}
	exp := bkclient.ExportEntry{Type: bkclient.ExporterImage, Attrs: map[string]string{
		"name": o.Ref, "push": "true", "registry.insecure": "true", "oci-mediatypes": "true"}}
	if o.Output != "" {
		exp, err = parseOutput(o.Output)
		if err != nil {
			return res, err
		}
	}
	// A step whose result comes from an imported cache is reported
	// cached, then started again, not cached, while its blobs are pulled
	// (BuildKit's lazy blobs report their progress on the step): keep
	// the cache hit.
	ch, fwd := make(chan *bkclient.SolveStatus), make(chan *bkclient.SolveStatus)
	hits := map[digest.Digest]bool{}
	st := newStatus()
	done := make(chan struct{})
	go func() { st.consume(fwd); close(done) }()
	go func() {
		for ss := range ch {
			for _, v := range ss.Vertexes {
				if v.Cached {
					hits[v.Digest] = true
				}
			}
			fwd <- ss
		}
		close(fwd)
	}()
	resp, err := c.Build(ctx, bkclient.SolveOpt{
		LocalMounts:   map[string]fsutil.FS{"context": ctxFS, "dockerfile": dfFS},
		FrontendAttrs: attrs,
		Exports:       []bkclient.ExportEntry{exp},
		CacheExports:  exports,
		CacheImports:  imports,
	}, "nix-frontend-test", frontend.Build, ch)
	<-done
	for d := range hits {
		if v := st.Vertexes[d]; v != nil {
			v.Cached = true
		}
	}
	res.Status, res.Log = st, st.String()
	if err != nil {
		return res, err
	}
	if d := resp.ExporterResponse["containerimage.digest"]; d != "" {
		res.Digest = digest.Digest(d)
	}
	return res, nil
}
