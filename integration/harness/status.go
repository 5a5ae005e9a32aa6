package harness

import (
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	bkclient "github.com/moby/buildkit/client"
	digest "github.com/opencontainers/go-digest"
)

// Status is the progress stream of an in-process build, kept as data so
// tests can check what ran, what was cached and when.
type Status struct {
	mu       sync.Mutex
	Vertexes map[digest.Digest]*Vertex
	order    []digest.Digest
	// onStart is called with the name of each step that starts.
	onStart func(name string)
}

// Vertex is one step of the build graph as the progress stream reported it.
type Vertex struct {
	Name      string
	Cached    bool
	Started   *time.Time
	Completed *time.Time
	Error     string
	Logs      strings.Builder
}

func newStatus() *Status { return &Status{Vertexes: map[digest.Digest]*Vertex{}} }

func (s *Status) consume(ch chan *bkclient.SolveStatus) {
	for ss := range ch {
		var started []string
		s.mu.Lock()
		for _, v := range ss.Vertexes {
			vx, ok := s.Vertexes[v.Digest]
			if !ok {
				vx = &Vertex{}
				s.Vertexes[v.Digest] = vx
				s.order = append(s.order, v.Digest)
			}
			// A step whose result comes from an imported cache is reported
			// cached, then again, not cached, while its blobs are pulled:
			// a cache hit stays one.
			vx.Name, vx.Cached, vx.Error = v.Name, vx.Cached || v.Cached, v.Error
			if v.Started != nil {
				if vx.Started == nil {
					started = append(started, v.Name)
				}
				vx.Started = v.Started
			}
			if v.Completed != nil {
				vx.Completed = v.Completed
			}
		}
		for _, l := range ss.Logs {
			if vx, ok := s.Vertexes[l.Vertex]; ok {
				vx.Logs.Write(l.Data)
			}
		}
		s.mu.Unlock()
		if s.onStart != nil {
			for _, name := range started {
				s.onStart(name)
			}
		}
	}
}

// List returns the vertexes in the order they first appeared.
func (s *Status) List() []*Vertex {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]*Vertex, 0, len(s.order))
	for _, d := range s.order {
		out = append(out, s.Vertexes[d])
	}
	return out
}

// Ran returns the vertexes whose name has the prefix and that ran (were not
// cached), sorted by start time.
func (s *Status) Ran(prefix string) []*Vertex {
	var out []*Vertex
	for _, v := range s.List() {
		if strings.HasPrefix(v.Name, prefix) && !v.Cached && v.Started != nil {
			out = append(out, v)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Started.Before(*out[j].Started) })
	return out
}

func (s *Status) String() string {
	var b strings.Builder
	for _, v := range s.List() {
		state := "DONE"
		switch {
		case v.Error != "":
			state = "ERROR " + v.Error
		case v.Cached:
			state = "CACHED"
		case v.Completed == nil:
			state = "unfinished"
		}
		fmt.Fprintf(&b, "#%s %s\n", v.Name, state)
		if l := v.Logs.String(); l != "" {
			for _, line := range strings.Split(strings.TrimRight(l, "\n"), "\n") {
				fmt.Fprintf(&b, "    %s\n", line)
			}
		}
	}
	return b.String()
}

// Span is when a step ran.
type Span struct{ Start, End time.Time }

// MostAtOnce is the most spans that overlap at one moment: how many steps
// ran in parallel. A span that ends when another starts does not overlap it.
func MostAtOnce(spans []Span) int {
	type event struct {
		at    time.Time
		delta int
	}
	var events []event
	for _, s := range spans {
		events = append(events, event{s.Start, 1}, event{s.End, -1})
	}
	sort.Slice(events, func(i, j int) bool {
		if events[i].at.Equal(events[j].at) {
			return events[i].delta < events[j].delta
		}
		return events[i].at.Before(events[j].at)
	})
	running, most := 0, 0
	for _, e := range events {
		running += e.delta
		most = max(most, running)
	}
	return most
}
