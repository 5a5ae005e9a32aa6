// Package storelayers turns a closure of Nix store paths into image layers:
// one layer per store path, whose bytes depend on nothing but that path, so
// registries and pulls share them between images, builds and machines.
// Past a layer budget the closure's roots and its largest paths keep their
// own layers and the rest share a few groups chosen by store path name, so
// a rebuilt package changes one group and no other.
package storelayers

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"sort"
	"strings"
	"time"

	"github.com/nix-frontend/nix-frontend/nix/protocol"
	"github.com/nix-frontend/nix-frontend/nix/storepath"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"
)

// DefaultMaxLayers is the default budget of layers for a whole image,
// base image included. Registries and runtimes cope with more, but 127 is
// the historical overlayfs limit some still apply; 100 keeps room for the
// Dockerfile instructions that follow.
const DefaultMaxLayers = 100

// MaxLayers is the most layers an image may have: overlayfs mounts at most
// 128 lower directories, and some runtimes refuse images over 127 layers.
const MaxLayers = 127

// Epoch is the time every directory a layer creates carries, and the
// history's creation time of Nix layers.
var Epoch = time.Unix(0, 0).UTC()

// Layer is one layer: one store path, or a group of small ones.
type Layer struct {
	Paths []protocol.PathInfo
}

// Size is the NAR size of the layer's paths.
func (l Layer) Size() int64 {
	var n int64
	for _, p := range l.Paths {
		n += p.NarSize
	}
	return n
}

// Describe names the layer's contents for image history.
func (l Layer) Describe() string {
	if len(l.Paths) == 1 {
		return l.Paths[0].Path
	}
	names := make([]string, 0, 3)
	for _, p := range l.Paths {
		if len(names) == 3 {
			names = append(names, "…")
			break
		}
		names = append(names, p.Name())
	}
	return fmt.Sprintf("%d store paths (%s)", len(l.Paths), strings.Join(names, ", "))
}

// Plan assigns paths to at most budget layers. With room for every path,
// each gets its own layer. Otherwise a quarter of the budget becomes groups
// keyed by store path name (stable whatever else is in the closure), and the
// rest are layers of their own: first for the closure's roots, the paths no
// other path refers to (what was installed), then for the largest paths.
// Roots change with every change of the application, and in a group they
// would take their layer-mates along to every push. Paths is sorted by
// path; so is the result within each layer, and layers are ordered own
// layers first (by path), then groups.
func Plan(paths []protocol.PathInfo, budget int) []Layer {
	if budget < 1 {
		budget = 1
	}
	if len(paths) <= budget {
		out := make([]Layer, len(paths))
		for i, p := range paths {
			out[i] = Layer{Paths: []protocol.PathInfo{p}}
		}
		return out
	}
	groups := budget / 4
	if groups < 1 {
		groups = 1
	}
	own := budget - groups
	roots := closureRoots(paths)
	bySize := append([]protocol.PathInfo(nil), paths...)
	// Ties in size go by name before the store hash, so that a rebuilt
	// package of the same size stays on its side of the line between own
	// layers and groups.
	sort.SliceStable(bySize, func(i, j int) bool {
		a, b := bySize[i], bySize[j]
		if ra, rb := roots[a.Path], roots[b.Path]; ra != rb {
			return ra
		}
		if a.NarSize != b.NarSize {
			return a.NarSize > b.NarSize
		}
		if na, nb := a.Name(), b.Name(); na != nb {
			return na < nb
		}
		return a.Path < b.Path
	})
	keep := map[string]bool{}
	for _, p := range bySize[:own] {
		keep[p.Path] = true
	}
	var out []Layer
	grouped := make([][]protocol.PathInfo, groups)
	for _, p := range paths {
		if keep[p.Path] {
			out = append(out, Layer{Paths: []protocol.PathInfo{p}})
			continue
		}
		g := bucket(p.Path, groups)
		grouped[g] = append(grouped[g], p)
	}
	for _, g := range grouped {
		if len(g) > 0 {
			out = append(out, Layer{Paths: g})
		}
	}
	return out
}

// closureRoots returns the paths of the closure that no other path of it
// refers to.
func closureRoots(paths []protocol.PathInfo) map[string]bool {
	referred := map[string]bool{}
	for _, p := range paths {
		for _, r := range p.References {
			if r != p.Path {
				referred[r] = true
			}
		}
	}
	roots := map[string]bool{}
	for _, p := range paths {
		if !referred[p.Path] {
			roots[p.Path] = true
		}
	}
	return roots
}

// bucket picks a group from the store path's name (what follows the
// hash): neither other paths of the closure nor a rebuild of the same
// package change it, so the rebuilt path replaces the old one in the same
// group and one group changes, where a key from the store hash would change
// two (the old path's group loses it, another gains the new one). The
// version stays in the key: without it, families of paths whose names
// differ only after a dash and a digit ("part-1", "part-2", …) would all
// crowd into one group.
func bucket(storePath string, n int) int {
	h := fnv.New32a()
	h.Write([]byte(storepath.Name(storePath)))
	return int(h.Sum32() % uint32(n))
}

// Request is what a layer step needs of the layer: its paths with the
// NAR hashes they must have, and nothing else, so the layer depends on
// the paths alone.
func (l Layer) Request() []protocol.LayerPath {
	out := make([]protocol.LayerPath, len(l.Paths))
	for i, p := range l.Paths {
		out[i] = protocol.LayerPath{Path: p.Path, NarHash: p.NarHash, NarSize: p.NarSize}
	}
	return out
}

// ID names the layer's contents, which its bytes are a function of: the
// store path of a one-path layer, else an ID of its paths.
func (l Layer) ID() string {
	if len(l.Paths) == 1 {
		return l.Paths[0].Path
	}
	paths := make([]string, len(l.Paths))
	for i, p := range l.Paths {
		paths[i] = p.Path
	}
	return ContentID(paths)
}

// History is the image history entry of a layer.
func (l Layer) History() ocispecs.History {
	return History(l.Describe(), l.ID())
}

// historyPrefix starts every history entry of a layer nix-frontend made.
const historyPrefix = "nix-frontend: "

// History is the image history entry of a layer nix-frontend made: what it
// holds and, unless the description is a store path, its ID. The ID is
// what a push preview compares with an earlier image's layers.
func History(description, id string) ocispecs.History {
	created := Epoch
	createdBy := historyPrefix + description
	if id != description {
		createdBy += "; layer " + id
	}
	return ocispecs.History{Created: &created, CreatedBy: createdBy, Comment: "nix-frontend"}
}

// HistoryID is the layer ID a history entry of nix-frontend's names.
func HistoryID(createdBy string) (string, bool) {
	rest, ok := strings.CutPrefix(createdBy, historyPrefix)
	if !ok {
		return "", false
	}
	if _, id, ok := strings.Cut(rest, "; layer "); ok {
		return id, true
	}
	if strings.HasPrefix(rest, storepath.StoreDir+"/") {
		return rest, true
	}
	return "", false
}

// ContentID is a short, stable ID of what a layer is made from.
func ContentID(v any) string {
	dt, _ := json.Marshal(v)
	sum := sha256.Sum256(dt)
	return "sha256:" + hex.EncodeToString(sum[:8])
}
