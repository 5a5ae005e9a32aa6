package frontend

import (
	"errors"

	"github.com/moby/buildkit/client/llb"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
	"github.com/moby/buildkit/frontend/gateway/client"
	"github.com/moby/buildkit/solver/errdefs"
	"github.com/moby/buildkit/solver/pb"
)

// withSource attaches the Nixfile lines an error points at, so buildctl and
// docker buildx print them with the error, as they do for Dockerfiles.
func withSource(err error, sm *llb.SourceMap) error {
	var le *parser.LocationError
	if err == nil || sm == nil || !errors.As(err, &le) {
		return err
	}
	for _, l := range le.Locations {
		info := &pb.SourceInfo{Data: sm.Data, Filename: sm.Filename, Language: sm.Language}
		// A generated Nixfile (compatibility mode) has no definition.
		if sm.Definition != nil {
			info.Definition = sm.Definition.ToPB()
		}
		s := &errdefs.Source{Info: info, Ranges: pbRanges(l)}
		err = errdefs.WithSource(err, s)
	}
	return err
}

func pbRanges(ranges []parser.Range) []*pb.Range {
	out := make([]*pb.Range, 0, len(ranges))
	for _, r := range ranges {
		out = append(out, &pb.Range{
			Start: &pb.Position{Line: int32(r.Start.Line), Character: int32(r.Start.Character)},
			End:   &pb.Position{Line: int32(r.End.Line), Character: int32(r.End.Character)},
		})
	}
	return out
}

func warnOpts(r []parser.Range, detail [][]byte, url string) client.WarnOpts {
	opts := client.WarnOpts{Level: 1, Detail: detail, URL: url}
	if r != nil {
		opts.Range = pbRanges(r)
	}
	return opts
}
