package integration

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/nix-frontend/nix-frontend/integration/harness"
)

// TestSBOM checks --sbom: the frontend's own SPDX document lists every store
// path of the image with its version, hash and deriver, and provenance
// still works beside it.
func TestSBOM(t *testing.T) {
	env := harness.Require(t)
	ctx := exampleContext(t, env, "")
	res := env.Build(t, harness.Buildx, ctx, harness.BuildOpts{Args: []string{"--sbom=true", "--provenance=mode=min"}})
	statements := env.Attestations(t, res.Ref, "linux/amd64")
	raw, ok := statements["https://spdx.dev/Document"]
	if !ok {
		t.Fatalf("no SPDX attestation; have %v", keys(statements))
	}
	if _, ok := statements["https://slsa.dev/provenance/v0.2"]; !ok {
		if _, ok := statements["https://slsa.dev/provenance/v1"]; !ok {
			t.Errorf("no provenance attestation beside the SBOM; have %v", keys(statements))
		}
	}
	var st struct {
		Predicate struct {
			Packages []struct {
				Name, VersionInfo, Comment string
				Checksums                  []struct{ Algorithm, ChecksumValue string }
			} `json:"packages"`
		} `json:"predicate"`
	}
	if err := json.Unmarshal(raw, &st); err != nil {
		t.Fatal(err)
	}
	img := env.Inspect(t, res.Ref).Images[0]
	layers := harness.StoreLayers(img)
	if len(st.Predicate.Packages) != len(layers) {
		t.Errorf("SBOM lists %d packages, the image has %d store paths", len(st.Predicate.Packages), len(layers))
	}
	found := false
	for _, p := range st.Predicate.Packages {
		if len(p.Checksums) != 1 || len(p.Checksums[0].ChecksumValue) != 64 {
			t.Errorf("%s: checksums %v", p.Name, p.Checksums)
		}
		if p.Name == "hello" {
			found = true
			if p.VersionInfo != "1.0" || !strings.Contains(p.Comment, "-hello-1.0.drv") {
				t.Errorf("hello: version %q, comment %q", p.VersionInfo, p.Comment)
			}
		}
	}
	if !found {
		t.Errorf("SBOM does not list hello: %s", raw)
	}
}

func keys(m map[string][]byte) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}
