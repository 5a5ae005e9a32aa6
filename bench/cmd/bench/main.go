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
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/nix-frontend/nix-frontend/integration/harness"
)

type bench struct {
	env       *harness.Env
	t         *benchTB
	runID     string
	nixConfig string
	baseline  string // bench/baseline.Dockerfile
	quick     bool
	scale     float64
	manyPaths int
	burn      time.Duration // CPU one W3 derivation is calibrated to take
	logDir    string
	activity  *activity

	runs   []*run
	rounds int
	// Every round's builds, by metric and tool.
	series map[string]map[tool][]*run
	// The measurements, by workload and tool: the builds with the median
	// wall time of the rounds, and round 1's builds for bytes.
	cold, noop, leaf, w2, w3 map[tool]*run
	leaf1, w21               map[tool]*run
	many                     *run
	burnIters                int
	burnCPU                  time.Duration
	closA, closLeaf, closB   closure
	closErr                  error
	ref                      reference
	refErr                   error
	notes                    []string
	started                  time.Time
	elapsed                  time.Duration
	frontendImage            string
	frontendDigest           string
	commit                   string
	frontendCommit           string
	loadBefore, loadAfter    string
	quietWaited              time.Duration
	quietTimedOut            bool
}

func logf(format string, a ...any) {
	fmt.Fprintf(os.Stderr, "%s bench: %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, a...))
}

func main() {
	testing.Init() // the harness asks testing.Short()
	frontendImage := flag.String("frontend-image", os.Getenv("NF_BENCH_FRONTEND_IMAGE"), "the nix-frontend image to measure (default: the harness's, 127.0.0.1:5000/nix-frontend:dev)")
	frontendCommit := flag.String("frontend-commit", os.Getenv("NF_BENCH_FRONTEND_COMMIT"), "the commit the frontend image was built from, for the results")
	outDir := flag.String("out", "", "where to write results.md and results.png (default: bench/ of the repository; a temporary directory with -quick)")
	rounds := flag.Int("rounds", 3, "how many times to measure everything but the 2,000-path build; times are the medians")
	quick := flag.Bool("quick", false, "a smoke run with workloads a tenth of the size and one round; its numbers mean nothing")
	logDir := flag.String("logs", "", "write every build's progress, with timings, into this directory")
	quietWait := flag.Duration("quiet-wait", 10*time.Minute, "how long to wait for other builds and tests on this machine to finish before measuring")
	flag.Parse()
	if *frontendImage != "" {
		os.Setenv("NF_FRONTEND_IMAGE", *frontendImage)
	}

	work, err := os.MkdirTemp("", "nf-bench-")
	if err != nil {
		logf("%v", err)
		os.Exit(1)
	}
	// exit removes the work directory, which os.Exit would leave behind.
	exit := func(code int) {
		os.RemoveAll(work)
		os.Exit(code)
	}
	defer os.RemoveAll(work)
	b := &bench{
		t:              newTB("bench", work),
		runID:          time.Now().UTC().Format("20060102-150405"),
		nixConfig:      harness.OfflineNixConfig + "\nmax-jobs = auto",
		quick:          *quick,
		scale:          1,
		manyPaths:      2000,
		burn:           2 * time.Second,
		frontendCommit: *frontendCommit,
		logDir:         *logDir,
		rounds:         max(1, *rounds),
	}
	if b.logDir != "" {
		os.MkdirAll(b.logDir, 0o755)
	}
	defer b.t.cleanup()
	if *quick {
		b.scale, b.manyPaths, b.burn = 0.1, 300, 500*time.Millisecond
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
}

// measure runs every build, alternating the two tools so that drift of
// the machine affects both alike.
func (b *bench) measure() {
	var err error
	b.burnIters, b.burnCPU, err = calibrateBurn(b.env.Busybox, b.burn)
	if err != nil {
		b.note("W3 calibration failed: %v", err)
		b.burnIters = 1000000
	}
	logf("W3: %d loop iterations take %.2fs of CPU", b.burnIters, b.burnCPU.Seconds())

	w1 := b.t.TempDir()
	w3 := b.t.TempDir()
	many := b.t.TempDir()
	if err := try(func() {
		writeW1Context(b.env, b.t, w1, b.baseline, w1Packages(b.scale))
		writeW3Context(b.env, b.t, w3, b.baseline, b.burnIters)
		writeManyContext(b.env, b.t, many, b.manyPaths)
	}); err != nil {
		b.note("writing the workloads failed: %v", err)
		return
	}

	file := map[tool]string{nf: "w1.Nixfile", baseline: "baseline.Dockerfile"}
	w2file := map[tool]string{nf: "w2.Nixfile", baseline: "baseline.Dockerfile"}
	w3file := map[tool]string{nf: "w3.Nixfile", baseline: "baseline.Dockerfile"}
	leafArgs := map[tool]map[string]string{nf: {"LEAF": "2"}, baseline: {"NIX_ARGS": "--argstr leafRev 2"}}
	tools := []tool{nf, baseline}
	b.series = map[string]map[tool][]*run{}
	add := func(metric string, r *run) {
		if b.series[metric] == nil {
			b.series[metric] = map[tool][]*run{}
		}
		b.series[metric][r.Tool] = append(b.series[metric][r.Tool], r)
	}
	for round := 1; round <= b.rounds; round++ {
		// Every round is cold again: a new salt, new repositories.
		salt := func(tl tool, w string) string { return fmt.Sprintf("bench-%s-r%d-%s-%s", b.runID, round, w, short(tl)) }
		ref := func(tl tool, w, tag string) string {
			return fmt.Sprintf("%s/bench/%s/r%d-%s-%s:%s", b.env.Registry, b.runID, round, short(tl), w, tag)
		}
		label := func(s string) string {
			if b.rounds == 1 {
				return s
			}
			return fmt.Sprintf("%s #%d", s, round)
		}
		// 1. W1 cold: new derivations for /nix and BuildKit, a new repository.
		for _, tl := range tools {
			add("cold", b.build(label("W1 cold"), tl, w1, file[tl], ref(tl, "w1", "cold"), salt(tl, "w1"), nil))
		}
		// 2. The same build again: nothing to do.
		for _, tl := range tools {
			add("noop", b.build(label("W1 no-op"), tl, w1, file[tl], ref(tl, "w1", "noop"), salt(tl, "w1"), nil))
		}
		// 3. One small leaf path changes, and so does the root that refers to it.
		for _, tl := range tools {
			add("leaf", b.build(label("W1 leaf change"), tl, w1, file[tl], ref(tl, "w1", "leaf"), salt(tl, "w1"), leafArgs[tl]))
		}
		// 4. A second image sharing all but two paths, into the same repository.
		for _, tl := range tools {
			add("w2", b.build(label("W2 second image"), tl, w1, w2file[tl], ref(tl, "w1", "w2"), salt(tl, "w1"), map[string]string{"ATTRS": "top2"}))
		}
		// 5. Eight independent CPU-bound derivations.
		for _, tl := range tools {
			add("w3", b.build(label("W3 cold"), tl, w3, w3file[tl], ref(tl, "w3", "cold"), salt(tl, "w3"), map[string]string{"ATTRS": strings.Join(w3Attrs(), " ")}))
		}
	}
	// Times are the rounds' medians; bytes and sizes come from round 1
	// (they are the same in every round), where the images of one salt
	// can be compared.
	b.cold, b.noop, b.leaf, b.w2, b.w3 = b.median("cold"), b.median("noop"), b.median("leaf"), b.median("w2"), b.median("w3")
	b.leaf1, b.w21 = b.first("leaf"), b.first("w2")
	cold1 := b.first("cold")

	// 7. The frontend on a closure of 2,000 paths.
	b.many = b.build(fmt.Sprintf("%d paths cold", b.manyPaths), nf, many, "many.Nixfile",
		fmt.Sprintf("%s/bench/%s/nf-many:cold", b.env.Registry, b.runID), fmt.Sprintf("bench-%s-many-nf", b.runID), nil)

	// Sizes of the store paths, from the pushed images.
	logf("reading the pushed nix-frontend images for store path sizes")
	b.closErr = try(func() {
		if !cold1[nf].ok() || !b.leaf1[nf].ok() || !b.w21[nf].ok() {
			panic(fatal{"a nix-frontend build failed"})
		}
		b.closA = b.closureOf(cold1[nf].Image)
		b.closLeaf = b.closureOf(b.leaf1[nf].Image)
		b.closB = b.closureOf(b.w21[nf].Image)
	})
	if b.closErr != nil {
		b.note("reading store path sizes failed: %v", b.closErr)
	}
	// 6. The reference for export: tar | zstd of the same closure.
	logf("timing tar | zstd of the W1 closure")
	b.refErr = try(func() {
		if !cold1[baseline].ok() {
			panic(fatal{"the baseline build failed"})
		}
		b.ref = b.tarReference(cold1[baseline].Image)
	})
	if b.refErr != nil {
		b.note("the tar | zstd reference failed: %v", b.refErr)
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
