package integration

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/nix-frontend/nix-frontend/integration/harness"
)

// TestManyInstallables installs 1,000 derivations from one INSTALL line: the
// requests, the evaluation and the build steps scale to a large stage.
func TestManyInstallables(t *testing.T) {
	env := harness.Require(t)
	const n = 1000
	var attrs []string
	for i := 0; i < n; i++ {
		attrs = append(attrs, fmt.Sprintf("p%d", i))
	}
	dir := env.Context(t, map[string]string{
		"Nixfile": "FROM scratch\nARG SALT\nINSTALL --link=none --file=default.nix --argstr salt=${SALT} " + strings.Join(attrs, " ") + "\n",
		"default.nix": `{ salt }:
let
  bb = builtins.path { path = ./busybox; name = "busybox"; };
  mk = i: derivation {
    name = "p${toString i}";
    inherit salt;
    system = builtins.currentSystem;
    builder = "${bb}/bin/busybox";
    args = [ "sh" "-c" "echo ${toString i} > $out" ];
  };
in builtins.listToAttrs (builtins.genList (i: { name = "p${toString i}"; value = mk i; }) ` + fmt.Sprint(n) + `)
`,
	})
	env.AddBusybox(t, dir)
	res := env.Build(t, harness.InProcess, dir, harness.BuildOpts{BuildArgs: map[string]string{
		"SALT": salt(t), "NIX_CONFIG": harness.OfflineNixConfig + "\nmax-jobs = 4"}})
	if got := len(harness.Built(res.Log)); got != n {
		t.Errorf("built %d derivations, want %d", got, n)
	}
	img := env.Inspect(t, res.Ref).Images[0]
	if l := len(img.Manifest.Layers); l > 100 {
		t.Errorf("%d layers, over the default budget", l)
	}
	paths := 0
	for _, h := range nonEmptyHistory(img) {
		var k int
		switch {
		case strings.HasPrefix(h.CreatedBy, "nix-frontend: /nix/store/"):
			paths++
		case func() bool { _, err := fmt.Sscanf(h.CreatedBy, "nix-frontend: %d store paths", &k); return err == nil }():
			paths += k
		}
	}
	// The 1,000 outputs and busybox, which their builders refer to
	// only while building.
	if paths != n {
		t.Errorf("the image's layers hold %d store paths, want %d", paths, n)
	}
}

// TestHugeClosure builds a closure of 10,000 store paths, each referring to
// ten others, and its SBOM: the build results, the layer plan and the SBOM
// exceed what one gRPC message or one LLB file can carry.
func TestHugeClosure(t *testing.T) {
	env := harness.Require(t)
	const n = 10000
	dir := env.Context(t, map[string]string{
		"Nixfile": "FROM scratch\nARG SALT\nINSTALL --link=none --file=default.nix --argstr salt=${SALT} top\n",
		"default.nix": `{ salt }:
let
  bb = builtins.path { path = ./busybox; name = "busybox"; };
  sh = "${bb}/bin/busybox";
  n = ` + fmt.Sprint(n) + `;
  # n paths in order, as the outputs o0..o99 of n/100 derivations: path i
  # refers to paths i+1..i+10, so the last outputs of a derivation refer
  # to the first ones of the next. (Nix registers the outputs of one
  # derivation in time quadratic in their number: 10,000 outputs of one
  # derivation take many minutes.)
  per = 100;
  outs = builtins.genList (k: "o${toString k}") per;
  drvs = builtins.genList (d: derivation {
    name = "many-${toString d}";
    inherit salt;
    system = builtins.currentSystem;
    builder = sh;
    outputs = outs;
    next = if d + 1 < n / per then map (k: (builtins.elemAt drvs (d + 1)).${"o" + toString k}) (builtins.genList (k: k) 10) else [ ];
    args = [ "sh" "-c" ''
      ${sh} awk 'BEGIN { for (k = 0; k < ${toString per}; k++) print ENVIRON["o" k] }' | ${sh} xargs ${sh} mkdir -p
      ${sh} awk 'BEGIN {
        split(ENVIRON["next"], next_, " ")
        for (k = 0; k < ${toString per}; k++) {
          f = ENVIRON["o" k] "/refs"; r = ""
          for (j = k + 1; j <= k + 10; j++) {
            if (j < ${toString per}) r = r " " ENVIRON["o" j]
            else if ((j - ${toString per} + 1) in next_) r = r " " next_[j - ${toString per} + 1]
          }
          print r > f; close(f)
        }
      }'
    '' ];
  }) (n / per);
  all = builtins.concatMap (d: map (o: d.${o}) outs) drvs;
in {
  top = derivation {
    name = "top";
    inherit salt;
    system = builtins.currentSystem;
    builder = sh;
    # Too long for one argument or variable: Nix passes it as a file.
    all = builtins.concatStringsSep " " all;
    passAsFile = [ "all" ];
    args = [ "sh" "-c" "${sh} mkdir -p $out; ${sh} cp $allPath $out/all" ];
  };
}
`,
	})
	env.AddBusybox(t, dir)
	res := env.Build(t, harness.Buildx, dir, harness.BuildOpts{
		BuildArgs: map[string]string{"SALT": salt(t)},
		Args:      []string{"--sbom=true"},
	})
	img := env.Inspect(t, res.Ref).Images[0]
	if l := len(img.Manifest.Layers); l > 100 {
		t.Errorf("%d layers, over the default budget", l)
	}
	raw, ok := env.Attestations(t, res.Ref, "linux/amd64")["https://spdx.dev/Document"]
	if !ok {
		t.Fatal("no SPDX attestation")
	}
	var st struct {
		Predicate struct {
			Packages      []struct{ Name string } `json:"packages"`
			Relationships []struct {
				Type string `json:"relationshipType"`
			} `json:"relationships"`
		} `json:"predicate"`
	}
	if err := json.Unmarshal(raw, &st); err != nil {
		t.Fatal(err)
	}
	// top and the n outputs; every reference is a relationship.
	if got := len(st.Predicate.Packages); got != n+1 {
		t.Errorf("the SBOM lists %d packages, want %d", got, n+1)
	}
	deps := 0
	for _, r := range st.Predicate.Relationships {
		if r.Type == "DEPENDS_ON" {
			deps++
		}
	}
	if want := n + 10*(n-10); deps < want {
		t.Errorf("the SBOM has %d DEPENDS_ON relationships, want at least %d", deps, want)
	}
}
