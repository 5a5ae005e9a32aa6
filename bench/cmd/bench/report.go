package main

import (
	"fmt"
	"runtime"
	"sort"
	"strings"
	"time"
)

// row is one line of the results table.
type row struct {
	Metric   string
	NF, Base string
	Ratio    string // nix-frontend / baseline
	Ref      string // what the target is measured against, and both tools against it
	Target   string
	Met      string
}

func secs(d time.Duration) string { return fmt.Sprintf("%.1f s", d.Seconds()) }

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

func yesNo(ok bool) string {
	if ok {
		return "yes"
	}
	return "**no**"
}

const failed = "failed"

func wall(r *run) string {
	if !r.ok() {
		return failed
	}
	return secs(r.Wall)
}

func bothOK(m map[tool]*run) bool { return m[nf].ok() && m[baseline].ok() }

// exportSpan is the cold export of W1 for a tool: from the moment the
// closure starts being copied out of the /nix cache to the end of the
// image exporter's work before it pushes (layers compressed, manifest and
// config written). nix-frontend: the "[nix …] export closure" step, the
// "[nix] layer …" copies, the merge and "exporting layers/manifest/config".
// Baseline: the `cp -a` in its RUN step (timed by the lines it prints),
// the COPY --from=build into scratch and the same exporter steps.
func exportSpan(r *run) (span, map[string]time.Duration) {
	parts := map[string]time.Duration{}
	if !r.ok() {
		return span{}, parts
	}
	p := r.Prog
	var s span
	if r.Tool == nf {
		ex := spanOf(p.match(`^\[nix [^\]]*\] export closure$`))
		s.Start = ex.Start
		parts["copy closure out of /nix (export step)"] = ex.Duration()
		parts["layer copies ([nix] layer …, span)"] = spanOf(p.match(`^\[nix\] layer `)).Duration()
	} else {
		s.Start = p.mark("copy", "start")
		parts["cp -a closure out of /nix (in RUN)"] = p.mark("copy", "end").Sub(s.Start)
		parts["COPY --from=build /out /"] = spanOf(p.match(`COPY --from=build`)).Duration()
	}
	layers := p.status("exporting layers")
	parts["compress layers (exporting layers)"] = layers.Duration()
	s.End = latest(p.status("exporting config").End, layers.End)
	parts["push (pushing layers)"] = p.status("pushing layers").Duration()
	if s.Start.IsZero() || s.End.IsZero() {
		return span{}, parts
	}
	return s, parts
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

// frontendGap is how long the frontend took between the export step's end
// (its manifest of store paths ready) and the first layer step starting:
// reading the manifest, planning layers, generating and sending their LLB,
// and BuildKit loading it.
func frontendGap(r *run) time.Duration {
	if !r.ok() {
		return 0
	}
	ex := spanOf(r.Prog.match(`^\[nix [^\]]*\] export closure$`))
	layers := spanOf(r.Prog.match(`^\[nix\] layer `))
	if ex.End.IsZero() || layers.Start.IsZero() {
		return 0
	}
	return layers.Start.Sub(ex.End)
}

func (b *bench) ideal() time.Duration {
	return time.Duration(8 * float64(b.burnCPU) / float64(runtime.NumCPU()))
}

func (b *bench) rows() []row {
	var rows []row
	add := func(r row) { rows = append(rows, r) }

	// 1.
	r := row{Metric: "1. W1 cold build + push (200 paths, ~300 MB)", NF: wall(b.cold[nf]), Base: wall(b.cold[baseline]), Target: "—", Met: "—"}
	if bothOK(b.cold) {
		r.Ratio = ratio(b.cold[nf].Wall.Seconds(), b.cold[baseline].Wall.Seconds())
	}
	add(r)

	// 2.
	built := func(x *run) string {
		if !x.ok() {
			return failed
		}
		return fmt.Sprintf("%s, %d built", secs(x.Wall), len(x.Built))
	}
	r = row{Metric: "2. W1 no-op rebuild: time, derivations built", NF: built(b.noop[nf]), Base: built(b.noop[baseline]), Target: "0 built", Met: "—"}
	if bothOK(b.noop) {
		r.Ratio = ratio(b.noop[nf].Wall.Seconds(), b.noop[baseline].Wall.Seconds())
	}
	if b.noop[nf].ok() {
		none := true
		for _, x := range b.series["noop"][nf] {
			none = none && x.ok() && len(x.Built) == 0
		}
		r.Met = yesNo(none)
	}
	add(r)

	// 3.
	r = row{Metric: "3a. W1 leaf change: rebuild time", NF: built(b.leaf[nf]), Base: built(b.leaf[baseline]), Target: "—", Met: "—"}
	if bothOK(b.leaf) {
		r.Ratio = ratio(b.leaf[nf].Wall.Seconds(), b.leaf[baseline].Wall.Seconds())
	}
	add(r)
	r = row{Metric: "3b. W1 leaf change: bytes pushed", Target: "≤ 1.1× changed paths", Met: "—"}
	if x := b.leaf1[nf]; x.ok() {
		r.NF = human(x.pushed())
	} else {
		r.NF = failed
	}
	if x := b.leaf1[baseline]; x.ok() {
		r.Base = human(x.pushed())
	} else {
		r.Base = failed
	}
	if bothOK(b.leaf) {
		r.Ratio = ratio(float64(b.leaf1[nf].pushed()), float64(b.leaf1[baseline].pushed()))
	}
	if changed := b.changedSize(); changed > 0 {
		r.Ref = fmt.Sprintf("changed paths %s: nf %s (layers alone %s), baseline %s", human(changed),
			ratio(float64(b.leaf1[nf].pushed()), float64(changed)), ratio(float64(b.leaf1[nf].NewLayerBytes), float64(changed)),
			ratio(float64(b.leaf1[baseline].pushed()), float64(changed)))
		if b.leaf1[nf].ok() {
			r.Met = yesNo(float64(b.leaf1[nf].pushed()) <= 1.1*float64(changed))
		}
	}
	add(r)

	// 4.
	r = row{Metric: "4. W2 second image sharing 198 of 200 paths: bytes pushed", Target: "≤ 5% of shared part", Met: "—"}
	if x := b.w21[nf]; x.ok() {
		r.NF = human(x.pushed())
	} else {
		r.NF = failed
	}
	if x := b.w21[baseline]; x.ok() {
		r.Base = human(x.pushed())
	} else {
		r.Base = failed
	}
	if bothOK(b.w2) {
		r.Ratio = ratio(float64(b.w21[nf].pushed()), float64(b.w21[baseline].pushed()))
	}
	if shared := b.sharedSize(); shared > 0 {
		r.Ref = fmt.Sprintf("shared part %s: nf %s, baseline %s", human(shared),
			pct(float64(b.w21[nf].pushed()), float64(shared)), pct(float64(b.w21[baseline].pushed()), float64(shared)))
		if b.w21[nf].ok() {
			r.Met = yesNo(float64(b.w21[nf].pushed()) <= 0.05*float64(shared))
		}
	}
	add(r)

	// 5.
	r = row{Metric: "5. W3 eight independent ~2 s CPU derivations: cold build wall time", NF: wall(b.w3[nf]), Base: wall(b.w3[baseline]), Target: "—", Met: "—"}
	if bothOK(b.w3) {
		r.Ratio = ratio(b.w3[nf].Wall.Seconds(), b.w3[baseline].Wall.Seconds())
	}
	if id := b.ideal(); id > 0 {
		r.Ref = fmt.Sprintf("ideal %s (8 × %.2f s CPU / %d cores): nf %s, baseline %s", secs(id), b.burnCPU.Seconds(), runtime.NumCPU(),
			ratio(b.w3[nf].Wall.Seconds(), id.Seconds()), ratio(b.w3[baseline].Wall.Seconds(), id.Seconds()))
	}
	add(r)

	// 6.
	r = row{Metric: "6. W1 cold export (closure → compressed layers, before push)", Target: "—", Met: "—"}
	nfx, _ := exportSpan(b.exportRun(nf))
	bx, _ := exportSpan(b.exportRun(baseline))
	r.NF, r.Base = failed, failed
	if nfx.Duration() > 0 {
		r.NF = secs(nfx.Duration())
	}
	if bx.Duration() > 0 {
		r.Base = secs(bx.Duration())
	}
	if nfx.Duration() > 0 && bx.Duration() > 0 {
		r.Ratio = ratio(nfx.Duration().Seconds(), bx.Duration().Seconds())
	}
	if b.refErr == nil && b.ref.TarZstd > 0 {
		r.Ref = fmt.Sprintf("tar | zstd -T0 -3 %s: nf %s, baseline %s", secs(b.ref.TarZstd),
			ratio(nfx.Duration().Seconds(), b.ref.TarZstd.Seconds()), ratio(bx.Duration().Seconds(), b.ref.TarZstd.Seconds()))
	}
	add(r)

	// 7.
	r = row{Metric: fmt.Sprintf("7a. frontend peak RSS, %s-path closure", thousands(b.manyPaths)), Base: "n/a", Ratio: "—", Target: "≤ 200 MB", Met: "—"}
	r.NF = failed
	if m := b.many; m.ok() && m.FE.Found {
		r.NF = fmt.Sprintf("%.0f MB", float64(m.FE.PeakKB)*1024/1e6)
		r.Met = yesNo(float64(m.FE.PeakKB)*1024 <= 200e6)
		r.Ref = fmt.Sprintf("frontend CPU %s over the build", secs(m.FE.CPU))
	} else if m.ok() {
		r.NF = "not seen"
	}
	add(r)
	r = row{Metric: fmt.Sprintf("7b. frontend LLB turnaround, %s-path closure", thousands(b.manyPaths)), Base: "n/a", Ratio: "—", Target: "—", Met: "—", NF: failed}
	if g := frontendGap(b.many); g > 0 {
		r.NF = fmt.Sprintf("%.2f s", g.Seconds())
		r.Ref = "export step done → first layer step started"
	}
	add(r)
	return rows
}

func thousands(n int) string {
	if n >= 1000 {
		return fmt.Sprintf("%d,%03d", n/1000, n%1000)
	}
	return fmt.Sprint(n)
}

// changedSize is the compressed size of the store paths the leaf change
// made new (the leaf and the root that refers to it), each as a layer of
// its own.
func (b *bench) changedSize() int64 {
	if b.closA == nil || b.closLeaf == nil {
		return 0
	}
	return b.closLeaf.total(b.closLeaf.minus(b.closA))
}

// sharedSize is the compressed size of the paths W2's image shares with
// W1's.
func (b *bench) sharedSize() int64 {
	if b.closA == nil || b.closB == nil {
		return 0
	}
	return b.closA.total(b.closB.and(b.closA))
}

func plainTable(rows []row) string {
	head := row{"metric", "nix-frontend", "baseline", "nf/baseline", "reference", "target", "met?"}
	all := append([]row{head}, rows...)
	cells := func(r row) []string {
		return []string{r.Metric, r.NF, r.Base, r.Ratio, r.Target, strings.ReplaceAll(r.Met, "*", ""), r.Ref}
	}
	widths := make([]int, 7)
	for _, r := range all {
		for i, c := range cells(r) {
			widths[i] = max(widths[i], len([]rune(c)))
		}
	}
	var sb strings.Builder
	for i, r := range all {
		for j, c := range cells(r) {
			if j == 6 {
				sb.WriteString(c)
				continue
			}
			sb.WriteString(c + strings.Repeat(" ", widths[j]-len([]rune(c))+2))
		}
		sb.WriteString("\n")
		if i == 0 {
			sb.WriteString(strings.Repeat("-", widths[0]+widths[1]+widths[2]+widths[3]+widths[4]+widths[5]+12+9) + "\n")
		}
	}
	return sb.String()
}

// markdownTable is the results table in Markdown.
func markdownTable(rows []row) string {
	var sb strings.Builder
	sb.WriteString("| Metric | nix-frontend | baseline | nf / baseline | target | met? | measured against |\n")
	sb.WriteString("|---|---|---|---|---|---|---|\n")
	for _, r := range rows {
		ref := r.Ref
		if ref == "" {
			ref = "—"
		}
		ratio := r.Ratio
		if ratio == "" {
			ratio = "—"
		}
		cells := []any{r.Metric, r.NF, r.Base, ratio, r.Target, r.Met, ref}
		for i, c := range cells {
			cells[i] = strings.ReplaceAll(c.(string), "|", `\|`) // a pipe inside a cell ends it
		}
		fmt.Fprintf(&sb, "| %s | %s | %s | %s | %s | %s | %s |\n", cells...)
	}
	return sb.String()
}

// bars are the chart's: every ratio of the table, lower is better.
func (b *bench) bars() []bar {
	var out []bar
	addRatio := func(label string, m map[tool]*run) {
		if bothOK(m) {
			out = append(out, bar{Label: label, Value: m[nf].Wall.Seconds() / m[baseline].Wall.Seconds(), Tool: nf})
		}
	}
	addRatio("W1 cold build+push, nf/baseline", b.cold)
	addRatio("W1 no-op rebuild, nf/baseline", b.noop)
	addRatio("leaf change rebuild, nf/baseline", b.leaf)
	if c := b.changedSize(); c > 0 {
		for _, tl := range []tool{nf, baseline} {
			if b.leaf1[tl].ok() {
				out = append(out, bar{Label: "leaf change bytes / changed paths, " + short(tl), Value: float64(b.leaf1[tl].pushed()) / float64(c), Tool: tl, Target: 1.1})
			}
		}
	}
	if s := b.sharedSize(); s > 0 {
		for _, tl := range []tool{nf, baseline} {
			if b.w21[tl].ok() {
				out = append(out, bar{Label: "W2 bytes / shared part, " + short(tl), Value: float64(b.w21[tl].pushed()) / float64(s), Tool: tl, Target: 0.05})
			}
		}
	}
	if id := b.ideal(); id > 0 {
		for _, tl := range []tool{nf, baseline} {
			if b.w3[tl].ok() {
				out = append(out, bar{Label: "W3 wall time / ideal, " + short(tl), Value: b.w3[tl].Wall.Seconds() / id.Seconds(), Tool: tl})
			}
		}
	}
	if b.refErr == nil && b.ref.TarZstd > 0 {
		for _, tl := range []tool{nf, baseline} {
			if s, _ := exportSpan(b.exportRun(tl)); s.Duration() > 0 {
				out = append(out, bar{Label: "cold export / tar|zstd, " + short(tl), Value: s.Duration().Seconds() / b.ref.TarZstd.Seconds(), Tool: tl})
			}
		}
	}
	if m := b.many; m.ok() && m.FE.Found {
		out = append(out, bar{Label: fmt.Sprintf("frontend RSS %d paths / 200 MB", b.manyPaths), Value: float64(m.FE.PeakKB) * 1024 / 200e6, Tool: nf, Target: 1})
	}
	return out
}
