package nixbuild

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/moby/buildkit/frontend/dockerfile/parser"
)

// A layer step that found the store without its path fails while
// BuildKit fails a concurrent layer solve with an error of its own (seen
// under a garbage collection of /nix mid-build): the store-lost error must
// win, or the build fails instead of recovering.
func TestMostTelling(t *testing.T) {
	buildkit := errors.New("releasing already released reference vzoi::u8ya")
	lostA := &storeLostError{err: errors.New("lost a"), missing: []string{"/nix/store/a"}}
	lostB := &storeLostError{err: errors.New("lost b"), missing: []string{"/nix/store/b"}}
	located := parser.WithLocation(errors.New("builder failed"), []parser.Range{{Start: parser.Position{Line: 3}}})
	canceled := fmt.Errorf("solve: %w", context.Canceled)

	var sl *storeLostError
	if err := mostTelling([]error{buildkit, nil, lostA, canceled, lostB}); !errors.As(err, &sl) {
		t.Fatalf("got %v, want the store-lost error", err)
	} else if !slices.Equal(sl.missing, []string{"/nix/store/a", "/nix/store/b"}) {
		t.Errorf("missing paths %v, want both steps'", sl.missing)
	}
	if err := mostTelling([]error{canceled, buildkit, located}); err != located {
		t.Errorf("got %v, want the step's located error", err)
	}
	if err := mostTelling([]error{canceled, buildkit}); err != buildkit {
		t.Errorf("got %v, want BuildKit's error over a cancellation", err)
	}
	if err := mostTelling([]error{canceled, nil}); err != canceled {
		t.Errorf("got %v, want the cancellation", err)
	}
	if err := mostTelling([]error{nil, nil}); err != nil {
		t.Errorf("got %v, want nil", err)
	}
}

// A failed step's solve returns only after its report is read; a
// concurrent solve BuildKit cancels returns at once. Each must wait for
// the step's error instead of reporting the cancellation that came first.
func TestEachWaitsForTheFailedStep(t *testing.T) {
	located := parser.WithLocation(errors.New("builder failed"), []parser.Range{{Start: parser.Position{Line: 3}}})
	reading := make(chan struct{})
	err := Each(context.Background(), 2, 2, func(ctx context.Context, i int) error {
		if i == 0 {
			<-reading // the report is read after the other solve failed
			return located
		}
		defer close(reading)
		return fmt.Errorf("solve: %w", context.Canceled)
	})
	if err != located {
		t.Errorf("got %v, want the failed step's error", err)
	}
}
