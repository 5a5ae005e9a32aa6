package frontend

import (
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/containerd/platforms"
	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/shell"
	"github.com/nix-frontend/nix-frontend/frontend/nixfile"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"
)

// env is a variable scope for ${VAR} expansion.
type env map[string]string

func (e env) Get(k string) (string, bool) { v, ok := e[k]; return v, ok }

func (e env) Keys() []string { return slices.Sorted(maps.Keys(e)) }

// scopes are what ${VAR} expands to in one platform's build, as in a
// Dockerfile: the automatic platform ARGs, the ARGs before the first FROM,
// and each stage's ARGs and ENVs.
type scopes struct {
	target    ocispecs.Platform
	lex       *shell.Lex
	buildArgs map[string]string
	auto      env // the platform ARGs
	meta      env // the ARGs before the first FROM
}

func (cv *converter) scopes(target ocispecs.Platform) scopes {
	build := platforms.DefaultSpec()
	if len(cv.bc.BuildPlatforms) > 0 {
		build = cv.bc.BuildPlatforms[0]
	}
	s := scopes{target: target, lex: cv.nf.Lex(), buildArgs: cv.bc.BuildArgs, auto: platformArgs(build, target)}
	s.meta = s.metaScope(cv.nf.MetaArgs)
	return s
}

// platformArgs are the automatic platform ARGs of Dockerfiles.
func platformArgs(build, target ocispecs.Platform) env {
	return env{
		"BUILDPLATFORM":  platforms.Format(build),
		"BUILDOS":        build.OS,
		"BUILDARCH":      build.Architecture,
		"BUILDVARIANT":   build.Variant,
		"TARGETPLATFORM": platforms.Format(target),
		"TARGETOS":       target.OS,
		"TARGETARCH":     target.Architecture,
		"TARGETVARIANT":  target.Variant,
	}
}

// expand is a word with variables, or the word itself when it does not
// expand.
func (s scopes) expand(word string, scope env) string {
	v, _, err := s.lex.ProcessWord(word, scope)
	if err != nil {
		return word
	}
	return v
}

// metaScope is the scope of ARGs before the first FROM: build arguments
// override their defaults, and the platform ARGs are set.
func (s scopes) metaScope(metaArgs []instructions.ArgCommand) env {
	scope := maps.Clone(s.auto)
	for _, a := range metaArgs {
		for _, kv := range a.Args {
			if v, ok := s.buildArgs[kv.Key]; ok {
				scope[kv.Key] = v
			} else if kv.Value != nil {
				scope[kv.Key] = s.expand(*kv.Value, scope)
			}
		}
	}
	return scope
}

// stage is what an instruction at position idx of a stage sees: the
// stage's ARGs (from build arguments, the global scope or their defaults)
// and ENVs that come before it, as in a Dockerfile.
func (s scopes) stage(st *nixfile.Stage, idx int) env {
	scope := env{}
	for _, c := range st.Commands[:idx] {
		switch c := c.(type) {
		case *instructions.ArgCommand:
			for _, kv := range c.Args {
				if v, ok := s.buildArgs[kv.Key]; ok {
					scope[kv.Key] = v
				} else if kv.Value != nil {
					scope[kv.Key] = s.expand(*kv.Value, scope)
				} else if v, ok := s.meta[kv.Key]; ok {
					scope[kv.Key] = v
				} else if v, ok := s.auto[kv.Key]; ok {
					scope[kv.Key] = v
				}
			}
		case *instructions.EnvCommand:
			for _, kv := range c.Env {
				scope[kv.Key] = s.expand(kv.Value, scope)
			}
		}
	}
	return scope
}

// stageRef finds the stage a FROM, COPY --from or RUN --mount from= names
// among the stages before `before`, its variables expanded in scope: by
// name, or by index.
func (s scopes) stageRef(nf *nixfile.Nixfile, ref string, before int, scope env) (int, bool) {
	ref = s.expand(ref, scope)
	for _, st := range nf.Stages[:before] {
		if st.Name != "" && strings.EqualFold(st.Name, ref) {
			return st.Index, true
		}
	}
	if i, err := strconv.Atoi(ref); err == nil && i >= 0 && i < before {
		return i, true
	}
	return 0, false
}

// reachable returns the stages the target needs: through FROM, COPY --from
// and RUN --mount=from=, with their ARGs expanded.
func reachable(nf *nixfile.Nixfile, target int, s scopes) map[int]bool {
	seen := map[int]bool{}
	var visit func(i int)
	visit = func(i int) {
		if seen[i] {
			return
		}
		seen[i] = true
		st := nf.Stages[i]
		if j, ok := s.stageRef(nf, st.BaseName, i, s.meta); ok {
			visit(j)
		}
		for k, c := range st.Commands {
			var refs []string
			switch c := c.(type) {
			case *instructions.CopyCommand:
				refs = append(refs, c.From)
			case *instructions.RunCommand:
				for _, m := range instructions.GetMounts(c) {
					refs = append(refs, m.From)
				}
			}
			for _, ref := range refs {
				if ref == "" {
					continue
				}
				if j, ok := s.stageRef(nf, ref, i, s.stage(st, k)); ok {
					visit(j)
				}
			}
		}
	}
	visit(target)
	return seen
}
