package storelayers

import (
	"fmt"
	"reflect"
	"testing"

	"github.com/nix-frontend/nix-frontend/nix/protocol"
)

func layersOf(paths []protocol.PathInfo) []Layer {
	out := make([]Layer, len(paths))
	for i, p := range paths {
		p.NarHash = "sha256:" + fmt.Sprintf("%052d", i)
		out[i] = Layer{Paths: []protocol.PathInfo{p}}
	}
	return out
}

func requests(steps []Step) []protocol.LayerRequest {
	out := make([]protocol.LayerRequest, len(steps))
	for i, s := range steps {
		out[i] = s.Request
	}
	return out
}

func one(int) int                      { return 0 }
func none(int) []protocol.LayerRequest { return nil }
func copied(steps []Step, old []Step) []int { // layers written by new steps
	known := map[string]bool{}
	for _, s := range old {
		known[digest(s.Request)] = true
	}
	var out []int
	for _, s := range steps {
		if !known[digest(s.Request)] {
			out = append(out, s.Writes...)
		}
	}
	return out
}

func TestStepsShareNewLayers(t *testing.T) {
	layers := layersOf(closure(40, func(i int) int64 { return 1 << 10 }))
	steps := Steps(layers, one, none)
	if len(steps) != 2 || len(steps[0].Writes) != protocol.MaxStepLayers || len(steps[1].Writes) != 40-protocol.MaxStepLayers {
		t.Fatalf("40 small layers: %d steps, want %d and %d layers", len(steps), protocol.MaxStepLayers, 40-protocol.MaxStepLayers)
	}
	for k, s := range steps {
		for j, i := range s.Writes {
			if !reflect.DeepEqual(s.Request.Layers[j], layers[i].Request()) {
				t.Errorf("step %d layer %d is not layer %d", k, j, i)
			}
		}
	}
	big := layersOf(closure(4, func(i int) int64 { return []int64{1 << 10, MaxStepBytes, 1 << 10, 1 << 10}[i] }))
	if got := Steps(big, one, none); len(got) != 3 || !reflect.DeepEqual(got[1].Writes, []int{1}) {
		t.Errorf("a layer of MaxStepBytes among small ones: %+v", got)
	}
}

// After a change, the layers that did not change are written by the steps
// that wrote them before, and only the changed one by a new step.
func TestStepsReuseRecordedSteps(t *testing.T) {
	paths := closure(40, func(i int) int64 { return 1 << 10 })
	cold := Steps(layersOf(paths), one, none)
	paths[7].Path = "/nix/store/" + fmt.Sprintf("%032d", 99) + "-p7"
	changed := layersOf(paths)
	changed[7].Paths[0].NarHash = "sha256:" + fmt.Sprintf("%052d", 99)
	steps := Steps(changed, one, func(int) []protocol.LayerRequest { return requests(cold) })
	if got := copied(steps, cold); !reflect.DeepEqual(got, []int{7}) {
		t.Errorf("new steps write layers %v, want [7] alone", got)
	}
	for _, s := range steps {
		if digest(s.Request) == digest(cold[0].Request) && s.Writes[7] != -1 {
			t.Errorf("the old step writes the new layer 7 as %d", s.Writes[7])
		}
	}
	seen := map[int]bool{}
	for _, s := range steps {
		for _, w := range s.Writes {
			if w >= 0 {
				if seen[w] {
					t.Errorf("layer %d is written twice", w)
				}
				seen[w] = true
			}
		}
	}
	if len(seen) != 40 {
		t.Errorf("%d of 40 layers written", len(seen))
	}
}

// A source whose build step was answered from BuildKit's cache reports
// what it reported when it ran: its layers get the steps they got then,
// though another source now reports records of the same paths.
func TestStepsStableForUnchangedSources(t *testing.T) {
	paths := closure(20, func(i int) int64 { return 1 << 10 })
	src := func(i int) int { return i / 10 }
	cold := Steps(layersOf(paths), src, none)
	paths[15].Path = "/nix/store/" + fmt.Sprintf("%032d", 99) + "-p15"
	changed := layersOf(paths)
	steps := Steps(changed, src, func(s int) []protocol.LayerRequest {
		if s == 1 {
			return requests(cold)
		}
		return nil
	})
	if got := copied(steps, cold); !reflect.DeepEqual(got, []int{15}) {
		t.Errorf("new steps write layers %v, want [15] alone", got)
	}
}
