package frontend

import (
	"context"
	"strconv"
	"time"

	"github.com/containerd/platforms"
	"github.com/moby/buildkit/client/llb"
	"github.com/moby/buildkit/frontend/dockerui"
	"github.com/moby/buildkit/frontend/gateway/client"
	gwpb "github.com/moby/buildkit/frontend/gateway/pb"
	"github.com/moby/buildkit/solver/result"
	"github.com/nix-frontend/nix-frontend/frontend/nixbuild"
	"github.com/nix-frontend/nix-frontend/frontend/sbom"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"
)

// Version is nix-frontend's version, set by the binary.
var Version = "dev"

// sbomPath is where the attestation's document is in its result.
const sbomPath = "/nix-frontend.spdx.json"

func (cv *converter) recordClosure(platform ocispecs.Platform, res *nixbuild.Result) {
	cv.mu.Lock()
	defer cv.mu.Unlock()
	if cv.closures == nil {
		cv.closures = map[string][]*nixbuild.Result{}
	}
	id := platforms.FormatAll(platforms.Normalize(platform))
	cv.closures[id] = append(cv.closures[id], res)
}

// attachSBOMs adds, when the build asked for an SBOM (--sbom, --attest
// type=sbom), an SPDX document of each platform's Nix closure: made from
// what Nix knows, so no scanner image is needed. It lists the store paths
// of every stage with INSTALL lines that the target needed.
func (cv *converter) attachSBOMs(ctx context.Context, rb *dockerui.ResultBuilder) error {
	if cv.bc.SBOM == nil {
		return nil
	}
	created := time.Unix(0, 0)
	if v, err := strconv.ParseInt(cv.bc.BuildArgs["SOURCE_DATE_EPOCH"], 10, 64); err == nil {
		created = time.Unix(v, 0)
	}
	return rb.EachPlatform(ctx, func(ctx context.Context, id string, p ocispecs.Platform) error {
		cv.mu.Lock()
		results := cv.closures[platforms.FormatAll(platforms.Normalize(p))]
		cv.mu.Unlock()
		var paths []sbom.Path
		var pkgs []sbom.Package
		seen := map[string]bool{}
		for _, r := range results {
			for _, pi := range r.Paths {
				if !seen[pi.Path] {
					seen[pi.Path] = true
					paths = append(paths, sbom.Path{Path: pi.Path, NarHash: pi.NarHash, NarSize: pi.NarSize, Deriver: pi.Deriver, References: pi.References})
				}
			}
			for _, in := range r.Installed {
				pkgs = append(pkgs, sbom.Package{DrvPath: in.DrvPath, Outputs: in.Outputs, Meta: in.Meta})
			}
		}
		dt, err := sbom.New(cv.src.Filename+" ("+id+")", "nix-frontend-"+Version, paths, pkgs, created).Marshal()
		if err != nil {
			return err
		}
		st := llb.Scratch().File(llb.Mkfile(sbomPath, 0o644, dt, llb.WithCreatedTime(created)), llb.WithCustomName("[nix] SBOM of the closure"))
		def, err := st.Marshal(ctx)
		if err != nil {
			return err
		}
		r, err := cv.c.Solve(ctx, client.SolveRequest{Definition: def.ToPB()})
		if err != nil {
			return err
		}
		ref, err := r.SingleRef()
		if err != nil {
			return err
		}
		rb.AddAttestation(id, result.Attestation[client.Reference]{
			Kind:   gwpb.AttestationKind_InToto,
			Ref:    ref,
			Path:   sbomPath,
			InToto: result.InTotoAttestation{PredicateType: sbom.PredicateType},
		})
		return nil
	})
}
