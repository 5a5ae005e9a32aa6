package main

import (
	"fmt"
	"os"
	"path"
	"runtime"
	"sort"
	"strings"
	"time"

	"github.com/nix-frontend/nix-frontend/integration/harness"
	digest "github.com/opencontainers/go-digest"
)

func (b *bench) markdown(rows []row) string {
	var sb strings.Builder
	p := func(format string, a ...any) { fmt.Fprintf(&sb, format, a...) }

	p("# Benchmark: nix-frontend vs. the nix-build Dockerfile recipe\n\n")
	p("Written by `bench/run` (run `%s`, %s). Do not edit by hand; run `bench/run` again.\n\n", b.runID, b.started.UTC().Format(time.RFC1123))
	if b.quick {
		p("> **Quick run** (`-quick`): small workloads, one round. These numbers mean nothing.\n\n")
	}
	busy, seen := b.activity.summary()
	if busy > 0 || b.quietTimedOut {
		p("> **Warning:** other builds or tests ran on this machine during %.0f%% of the run (%s)", 100*busy, strings.Join(seen, ", "))
		if b.quietTimedOut {
			p("; the benchmark gave up waiting for quiet after %s", b.quietWaited.Round(time.Second))
		}
		p(". Times are noisier than usual.\n\n")
	}
	p("%s\n", markdownTable(rows))
	p("![ratios](results.png)\n\n")
	p("*Each row compares nix-frontend's value with the baseline recipe's, a reference or an ideal, as its \"compared with\" column says; the ratio is nix-frontend's ÷ that (lower is better) unless the cell says otherwise. \"met?\" says by how much a target was missed. Absolute times depend on the machine; ratios within one run do not.*\n\n")

	p("## Setup\n\n")
	daemon := fmt.Sprintf("hack/setup's buildkitd (`%s`, shared: its disk usage counts whatever else it did)", b.env.BuildkitHost)
	if b.ownDaemon {
		daemon = "a buildkitd of the benchmark's own, started for the run with hack/setup's configuration but no garbage collection, and removed at the end (so its cache, and its `buildctl du`, are the benchmark's builds' alone)"
	}
	p("- Machine: %d cores, %s; %s; one registry (`%s`, storage `.cache/registry`). Load average before/after: %s / %s. The whole run took %.1f minutes.\n",
		runtime.NumCPU(), memTotal(), daemon, b.env.Registry, b.loadBefore, b.loadAfter, b.elapsed.Minutes())
	if busy == 0 && !b.quietTimedOut {
		p("- The run started after a minute in which nothing else built or tested and the CPUs were at least 80%% idle, and nothing else built or tested while it ran (checked every second).\n")
	}
	fc := b.frontendCommit
	if fc == "" {
		fc = "unknown"
	}
	p("- nix-frontend: `%s` (`%s`), built from commit `%s`; benchmark code from the working tree at `%s`.\n", b.frontendImage, b.frontendDigest, fc, b.commit)
	p("- Baseline: [`bench/baseline.Dockerfile`](baseline.Dockerfile) — `nix-build` in the Nix image with `/nix` in a cache mount, `cp -a $(nix-store -qR result) /out/nix/store/`, `FROM scratch` + `COPY --from=build /out /`: one layer with the whole closure.\n")
	p("- Both are built by `buildctl build --frontend dockerfile.v0` on the same buildkitd (nix-frontend through the Nixfile's `# syntax=` line), from the same `default.nix`, with the same Nix (`%s`, build argument `NIX_IMAGE` for both) and the same `NIX_CONFIG` (offline settings and `max-jobs = auto`; nix-frontend's build steps add `build-users-group = nixbld`, the baseline's builders run as root except in row 1a), and push to the local registry with OCI media types and BuildKit's default gzip layers. nix-frontend runs with its defaults: the layer budget `NIX_MAX_LAYERS=100`, and the FROM scratch basics layer (passwd, group, /tmp, CA certificates).\n", b.env.NixImage)
	p("- Before measuring, one small build per tool pulls the frontend and Nix images into the builder and makes what every build shares.\n")
	p("- Builds alternate between the tools (nix-frontend first) so that drift of the machine affects both.\n")
	if b.rounds > 1 {
		p("- W1, W2 and W3 are measured in %d rounds, each cold again (new salts, new repositories), and W4's leaf change %d times in a row (nix-frontend; the baseline's once). Times in the table are the medians (export: the cold build with the median export time); bytes and sizes are round 1's (the first leaf change's for W4), and are the same in every round. The 1 MiB leaf change, W5, W6 and the %s-path build run once.\n", b.rounds, b.rounds, thousands(b.manyPaths))
	}
	p("- **Cold** means cold for each tool: every workload uses a new salt per tool and round (a string every derivation carries), so no derivation is in either tool's `/nix` cache mount or BuildKit cache, and pushes to new repositories (`%s/bench/%s/…`).\n\n", b.env.Registry, b.runID)

	p("## Workloads\n\n")
	p("Generated offline: every derivation's builder is the static busybox in the build context, every output is made of pieces of one deterministic 8 MiB source file (half pseudo-random bytes, half generated text, so outputs compress about as binaries and text do).\n\n")
	w1 := fmt.Sprintf("- **W1**: `app`, the root, refers to 199 paths: 5 large (25–50 MiB), 25 medium (12–0.5 MiB), 168 small (400–1 KiB) and `leaf` (%d KiB).", leafKiB)
	if c := b.clos["cold"]; c != nil {
		w1 += fmt.Sprintf(" %d store paths, %s of files, %s compressed as nix-frontend layers.", len(c), human(c.raw()), human(c.total(keys(c))))
	}
	if c := b.clos["cold"]; c != nil {
		own, groups := 0, map[string]bool{}
		for _, x := range c {
			if x.Own {
				own++
			} else {
				groups[x.Layer.String()] = true
			}
		}
		w1 += fmt.Sprintf(" Past the layer budget: %d paths (the root and the largest) get layers of their own, the %d others share %d layers grouped by store path name.", own, len(c)-own, len(groups))
	}
	p("%s\n", w1)
	p("- **Leaf change**: `leaf` gets another revision (a build argument), so `leaf` and `app`, which refers to it, are new store paths (`leaf`%s).\n", b.layerOf("leaf", "leaf"))
	p("- **1 MiB leaf change**: then `%s` (%s, the path of W1 closest to 1 MiB%s) gets another revision, new bytes and a new store path, and so does `app`.\n", b.oneMiB.Name, human(int64(b.oneMiB.KiB)<<10), b.layerOf("leafm", b.oneMiB.Name))
	p("- **W2**: a second image, `app2`, refers to the same 198 paths as `app` except `leaf`, plus `extra2` (%d KiB): it shares 198 of its 200 paths with W1. Pushed to the same repository as W1, under another tag.\n", leafKiB)
	p("- **W3**: eight independent derivations, each a busybox shell loop calibrated to %.2f s of CPU on this machine (%d iterations), installed by one INSTALL line (nix-frontend) / one `nix-build -A … -A …` (baseline).\n", b.burnCPU.Seconds(), b.burnIters)
	p("- **%s paths**: a root referring to %d tiny paths; nix-frontend only, for the frontend's memory and LLB generation.\n", thousands(b.manyPaths), b.manyPaths-1)
	w4 := fmt.Sprintf("- **W4**: a big closure of the same shape: four paths of %d MiB each (`big-0`…`big-3`), 100 small ones (256–1 KiB), `leaf` (%d KiB) and `app`, 106 paths", b.w4BigMiB, leafKiB)
	if c := b.clos["w4cold"]; c != nil {
		w4 += fmt.Sprintf(", %s of files, %s compressed", human(c.raw()), human(c.total(keys(c))))
	}
	p("%s; built cold, then `leaf` changes (as in W1). **W4-small** is the same with four 4 MiB paths", w4)
	if c := b.clos["w4scold"]; c != nil {
		p(" (%s of files)", human(c.raw()))
	}
	p(", nix-frontend only, for the leaf change's time on a small closure.\n")
	p("- **W5**: after the 1 MiB leaf change, %d of W1's 198 packages (`%s` among them, pseudo-randomly chosen, the same in every run) get another revision at once, and so does `app`: %d of the 200 paths (30%%) are new.\n", len(b.churned), b.oneMiB.Name, len(b.churned)+1)
	u := w6Packages(b.w6.universe, 1)
	large, medium := b.w6.universe/50, b.w6.universe*15/100
	budget := "the default layer budget (100)"
	if b.w6.budget > 0 {
		budget = fmt.Sprintf("a layer budget of %d (`NIX_MAX_LAYERS`)", b.w6.budget)
	}
	p("- **W6**: a universe of %d paths (%d large, 30–10 MiB; %d medium, 4 MiB–256 KiB; %d small, 256–1 KiB) and %d images, each a root referring to %d paths drawn from it (pseudo-randomly, the same in every run), built one after the other into one repository per tool, with %s: with %d paths an image is past it, so grouping applies.\n",
		len(u), large, medium, len(u)-large-medium, b.w6.images, b.w6.pick, budget, b.w6.pick+1)
	if b.scale != 1 {
		p("- Scaled: W1/W2/W6 sizes ×%.2f, W3 %.1f s per derivation, %d paths instead of 2,000, W4's big paths %d MiB.\n", b.scale, b.burn.Seconds(), b.manyPaths, b.w4BigMiB)
	}
	p("\n")

	p("## How each metric is measured\n\n")
	p("Times are wall times of `buildctl build … --output type=image,push=true`, client side, unless said otherwise. Step times come from the progress stream's timestamps (`--progress rawjson`, BuildKit's clock).\n\n")
	p("- **Bytes pushed**: the growth of the registry's blob storage (`harness.RegistryBytes`: every blob, manifests and configs included) across the build. The benchmark also sums the pushed image's blobs whose files appeared during the build; when the two disagree (something else pushed), it uses the latter.\n")
	p("- **Ideal push** (3b, 3c, 8h, 9): the **changed paths** — the store paths of the new image that no image pushed before it in that repository has — each compressed as a gzip layer of its own (exact for paths nix-frontend gave a layer of their own; for paths it grouped, the benchmark makes that layer itself, with Go's gzip at the default level as BuildKit does), **plus the new image's manifest and config**, which every push uploads whatever its layers. The ratio is bytes pushed ÷ that.\n")
	p("- **Builder disk** (1b, 8c, 8g): the sum of the sizes of every record `buildctl du` lists (the BuildKit client's `DiskUsage`), before and after the build, outside its wall time: the `/nix` cache mounts, snapshots, evaluation results, the compressed layers BuildKit keeps for the images it exported, pulled images. %s\n",
		map[bool]string{true: "The builder is the benchmark's own, so nothing else changes it.", false: "On the shared builder, anything else it did at the same time counts too."}[b.ownDaemon])
	p("- **Bytes the builder copied** (8b, 8f): what the build copied out of the `/nix` cache mount: for nix-frontend the sum of its layer steps' `nix-frontend: copied N store paths, X, NAR hashes verified` lines (NAR size, as the step rounds it to 0.1 of its unit; cached layer steps copy nothing); for the baseline the byte count of `/out/nix/store` its RUN step prints after `cp -a` (`du -sb`), counted twice, since `COPY --from=build /out /` copies it again into the image's snapshot.\n\n")
	p("1. **Cold build + push** of W1. 1b: builder disk growth across round 1's cold build of each tool, against the closure's size in files.\n")
	p("2. **No-op rebuild**: the same build again (same context and arguments, another tag of the same repository). Derivations built are counted from the log: nix-frontend's `nix: building <name>` lines, nix-build's `building '/nix/store/….drv'` lines. Target: nix-frontend's time at most twice the baseline's, and nothing built in any round.\n")
	p("3. **Leaf change**: 3a the rebuild's time; 3b and 3c bytes pushed against the ideal push, after the leaf change (24 KiB) and the 1 MiB leaf change. Target ≤ 1.1× for both.\n")
	p("4. **Second image**: bytes pushed against the **shared part**: the compressed size (as for the ideal push) of the store paths W2's image shares with W1's. The baseline's paths have other hashes (other salt) but the same contents, so the same reference applies.\n")
	p("5. **Parallel builds**: wall time of W3's cold build and push, against the ideal of 8 derivations × their calibrated CPU time ÷ %d cores. Target ≤ 1.2× the ideal. For what the machine's cores can do, the benchmark also runs the eight derivations' loops at once directly on the host, outside any build and container, and times them (the notes: the loops' wall time against the ideal, and nix-frontend's against the loops').\n", runtime.NumCPU())
	p("6. **Export** of W1 cold: for nix-frontend from the start of its first export step (the `[nix] layer …` steps, which copy the store paths out of the `/nix` cache mount, beside the link tree and the FROM scratch basics) through the merge and the image exporter's `exporting layers` (compression), `exporting manifest` and `exporting config`; for the baseline from the `cp -a` in its RUN step (it prints the time before and after) through `COPY --from=build`, to the same exporter steps. Pushing is excluded for both. The references, timed on the same closure unpacked from the baseline's layer into a temporary directory (the page cache warmed by one `tar` to `/dev/null` first, as a build finds the store it just wrote): **parallel gzip** — Go's `compress/gzip` at the default level (BuildKit's compressor for gzip layers) over a tar of each store path, one goroutine per path, largest first, %d at once (no `pigz` on the machine, and no `klauspost/pgzip`: per-path streams are what per-path layers can use) — and `tar -cf - nix | zstd -q -T0 -3`; for information, `tar | gzip -6` (one core).\n", runtime.NumCPU())
	p("   6b. **NAR hash check**: every layer step serialises its paths as NARs and restores them, hashing the stream with SHA-256 on the way (`nix/narcopy`), and compares the hash with the one the build step read from Nix's database when the path was made (the step runs no Nix command). The benchmark serialises every store path of the same unpacked closure with go-nix's `nar.DumpPath`, as the steps do, into memory, and times SHA-256 over each NAR apart from the serialisation, one path after the other on one core (the best of three runs): the hashing's cost, compared with the summed time of the cold build's layer steps that ran (the steps run side by side, so their sum is CPU-and-waiting time, not wall time).\n")
	p("7. **Frontend memory and LLB generation**, on the %s-path closure built cold: the benchmark finds the frontend's process (`/bin/nix-frontend`, run by buildkitd from the frontend image, recognised by the build's salt among the frontend options in its environment) and samples its `VmHWM` (peak resident set) and CPU time from `/proc` every 20 ms until it exits. This is the real frontend process alone: no harness, client or buildkitd. LLB turnaround is the time from the end of the last `[nix …] build` step (the closure built and described) to the first export step starting: the frontend reads the builds' results, plans the layers, generates and returns the LLB, and buildkitd loads it and starts solving.\n", thousands(b.manyPaths))
	p("8. **W4 big closure**: cold build (8a–8d), then a leaf change (8e–8h); each with wall time, the **export's share** (the export span as in 6 ÷ the wall time), bytes the builder copied, builder disk growth and bytes pushed. 8e compares the leaf change's time (median of the changes) with the same change on W4-small (median): target ≤ 1.5×. 8g compares the first leaf change's builder disk growth with the changed paths' size in files plus 16 MiB: target at most that. 8h is against the ideal push, for information.\n")
	p("9. **W5 churn**: bytes pushed against the ideal push of its %d changed paths. Target ≤ 1.1×.\n", len(b.churned)+1)
	p("10. **W6 sharing**: the bytes the images added to the registry, summed (each image's blobs first stored during its build), against the ideal: the unique store paths of their closures, each compressed on its own as for the ideal push, plus the images' manifests and configs. The baseline's images have the same contents under other hashes, so the same paths make its ideal (with its own manifests and configs). Target: ideal ÷ actual ≥ 0.9.\n\n")

	p("## Details\n\n")
	p("| Build | Tool | Wall | Derivations built | Copied out of /nix | Builder disk | Registry grew | Image's new blobs | of which layers | Frontend peak RSS | Frontend CPU |\n|---|---|---|---|---|---|---|---|---|---|---|\n")
	for _, r := range b.runs {
		if !r.ok() {
			p("| %s | %s | failed | | | | | | | | |\n", r.Label, r.Tool)
			continue
		}
		rss, cpu := "—", "—"
		if r.FE.Found {
			rss, cpu = fmt.Sprintf("%.0f MB", float64(r.FE.PeakKB)*1024/1e6), secs(r.FE.CPU)
		} else if r.Tool == nf {
			rss, cpu = "not seen", "not seen"
		}
		disk := "—"
		if g, ok := r.diskGrowth(); ok {
			disk = fmt.Sprintf("%s → %s (%+.1f MiB)", human(r.DiskBefore), human(r.DiskAfter), float64(g)/(1<<20))
		}
		p("| %s | %s | %s | %d | %s | %s | %s | %s (%d blobs) | %s | %s | %s |\n", r.Label, r.Tool, secs(r.Wall), len(r.Built), human(r.Copied), disk,
			human(r.RegistryDelta), human(r.NewBytes), r.NewBlobs, human(r.NewLayerBytes), rss, cpu)
	}
	p("\n")
	if b.rounds > 1 {
		p("Wall times of the rounds, in seconds (the table shows the medians):\n\n| Build | nix-frontend | baseline |\n|---|---|---|\n")
		for _, m := range []struct{ key, name string }{{"cold", "W1 cold"}, {"coldbu", "W1 cold, baseline with build users"}, {"noop", "W1 no-op"}, {"leaf", "W1 leaf change"}, {"w2", "W2 second image"}, {"w3", "W3 cold"}, {"w4leaf", "W4 leaf change"}, {"w4sleaf", "W4-small leaf change"}} {
			p("| %s | %s | %s |\n", m.name, b.walls(m.key, nf), dash(b.walls(m.key, baseline)))
		}
		p("\n")
	}
	for _, r := range b.runs {
		if r.Err != nil {
			p("**%s (%s) failed:**\n\n```\n%s\n```\n\n", r.Label, r.Tool, lastLines(r.Err.Error(), 30))
		}
	}

	// exportParts lists a tool's export steps: in its median W1 cold
	// export when r is nil, else in r.
	exportParts := func(name string, r *run) {
		for _, tl := range []tool{nf, baseline} {
			x := r
			if x == nil {
				x = b.exportRun(tl)
			} else if tl != x.Tool {
				continue
			}
			s, parts := exportSpan(x)
			if s.Duration() == 0 {
				p("- %s%s: not measured\n", tl, name)
				continue
			}
			var ks []string
			for k := range parts {
				ks = append(ks, k)
			}
			sort.Strings(ks)
			var ps []string
			for _, k := range ks {
				ps = append(ps, fmt.Sprintf("%s %s", k, secs(parts[k])))
			}
			share, _ := exportShare(x)
			p("- %s%s: %s in all (%.0f%% of the build's %s); %s.\n", tl, name, secs(s.Duration()), 100*share, secs(x.Wall), strings.Join(ps, ", "))
		}
	}
	p("### Export (W1 cold)\n\n")
	exportParts("", nil)
	if b.refErr == nil && b.ref.Raw > 0 {
		p("- References: the closure is %s of files in %d store paths; parallel gzip took %s (%s out), `tar | zstd -T0 -3` %s (%s out), `tar | gzip -6` %s (%s out).\n",
			human(b.ref.Raw), b.ref.Paths, secs(b.ref.ParGzip), human(b.ref.ParGzBytes), secs(b.ref.TarZstd), human(b.ref.ZstdBytes), secs(b.ref.TarGzip), human(b.ref.GzipBytes))
	}
	if b.narErr == nil && b.nar.Hash > 0 {
		p("- NAR hash check: %d NARs, %s; serialising them took %s, SHA-256 over them %s.\n", b.nar.Paths, human(b.nar.NarBytes), fineSecs(b.nar.Dump), fineSecs(b.nar.Hash))
	}
	if r := b.exportRun(nf); r.ok() {
		p("- nix-frontend's image has %d layers, made by %d layer steps (summed %s).\n", len(r.Image.Manifest.Layers), r.CopySteps, secs(layerStepsTotal(r)))
	}
	if r := b.many; r.ok() {
		p("- The %s-path build's LLB turnaround was %.2f s.\n", thousands(b.manyPaths), frontendGap(r).Seconds())
	}
	p("\n### Export (W4)\n\n")
	for _, m := range []struct{ key, name string }{{"w4cold", "cold"}, {"w4leaf", "first leaf change"}} {
		for _, tl := range []tool{nf, baseline} {
			if r := b.firstOf(m.key, tl); r.ok() {
				exportParts(", "+m.name, r)
			}
		}
	}
	p("\n")

	p("### W3 build phase\n\n")
	if r := b.w3[nf]; r.ok() {
		s := spanOf(r.Prog.match(`\] build `))
		p("- nix-frontend: build steps from the first start to the last end %s, at most %d at once.\n", secs(s.Duration()), overlap(r.Prog.match(`\] build `)))
	}
	if r := b.w3[baseline]; r.ok() {
		s := spanOf(r.Prog.match(`RUN --mount=type=cache`))
		p("- baseline: the nix-build RUN step %s.\n", secs(s.Duration()))
	}
	p("\n")

	changes := []struct {
		title, metric string
		earlier       []string
	}{
		{"the leaf change", "leaf", []string{"cold"}},
		{"the 1 MiB leaf change", "leafm", []string{"cold", "leaf", "w2"}},
	}
	for _, c := range changes {
		now := b.clos[c.metric]
		ch, ok := b.changed(c.metric, c.earlier...)
		if !ok {
			continue
		}
		var before []closure
		for _, e := range c.earlier {
			before = append(before, b.clos[e])
		}
		p("### Where %s's bytes went\n\n", c.title)
		var cs []string
		for _, x := range ch {
			ps := now[x]
			how := "own layer"
			if !ps.Own {
				how = "in a shared layer; size as its own layer"
			}
			cs = append(cs, fmt.Sprintf("`%s` %s (%s)", path.Base(x), human(ps.Compressed), how))
		}
		p("Changed store paths: %s.\n\n", strings.Join(cs, ", "))
		b.blobList(&sb, b.firstOf(c.metric, nf), now, union(before...))
		b.blobList(&sb, b.firstOf(c.metric, baseline), nil, nil)
	}
	if a, w2 := b.clos["cold"], b.clos["w2"]; a != nil && w2 != nil {
		p("### Where the second image's bytes went\n\n")
		var us []string
		for _, u := range w2.minus(a) {
			us = append(us, "`"+path.Base(u)+"`")
		}
		p("W2's own store paths: %s; shared with W1: %d paths.\n\n", strings.Join(us, ", "), len(w2.and(a)))
		b.blobList(&sb, b.w21[nf], w2, a)
		b.blobList(&sb, b.w21[baseline], nil, nil)
	}
	if ch, ok := b.changed("churn", "cold", "leaf", "w2", "leafm"); ok {
		r := b.firstOf("churn", nf)
		now := b.clos["churn"]
		own, grouped := 0, 0
		for _, x := range ch {
			if now[x].Own {
				own++
			} else {
				grouped++
			}
		}
		p("### Where W5's bytes went\n\n")
		p("%d changed store paths: %d in layers of their own, %d in groups. ", len(ch), own, grouped)
		if r.ok() {
			var groups, unchangedGroups int
			desc := layerDescriptions(r.Image)
			for _, l := range r.Image.Manifest.Layers {
				fi, err := os.Stat(b.blobPath(l.Digest))
				if err != nil || fi.ModTime().Before(r.Start) || !strings.Contains(desc[l.Digest], "store paths (") {
					continue
				}
				groups++
				fresh := false
				for _, x := range ch {
					if now[x].Layer == l.Digest {
						fresh = true
					}
				}
				if !fresh {
					unchangedGroups++
				}
			}
			p("nix-frontend pushed %s: %d new blobs, %s of them layers; %d new group layers, %d of them without a changed path (a changed path's new size moved a path across the line between own layers and groups).\n\n",
				human(r.pushed()), r.NewBlobs, human(r.NewLayerBytes), groups, unchangedGroups)
		}
	}
	if len(b.w6Clos) == b.w6.images && len(b.series["w6"][baseline]) == b.w6.images {
		p("### W6 images\n\n| Image | paths | nix-frontend pushed | baseline pushed |\n|---|---|---|---|\n")
		for i := 0; i < b.w6.images; i++ {
			nfr, br := b.series["w6"][nf][i], b.series["w6"][baseline][i]
			p("| %d | %d | %s | %s |\n", i, len(b.w6Clos[i]), bytesOr(nfr, (*run).pushed), bytesOr(br, (*run).pushed))
		}
		p("\n")
	}
	if len(b.notes) > 0 {
		p("## Notes\n\n")
		for _, n := range b.notes {
			p("- %s\n", n)
		}
		p("\n")
	}
	p("## Running it\n\n")
	p("```sh\nhack/setup     # once: buildkitd, registry, Nix and frontend images\nbench/run      # builds the frontend image from HEAD, measures, writes bench/results.md and bench/results.png\nbench/run -quick   # a smoke run with small workloads, results in a temporary directory\n```\n\n")
	var stored int64
	for _, r := range b.runs {
		stored += r.NewBytes
	}
	p("bench/run waits (up to 10 minutes, `-quiet-wait`) for other builds and tests on the machine to finish and the CPUs to idle, since they skew times. This run left %s in the registry", human(stored))
	if b.ownDaemon {
		p("; its buildkitd, with the `/nix` cache mounts and everything else it cached, was removed at the end.\n")
	} else {
		p(", and its builds' caches in the shared buildkitd.\n")
	}
	return sb.String()
}

// blobList lists the blobs a build added to the registry, with what they
// hold. Given the image's closure and the earlier image's, it says which
// store paths made each new layer new: paths the earlier image lacks, or
// paths that were in another layer there (a group that lost or gained a
// member).
func (b *bench) blobList(sb *strings.Builder, r *run, now, before closure) {
	if !r.ok() {
		return
	}
	desc := layerDescriptions(r.Image)
	type item struct {
		size int64
		what string
	}
	var items []item
	check := func(d digest.Digest, what string) {
		fi, err := os.Stat(b.blobPath(d))
		if err == nil && !fi.ModTime().Before(r.Start) {
			items = append(items, item{fi.Size(), what})
		}
	}
	check(r.Image.Digest, "manifest")
	check(r.Image.Manifest.Config.Digest, "image config")
	for _, l := range r.Image.Manifest.Layers {
		what := "layer: " + desc[l.Digest]
		if now != nil {
			var members, added []string
			for _, p := range now {
				if p.Layer == l.Digest {
					members = append(members, p.Path)
					if _, ok := before[p.Path]; !ok {
						added = append(added, storeName(p.Path))
					}
				}
			}
			if len(members) > 1 {
				what += fmt.Sprintf(" — %d paths, %s", len(members), human(sumRaw(now, members)))
				if len(added) > 0 {
					what += "; new paths: " + strings.Join(sortStrings(added), ", ")
				} else {
					what += "; no new path: its group differs from the earlier image's (a changed path left it, or the closure's size ranking moved a path in or out)"
				}
			}
		}
		check(l.Digest, what)
	}
	sort.Slice(items, func(i, j int) bool { return items[i].size > items[j].size })
	fmt.Fprintf(sb, "%s, %s new in the registry (of an image of %d layers):\n\n", r.Tool, human(r.NewBytes), len(r.Image.Manifest.Layers))
	for _, it := range items {
		fmt.Fprintf(sb, "- %s — %s\n", human(it.size), it.what)
	}
	sb.WriteString("\n")
}

// layerDescriptions maps an image's layers to their history's created_by.
func layerDescriptions(img *harness.Image) map[digest.Digest]string {
	out := map[digest.Digest]string{}
	for d, createdBy := range layerCreatedBy(img) {
		s := strings.TrimPrefix(createdBy, "nix-frontend: ")
		s = strings.ReplaceAll(s, "/bin/sh -c ", "")
		if len(s) > 140 {
			s = s[:140] + "…"
		}
		out[d] = "`" + s + "`"
	}
	return out
}

// layerCreatedBy maps each layer of an image to its history entry's
// created_by: the history's entries that are not empty layers, in order.
func layerCreatedBy(img *harness.Image) map[digest.Digest]string {
	out := map[digest.Digest]string{}
	i := 0
	for _, h := range img.Config.History {
		if h.EmptyLayer {
			continue
		}
		if i < len(img.Manifest.Layers) {
			out[img.Manifest.Layers[i].Digest] = h.CreatedBy
		}
		i++
	}
	return out
}

// overlap is the most vertices running at one moment.
func overlap(vs []*vertex) int {
	var spans []harness.Span
	for _, v := range vs {
		if !v.Started.IsZero() && !v.Completed.IsZero() {
			spans = append(spans, harness.Span{Start: v.Started, End: v.Completed})
		}
	}
	return harness.MostAtOnce(spans)
}

func keys(c closure) []string {
	var out []string
	for k := range c {
		out = append(out, k)
	}
	return out
}

func memTotal() string {
	dt, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return "? memory"
	}
	for _, l := range strings.Split(string(dt), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "MemTotal:" {
			var kb int64
			fmt.Sscan(f[1], &kb)
			return fmt.Sprintf("%.0f GB memory", float64(kb)*1024/1e9)
		}
	}
	return "? memory"
}

func storeName(p string) string {
	base := path.Base(p)
	if i := strings.IndexByte(base, '-'); i >= 0 {
		return base[i+1:]
	}
	return base
}

func sumRaw(c closure, paths []string) (n int64) {
	for _, p := range paths {
		n += c[p].Raw
	}
	return n
}
