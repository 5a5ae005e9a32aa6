package storelayers

import (
	"slices"
	"strings"

	"github.com/nix-frontend/nix-frontend/nix/protocol"
)

// MaxStepBytes bounds the NAR size of the layers a new layer step writes,
// so that a large closure is still copied by parallel steps; a larger layer
// gets a step of its own.
const MaxStepBytes = 256 << 20

// Step is a layer step: its request, and for each of its layers the index
// of the image's layer it writes, or -1 for a layer of the earlier build
// that recorded the step, which this image does not have.
type Step struct {
	Request protocol.LayerRequest
	Writes  []int
	// Recorded says the step is one a source reported.
	Recorded bool
}

// Steps plans the layer steps that write layers. A step costs a container
// start, so new layers share steps; a step's cache key is all of its
// layers, so a layer an earlier build wrote must be written by that
// build's step again, or it is copied again.
//
// source(i) is where layer i comes from (nix-frontend: the first build
// job whose closure holds the layer's first path), and recorded(s) the
// layer steps source s reported (protocol.BuildResult.LayerSteps). A layer
// that a step recorded by its source wrote is written by that step (the
// one with the smallest request digest when several did); BuildKit's cache
// answers it without copying. The other layers share new steps, per
// source, in order: at most protocol.MaxStepLayers layers and MaxStepBytes
// each. A layer's step thus depends on what its source reported alone: a
// source whose build step BuildKit answered from its cache gets the steps
// it got when the step ran, whatever other sources changed.
func Steps(layers []Layer, source func(int) int, recorded func(int) []protocol.LayerRequest) []Step {
	var steps []Step
	known := map[int]map[string]slot{} // per source: layer key → recorded step and layer
	reused := map[string]int{}         // recorded request digest → index in steps
	open := map[int]int{}              // per source: the new step being filled
	for i, l := range layers {
		src := source(i)
		if known[src] == nil {
			known[src] = index(recorded(src))
		}
		key := layerKey(l.Request())
		if rec, ok := known[src][key]; ok {
			reqs := recorded(src)
			dgst := digest(reqs[rec.step])
			k, ok := reused[dgst]
			if !ok {
				k = len(steps)
				reused[dgst] = k
				steps = append(steps, Step{Request: reqs[rec.step], Writes: slices.Repeat([]int{-1}, len(reqs[rec.step].Layers)), Recorded: true})
			}
			steps[k].Writes[rec.layer] = i
			continue
		}
		k, ok := open[src]
		if !ok || len(steps[k].Writes) == protocol.MaxStepLayers || stepBytes(steps[k].Request)+l.Size() > MaxStepBytes {
			k = len(steps)
			open[src] = k
			steps = append(steps, Step{})
		}
		steps[k].Request.Layers = append(steps[k].Request.Layers, l.Request())
		steps[k].Writes = append(steps[k].Writes, i)
	}
	return steps
}

// slot is a layer of a recorded step: the step's index and the layer's.
type slot struct{ step, layer int }

// index maps the key of each layer of the recorded steps to the step (the
// one with the smallest digest) and the layer within it.
func index(reqs []protocol.LayerRequest) map[string]slot {
	best := map[string]slot{}
	digests := make([]string, len(reqs))
	for s, r := range reqs {
		digests[s] = digest(r)
		for l, lp := range r.Layers {
			key := layerKey(lp)
			if old, ok := best[key]; !ok || digests[s] < digests[old.step] {
				best[key] = slot{s, l}
			}
		}
	}
	return best
}

// layerKey identifies a layer's contents: its paths and NAR hashes.
func layerKey(l []protocol.LayerPath) string {
	var b strings.Builder
	for _, p := range l {
		b.WriteString(p.Path)
		b.WriteByte(' ')
		b.WriteString(p.NarHash)
		b.WriteByte('\n')
	}
	return b.String()
}

// digest names a request as the step's cache key does.
func digest(r protocol.LayerRequest) string {
	dt, _ := protocol.Encode(r)
	return protocol.Digest(dt)
}

func stepBytes(r protocol.LayerRequest) int64 {
	var n int64
	for _, l := range r.Layers {
		for _, p := range l {
			n += p.NarSize
		}
	}
	return n
}
