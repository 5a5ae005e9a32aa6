// Command bench measures nix-frontend against the widely used recipe it
// replaces — a multi-stage Dockerfile that runs nix-build in a Nix image
// with /nix in a cache mount and copies the closure into an image FROM
// scratch (bench/baseline.Dockerfile) — on the same buildkitd, in one run,
// and writes bench/results.md and bench/results.png. Run it with bench/run
// after hack/setup; it is not a test and `go test` never runs it.
package main

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nix-frontend/nix-frontend/integration/harness"
)

type bench struct {
	env *harness.Env
	// ownDaemon says env's buildkitd is the benchmark's own, started for
	// the run: its cache, and so its disk usage, is the benchmark's alone.
	ownDaemon bool
	t         *benchTB
	runID     string
	nixConfig string
	baseline  string // bench/baseline.Dockerfile
	quick     bool
	scale     float64
	manyPaths int
	w4BigMiB  int // size of each of W4's four big paths
	w6        w6Shape
	burn      time.Duration // CPU one W3 derivation is calibrated to take
	logDir    string
	activity  *activity

	runs   []*run
	rounds int
	// Every build, by metric and tool, in the order they ran: a metric
	// measured in rounds has one build per round.
	series map[string]map[tool][]*run
	// The measurements, by workload and tool: the builds with the median
	// wall time of the rounds, and round 1's builds for bytes.
	cold, noop, leaf, w2, w3 map[tool]*run
	cold1, leaf1, w21        map[tool]*run
	many                     *run
	burnIters                int
	burnCPU                  time.Duration
	// burnAtOnce is the wall time of W3's eight loops run at once outside
	// any build: what the machine's cores can do.
	burnAtOnce time.Duration
	// The package W1's 1 MiB leaf change changes, and those W5 changes.
	oneMiB  pkg
	churned []string

	// Store paths with their sizes, read from the pushed nix-frontend
	// images (see closureOf), and what failed reading them.
	clos    map[string]closure
	closErr error
	layers  map[string][]*pathSize // closureOf's cache, by layer digest
	// The W6 images' closures, in image order.
	w6Clos []closure

	ref     reference
	refErr  error
	nar     narCost
	narErr  error
	notes   []string
	started time.Time
	elapsed time.Duration

	frontendImage, frontendDigest, commit, frontendCommit string
	loadBefore, loadAfter                                 string
	quietWaited                                           time.Duration
	quietTimedOut                                         bool
}

func logf(format string, a ...any) {
	fmt.Fprintf(os.Stderr, "%s bench: %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, a...))
}

func main() {
	testing.Init() // the harness asks testing.Short()
	frontendImage := flag.String("frontend-image", os.Getenv("NF_BENCH_FRONTEND_IMAGE"), "the nix-frontend image to measure (default: the harness's, 127.0.0.1:5000/nix-frontend:dev)")
	frontendCommit := flag.String("frontend-commit", os.Getenv("NF_BENCH_FRONTEND_COMMIT"), "the commit the frontend image was built from, for the results")
	outDir := flag.String("out", "", "where to write results.md and results.png (default: bench/ of the repository; a temporary directory with -quick)")
	rounds := flag.Int("rounds", 3, "how many times to measure W1-W3 (cold again each time) and W4's leaf change; times are the medians")
	quick := flag.Bool("quick", false, "a smoke run with small workloads and one round; its numbers mean nothing")
	logDir := flag.String("logs", "", "write every build's progress, with timings, into this directory")
	quietWait := flag.Duration("quiet-wait", 10*time.Minute, "how long to wait for other builds and tests on this machine to finish before measuring")
	shared := flag.Bool("shared-daemon", false, "build on hack/setup's buildkitd instead of a buildkitd of the benchmark's own (disk usage then counts whatever else that daemon does)")
	flag.Parse()
	if *frontendImage != "" {
		os.Setenv("NF_FRONTEND_IMAGE", *frontendImage)
	}

	work, err := os.MkdirTemp("", "nf-bench-")
	if err != nil {
		logf("%v", err)
		os.Exit(1)
	}
	b := &bench{
		t:              newTB("bench", work),
		runID:          time.Now().UTC().Format("20060102-150405"),
		nixConfig:      harness.OfflineNixConfig + "\nmax-jobs = auto",
		quick:          *quick,
		scale:          1,
		manyPaths:      2000,
		w4BigMiB:       400,
		w6:             w6Shape{images: 8, universe: 400, pick: 150},
		burn:           2 * time.Second,
		frontendCommit: *frontendCommit,
		logDir:         *logDir,
		rounds:         max(1, *rounds),
		clos:           map[string]closure{},
		layers:         map[string][]*pathSize{},
	}
	// exit stops the benchmark's buildkitd and removes the work directory,
	// which os.Exit would leave behind.
	exit := func(code int) {
		b.t.cleanup()
		os.RemoveAll(work)
		os.Exit(code)
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	go func() {
		s := <-sig
		logf("%v: stopping", s)
		exit(130)
	}()
	if b.logDir != "" {
		os.MkdirAll(b.logDir, 0o755)
	}
	if *quick {
		b.scale, b.manyPaths, b.burn, b.w4BigMiB = 0.1, 300, 500*time.Millisecond, 40
		// Half the images of a third of the size, under a smaller layer
		// budget so that grouping still applies.
		b.w6 = w6Shape{images: 4, universe: 160, pick: 60, budget: 40}
		b.rounds = 1
		flag.Visit(func(f *flag.Flag) {
			if f.Name == "rounds" {
				b.rounds = max(1, *rounds)
			}
		})
	}
	if err := try(func() { b.env = harness.Require(b.t) }); err != nil {
		logf("%v", err)
		exit(1)
	}
	b.frontendImage = b.env.FrontendImage
	if err := try(func() { b.frontendDigest = b.env.Inspect(b.t, b.frontendImage).Digest.String() }); err != nil {
		logf("%v", err)
		exit(1)
	}
	dt, err := os.ReadFile(filepath.Join(b.env.RepoRoot, "bench", "baseline.Dockerfile"))
	if err != nil {
		logf("%v", err)
		exit(1)
	}
	b.baseline = string(dt)
	if out, err := exec.Command("git", "-C", b.env.RepoRoot, "rev-parse", "--short", "HEAD").Output(); err == nil {
		b.commit = strings.TrimSpace(string(out))
	}
	out := *outDir
	if out == "" {
		out = filepath.Join(b.env.RepoRoot, "bench")
		if *quick {
			out = filepath.Join(os.TempDir(), "nf-bench-quick-"+b.runID)
		}
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		logf("%v", err)
		exit(1)
	}

	self := ancestors()
	b.quietWaited, b.quietTimedOut = waitQuiet(self, *quietWait)
	if !*shared {
		// A buildkitd of the benchmark's own, configured as hack/setup's
		// but without garbage collection, stopped and removed at the end:
		// its disk usage is the benchmark's builds' alone, no collection
		// drops the caches the rebuilds rely on, and the gigabytes W4
		// leaves do not push other people's caches out of the shared one.
		logf("starting a buildkitd of the benchmark's own")
		if err := try(func() { b.env = b.env.StartDaemon(b.t) }); err != nil {
			logf("starting a buildkitd: %v (-shared-daemon builds on hack/setup's instead)", err)
			exit(1)
		}
		b.ownDaemon = true
	}
	b.loadBefore = loadavg()
	b.activity = startActivity(self)
	b.started = time.Now()
	b.measure()
	b.elapsed = time.Since(b.started)
	b.activity.stop()
	b.loadAfter = loadavg()

	rows := b.rows()
	fmt.Println(plainTable(rows))
	md := b.markdown(rows)
	if err := os.WriteFile(filepath.Join(out, "results.md"), []byte(md), 0o644); err != nil {
		logf("%v", err)
		exit(1)
	}
	if err := drawChart(filepath.Join(out, "results.png"), "nix-frontend vs. the nix-build Dockerfile recipe",
		fmt.Sprintf("bench/run %s, commit %s, %d cores", b.runID, b.commit, runtime.NumCPU()), b.bars()); err != nil {
		logf("%v", err)
		exit(1)
	}
	logf("wrote %s and %s (%.1f minutes)", filepath.Join(out, "results.md"), filepath.Join(out, "results.png"), b.elapsed.Minutes())
	for _, r := range b.runs {
		if r.Err != nil {
			exit(1)
		}
	}
	exit(0)
}

// measure runs every build, alternating the two tools so that drift of
// the machine affects both alike, then reads what they pushed and times
// the references.
func (b *bench) measure() {
	var err error
	b.burnIters, b.burnCPU, err = calibrateBurn(b.env.Busybox, b.burn)
	if err != nil {
		b.note("W3 calibration failed: %v", err)
		b.burnIters = 1000000
	}
	logf("W3: %d loop iterations take %.2fs of CPU", b.burnIters, b.burnCPU.Seconds())
	if b.burnAtOnce, err = burnAtOnce(b.env.Busybox, b.burnIters, w3Derivations); err != nil {
		b.note("W3's loops at once failed: %v", err)
	}
	logf("W3: %d loops at once take %.2fs", w3Derivations, b.burnAtOnce.Seconds())

	w1Pkgs := w1Packages(b.scale)
	b.oneMiB = closestTo(w1Pkgs, 1024)
	b.churned = churnNames(w1Pkgs, b.oneMiB.Name, 59) // and app: 60 of 200
	w1, w3, many, warm := b.t.TempDir(), b.t.TempDir(), b.t.TempDir(), b.t.TempDir()
	w4big, w4small, w6 := b.t.TempDir(), b.t.TempDir(), b.t.TempDir()
	if err := try(func() {
		writeW1Context(b.env, b.t, w1, b.baseline, w1Pkgs)
		writeW3Context(b.env, b.t, w3, b.baseline, b.burnIters)
		writeW3Context(b.env, b.t, warm, b.baseline, 1)
		writeManyContext(b.env, b.t, many, b.manyPaths)
		writeW1Context(b.env, b.t, w4big, b.baseline, w4Packages(b.w4BigMiB))
		writeW1Context(b.env, b.t, w4small, b.baseline, w4Packages(4))
		writeW6Context(b.env, b.t, w6, b.baseline, w6Packages(b.w6.universe, b.scale), b.w6.draws())
	}); err != nil {
		b.note("writing the workloads failed: %v", err)
		return
	}

	tools := []tool{nf, baseline}
	file := map[tool]string{nf: "w1.Nixfile", baseline: "baseline.Dockerfile"}
	w2file := map[tool]string{nf: "w2.Nixfile", baseline: "baseline.Dockerfile"}
	w3file := map[tool]string{nf: "w3.Nixfile", baseline: "baseline.Dockerfile"}
	ref := func(tl tool, w, tag string) string {
		return fmt.Sprintf("%s/bench/%s/%s-%s:%s", b.env.Registry, b.runID, short(tl), w, tag)
	}
	salt := func(tl tool, w string) string { return fmt.Sprintf("bench-%s-%s-%s", b.runID, w, short(tl)) }
	b.series = map[string]map[tool][]*run{}
	add := func(metric string, r *run) *run {
		if b.series[metric] == nil {
			b.series[metric] = map[tool][]*run{}
		}
		b.series[metric][r.Tool] = append(b.series[metric][r.Tool], r)
		return r
	}

	// A first build of each tool pulls the images (the frontend's, the
	// Nix image) and fills what every build shares, so that the first
	// measured build does not pay for it.
	for _, tl := range tools {
		r := b.build(buildSpec{label: "warm-up", tool: tl, dir: warm, file: w3file[tl], ref: ref(tl, "warm-up", "x"),
			salt: salt(tl, "warm-up"), args: map[string]string{"ATTRS": "burn0"}, unrecorded: true})
		if !r.ok() {
			b.note("the %s warm-up build failed: %v", tl, r.Err)
		}
	}

	for round := 1; round <= b.rounds; round++ {
		// Every round is cold again: a new salt, new repositories.
		w := func(s string) string { return fmt.Sprintf("r%d-%s", round, s) }
		label := func(s string) string {
			if b.rounds == 1 {
				return s
			}
			return fmt.Sprintf("%s #%d", s, round)
		}
		spec := func(l string, tl tool, dir, f, repo, tag string, args map[string]string) buildSpec {
			return buildSpec{label: label(l), tool: tl, dir: dir, file: f, ref: ref(tl, w(repo), tag), salt: salt(tl, w(repo)), args: args}
		}
		// 1. W1 cold: new derivations for /nix and BuildKit, a new
		// repository. Round 1 also measures the builder's disk.
		for _, tl := range tools {
			s := spec("W1 cold", tl, w1, file[tl], "w1", "cold", nil)
			s.disk = round == 1
			add("cold", b.build(s))
		}
		// 1a. The baseline again with builders running as Nix's build
		// users, as nixos/nix's nix.conf has them and nix-frontend's
		// build steps always do.
		add("coldbu", b.build(spec("W1 cold, build users", baseline, w1, file[baseline], "w1bu", "cold", map[string]string{"BUILD_USERS": "1"})))
		// 2. The same build again: nothing to do.
		for _, tl := range tools {
			add("noop", b.build(spec("W1 no-op", tl, w1, file[tl], "w1", "noop", nil)))
		}
		// 3. One small leaf path changes, and so does the root that
		// refers to it.
		for _, tl := range tools {
			add("leaf", b.build(spec("W1 leaf change", tl, w1, file[tl], "w1", "leaf", w1Args(2, 0, nil)[tl])))
		}
		// 4. A second image sharing all but two paths, into the same
		// repository.
		for _, tl := range tools {
			add("w2", b.build(spec("W2 second image", tl, w1, w2file[tl], "w1", "w2", map[string]string{"ATTRS": "top2"})))
		}
		if round == 1 {
			// 3c. A 1 MiB path changes (after the leaf change), and app.
			for _, tl := range tools {
				add("leafm", b.build(spec("W1 1 MiB leaf change", tl, w1, file[tl], "w1", "leafm", w1Args(2, 2, []string{b.oneMiB.Name})[tl])))
			}
			// 9. W5: 60 of the 200 paths change at once (after the 1 MiB
			// change: the same path changes again, and 58 others).
			for _, tl := range tools {
				add("churn", b.build(spec("W5 churn", tl, w1, file[tl], "w1", "churn", w1Args(2, 3, b.churned)[tl])))
			}
		}
		// 5. Eight independent CPU-bound derivations.
		for _, tl := range tools {
			add("w3", b.build(spec("W3 cold", tl, w3, w3file[tl], "w3", "cold", map[string]string{"ATTRS": strings.Join(w3Attrs(), " ")})))
		}
	}
	// Times are the rounds' medians; bytes and sizes come from round 1
	// (they are the same in every round), where the images of one salt
	// can be compared.
	b.cold, b.noop, b.leaf, b.w2, b.w3 = b.median("cold"), b.median("noop"), b.median("leaf"), b.median("w2"), b.median("w3")
	b.cold1, b.leaf1, b.w21 = b.first("cold"), b.first("leaf"), b.first("w2")

	// 7. The frontend on a closure of 2,000 paths.
	b.many = b.build(buildSpec{label: fmt.Sprintf("%s paths cold", thousands(b.manyPaths)), tool: nf, dir: many, file: "many.Nixfile",
		ref: ref(nf, "many", "cold"), salt: salt(nf, "many")})

	// 8. W4: a big closure, cold, then leaf changes (the baseline's once:
	// it copies and compresses the whole closure again), with the
	// builder's disk measured around every build; then the same on a
	// small closure of the same shape, for the leaf change's time.
	w4spec := func(l string, tl tool, dir, repo, tag string, leafRev int) buildSpec {
		return buildSpec{label: l, tool: tl, dir: dir, file: file[tl], ref: ref(tl, repo, tag), salt: salt(tl, repo),
			args: w1Args(leafRev, 0, nil)[tl], disk: true}
	}
	for _, tl := range tools {
		add("w4cold", b.build(w4spec("W4 cold", tl, w4big, "w4", "cold", 1)))
	}
	for i := 1; i <= b.rounds; i++ {
		for _, tl := range tools {
			if tl == baseline && i > 1 {
				continue
			}
			add("w4leaf", b.build(w4spec(fmt.Sprintf("W4 leaf change #%d", i), tl, w4big, "w4", fmt.Sprintf("leaf%d", i), 1+i)))
		}
	}
	add("w4scold", b.build(w4spec("W4-small cold", nf, w4small, "w4small", "cold", 1)))
	for i := 1; i <= b.rounds; i++ {
		add("w4sleaf", b.build(w4spec(fmt.Sprintf("W4-small leaf change #%d", i), nf, w4small, "w4small", fmt.Sprintf("leaf%d", i), 1+i)))
	}

	// 10. W6: images drawing on one universe of paths, one after
	// the other into one repository per tool.
	for i := 0; i < b.w6.images; i++ {
		for _, tl := range tools {
			f := map[tool]string{nf: fmt.Sprintf("w6-%d.Nixfile", i), baseline: "baseline.Dockerfile"}[tl]
			args := map[string]string{"ATTRS": fmt.Sprintf("img%d", i)}
			if b.w6.budget > 0 {
				args["NIX_MAX_LAYERS"] = fmt.Sprint(b.w6.budget)
			}
			add("w6", b.build(buildSpec{label: fmt.Sprintf("W6 image %d", i), tool: tl, dir: w6, file: f,
				ref: ref(tl, "w6", fmt.Sprintf("img%d", i)), salt: salt(tl, "w6"), args: args}))
		}
	}

	// Sizes of the store paths, from the pushed images.
	logf("reading the pushed nix-frontend images for store path sizes")
	b.closErr = try(func() {
		for _, m := range []string{"cold", "leaf", "w2", "leafm", "churn", "w4cold", "w4leaf", "w4scold", "w4sleaf"} {
			if r := b.firstOf(m, nf); r.ok() {
				b.clos[m] = b.closureOf(r.Image)
			}
		}
		for _, r := range b.series["w6"][nf] {
			if !r.ok() {
				panic(fatal{"a W6 build failed"})
			}
			b.w6Clos = append(b.w6Clos, b.closureOf(r.Image))
		}
	})
	if b.closErr != nil {
		b.note("reading store path sizes failed: %v", b.closErr)
	}
	// 6. The references for export and the NAR hash check, on the W1
	// closure unpacked from the baseline's layer.
	logf("timing the references on the W1 closure")
	b.refErr = try(func() {
		if !b.cold1[baseline].ok() {
			panic(fatal{"the baseline build failed"})
		}
		root := b.unpackBaseline(b.cold1[baseline].Image)
		defer os.RemoveAll(root)
		b.ref = tarReference(root)
		b.narErr = try(func() { b.nar = narReference(root) })
	})
	if b.refErr != nil {
		b.note("the export references failed: %v", b.refErr)
	} else if b.narErr != nil {
		b.note("the NAR hash reference failed: %v", b.narErr)
	}
}

func short(tl tool) string {
	if tl == nf {
		return "nf"
	}
	return "base"
}

func (b *bench) note(format string, a ...any) {
	msg := fmt.Sprintf(format, a...)
	logf("%s", msg)
	b.notes = append(b.notes, msg)
}

func loadavg() string {
	dt, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(dt))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

// median returns, per tool, the build of a metric with the median wall
// time over the rounds (the lower middle one for an even count); a failed
// build in any round is returned instead, so failures show.
func (b *bench) median(metric string) map[tool]*run {
	out := map[tool]*run{}
	for tl, rs := range b.series[metric] {
		var ok []*run
		for _, r := range rs {
			if !r.ok() {
				out[tl] = r
				break
			}
			ok = append(ok, r)
		}
		if out[tl] != nil {
			continue
		}
		sort.Slice(ok, func(i, j int) bool { return ok[i].Wall < ok[j].Wall })
		out[tl] = ok[(len(ok)-1)/2]
	}
	return out
}

// first returns round 1's builds of a metric.
func (b *bench) first(metric string) map[tool]*run {
	out := map[tool]*run{}
	for tl, rs := range b.series[metric] {
		out[tl] = rs[0]
	}
	return out
}

// firstOf is a metric's first build by a tool, or nil.
func (b *bench) firstOf(metric string, tl tool) *run {
	if rs := b.series[metric][tl]; len(rs) > 0 {
		return rs[0]
	}
	return nil
}

// walls lists a metric's wall times over the rounds, for the details.
func (b *bench) walls(metric string, tl tool) string {
	var ws []string
	for _, r := range b.series[metric][tl] {
		if r.ok() {
			ws = append(ws, fmt.Sprintf("%.1f", r.Wall.Seconds()))
		} else {
			ws = append(ws, "failed")
		}
	}
	return strings.Join(ws, ", ")
}
