package storelayers

import (
	"fmt"
	"reflect"
	"testing"

	"github.com/nix-frontend/nix-frontend/nix/protocol"
)

func closure(n int, size func(i int) int64) []protocol.PathInfo {
	var out []protocol.PathInfo
	for i := 0; i < n; i++ {
		out = append(out, protocol.PathInfo{Path: fmt.Sprintf("/nix/store/%032d-p%d", i, i), NarSize: size(i)})
	}
	return out
}

func TestPlanOneLayerPerPathWithinBudget(t *testing.T) {
	paths := closure(5, func(int) int64 { return 1 })
	layers := Plan(paths, 5)
	if len(layers) != 5 {
		t.Fatalf("%d layers, want 5", len(layers))
	}
	for i, l := range layers {
		if len(l.Paths) != 1 || l.Paths[0].Path != paths[i].Path {
			t.Errorf("layer %d = %v, want %s alone", i, l.Paths, paths[i].Path)
		}
	}
}

func TestPlanOverBudget(t *testing.T) {
	// 300 paths, sizes spread so the largest are known: path i has size i.
	paths := closure(300, func(i int) int64 { return int64(i) })
	layers := Plan(paths, 98)
	if len(layers) > 98 {
		t.Fatalf("%d layers over a budget of 98", len(layers))
	}
	seen := map[string]bool{}
	own := 0
	for _, l := range layers {
		if len(l.Paths) == 1 {
			own++
		}
		for _, p := range l.Paths {
			if seen[p.Path] {
				t.Errorf("%s in two layers", p.Path)
			}
			seen[p.Path] = true
		}
	}
	if len(seen) != 300 {
		t.Errorf("%d paths placed, want 300", len(seen))
	}
	// The 74 largest (98 - 98/4) have their own layers.
	for i := 300 - 74; i < 300; i++ {
		found := false
		for _, l := range layers {
			if len(l.Paths) == 1 && l.Paths[0].Path == paths[i].Path {
				found = true
			}
		}
		if !found {
			t.Errorf("large path %d has no layer of its own", i)
		}
	}
	if !reflect.DeepEqual(layers, Plan(paths, 98)) {
		t.Error("Plan is not deterministic")
	}
}

func TestPlanChangedSmallPathMovesFewLayers(t *testing.T) {
	paths := closure(300, func(i int) int64 { return int64(i) })
	before := Plan(paths, 98)
	changed := append([]protocol.PathInfo(nil), paths...)
	changed[3] = protocol.PathInfo{Path: "/nix/store/zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz-p3", NarSize: 3}
	after := Plan(changed, 98)
	key := func(l Layer) string { return fmt.Sprint(l.Paths) }
	old := map[string]bool{}
	for _, l := range before {
		old[key(l)] = true
	}
	differ := 0
	for _, l := range after {
		if !old[key(l)] {
			differ++
		}
	}
	if differ != 1 {
		t.Errorf("changing one small path changed %d layers, want 1", differ)
	}
}

// A rebuilt package as large as others keeps its own layer, or its group:
// ties in size do not go by store hash.
func TestPlanRebuildKeepsItsSideOfTheBudget(t *testing.T) {
	// 300 paths of equal size: the line between own layers and groups
	// falls among equals.
	paths := closure(300, func(int) int64 { return 7 })
	for i := range paths {
		changed := append([]protocol.PathInfo(nil), paths...)
		changed[i].Path = fmt.Sprintf("/nix/store/zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz-p%d", i)
		before, after := ownLayers(Plan(paths, 98)), ownLayers(Plan(changed, 98))
		if before[paths[i].Path] != after[changed[i].Path] || len(before) != len(after) {
			t.Fatalf("p%d: own layer before %v, after %v", i, before[paths[i].Path], after[changed[i].Path])
		}
		delete(before, paths[i].Path)
		delete(after, changed[i].Path)
		if !reflect.DeepEqual(before, after) {
			t.Fatalf("rebuilding p%d changed which other paths have layers of their own", i)
		}
	}
}

func ownLayers(layers []Layer) map[string]bool {
	out := map[string]bool{}
	for _, l := range layers {
		if len(l.Paths) == 1 {
			out[l.Paths[0].Path] = true
		}
	}
	return out
}

// The closure's roots keep layers of their own however small they are:
// they change whenever the application does.
func TestPlanRootsKeepTheirOwnLayers(t *testing.T) {
	paths := closure(300, func(i int) int64 { return int64(i + 1000) })
	// p0 and p1 are the smallest paths; p0 refers to all others but p1,
	// p1 to p0: p1 is the only root.
	for i := 2; i < 300; i++ {
		paths[0].References = append(paths[0].References, paths[i].Path)
	}
	paths[0].References = append(paths[0].References, paths[0].Path) // a self-reference does not count
	paths[1].References = []string{paths[0].Path}
	own := ownLayers(Plan(paths, 98))
	if !own[paths[1].Path] {
		t.Errorf("the root %s has no layer of its own", paths[1].Path)
	}
	if own[paths[0].Path] {
		t.Errorf("%s, small and no root, has a layer of its own", paths[0].Path)
	}
	if len(own) != 98-98/4 {
		t.Errorf("%d own layers, want %d", len(own), 98-98/4)
	}
}
