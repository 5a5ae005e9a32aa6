package frontend

import (
	"sort"

	"github.com/containerd/platforms"
	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/shell"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"
)

// env is a variable scope for ${VAR} expansion.
type env map[string]string

func (e env) Get(k string) (string, bool) { v, ok := e[k]; return v, ok }

func (e env) Keys() []string {
	keys := make([]string, 0, len(e))
	for k := range e {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func (e env) clone() env {
	out := env{}
	for k, v := range e {
		out[k] = v
	}
	return out
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

// metaScope is the scope of ARGs before the first FROM: build arguments
// override their defaults, and the platform ARGs are set.
func metaScope(lex *shell.Lex, metaArgs []instructions.ArgCommand, buildArgs map[string]string, auto env) env {
	scope := auto.clone()
	for _, a := range metaArgs {
		for _, kv := range a.Args {
			if v, ok := buildArgs[kv.Key]; ok {
				scope[kv.Key] = v
			} else if kv.Value != nil {
				v, _, err := lex.ProcessWord(*kv.Value, scope)
				if err != nil {
					v = *kv.Value
				}
				scope[kv.Key] = v
			}
		}
	}
	return scope
}

// stageScope is what an instruction at position idx of a stage sees: the
// stage's ARGs (from build arguments, the global scope or their defaults)
// and ENVs that come before it, as in a Dockerfile.
func stageScope(lex *shell.Lex, cmds []instructions.Command, idx int, meta env, buildArgs map[string]string, auto env) env {
	scope := env{}
	for _, c := range cmds[:idx] {
		switch c := c.(type) {
		case *instructions.ArgCommand:
			for _, kv := range c.Args {
				switch v, ok := buildArgs[kv.Key]; {
				case ok:
					scope[kv.Key] = v
				case kv.Value != nil:
					w, _, err := lex.ProcessWord(*kv.Value, scope)
					if err != nil {
						w = *kv.Value
					}
					scope[kv.Key] = w
				default:
					if v, ok := meta[kv.Key]; ok {
						scope[kv.Key] = v
					} else if v, ok := auto[kv.Key]; ok {
						scope[kv.Key] = v
					}
				}
			}
		case *instructions.EnvCommand:
			for _, kv := range c.Env {
				w, _, err := lex.ProcessWord(kv.Value, scope)
				if err != nil {
					w = kv.Value
				}
				scope[kv.Key] = w
			}
		}
	}
	return scope
}
