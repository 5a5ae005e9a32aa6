package harness

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	digest "github.com/opencontainers/go-digest"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"
)

// parseRef reads a reference of the plain-HTTP local registry.
func parseRef(ref string) (name.Reference, error) { return name.ParseReference(ref, name.Insecure) }

func headManifest(ref string) (digest.Digest, error) {
	r, err := parseRef(ref)
	if err != nil {
		return "", err
	}
	desc, err := remote.Head(r)
	if err != nil {
		return "", err
	}
	return digest.Digest(desc.Digest.String()), nil
}

// manifest fetches the raw manifest or index a reference names.
func manifest(ref name.Reference) ([]byte, error) {
	desc, err := remote.Get(ref)
	if err != nil {
		return nil, err
	}
	return desc.Manifest, nil
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
	r, err := parseRef(ref)
	if err != nil {
		return nil, err
	}
	dt, err := manifest(r)
	if err != nil {
		return nil, err
	}
	p := &Pushed{Ref: ref, Digest: digest.FromBytes(dt)}
	var probe struct {
		Manifests []json.RawMessage `json:"manifests"`
	}
	if err := json.Unmarshal(dt, &probe); err != nil {
		return nil, err
	}
	if probe.Manifests == nil {
		img, err := e.parseImage(r.Context(), dt)
		if err != nil {
			return nil, err
		}
		p.Images = []*Image{img}
		return p, nil
	}
	var idx ocispecs.Index
	if err := json.Unmarshal(dt, &idx); err != nil {
		return nil, err
	}
	p.Index = &idx
	for _, d := range idx.Manifests {
		if d.Annotations["vnd.docker.reference.type"] == "attestation-manifest" {
			continue
		}
		mdt, err := manifest(r.Context().Digest(d.Digest.String()))
		if err != nil {
			return nil, err
		}
		img, err := e.parseImage(r.Context(), mdt)
		if err != nil {
			return nil, err
		}
		p.Images = append(p.Images, img)
	}
	return p, nil
}

func (e *Env) parseImage(repo name.Repository, dt []byte) (*Image, error) {
	img := &Image{Ref: repo.Name(), Digest: digest.FromBytes(dt)}
	if err := json.Unmarshal(dt, &img.Manifest); err != nil {
		return nil, err
	}
	cfg, err := blob(repo, img.Manifest.Config.Digest)
	if err != nil {
		return nil, err
	}
	img.ConfigDigest = digest.FromBytes(cfg)
	if err := json.Unmarshal(cfg, &img.Config); err != nil {
		return nil, err
	}
	return img, nil
}

func blob(repo name.Repository, d digest.Digest) ([]byte, error) {
	l, err := remote.Layer(repo.Digest(d.String()))
	if err != nil {
		return nil, err
	}
	rc, err := l.Compressed()
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return io.ReadAll(rc)
}

// Blob fetches a blob of an image's repository.
func (e *Env) Blob(t testing.TB, img *Image, d digest.Digest) []byte {
	t.Helper()
	repo, err := name.NewRepository(img.Ref, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	dt, err := blob(repo, d)
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
	r, err := parseRef(ref)
	if err != nil {
		t.Fatal(err)
	}
	dt, err := manifest(r)
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
		mdt, err := manifest(r.Context().Digest(d.Digest.String()))
		if err != nil {
			t.Fatal(err)
		}
		var m ocispecs.Manifest
		if err := json.Unmarshal(mdt, &m); err != nil {
			t.Fatal(err)
		}
		for _, l := range m.Layers {
			b, err := blob(r.Context(), l.Digest)
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
