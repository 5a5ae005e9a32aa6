package frontend

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"

	"github.com/moby/buildkit/client/llb"
	"github.com/moby/buildkit/exporter/containerimage/exptypes"
	"github.com/moby/buildkit/frontend/gateway/client"
	dockerspec "github.com/moby/docker-image-spec/specs-go/v1"
	"github.com/nix-frontend/nix-frontend/frontend/nixbuild"
)

// nixState is a stage's base with its INSTALL lines applied.
type nixState struct {
	State llb.State
	Image *dockerspec.DockerOCIImage
	SBOM  []nixbuild.Source
	// Preview is the stage's layers in a push preview.
	Preview []nixbuild.PreviewLayer
}

// contextName is the named context a stage with INSTALL lines is handed to
// BuildKit's Dockerfile converter under; the Nixfile's FROM line of that
// stage becomes FROM <contextName>.
func contextName(stageIndex int) string {
	return fmt.Sprintf("nix-frontend-stage-%d", stageIndex)
}

// withContexts wraps the gateway client so BuildKit's Dockerfile converter
// finds Nix-built stages as named contexts of type input: the same way
// buildx bake passes one target's result to another.
type withContexts struct {
	client.Client
	opts   client.BuildOpts
	states map[string]llb.State
}

func newWithContexts(c client.Client, stages map[int]nixState) (*withContexts, error) {
	opts := c.BuildOpts()
	opts.Opts = maps.Clone(opts.Opts)
	w := &withContexts{Client: c, opts: opts, states: map[string]llb.State{}}
	for i, s := range stages {
		name := contextName(i)
		input := "nix-frontend-input-" + fmt.Sprint(i)
		opts.Opts["context:"+name] = "input:" + input
		w.states[input] = s.State
		if s.Image != nil {
			cfg, err := json.Marshal(s.Image)
			if err != nil {
				return nil, err
			}
			md, err := json.Marshal(map[string][]byte{exptypes.ExporterImageConfigKey: cfg})
			if err != nil {
				return nil, err
			}
			opts.Opts["input-metadata:"+input] = string(md)
		}
	}
	w.opts = opts
	return w, nil
}

func (w *withContexts) BuildOpts() client.BuildOpts { return w.opts }

func (w *withContexts) Inputs(ctx context.Context) (map[string]llb.State, error) {
	inputs, err := w.Client.Inputs(ctx)
	if err != nil {
		return nil, err
	}
	out := maps.Clone(inputs)
	if out == nil {
		out = map[string]llb.State{}
	}
	maps.Copy(out, w.states)
	return out, nil
}
