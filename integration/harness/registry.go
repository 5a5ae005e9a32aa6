package harness

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	digest "github.com/opencontainers/go-digest"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"
)

var manifestAccept = strings.Join([]string{
	ocispecs.MediaTypeImageIndex, ocispecs.MediaTypeImageManifest,
	"application/vnd.docker.distribution.manifest.list.v2+json",
	"application/vnd.docker.distribution.manifest.v2+json",
}, ", ")

// splitRef splits "host/repo:tag" (or "host/repo@sha256:...") of the local registry.
func splitRef(registry, ref string) (repo, tag string, err error) {
	rest, ok := strings.CutPrefix(ref, registry+"/")
	if !ok {
		return "", "", fmt.Errorf("%s is not in registry %s", ref, registry)
	}
	if i := strings.Index(rest, "@"); i >= 0 {
		return rest[:i], rest[i+1:], nil
	}
	if i := strings.LastIndex(rest, ":"); i >= 0 {
		return rest[:i], rest[i+1:], nil
	}
	return rest, "latest", nil
}

func registryGet(registry, repo, kind, ref, accept string) ([]byte, string, error) {
	req, err := http.NewRequest(http.MethodGet, fmt.Sprintf("http://%s/v2/%s/%s/%s", registry, repo, kind, ref), nil)
	if err != nil {
		return nil, "", err
	}
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, "", err
	}
	defer resp.Body.Close()
	dt, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, "", err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, "", fmt.Errorf("GET %s %s: %s", kind, ref, resp.Status)
	}
	return dt, resp.Header.Get("Content-Type"), nil
}

func headManifest(registry, ref string) (digest.Digest, error) {
	repo, tag, err := splitRef(registry, ref)
	if err != nil {
		return "", err
	}
	dt, _, err := registryGet(registry, repo, "manifests", tag, manifestAccept)
	if err != nil {
		return "", err
	}
	return digest.FromBytes(dt), nil
}

// Image is a pushed single-platform image as the registry holds it.
type Image struct {
	Ref          string
	Digest       digest.Digest // of the manifest
	Manifest     ocispecs.Manifest
	Config       ocispecs.Image
	ConfigDigest digest.Digest
}

// Pushed is what the registry holds under a reference: an image, or an index
// of images.
type Pushed struct {
	Ref    string
	Digest digest.Digest
	Index  *ocispecs.Index // nil for a single image
	Images []*Image        // one per manifest, in index order
}

// Inspect reads a reference from the registry.
func (e *Env) Inspect(t testing.TB, ref string) *Pushed {
	t.Helper()
	p, err := e.inspect(ref)
	if err != nil {
		t.Fatalf("inspect %s: %v", ref, err)
	}
	return p
}

func (e *Env) inspect(ref string) (*Pushed, error) {
	repo, tag, err := splitRef(e.Registry, ref)
	if err != nil {
		return nil, err
	}
	dt, mt, err := registryGet(e.Registry, repo, "manifests", tag, manifestAccept)
	if err != nil {
		return nil, err
	}
	p := &Pushed{Ref: ref, Digest: digest.FromBytes(dt)}
	var probe struct {
		MediaType string            `json:"mediaType"`
		Manifests []json.RawMessage `json:"manifests"`
	}
	if err := json.Unmarshal(dt, &probe); err != nil {
		return nil, err
	}
	if probe.Manifests != nil || strings.Contains(mt, "index") || strings.Contains(mt, "list") {
		var idx ocispecs.Index
		if err := json.Unmarshal(dt, &idx); err != nil {
			return nil, err
		}
		p.Index = &idx
		for _, d := range idx.Manifests {
			if d.Annotations["vnd.docker.reference.type"] == "attestation-manifest" {
				continue
			}
			img, err := e.readImage(repo, d.Digest)
			if err != nil {
				return nil, err
			}
			p.Images = append(p.Images, img)
		}
		return p, nil
	}
	img, err := e.parseImage(repo, dt)
	if err != nil {
		return nil, err
	}
	p.Images = []*Image{img}
	return p, nil
}

func (e *Env) readImage(repo string, dgst digest.Digest) (*Image, error) {
	dt, _, err := registryGet(e.Registry, repo, "manifests", dgst.String(), manifestAccept)
	if err != nil {
		return nil, err
	}
	return e.parseImage(repo, dt)
}

func (e *Env) parseImage(repo string, dt []byte) (*Image, error) {
	img := &Image{Ref: e.Registry + "/" + repo, Digest: digest.FromBytes(dt)}
	if err := json.Unmarshal(dt, &img.Manifest); err != nil {
		return nil, err
	}
	cfg, _, err := registryGet(e.Registry, repo, "blobs", img.Manifest.Config.Digest.String(), "")
	if err != nil {
		return nil, err
	}
	img.ConfigDigest = digest.FromBytes(cfg)
	if err := json.Unmarshal(cfg, &img.Config); err != nil {
		return nil, err
	}
	return img, nil
}

// Blob fetches a blob of an image's repository.
func (e *Env) Blob(t testing.TB, img *Image, d digest.Digest) []byte {
	t.Helper()
	repo, _, err := splitRef(e.Registry, img.Ref)
	if err != nil {
		t.Fatal(err)
	}
	dt, _, err := registryGet(e.Registry, repo, "blobs", d.String(), "")
	if err != nil {
		t.Fatalf("blob %s: %v", d, err)
	}
	return dt
}

// RegistryBytes is the size of every blob the registry stores, to measure
// what a push uploaded.
func (e *Env) RegistryBytes(t testing.TB) int64 {
	t.Helper()
	var n int64
	root := filepath.Join(e.RepoRoot, ".cache/registry/docker/registry/v2/blobs")
	err := filepath.Walk(root, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		if fi.Mode().IsRegular() && fi.Name() == "data" {
			n += fi.Size()
		}
		return nil
	})
	if err != nil {
		t.Fatalf("registry storage: %v", err)
	}
	return n
}

// Attestations returns the in-toto statements attached to a pushed index,
// by predicate type, for the image of the given platform ("linux/amd64").
func (e *Env) Attestations(t testing.TB, ref, platform string) map[string][]byte {
	t.Helper()
	repo, tag, err := splitRef(e.Registry, ref)
	if err != nil {
		t.Fatal(err)
	}
	dt, _, err := registryGet(e.Registry, repo, "manifests", tag, manifestAccept)
	if err != nil {
		t.Fatal(err)
	}
	var idx ocispecs.Index
	if err := json.Unmarshal(dt, &idx); err != nil {
		t.Fatal(err)
	}
	var subject digest.Digest
	for _, d := range idx.Manifests {
		if d.Platform != nil && d.Platform.OS+"/"+d.Platform.Architecture == platform {
			subject = d.Digest
		}
	}
	out := map[string][]byte{}
	for _, d := range idx.Manifests {
		if d.Annotations["vnd.docker.reference.type"] != "attestation-manifest" || d.Annotations["vnd.docker.reference.digest"] != subject.String() {
			continue
		}
		mdt, _, err := registryGet(e.Registry, repo, "manifests", d.Digest.String(), manifestAccept)
		if err != nil {
			t.Fatal(err)
		}
		var m ocispecs.Manifest
		if err := json.Unmarshal(mdt, &m); err != nil {
			t.Fatal(err)
		}
		for _, l := range m.Layers {
			b, _, err := registryGet(e.Registry, repo, "blobs", l.Digest.String(), "")
			if err != nil {
				t.Fatal(err)
			}
			out[l.Annotations["in-toto.io/predicate-type"]] = b
		}
	}
	return out
}

// LayerFile is a regular file or symlink of a layer.
type LayerFile struct {
	Header *tar.Header
	Data   []byte // regular files only
}

// EachLayerFile calls fn for every entry of an image's layers (gzip), in
// order, until fn returns false.
func (e *Env) EachLayerFile(t testing.TB, img *Image, fn func(layer ocispecs.Descriptor, f LayerFile) bool) {
	t.Helper()
	for _, l := range img.Manifest.Layers {
		gz, err := gzip.NewReader(bytes.NewReader(e.Blob(t, img, l.Digest)))
		if err != nil {
			t.Fatalf("layer %s: %v", l.Digest, err)
		}
		tr := tar.NewReader(gz)
		for {
			h, err := tr.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatalf("layer %s: %v", l.Digest, err)
			}
			f := LayerFile{Header: h}
			if h.Typeflag == tar.TypeReg {
				if f.Data, err = io.ReadAll(tr); err != nil {
					t.Fatal(err)
				}
			}
			if !fn(l, f) {
				return
			}
		}
	}
}
