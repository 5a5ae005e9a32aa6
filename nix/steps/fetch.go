package steps

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strings"

	"github.com/nix-frontend/nix-frontend/nix/nixlog"
	"github.com/nix-frontend/nix-frontend/nix/protocol"
)

// Fetch realises what a job's build needs from outside the build: it
// substitutes what the binary caches have, then builds the fixed-output
// derivations whose inputs are present, which Nix lets reach the network.
// It builds no ordinary derivation: the result names those that fixed-output
// derivations still wait for, and a hermetic build step makes them before the
// next fetch.
func Fetch(ctx context.Context, req protocol.FetchRequest, stderr io.Writer) error {
	if err := requireNix(); err != nil {
		return err
	}
	if err := useBuildUsers(); err != nil {
		return err
	}
	useCredentials()
	if err := importDrvs(ctx, []string{req.DrvPath}, drvInput(req.DrvPath), stderr); err != nil {
		return err
	}
	closure, err := drvClosure(ctx, req.DrvPath)
	if err != nil {
		return err
	}
	g, err := readDrvs(closure)
	if err != nil {
		return err
	}
	var res protocol.FetchResult
	plan, err := dryRun(ctx, req.DrvPath)
	if err != nil {
		return err
	}
	if len(plan.fetch) > 0 {
		fmt.Fprintf(stderr, "nix-frontend: substituting %d store paths\n", len(plan.fetch))
		// What cannot be substituted (a cache that is down, a signature
		// Nix does not trust) is built: by the build step, or by this one
		// when it is a download.
		if err := realise(ctx, plan.fetch, stderr); err != nil {
			fmt.Fprintf(stderr, "nix-frontend: not every path could be substituted; what is missing will be built\n")
		}
		missing, err := invalidPaths(ctx, plan.fetch)
		if err != nil {
			return err
		}
		res.Substituted = len(plan.fetch) - len(missing)
	}
	for {
		invalid, err := invalidOutputs(ctx, g)
		if err != nil {
			return err
		}
		ready := readyFixedOutputs(g, invalid)
		if len(ready) == 0 {
			res.Waiting = waitingFor(g, invalid)
			break
		}
		fmt.Fprintf(stderr, "nix-frontend: fetching %d fixed-output derivations\n", len(ready))
		if err := realise(ctx, ready, stderr); err != nil {
			return err
		}
		res.Fetched += len(ready)
	}
	return writeJSON(filepath.Join(protocol.OutDir, protocol.FetchFile), res)
}

// invalidOutputs returns the set of the graph's output paths the store does
// not have.
func invalidOutputs(ctx context.Context, g drvGraph) (map[string]bool, error) {
	var outs []string
	for _, d := range g {
		outs = append(outs, outputPaths(d)...)
	}
	slices.Sort(outs)
	missing, err := invalidPaths(ctx, slices.Compact(outs))
	if err != nil {
		return nil, err
	}
	set := map[string]bool{}
	for _, p := range missing {
		set[p] = true
	}
	return set, nil
}

// built says whether every output of a derivation is in the store.
func built(g drvGraph, drv string, invalid map[string]bool) bool {
	for _, p := range outputPaths(g[drv]) {
		if invalid[p] {
			return false
		}
	}
	return true
}

// inputsPresent says whether the outputs a derivation uses of its input
// derivations are in the store.
func inputsPresent(g drvGraph, drv string, invalid map[string]bool) bool {
	for in, names := range g[drv].InputDerivations {
		d := g[in]
		if d == nil {
			return false
		}
		for _, n := range names {
			if o := d.Outputs[n]; o == nil || invalid[o.Path] {
				return false
			}
		}
	}
	return true
}

// readyFixedOutputs are the fixed-output derivations not yet built whose
// inputs are all present.
func readyFixedOutputs(g drvGraph, invalid map[string]bool) []string {
	var ready []string
	for p, d := range g {
		if fixedOutput(d) && !built(g, p, invalid) && inputsPresent(g, p, invalid) {
			ready = append(ready, p)
		}
	}
	slices.Sort(ready)
	return ready
}

// waitingFor returns the ordinary derivations that fixed-output
// derivations not yet built need, and that can be built now: none of their
// own inputs waits for a download.
func waitingFor(g drvGraph, invalid map[string]bool) []string {
	blocked := map[string]bool{}
	var isBlocked func(string) bool
	isBlocked = func(p string) bool {
		if b, ok := blocked[p]; ok {
			return b
		}
		blocked[p] = false // cycles cannot happen in a derivation graph
		d := g[p]
		b := fixedOutput(d) && !built(g, p, invalid)
		for in := range d.InputDerivations {
			if g[in] != nil && !built(g, in, invalid) && isBlocked(in) {
				b = true
			}
		}
		blocked[p] = b
		return b
	}
	seen := map[string]bool{}
	var out []string
	var visit func(string)
	visit = func(p string) {
		for in := range g[p].InputDerivations {
			if seen[in] || g[in] == nil || built(g, in, invalid) {
				continue
			}
			seen[in] = true
			if !fixedOutput(g[in]) && !isBlocked(in) {
				out = append(out, in)
			}
			visit(in)
		}
	}
	for p, d := range g {
		if fixedOutput(d) && !built(g, p, invalid) {
			visit(p)
		}
	}
	slices.Sort(out)
	return out
}

// buildPlan is what `nix-store --realise --dry-run` says it would do.
type buildPlan struct {
	build []string // derivations to build
	fetch []string // paths to substitute
}

// dryRun asks Nix what realising drvs would build and substitute. The
// listing is text on stderr, the same on every Nix version since 2.4 but
// for the header's wording ("these 2 derivations", "this path").
func dryRun(ctx context.Context, drvs ...string) (buildPlan, error) {
	var out bytes.Buffer
	if err := nixCmd(ctx, nil, io.Discard, &out, "nix-store", append([]string{"--realise", "--dry-run"}, drvs...)...); err != nil {
		return buildPlan{}, err
	}
	var p buildPlan
	var section *[]string
	sc := bufio.NewScanner(&out)
	for sc.Scan() {
		line := nixlog.StripANSI(sc.Text())
		switch {
		case strings.Contains(line, "will be built"):
			section = &p.build
		case strings.Contains(line, "will be fetched"):
			section = &p.fetch
		case section != nil && strings.HasPrefix(strings.TrimSpace(line), "/nix/store/") && strings.HasPrefix(line, " "):
			*section = append(*section, strings.TrimSpace(line))
		default:
			section = nil
		}
	}
	return p, sc.Err()
}

// realise builds or substitutes store paths (derivations or outputs),
// printing Nix's log as readable lines.
func realise(ctx context.Context, paths []string, stderr io.Writer) error {
	dec := nixlog.NewDecoder(stderr)
	err := nixCmd(ctx, nil, io.Discard, dec, "nix-store", append([]string{"--realise", "--log-format", "internal-json"}, paths...)...)
	dec.Close()
	if err != nil {
		return buildFailed(dec.Summary(), nil, paths)
	}
	return nil
}
