package frontend

import (
	"context"
	"fmt"
	"path"
	"strconv"

	"github.com/moby/buildkit/frontend/dockerui"
	"github.com/moby/buildkit/frontend/gateway/client"
	gwpb "github.com/moby/buildkit/frontend/gateway/pb"
	"github.com/moby/buildkit/solver/result"
	"github.com/nix-frontend/nix-frontend/frontend/nixbuild"
	"github.com/nix-frontend/nix-frontend/llb/nixstep"
	"github.com/nix-frontend/nix-frontend/nix/protocol"
	"github.com/nix-frontend/nix-frontend/nix/sbom"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"
)

// Version is nix-frontend's version, set by the binary.
var Version = "dev"

// sbomStep is the step that writes a platform's SBOM: the SPDX document
// of the closures of every stage with INSTALL lines the target needed, made
// from what Nix said of each store path. No scanner image runs. The step
// writes the document from the evaluation and build steps' results,
// because the document of a large closure is too large to travel in LLB.
func (cv *converter) sbomStep(nix *nixstep.Env, platform ocispecs.Platform, sources []nixbuild.Source) (nixstep.Run, error) {
	created := int64(0)
	if v, err := strconv.ParseInt(cv.bc.BuildArgs["SOURCE_DATE_EPOCH"], 10, 64); err == nil {
		created = v
	}
	req := protocol.SBOMRequest{Name: cv.src.Filename + " (" + formatPlatform(platform) + ")", Tool: "nix-frontend-" + Version, Created: created}
	var inputs []nixstep.Mount
	for i, s := range sources {
		target := path.Join(protocol.InDir, strconv.Itoa(i))
		inputs = append(inputs, nixstep.Mount{Target: target, State: s.State, Path: "/" + s.File})
		if s.Eval {
			req.Evals = append(req.Evals, target)
		} else {
			req.Results = append(req.Results, target)
		}
	}
	runs, err := nix.Steps([]nixstep.Step{{Name: "[nix] SBOM of the closure", Request: req, Inputs: inputs, HelperOnly: true}})
	if err != nil {
		return nixstep.Run{}, err
	}
	return runs[0], nil
}

// attachSBOMs adds, when the build asked for an SBOM (--sbom, --attest
// type=sbom), each platform's SBOM step as an in-toto attestation.
func (cv *converter) attachSBOMs(ctx context.Context, rb *dockerui.ResultBuilder, built []builtPlatform) error {
	if cv.bc.SBOM == nil {
		return nil
	}
	return rb.EachPlatform(ctx, func(ctx context.Context, id string, p ocispecs.Platform) error {
		var run *nixstep.Run
		for _, b := range built {
			if b.sbom != nil && formatPlatform(b.platform) == formatPlatform(p) {
				run = b.sbom
			}
		}
		if run == nil {
			return nil
		}
		def, err := run.Out.Marshal(ctx)
		if err != nil {
			return err
		}
		r, err := cv.c.Solve(ctx, client.SolveRequest{Definition: def.ToPB()})
		if err != nil {
			return err
		}
		ref, err := r.SingleRef()
		if err != nil {
			return fmt.Errorf("the SBOM step: %w", err)
		}
		rb.AddAttestation(id, result.Attestation[client.Reference]{
			Kind:   gwpb.AttestationKind_InToto,
			Ref:    ref,
			Path:   "/" + protocol.SBOMFile,
			InToto: result.InTotoAttestation{PredicateType: sbom.PredicateType},
		})
		return nil
	})
}
