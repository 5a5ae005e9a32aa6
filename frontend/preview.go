package frontend

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/containerd/platforms"
	"github.com/distribution/reference"
	"github.com/docker/go-units"
	"github.com/moby/buildkit/client/llb/sourceresolver"
	"github.com/moby/buildkit/frontend/gateway/client"
	dockerspec "github.com/moby/docker-image-spec/specs-go/v1"
	"github.com/nix-frontend/nix-frontend/frontend/nixbuild"
	"github.com/nix-frontend/nix-frontend/llb/storelayers"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"
)

// PushPreviewRequest is the subrequest `docker buildx build
// --call=push-preview` sends (buildx prefixes the name with "frontend.").
const PushPreviewRequest = "frontend.push-preview"

// ArgPreviousImage names the image a push preview compares with: the one the
// registry has now.
const ArgPreviousImage = "NIX_PREVIOUS_IMAGE"

// Preview is what a push preview reports: the layers the Nix part of the
// image consists of, and which of them an image already in the registry
// lacks, so a push would send them.
type Preview struct {
	Platform string         `json:"platform"`
	Against  string         `json:"against,omitempty"`
	Stages   []PreviewStage `json:"stages"`
	// NewLayers and NewBytes count the layers the previous image lacks
	// (all of them without one), Layers and Bytes all of them; sizes are
	// the store paths' uncompressed NAR sizes.
	NewLayers int   `json:"newLayers"`
	Layers    int   `json:"layers"`
	NewBytes  int64 `json:"newBytes"`
	Bytes     int64 `json:"bytes"`
}

// PreviewStage is one stage's layers.
type PreviewStage struct {
	Stage  string         `json:"stage"`
	Layers []PreviewLayer `json:"layers"`
}

// PreviewLayer is a layer and whether a push would send it.
type PreviewLayer struct {
	nixbuild.PreviewLayer
	New bool `json:"new"`
}

// pushPreview answers PushPreviewRequest: it evaluates and builds like a
// build, plans the layers, and stops before copying any store path.
func (cv *converter) pushPreview(ctx context.Context) (*client.Result, error) {
	target := platforms.DefaultSpec()
	if len(cv.bc.TargetPlatforms) > 0 {
		target = cv.bc.TargetPlatforms[0]
	}
	pv := Preview{Platform: platforms.Format(target), Against: cv.bc.BuildArgs[ArgPreviousImage]}
	known := map[string]bool{}
	if pv.Against != "" {
		ids, err := cv.layerIDs(ctx, pv.Against, target)
		if err != nil {
			return nil, err
		}
		known = ids
	}
	var err error
	if cv.nix, err = cv.needNix(ctx); err != nil {
		return nil, err
	}
	cv.preview = true
	targetIdx, err := cv.targetStage()
	if err != nil {
		return nil, err
	}
	scope := cv.scopes(target)
	stages, err := cv.nixStages(ctx, scope, reachable(cv.nf, targetIdx, scope), &target, true)
	if err != nil {
		return nil, err
	}
	for _, i := range slices.Sorted(maps.Keys(stages)) {
		ps := PreviewStage{Stage: stageLabel(cv.nf.Stages[i].Name, i)}
		for _, l := range stages[i].Preview {
			pl := PreviewLayer{PreviewLayer: l, New: !known[l.ID]}
			ps.Layers = append(ps.Layers, pl)
			pv.Layers++
			pv.Bytes += l.Size
			if pl.New {
				pv.NewLayers++
				pv.NewBytes += l.Size
			}
		}
		pv.Stages = append(pv.Stages, ps)
	}
	dt, err := json.MarshalIndent(pv, "", "  ")
	if err != nil {
		return nil, err
	}
	res := client.NewResult()
	res.AddMeta("result.json", dt)
	res.AddMeta("result.txt", []byte(pv.String()))
	res.AddMeta("version", []byte("1.0"))
	return res, nil
}

// layerIDs reads which layers an image has, from the history entries
// nix-frontend wrote into its config.
func (cv *converter) layerIDs(ctx context.Context, ref string, platform ocispecs.Platform) (map[string]bool, error) {
	named, err := reference.ParseNormalizedNamed(ref)
	if err != nil {
		return nil, fmt.Errorf("build argument %s=%s: %v", ArgPreviousImage, ref, err)
	}
	_, _, dt, err := cv.c.ResolveImageConfig(ctx, reference.TagNameOnly(named).String(), sourceresolver.Opt{
		LogName:  "[nix] read the layers of " + ref,
		ImageOpt: &sourceresolver.ResolveImageOpt{Platform: &platform},
	})
	if err != nil {
		return nil, fmt.Errorf("build argument %s=%s: %w", ArgPreviousImage, ref, err)
	}
	var img dockerspec.DockerOCIImage
	if err := json.Unmarshal(dt, &img); err != nil {
		return nil, err
	}
	ids := map[string]bool{}
	for _, h := range img.History {
		if id, ok := storelayers.HistoryID(h.CreatedBy); ok {
			ids[id] = true
		}
	}
	return ids, nil
}

// String renders the preview as a table.
func (pv Preview) String() string {
	var b strings.Builder
	against := "no image in the registry (NIX_PREVIOUS_IMAGE is not set)"
	if pv.Against != "" {
		against = pv.Against
	}
	fmt.Fprintf(&b, "Push preview for %s, against %s\n", pv.Platform, against)
	for _, s := range pv.Stages {
		fmt.Fprintf(&b, "stage %s\n", s.Stage)
		w := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
		for _, l := range s.Layers {
			state := "same"
			if l.New {
				state = "NEW"
			}
			size := "-"
			if l.Size > 0 {
				size = units.BytesSize(float64(l.Size))
			}
			fmt.Fprintf(w, "  %s\t%s\t%s\n", state, size, l.Description)
		}
		w.Flush()
	}
	fmt.Fprintf(&b, "%d of %d layers new, %s of %s (store paths' NAR sizes; compressed layers are smaller)\n",
		pv.NewLayers, pv.Layers, units.BytesSize(float64(pv.NewBytes)), units.BytesSize(float64(pv.Bytes)))
	return b.String()
}

func stageLabel(name string, i int) string {
	if name != "" {
		return name
	}
	return fmt.Sprintf("stage-%d", i)
}
