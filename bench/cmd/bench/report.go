package main

import (
	"fmt"
	"os"
	"runtime"
	"sort"
	"strings"
	"time"
)

// row is one line of the results table: nix-frontend's value, what it is
// compared with (the baseline, a reference or an ideal) and the ratio of
// the two, the target and whether nix-frontend met it, and other
// comparisons (usually the baseline's against the same reference).
type row struct {
	Metric  string
	NF      string
	Against string
	Ratio   string
	Target  string
	Met     string
	Notes   string
}

func secs(d time.Duration) string { return fmt.Sprintf("%.1f s", d.Seconds()) }

// fineSecs is secs with two significant digits below a second.
func fineSecs(d time.Duration) string {
	if d >= time.Second {
		return secs(d)
	}
	return fmt.Sprintf("%.2g s", d.Seconds())
}

func ratio(a, b float64) string {
	if b == 0 {
		return "—"
	}
	r := a / b
	switch {
	case r >= 10:
		return fmt.Sprintf("%.0f×", r)
	case r >= 0.1:
		return fmt.Sprintf("%.2f×", r)
	default:
		return fmt.Sprintf("%.3f×", r)
	}
}

func pct(a, b float64) string {
	if b == 0 {
		return "—"
	}
	return fmt.Sprintf("%.1f%%", 100*a/b)
}

// atMost says whether value met a target of at most limit, and if not, by
// how much it missed.
func atMost(value, limit float64) string {
	if value <= limit {
		return "yes"
	}
	return fmt.Sprintf("**no**, %.0f%% over", 100*(value/limit-1))
}

// atLeast is atMost for a target of at least limit.
func atLeast(value, limit float64) string {
	if value >= limit {
		return "yes"
	}
	return fmt.Sprintf("**no**, %.0f%% short", 100*(1-value/limit))
}

const failed = "failed"

func wall(r *run) string {
	if !r.ok() {
		return failed
	}
	return secs(r.Wall)
}

func bothOK(m map[tool]*run) bool { return m[nf].ok() && m[baseline].ok() }

func bytesOr(r *run, n func(*run) int64) string {
	if !r.ok() {
		return failed
	}
	return human(n(r))
}

// nfExportSteps are nix-frontend's steps that turn the built closure into
// the image: the layer steps, the link tree and the FROM scratch basics.
const nfExportSteps = `^\[nix\] layer |^\[nix [^\]]*\] link tree|^\[nix\] passwd, group`

// exportSpan is a build's export: from the moment the closure starts
// being copied out of the /nix cache to the end of the image exporter's
// work before it pushes (layers compressed, manifest and config written).
// nix-frontend: the "[nix] layer …" steps (and the link tree and FROM
// scratch basics beside them), the merge and "exporting
// layers/manifest/config". Baseline: the `cp -a` in its RUN step (timed by
// the lines it prints), the COPY --from=build into scratch and the same
// exporter steps.
func exportSpan(r *run) (span, map[string]time.Duration) {
	parts := map[string]time.Duration{}
	if !r.ok() {
		return span{}, parts
	}
	p := r.Prog
	var s span
	if r.Tool == nf {
		s.Start = spanOf(p.match(nfExportSteps)).Start
		parts["layer steps ([nix] layer …, first start to last end)"] = spanOf(p.match(`^\[nix\] layer `)).Duration()
		parts["merge"] = spanOf(p.match(`^\[nix [^\]]*\] merge `)).Duration()
	} else {
		s.Start = p.mark("copy", "start")
		parts["cp -a closure out of /nix (in RUN)"] = p.mark("copy", "end").Sub(s.Start)
		parts["COPY --from=build /out /"] = spanOf(p.match(`COPY --from=build`)).Duration()
	}
	layers := p.status("exporting layers")
	parts["compress layers (exporting layers)"] = layers.Duration()
	s.End = latest(p.status("exporting config").End, layers.End)
	parts["push (pushing layers)"] = p.status("pushing layers").Duration()
	if s.Start.IsZero() || s.End.IsZero() || s.End.Before(s.Start) {
		return span{}, parts
	}
	return s, parts
}

// exportShare is the export's part of a build's wall time.
func exportShare(r *run) (float64, bool) {
	s, _ := exportSpan(r)
	if s.Duration() == 0 || !r.ok() || r.Wall == 0 {
		return 0, false
	}
	return s.Duration().Seconds() / r.Wall.Seconds(), true
}

// layerStepsTotal is the summed duration of the layer steps that ran (not
// cached): what the copies and their NAR hash checks took, across steps
// running side by side.
func layerStepsTotal(r *run) time.Duration {
	var d time.Duration
	if !r.ok() {
		return 0
	}
	for _, v := range r.Prog.match(`^\[nix\] layer `) {
		if !v.Cached {
			d += span{v.Started, v.Completed}.Duration()
		}
	}
	return d
}

// exportRun is the W1 cold build with the median export span over the
// rounds.
func (b *bench) exportRun(tl tool) *run {
	var rs []*run
	for _, r := range b.series["cold"][tl] {
		if s, _ := exportSpan(r); s.Duration() > 0 {
			rs = append(rs, r)
		}
	}
	if len(rs) == 0 {
		return nil
	}
	sort.Slice(rs, func(i, j int) bool {
		si, _ := exportSpan(rs[i])
		sj, _ := exportSpan(rs[j])
		return si.Duration() < sj.Duration()
	})
	return rs[(len(rs)-1)/2]
}

// frontendGap is how long the frontend took between the end of the last
// build step (the closure built and described) and the first step of the
// export starting: reading the builds' results, planning layers,
// generating and sending their LLB, and BuildKit loading it.
func frontendGap(r *run) time.Duration {
	if !r.ok() {
		return 0
	}
	builds := spanOf(r.Prog.match(`^\[nix [^\]]*\] build `))
	export := spanOf(r.Prog.match(nfExportSteps))
	if builds.End.IsZero() || export.Start.IsZero() {
		return 0
	}
	return export.Start.Sub(builds.End)
}

func (b *bench) ideal() time.Duration {
	return time.Duration(w3Derivations * float64(b.burnCPU) / float64(runtime.NumCPU()))
}

// union is every store path of the given closures.
func union(cs ...closure) closure {
	out := closure{}
	for _, c := range cs {
		for p, s := range c {
			out[p] = s
		}
	}
	return out
}

// changed returns the store paths of metric's image that none of the
// earlier metrics' images has: what its push had to upload.
func (b *bench) changed(metric string, earlier ...string) ([]string, bool) {
	c := b.clos[metric]
	if c == nil {
		return nil, false
	}
	var before []closure
	for _, e := range earlier {
		if b.clos[e] == nil {
			return nil, false
		}
		before = append(before, b.clos[e])
	}
	return c.minus(union(before...)), true
}

// blobSize is the size of a blob in the registry's storage.
func (b *bench) blobSize(r *run, manifest bool) int64 {
	if manifest {
		if fi, err := os.Stat(b.blobPath(r.Image.Digest)); err == nil {
			return fi.Size()
		}
		return 0
	}
	return r.Image.Manifest.Config.Size
}

// pushIdeal is the least a push of r's image could upload: the changed
// paths, each as a gzip layer of its own (see closure), and the image's
// new manifest and config.
type pushIdeal struct {
	Paths, Manifest, Config int64
	N                       int
}

func (p pushIdeal) total() int64 { return p.Paths + p.Manifest + p.Config }

func (p pushIdeal) String() string {
	return fmt.Sprintf("changed paths + manifest + config %s (%d paths %s, manifest %s, config %s)",
		human(p.total()), p.N, human(p.Paths), human(p.Manifest), human(p.Config))
}

func (b *bench) pushIdeal(r *run, metric string, earlier ...string) (pushIdeal, bool) {
	ch, ok := b.changed(metric, earlier...)
	if !ok || !r.ok() {
		return pushIdeal{}, false
	}
	return pushIdeal{Paths: b.clos[metric].total(ch), Manifest: b.blobSize(r, true), Config: b.blobSize(r, false), N: len(ch)}, true
}

// pushRow is a bytes-pushed row measured against the push's ideal.
func (b *bench) pushRow(name string, m map[tool]*run, target float64, metric string, earlier ...string) row {
	r := row{Metric: name, NF: bytesOr(m[nf], (*run).pushed), Target: "—", Met: "—"}
	if target > 0 {
		r.Target = fmt.Sprintf("≤ %.1f× ideal", target)
	}
	id, ok := b.pushIdeal(m[nf], metric, earlier...)
	if !ok {
		r.Against = "ideal: not measured"
		return r
	}
	r.Against = "ideal: " + id.String()
	nfr := float64(m[nf].pushed()) / float64(id.total())
	r.Ratio = ratio(float64(m[nf].pushed()), float64(id.total()))
	if target > 0 {
		r.Met = atMost(nfr, target)
	}
	notes := []string{fmt.Sprintf("nf's new layers alone %s, %s the changed paths", human(m[nf].NewLayerBytes), ratio(float64(m[nf].NewLayerBytes), float64(id.Paths)))}
	if x := m[baseline]; x.ok() {
		notes = append([]string{fmt.Sprintf("baseline %s, %s ideal", human(x.pushed()), ratio(float64(x.pushed()), float64(id.total())))}, notes...)
	}
	r.Notes = strings.Join(notes, "; ")
	return r
}

func (b *bench) rows() []row {
	var rows []row
	add := func(r row) { rows = append(rows, r) }
	vsBase := func(m map[tool]*run, value func(*run) (string, float64)) (string, string, string) {
		var nfs, bs, rt string = failed, "baseline: failed", ""
		var nv, bv float64
		if m[nf].ok() {
			nfs, nv = value(m[nf])
		}
		if m[baseline].ok() {
			var s string
			s, bv = value(m[baseline])
			bs = "baseline " + s
		}
		if bothOK(m) {
			rt = ratio(nv, bv)
		}
		return nfs, bs, rt
	}
	wallOf := func(x *run) (string, float64) { return secs(x.Wall), x.Wall.Seconds() }
	pushedOf := func(x *run) (string, float64) { return human(x.pushed()), float64(x.pushed()) }
	// The baseline copies the closure twice: cp -a in its RUN step, and
	// COPY --from=build into the image.
	copiedOf := func(x *run) (string, float64) {
		if x.Tool == baseline {
			return fmt.Sprintf("%s (cp -a and COPY --from, %s each)", human(2*x.Copied), human(x.Copied)), float64(2 * x.Copied)
		}
		return fmt.Sprintf("%s (%d layer steps)", human(x.Copied), x.CopySteps), float64(x.Copied)
	}
	diskOf := func(x *run) (string, float64) {
		g, ok := x.diskGrowth()
		if !ok {
			return "not measured", 0
		}
		return human(g), float64(g)
	}

	// 1.
	size := "~300 MB"
	if c := b.clos["cold"]; c != nil {
		size = human(c.raw())
	}
	r := row{Metric: fmt.Sprintf("1. W1 cold build + push (200 paths, %s)", size), Target: "—", Met: "—"}
	r.NF, r.Against, r.Ratio = vsBase(b.cold, wallOf)
	add(r)
	r = row{Metric: "1a. W1 cold build + push, the baseline's builders as Nix's build users (as in nixos/nix)", Target: "—", Met: "—",
		Notes: "nix-frontend always builds as build users; the baseline of row 1 builds as root"}
	r.NF, r.Against, r.Ratio = vsBase(map[tool]*run{nf: b.cold[nf], baseline: b.median("coldbu")[baseline]}, wallOf)
	add(r)
	r = row{Metric: "1b. W1 cold: builder disk growth (buildctl du)", Target: "—", Met: "—"}
	r.NF, r.Against, r.Ratio = vsBase(b.cold1, diskOf)
	if c := b.clos["cold"]; c != nil {
		raw := float64(c.raw())
		var ns []string
		for _, tl := range []tool{nf, baseline} {
			if g, ok := b.cold1[tl].diskGrowth(); ok {
				ns = append(ns, fmt.Sprintf("%s %s", short(tl), ratio(float64(g), raw)))
			}
		}
		r.Notes = fmt.Sprintf("closure %s of files: %s", human(c.raw()), strings.Join(ns, ", "))
	}
	add(r)

	// 2.
	built := func(x *run) (string, float64) {
		return fmt.Sprintf("%s, %d built", secs(x.Wall), len(x.Built)), x.Wall.Seconds()
	}
	r = row{Metric: "2. W1 no-op rebuild: time, derivations built", Target: "≤ 2× baseline, 0 built", Met: "—"}
	r.NF, r.Against, r.Ratio = vsBase(b.noop, built)
	if bothOK(b.noop) {
		builtAny := 0
		for _, x := range b.series["noop"][nf] {
			if x.ok() {
				builtAny += len(x.Built)
			}
		}
		r.Met = atMost(b.noop[nf].Wall.Seconds()/b.noop[baseline].Wall.Seconds(), 2)
		if builtAny > 0 {
			r.Met = fmt.Sprintf("**no**, %d built", builtAny)
		}
	}
	add(r)

	// 3.
	r = row{Metric: "3a. W1 leaf change: rebuild time", Target: "—", Met: "—"}
	r.NF, r.Against, r.Ratio = vsBase(b.leaf, built)
	add(r)
	add(b.pushRow(fmt.Sprintf("3b. W1 leaf change (%d KiB path%s): bytes pushed", leafKiB, b.layerOf("leaf", "leaf")), b.leaf1, 1.1, "leaf", "cold"))
	leafm := b.first("leafm")
	add(b.pushRow(fmt.Sprintf("3c. W1 1 MiB leaf change (%s, %s%s): bytes pushed", b.oneMiB.Name, human(int64(b.oneMiB.KiB)<<10), b.layerOf("leafm", b.oneMiB.Name)), leafm, 1.1, "leafm", "cold", "leaf", "w2"))

	// 4.
	r = row{Metric: "4. W2 second image sharing 198 of 200 paths: bytes pushed", NF: bytesOr(b.w21[nf], (*run).pushed), Target: "≤ 5% of shared part", Met: "—"}
	if shared := b.sharedSize(); shared > 0 && b.w21[nf].ok() {
		r.Against = "shared part " + human(shared)
		r.Ratio = pct(float64(b.w21[nf].pushed()), float64(shared))
		r.Met = atMost(float64(b.w21[nf].pushed())/float64(shared), 0.05)
		if x := b.w21[baseline]; x.ok() {
			r.Notes = fmt.Sprintf("baseline %s, %s", human(x.pushed()), pct(float64(x.pushed()), float64(shared)))
		}
	}
	add(r)

	// 5.
	r = row{Metric: "5. W3 eight independent ~2 s CPU derivations: cold build wall time", NF: wall(b.w3[nf]), Target: "≤ 1.2× ideal", Met: "—"}
	if id := b.ideal(); id > 0 {
		r.Against = fmt.Sprintf("ideal %s (8 × %.2f s CPU / %d cores)", secs(id), b.burnCPU.Seconds(), runtime.NumCPU())
		if b.w3[nf].ok() {
			r.Ratio = ratio(b.w3[nf].Wall.Seconds(), id.Seconds())
			r.Met = atMost(b.w3[nf].Wall.Seconds()/id.Seconds(), 1.2)
		}
		var notes []string
		if bothOK(b.w3) {
			notes = append(notes, fmt.Sprintf("baseline %s, %s ideal; nf/baseline %s", wall(b.w3[baseline]),
				ratio(b.w3[baseline].Wall.Seconds(), id.Seconds()), ratio(b.w3[nf].Wall.Seconds(), b.w3[baseline].Wall.Seconds())))
		}
		if a := b.burnAtOnce; a > 0 && b.w3[nf].ok() {
			notes = append(notes, fmt.Sprintf("the eight loops run at once outside a build take %s (%s ideal): nf %s that", secs(a),
				ratio(a.Seconds(), id.Seconds()), ratio(b.w3[nf].Wall.Seconds(), a.Seconds())))
		}
		r.Notes = strings.Join(notes, "; ")
	}
	add(r)

	// 6.
	r = row{Metric: "6. W1 cold export (closure → compressed layers, before push)", Target: "—", Met: "—", NF: failed}
	nfx, _ := exportSpan(b.exportRun(nf))
	bx, _ := exportSpan(b.exportRun(baseline))
	if nfx.Duration() > 0 {
		r.NF = secs(nfx.Duration())
	}
	if b.refErr == nil && b.ref.ParGzip > 0 {
		r.Against = fmt.Sprintf("parallel gzip %s (Go's compress/gzip, a tar per store path, %d at once)", secs(b.ref.ParGzip), runtime.NumCPU())
		if nfx.Duration() > 0 {
			r.Ratio = ratio(nfx.Duration().Seconds(), b.ref.ParGzip.Seconds())
		}
		var ns []string
		if bx.Duration() > 0 {
			ns = append(ns, fmt.Sprintf("baseline %s, %s parallel gzip", secs(bx.Duration()), ratio(bx.Duration().Seconds(), b.ref.ParGzip.Seconds())))
		}
		ns = append(ns, fmt.Sprintf("tar | zstd -T0 -3 %s: nf %s, baseline %s", secs(b.ref.TarZstd),
			ratio(nfx.Duration().Seconds(), b.ref.TarZstd.Seconds()), ratio(bx.Duration().Seconds(), b.ref.TarZstd.Seconds())))
		r.Notes = strings.Join(ns, "; ")
	} else {
		r.Against = "reference: not measured"
	}
	add(r)
	r = row{Metric: "6b. W1 cold: cost of the layer steps' NAR hash check", Target: "—", Met: "—", NF: failed}
	if x := b.exportRun(nf); x.ok() && b.refErr == nil && b.narErr == nil && b.nar.Hash > 0 {
		total := layerStepsTotal(x)
		r.NF = fmt.Sprintf("%s of SHA-256 over %s of NAR (%.0f MB/s, one core)", fineSecs(b.nar.Hash), human(b.nar.NarBytes), float64(b.nar.NarBytes)/1e6/b.nar.Hash.Seconds())
		r.Against = fmt.Sprintf("the layer steps: %s summed over %d steps", secs(total), x.CopySteps)
		r.Ratio = fmt.Sprintf("%.2g%%", 100*b.nar.Hash.Seconds()/total.Seconds())
		r.Notes = fmt.Sprintf("serialising the same NARs %s; the layer steps' span %s", fineSecs(b.nar.Dump), secs(spanOf(x.Prog.match(`^\[nix\] layer `)).Duration()))
	}
	add(r)

	// 7.
	r = row{Metric: fmt.Sprintf("7a. frontend peak RSS, %s-path closure", thousands(b.manyPaths)), Against: "limit 200 MB", Target: "≤ 200 MB", Met: "—", NF: failed}
	if m := b.many; m.ok() && m.FE.Found {
		r.NF = fmt.Sprintf("%.0f MB", float64(m.FE.PeakKB)*1024/1e6)
		r.Ratio = ratio(float64(m.FE.PeakKB)*1024, 200e6)
		r.Met = atMost(float64(m.FE.PeakKB)*1024, 200e6)
		r.Notes = fmt.Sprintf("frontend CPU %s over the build", secs(m.FE.CPU))
	} else if m.ok() {
		r.NF = "not seen"
	}
	add(r)
	r = row{Metric: fmt.Sprintf("7b. frontend LLB turnaround, %s-path closure", thousands(b.manyPaths)), Target: "—", Met: "—", NF: failed}
	if g := frontendGap(b.many); g > 0 {
		r.NF = fmt.Sprintf("%.2f s", g.Seconds())
		r.Against = "the build's wall time " + secs(b.many.Wall)
		r.Ratio = pct(g.Seconds(), b.many.Wall.Seconds())
		r.Notes = "last build step done → first export step started"
	}
	add(r)

	// 8. W4.
	w4cold, w4leaf, w4leaf1 := b.first("w4cold"), b.median("w4leaf"), b.first("w4leaf")
	size = fmt.Sprintf("%s: 4 × %d MiB + 100 small", human(int64(4*b.w4BigMiB)<<20), b.w4BigMiB)
	if c := b.clos["w4cold"]; c != nil {
		size = fmt.Sprintf("%s of files: 4 × %d MiB + 100 small", human(c.raw()), b.w4BigMiB)
	}
	shares := func(m map[tool]*run) string {
		var ns []string
		for _, tl := range []tool{nf, baseline} {
			if s, ok := exportShare(m[tl]); ok {
				ns = append(ns, fmt.Sprintf("%s %.0f%%", short(tl), 100*s))
			}
		}
		return "export's share of the wall time: " + strings.Join(ns, ", ")
	}
	r = row{Metric: fmt.Sprintf("8a. W4 big closure (%s) cold build + push", size), Target: "—", Met: "—"}
	r.NF, r.Against, r.Ratio = vsBase(w4cold, wallOf)
	r.Notes = shares(w4cold)
	add(r)
	r = row{Metric: "8b. W4 cold: bytes the builder copied", Target: "—", Met: "—"}
	r.NF, r.Against, r.Ratio = vsBase(w4cold, copiedOf)
	add(r)
	r = row{Metric: "8c. W4 cold: builder disk growth", Target: "—", Met: "—"}
	r.NF, r.Against, r.Ratio = vsBase(w4cold, diskOf)
	if c := b.clos["w4cold"]; c != nil {
		var ns []string
		for _, tl := range []tool{nf, baseline} {
			if g, ok := w4cold[tl].diskGrowth(); ok {
				ns = append(ns, fmt.Sprintf("%s %s", short(tl), ratio(float64(g), float64(c.raw()))))
			}
		}
		r.Notes = fmt.Sprintf("against the closure's %s of files: %s", human(c.raw()), strings.Join(ns, ", "))
	}
	add(r)
	r = row{Metric: "8d. W4 cold: bytes pushed", Target: "—", Met: "—"}
	r.NF, r.Against, r.Ratio = vsBase(w4cold, pushedOf)
	add(r)

	r = row{Metric: "8e. W4 leaf change: rebuild + push time", NF: wall(w4leaf[nf]), Target: "≤ 1.5× small closure", Met: "—"}
	small := b.median("w4sleaf")[nf]
	if small.ok() {
		sc := "the same change on the small closure"
		if c := b.clos["w4scold"]; c != nil {
			sc = fmt.Sprintf("the same change on a %s closure", human(c.raw()))
		}
		r.Against = fmt.Sprintf("%s: %s", sc, wall(small))
		if w4leaf[nf].ok() {
			r.Ratio = ratio(w4leaf[nf].Wall.Seconds(), small.Wall.Seconds())
			r.Met = atMost(w4leaf[nf].Wall.Seconds()/small.Wall.Seconds(), 1.5)
		}
	} else {
		r.Against = "small closure: failed"
	}
	var ns []string
	if w4leaf[baseline].ok() && w4leaf[nf].ok() {
		ns = append(ns, fmt.Sprintf("baseline %s (nf/baseline %s)", wall(w4leaf[baseline]), ratio(w4leaf[nf].Wall.Seconds(), w4leaf[baseline].Wall.Seconds())))
	}
	r.Notes = strings.Join(append(ns, shares(w4leaf)), "; ")
	add(r)
	w4changed, haveChanged := b.changed("w4leaf", "w4cold")
	var changedRaw int64
	if haveChanged {
		changedRaw = sumRaw(b.clos["w4leaf"], w4changed)
	}
	r = row{Metric: "8f. W4 leaf change: bytes the builder copied", Target: "—", Met: "—"}
	r.NF, r.Against, r.Ratio = vsBase(w4leaf1, copiedOf)
	if haveChanged {
		r.Notes = fmt.Sprintf("changed paths %s of files (%d paths)", human(changedRaw), len(w4changed))
	}
	add(r)
	r = row{Metric: "8g. W4 leaf change: builder disk growth", NF: failed, Target: "≤ changed + 16 MiB", Met: "—"}
	if g, ok := w4leaf1[nf].diskGrowth(); ok {
		r.NF = human(g)
		if haveChanged {
			limit := changedRaw + 16<<20
			r.Against = fmt.Sprintf("changed paths' %s + 16 MiB = %s", human(changedRaw), human(limit))
			r.Ratio = ratio(float64(g), float64(limit))
			r.Met = atMost(float64(g), float64(limit))
		}
	}
	if g, ok := w4leaf1[baseline].diskGrowth(); ok {
		r.Notes = "baseline " + human(g)
	}
	add(r)
	add(b.pushRow("8h. W4 leaf change: bytes pushed", w4leaf1, 0, "w4leaf", "w4cold"))

	// 9. W5.
	add(b.pushRow(fmt.Sprintf("9. W5 churn: %d of W1's 200 paths change at once: bytes pushed", len(b.churned)+1), b.first("churn"), 1.1, "churn", "cold", "leaf", "w2", "leafm"))

	// 10. W6.
	r = row{Metric: fmt.Sprintf("10. W6 %d images, each %d paths of %d: registry bytes", b.w6.images, b.w6.pick, b.w6.universe), NF: failed, Target: "ideal ÷ actual ≥ 0.9", Met: "—"}
	if actual, id, ok := b.w6Totals(nf); ok {
		r.NF = human(actual)
		r.Against = fmt.Sprintf("ideal: unique paths + manifests and configs %s (%d paths %s)", human(id.total()), id.N, human(id.Paths))
		r.Ratio = fmt.Sprintf("%.2f (ideal ÷ actual)", float64(id.total())/float64(actual))
		r.Met = atLeast(float64(id.total())/float64(actual), 0.9)
		if bActual, bID, ok := b.w6Totals(baseline); ok {
			r.Notes = fmt.Sprintf("baseline %s, ideal ÷ actual %.2f", human(bActual), float64(bID.total())/float64(bActual))
		}
	}
	add(r)
	return rows
}

// w6Totals is what W6's images added to the registry, by tool, and the ideal: the
// unique store paths of all eight (from nix-frontend's images; the
// baseline's have the same contents), each compressed on its own, and the
// tool's eight manifests and configs.
func (b *bench) w6Totals(tl tool) (int64, pushIdeal, bool) {
	rs := b.series["w6"][tl]
	if len(rs) != b.w6.images || len(b.w6Clos) != b.w6.images {
		return 0, pushIdeal{}, false
	}
	var actual int64
	u := union(b.w6Clos...)
	id := pushIdeal{Paths: u.total(keys(u)), N: len(u)}
	for _, r := range rs {
		if !r.ok() {
			return 0, pushIdeal{}, false
		}
		actual += r.pushed()
		id.Manifest += b.blobSize(r, true)
		id.Config += b.blobSize(r, false)
	}
	return actual, id, true
}

// layerOf says whether the path named name has a layer of its own in
// metric's image: ", own layer", ", in a group" or "" when unknown.
func (b *bench) layerOf(metric, name string) string {
	for p, s := range b.clos[metric] {
		if storeName(p) == name {
			if s.Own {
				return ", own layer"
			}
			return ", in a group"
		}
	}
	return ""
}

func thousands(n int) string {
	if n >= 1000 {
		return fmt.Sprintf("%d,%03d", n/1000, n%1000)
	}
	return fmt.Sprint(n)
}

// sharedSize is the compressed size of the paths W2's image shares with
// W1's.
func (b *bench) sharedSize() int64 {
	a, w2 := b.clos["cold"], b.clos["w2"]
	if a == nil || w2 == nil {
		return 0
	}
	return a.total(w2.and(a))
}

func (r row) cells() []string {
	return []string{r.Metric, r.NF, r.Against, r.Ratio, r.Target, r.Met, r.Notes}
}

// plainTable is the results table as text, for the terminal.
func plainTable(rows []row) string {
	var sb strings.Builder
	for _, r := range rows {
		c := r.cells()
		fmt.Fprintf(&sb, "%s\n    nix-frontend: %s\n    compared with: %s\n    ratio: %s   target: %s   met: %s\n",
			c[0], c[1], dash(c[2]), dash(c[3]), dash(c[4]), strings.ReplaceAll(dash(c[5]), "*", ""))
		if r.Notes != "" {
			fmt.Fprintf(&sb, "    notes: %s\n", r.Notes)
		}
	}
	return sb.String()
}

func dash(s string) string {
	if s == "" {
		return "—"
	}
	return s
}

// markdownTable is the results table in Markdown.
func markdownTable(rows []row) string {
	var sb strings.Builder
	sb.WriteString("| Metric | nix-frontend | compared with | ratio | target | met? | notes |\n")
	sb.WriteString("|---|---|---|---|---|---|---|\n")
	for _, r := range rows {
		cells := r.cells()
		out := make([]any, len(cells))
		for i, c := range cells {
			out[i] = strings.ReplaceAll(dash(c), "|", `\|`) // a pipe inside a cell ends it
		}
		fmt.Fprintf(&sb, "| %s | %s | %s | %s | %s | %s | %s |\n", out...)
	}
	return sb.String()
}

// bars are the chart's: the table's ratios, lower is better.
func (b *bench) bars() []bar {
	var out []bar
	addRatio := func(label string, m map[tool]*run, target float64) {
		if bothOK(m) {
			out = append(out, bar{Label: label, Value: m[nf].Wall.Seconds() / m[baseline].Wall.Seconds(), Tool: nf, Target: target})
		}
	}
	addRatio("W1 cold build+push, nf/baseline", b.cold, 0)
	addRatio("W1 no-op rebuild, nf/baseline", b.noop, 2)
	addRatio("W1 leaf change rebuild, nf/baseline", b.leaf, 0)
	pushBars := func(label string, m map[tool]*run, target float64, metric string, earlier ...string) {
		id, ok := b.pushIdeal(m[nf], metric, earlier...)
		if !ok {
			return
		}
		for _, tl := range []tool{nf, baseline} {
			if m[tl].ok() {
				out = append(out, bar{Label: label + ", " + short(tl), Value: float64(m[tl].pushed()) / float64(id.total()), Tool: tl, Target: target})
			}
		}
	}
	pushBars("W1 leaf change: pushed / ideal", b.leaf1, 1.1, "leaf", "cold")
	pushBars("W1 1 MiB leaf change: pushed / ideal", b.first("leafm"), 1.1, "leafm", "cold", "leaf", "w2")
	if s := b.sharedSize(); s > 0 {
		for _, tl := range []tool{nf, baseline} {
			if b.w21[tl].ok() {
				out = append(out, bar{Label: "W2 pushed / shared part, " + short(tl), Value: float64(b.w21[tl].pushed()) / float64(s), Tool: tl, Target: 0.05})
			}
		}
	}
	if id := b.ideal(); id > 0 {
		for _, tl := range []tool{nf, baseline} {
			if b.w3[tl].ok() {
				out = append(out, bar{Label: "W3 wall time / ideal, " + short(tl), Value: b.w3[tl].Wall.Seconds() / id.Seconds(), Tool: tl, Target: 1.2})
			}
		}
	}
	if b.refErr == nil && b.ref.ParGzip > 0 {
		for _, tl := range []tool{nf, baseline} {
			if s, _ := exportSpan(b.exportRun(tl)); s.Duration() > 0 {
				out = append(out, bar{Label: "W1 cold export / parallel gzip, " + short(tl), Value: s.Duration().Seconds() / b.ref.ParGzip.Seconds(), Tool: tl})
			}
		}
	}
	if m := b.many; m.ok() && m.FE.Found {
		out = append(out, bar{Label: fmt.Sprintf("frontend RSS %s paths / 200 MB", thousands(b.manyPaths)), Value: float64(m.FE.PeakKB) * 1024 / 200e6, Tool: nf, Target: 1})
	}
	addRatio("W4 cold build+push, nf/baseline", b.first("w4cold"), 0)
	if big, small := b.median("w4leaf")[nf], b.median("w4sleaf")[nf]; big.ok() && small.ok() {
		out = append(out, bar{Label: "W4 leaf change time / same on 20 MB closure, nf", Value: big.Wall.Seconds() / small.Wall.Seconds(), Tool: nf, Target: 1.5})
	}
	if ch, ok := b.changed("w4leaf", "w4cold"); ok {
		limit := float64(sumRaw(b.clos["w4leaf"], ch) + 16<<20)
		for _, tl := range []tool{nf, baseline} {
			if g, ok := b.first("w4leaf")[tl].diskGrowth(); ok {
				out = append(out, bar{Label: "W4 leaf change disk growth / (changed + 16 MiB), " + short(tl), Value: float64(g) / limit, Tool: tl, Target: 1})
			}
		}
	}
	pushBars("W4 leaf change: pushed / ideal", b.first("w4leaf"), 0, "w4leaf", "w4cold")
	pushBars("W5 churn: pushed / ideal", b.first("churn"), 1.1, "churn", "cold", "leaf", "w2", "leafm")
	for _, tl := range []tool{nf, baseline} {
		if actual, id, ok := b.w6Totals(tl); ok {
			out = append(out, bar{Label: "W6 registry bytes / ideal, " + short(tl), Value: float64(actual) / float64(id.total()), Tool: tl, Target: 1 / 0.9})
		}
	}
	return out
}
