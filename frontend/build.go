// Package frontend turns a Nixfile into a BuildKit result: it reads the
// Nixfile through BuildKit's dockerui client, builds the Nix parts of each
// stage as LLB and hands the rest to BuildKit's own Dockerfile converter.
package frontend

import (
	"context"
	"encoding/json"

	"github.com/moby/buildkit/client/llb"
	"github.com/moby/buildkit/exporter/containerimage/exptypes"
	"github.com/moby/buildkit/frontend/dockerui"
	"github.com/moby/buildkit/frontend/gateway/client"
	dockerspec "github.com/moby/docker-image-spec/specs-go/v1"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/pkg/errors"
)

// Build is the gateway BuildFunc.
func Build(ctx context.Context, c client.Client) (*client.Result, error) {
	bc, err := dockerui.NewClient(c)
	if err != nil {
		return nil, err
	}
	self, err := selfImage(c)
	if err != nil {
		return nil, err
	}
	rb, err := bc.Build(ctx, func(ctx context.Context, platform *ocispecs.Platform, idx int) (*dockerui.BuildResult, error) {
		st := llb.Scratch().File(llb.Copy(llb.Image(self), "/bin/nix-frontend", "/bin/nix-frontend", &llb.CopyInfo{CreateDestPath: true}))
		def, err := st.Marshal(ctx)
		if err != nil {
			return nil, err
		}
		res, err := c.Solve(ctx, client.SolveRequest{Definition: def.ToPB()})
		if err != nil {
			return nil, err
		}
		ref, err := res.SingleRef()
		if err != nil {
			return nil, err
		}
		img := &dockerspec.DockerOCIImage{}
		img.Architecture, img.OS = "amd64", "linux"
		if platform != nil {
			img.Platform = *platform
		}
		img.Config.Entrypoint = []string{"/bin/nix-frontend", "-version"}
		return &dockerui.BuildResult{Reference: ref, Image: img}, nil
	})
	if err != nil {
		return nil, err
	}
	return rb.Finalize()
}

// FrontendImageOpt names the frontend image to mount the helper binary from
// when BuildKit did not say which image runs the frontend (the in-process
// client used by tests has no "source" option).
const FrontendImageOpt = "nix-frontend-image"

func selfImage(c client.Client) (string, error) {
	opts := c.BuildOpts().Opts
	if s := opts[FrontendImageOpt]; s != "" {
		return s, nil
	}
	if s := opts["source"]; s != "" {
		return s, nil
	}
	return "", errors.Errorf("nix-frontend does not know its own image: run it through a `# syntax=` line, or pass --opt %s=<image>", FrontendImageOpt)
}

var _ = json.Marshal
var _ = exptypes.ExporterImageConfigKey
