package frontend

import (
	"context"

	"github.com/containerd/platforms"
	"github.com/moby/buildkit/frontend/dockerfile/dockerfile2llb"
	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
	"github.com/moby/buildkit/frontend/subrequests/outline"
	"github.com/moby/buildkit/solver/pb"
)

// outline answers --call=outline: BuildKit's outline of the Dockerfile part,
// shown against the Nixfile itself (INSTALL lines included), with the ARGs
// that only INSTALL lines use, which BuildKit cannot see.
func (cv *converter) outline(ctx context.Context) (*outline.Outline, error) {
	opt, err := cv.placeholderOpt(ctx)
	if err != nil {
		return nil, err
	}
	o, err := dockerfile2llb.Dockerfile2Outline(ctx, cv.dockerfile, opt)
	if err != nil {
		return nil, err
	}
	o.Sources = [][]byte{cv.nf.Source}
	have := map[string]bool{}
	for _, a := range o.Args {
		have[a.Name] = true
	}
	target, err := cv.targetStage()
	if err != nil {
		return nil, err
	}
	lex := cv.nf.Lex()
	for i := range reachable(cv.nf, target, cv.scopes(platforms.DefaultSpec())) {
		s := cv.nf.Stages[i]
		for _, in := range s.Installs {
			scope := env{}
			var decls []*instructions.ArgCommand
			for _, c := range s.Commands[:in.CommandIndex] {
				if a, ok := c.(*instructions.ArgCommand); ok {
					decls = append(decls, a)
					for _, kv := range a.Args {
						scope[kv.Key] = ""
					}
				}
			}
			_, m, err := in.ExpandWithMatches(lex, scope)
			if err != nil {
				continue
			}
			for _, a := range decls {
				for _, kv := range a.Args {
					if _, used := m.Matched[kv.Key]; !used || have[kv.Key] {
						continue
					}
					have[kv.Key] = true
					arg := outline.Arg{Name: kv.Key, Location: location(a.Location())}
					if v, ok := cv.bc.BuildArgs[kv.Key]; ok {
						arg.Value = v
					} else if kv.Value != nil {
						arg.Value = *kv.Value
					}
					arg.Description = kv.DocComment
					o.Args = append(o.Args, arg)
				}
			}
		}
	}
	return o, nil
}

func location(r []parser.Range) *pb.Location {
	if len(r) == 0 {
		return nil
	}
	return &pb.Location{Ranges: pbRanges(r)}
}
