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
		p("> **Quick run** (`-quick`): workloads a tenth of the size. These numbers mean nothing.\n\n")
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
	p("*Ratios are nix-frontend ÷ baseline (lower is better for nix-frontend) unless the column says otherwise. Absolute times depend on the machine; ratios within one run do not.*\n\n")

	p("## Setup\n\n")
	p("- Machine: %d cores, %s; one buildkitd (`%s`), one registry (`%s`, storage `.cache/registry`). Load average before/after: %s / %s. The whole run took %.1f minutes.\n",
		runtime.NumCPU(), memTotal(), b.env.BuildkitHost, b.env.Registry, b.loadBefore, b.loadAfter, b.elapsed.Minutes())
	if busy == 0 && !b.quietTimedOut {
		p("- The run started after a minute in which nothing else built or tested and the CPUs were at least 80%% idle, and nothing else built or tested while it ran (checked every second).\n")
	}
	fc := b.frontendCommit
	if fc == "" {
		fc = "unknown"
	}
	p("- nix-frontend: `%s` (`%s`), built from commit `%s`; benchmark code from the working tree at `%s`.\n", b.frontendImage, b.frontendDigest, fc, b.commit)
	p("- Baseline: [`bench/baseline.Dockerfile`](baseline.Dockerfile) — `nix-build` in `%s` with `/nix` in a cache mount, `cp -a $(nix-store -qR result) /out/nix/store/`, `FROM scratch` + `COPY --from=build /out /`: one layer with the whole closure.\n", b.env.NixImage)
	p("- Both are built by `buildctl build --frontend dockerfile.v0` on the same buildkitd (nix-frontend through the Nixfile's `# syntax=` line), from the same `default.nix`, with the same Nix (%s) and the same `NIX_CONFIG` (offline settings and `max-jobs = auto`), and push to the local registry with OCI media types and BuildKit's default gzip layers.\n", b.env.NixImage)
	p("- Builds alternate between the tools (nix-frontend first) so that drift of the machine affects both.\n")
	if b.rounds > 1 {
		p("- Everything but the %s-path build is measured in %d rounds, each cold again (new salts, new repositories). Times in the table are the medians of the rounds (export: the cold build with the median export time); bytes and sizes are round 1's, and are the same in every round.\n", thousands(b.manyPaths), b.rounds)
	}
	p("- **Cold** means cold for each tool: every run uses a new salt per tool (a string every derivation carries), so no derivation is in either tool's `/nix` cache mount or BuildKit cache, and pushes to new repositories (`%s/bench/%s/…`).\n\n", b.env.Registry, b.runID)

	p("## Workloads\n\n")
	p("Generated offline: every derivation's builder is the static busybox in the build context, every output is made of pieces of one deterministic 8 MiB source file (half pseudo-random bytes, half generated text, so outputs compress about as binaries and text do).\n\n")
	if b.closA != nil {
		p("- **W1**: `app`, the root, refers to 199 paths: 5 large (25–50 MiB), 25 medium (12–0.5 MiB), 168 small (400–1 KiB) and `leaf` (%d KiB). %d store paths, %s of files, %s compressed as nix-frontend layers.\n",
			leafKiB, len(b.closA), human(b.closA.raw()), human(b.closA.total(keys(b.closA))))
	} else {
		p("- **W1**: `app`, the root, refers to 199 paths: 5 large (25–50 MiB), 25 medium (12–0.5 MiB), 168 small (400–1 KiB) and `leaf` (%d KiB).\n", leafKiB)
	}
	p("- **Leaf change**: `leaf` gets another revision (a build argument), so `leaf` and `app`, which refers to it, are new store paths.\n")
	p("- **W2**: a second image, `app2`, refers to the same 198 paths as `app` except `leaf`, plus `extra2` (%d KiB): it shares 198 of its 200 paths with W1. Pushed to the same repository as W1, under another tag.\n", leafKiB)
	p("- **W3**: eight independent derivations, each a busybox shell loop calibrated to %.2f s of CPU on this machine (%d iterations), installed by one INSTALL line (nix-frontend) / one `nix-build -A … -A …` (baseline).\n", b.burnCPU.Seconds(), b.burnIters)
	p("- **%s paths**: a root referring to %d tiny paths; nix-frontend only, for the frontend's memory and LLB generation.\n", thousands(b.manyPaths), b.manyPaths-1)
	if b.scale != 1 {
		p("- Scaled: W1/W2 sizes ×%.2f, W3 %.1f s per derivation, %d paths instead of 2,000.\n", b.scale, b.burn.Seconds(), b.manyPaths)
	}
	p("\n")

	p("## How each metric is measured\n\n")
	p("1. **Cold build + push**: wall time of `buildctl build … --output type=image,push=true` for W1, client side.\n")
	p("2. **No-op rebuild**: the same build again (same context and arguments, another tag of the same repository). Derivations built are counted from the log: nix-frontend's `nix: building <name>` lines, nix-build's `building '/nix/store/….drv'` lines.\n")
	p("3. **Leaf change**: wall time of the rebuild, and bytes pushed: the growth of the registry's blob storage (`harness.RegistryBytes`: every blob, manifests and configs included) across the build. The benchmark also sums the pushed image's blobs whose files appeared during the build; when the two disagree (something else pushed), it uses the latter. The target compares it with the **changed paths' compressed size**: the store paths in the new image that the old one lacks, each as a gzip layer of its own (exact for paths nix-frontend gave a layer of their own; for paths it grouped, the benchmark makes that layer itself, with Go's gzip at the default level as BuildKit does).\n")
	p("4. **Second image**: bytes pushed, measured as in 3, against the **shared part**: the compressed size (as in 3) of the store paths W2's image shares with W1's. The baseline's paths have other hashes (other salt) but the same contents, so the same reference applies.\n")
	p("5. **Parallel builds**: wall time of W3's cold build and push, against the ideal of 8 derivations × their calibrated CPU time ÷ %d cores.\n", runtime.NumCPU())
	p("6. **Export**: from the progress stream's timestamps (BuildKit's clock): for nix-frontend from the start of the `[nix …] export closure` step (which copies the closure out of the `/nix` cache mount) through the `[nix] layer …` copies, the merge and the image exporter's `exporting layers` (compression), `exporting manifest` and `exporting config`; for the baseline from the `cp -a` in its RUN step (it prints the time before and after) through `COPY --from=build`, to the same exporter steps. Pushing is excluded for both. The reference is `tar -cf - nix | zstd -q -T0 -3` of the same closure (unpacked from the baseline's layer into a temporary directory; the page cache warmed by one `tar` to `/dev/null` first, as a build finds the store it just wrote), and, for information, `tar | gzip -6`.\n")
	p("7. **Frontend memory and LLB generation**, on the %s-path closure built cold: the benchmark finds the frontend's process (`/bin/nix-frontend`, run by buildkitd from the frontend image, recognised by the build's salt among the frontend options in its environment) and samples its `VmHWM` (peak resident set) and CPU time from `/proc` every 20 ms until it exits. This is the real frontend process alone: no harness, client or buildkitd. LLB turnaround is the time from the export step's completion (its manifest of store paths is ready) to the first `[nix] layer` step starting: the frontend reads the manifest, plans the layers, generates and returns the LLB, and buildkitd loads it and starts solving.\n\n", thousands(b.manyPaths))

	p("## Details\n\n")
	p("| Build | Tool | Wall | Derivations built | Registry grew | Image's new blobs | of which layers | Frontend peak RSS | Frontend CPU |\n|---|---|---|---|---|---|---|---|---|\n")
	for _, r := range b.runs {
		if !r.ok() {
			p("| %s | %s | failed | | | | | | |\n", r.Label, r.Tool)
			continue
		}
		rss, cpu := "—", "—"
		if r.FE.Found {
			rss, cpu = fmt.Sprintf("%.0f MB", float64(r.FE.PeakKB)*1024/1e6), secs(r.FE.CPU)
		} else if r.Tool == nf {
			rss, cpu = "not seen", "not seen"
		}
		p("| %s | %s | %s | %d | %s | %s (%d blobs) | %s | %s | %s |\n", r.Label, r.Tool, secs(r.Wall), len(r.Built), human(r.RegistryDelta), human(r.NewBytes), r.NewBlobs, human(r.NewLayerBytes), rss, cpu)
	}
	p("\n")
	if b.rounds > 1 {
		p("Wall times of the %d rounds, in seconds (the table shows the medians):\n\n| Build | nix-frontend | baseline |\n|---|---|---|\n", b.rounds)
		for _, m := range []struct{ key, name string }{{"cold", "W1 cold"}, {"noop", "W1 no-op"}, {"leaf", "W1 leaf change"}, {"w2", "W2 second image"}, {"w3", "W3 cold"}} {
			p("| %s | %s | %s |\n", m.name, b.walls(m.key, nf), b.walls(m.key, baseline))
		}
		p("\n")
	}
	for _, r := range b.runs {
		if r.Err != nil {
			p("**%s (%s) failed:**\n\n```\n%s\n```\n\n", r.Label, r.Tool, lastLines(r.Err.Error(), 30))
		}
	}

	p("### Export (W1 cold)\n\n")
	for _, tl := range []tool{nf, baseline} {
		s, parts := exportSpan(b.exportRun(tl))
		if s.Duration() == 0 {
			p("- %s: not measured\n", tl)
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
		p("- %s: %s in all; %s.\n", tl, secs(s.Duration()), strings.Join(ps, ", "))
	}
	if b.refErr == nil && b.ref.Raw > 0 {
		p("- Reference: the closure is %s of files; `tar | zstd -T0 -3` took %s (%s out), `tar | gzip -6` %s (%s out).\n",
			human(b.ref.Raw), secs(b.ref.TarZstd), human(b.ref.ZstdBytes), secs(b.ref.TarGzip), human(b.ref.GzipBytes))
	}
	if r := b.cold[nf]; r.ok() {
		p("- nix-frontend's image has %d layers; its LLB turnaround after the export step was %.2f s.\n", len(r.Image.Manifest.Layers), frontendGap(r).Seconds())
	}
	p("\n")

	p("### W3 build phase\n\n")
	if r := b.w3[nf]; r.ok() {
		s := spanOf(r.Prog.match(`\] build burn`))
		p("- nix-frontend: build steps from the first start to the last end %s, at most %d at once.\n", secs(s.Duration()), overlap(r.Prog.match(`\] build burn`)))
	}
	if r := b.w3[baseline]; r.ok() {
		s := spanOf(r.Prog.match(`RUN --mount=type=cache`))
		p("- baseline: the nix-build RUN step %s.\n", secs(s.Duration()))
	}
	p("\n")

	if b.closA != nil && b.closLeaf != nil {
		p("### Where the leaf change's bytes went\n\n")
		changed := b.closLeaf.minus(b.closA)
		var cs []string
		for _, c := range changed {
			ps := b.closLeaf[c]
			how := "own layer"
			if !ps.Own {
				how = "in a shared layer; size as its own layer"
			}
			cs = append(cs, fmt.Sprintf("`%s` %s (%s)", path.Base(c), human(ps.Compressed), how))
		}
		p("Changed store paths: %s.\n\n", strings.Join(cs, ", "))
		b.blobList(&sb, b.leaf1[nf], b.closLeaf, b.closA)
		b.blobList(&sb, b.leaf1[baseline], nil, nil)
	}
	if b.closA != nil && b.closB != nil {
		p("### Where the second image's bytes went\n\n")
		var us []string
		for _, u := range b.closB.minus(b.closA) {
			us = append(us, "`"+path.Base(u)+"`")
		}
		p("W2's own store paths: %s; shared with W1: %d paths.\n\n", strings.Join(us, ", "), len(b.closB.and(b.closA)))
		b.blobList(&sb, b.w21[nf], b.closB, b.closA)
		b.blobList(&sb, b.w21[baseline], nil, nil)
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
	p("bench/run waits (up to 10 minutes, `-quiet-wait`) for other builds and tests on the machine to finish and the CPUs to idle, since they skew times and may prune the caches the rebuild measurements rely on. This run left %s in the registry and about as much in each tool's `/nix` cache mount.\n", human(stored))
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
