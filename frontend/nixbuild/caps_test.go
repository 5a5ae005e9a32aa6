package nixbuild

import (
	"strings"
	"testing"

	"github.com/moby/buildkit/frontend/gateway/client"
	"github.com/moby/buildkit/solver/pb"
	"github.com/moby/buildkit/util/apicaps"
	apicapspb "github.com/moby/buildkit/util/apicaps/pb"
)

// capsClient is a gateway client of a daemon with only the given LLB caps.
type capsClient struct {
	client.Client
	caps apicaps.CapSet
}

func (c capsClient) BuildOpts() client.BuildOpts { return client.BuildOpts{LLBCaps: c.caps} }

func capSet(ids ...apicaps.CapID) apicaps.CapSet {
	var enabled []*apicapspb.APICap
	for _, id := range ids {
		enabled = append(enabled, &apicapspb.APICap{ID: string(id), Enabled: true})
	}
	return pb.Caps.CapSet(enabled)
}

func TestCheckCaps(t *testing.T) {
	cases := []struct {
		name string
		caps []apicaps.CapID
		want string
	}{
		{"no MergeOp", []apicaps.CapID{pb.CapExecMountCache}, "MergeOp"},
		{"no cache mounts", []apicaps.CapID{pb.CapMergeOp}, "cache mounts"},
		{"everything", []apicaps.CapID{pb.CapMergeOp, pb.CapExecMountCache}, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b := &Builder{Client: capsClient{caps: capSet(c.caps...)}}
			err := b.checkCaps()
			switch {
			case c.want == "" && err != nil:
				t.Errorf("unexpected error: %v", err)
			case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "v0.10")):
				t.Errorf("error %v, want one naming %s and the BuildKit version needed", err, c.want)
			}
		})
	}
}
