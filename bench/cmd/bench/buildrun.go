package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	bkclient "github.com/moby/buildkit/client"
	"github.com/nix-frontend/nix-frontend/integration/harness"
	digest "github.com/opencontainers/go-digest"
)

type tool string

const (
	nf       tool = "nix-frontend"
	baseline tool = "baseline"
)

// run is one build: what it took and what it pushed.
type run struct {
	Label  string
	Tool   tool
	Ref    string
	Salt   string
	Start  time.Time
	Wall   time.Duration
	Err    error
	Digest digest.Digest
	Prog   *progress
	// Built are the derivations Nix built, as the build's log says.
	Built []string
	// RegistryDelta is what the registry's blob storage grew by during the
	// build (harness.RegistryBytes before and after); NewBytes is the part
	// of it that belongs to this image: its blobs first stored during the
	// build. They differ only when something else pushed at the same time.
	RegistryDelta int64
	NewBytes      int64
	NewLayerBytes int64
	NewBlobs      int
	// NewLayers says, for each new layer blob, what it holds (its history
	// entry) and its size.
	NewLayers []string
	Image     *harness.Image
	FE        feStats
	// Copied is what the build copied out of the /nix cache mount, as its
	// log says: nix-frontend's layer steps ("copied N store paths, X"),
	// the baseline's cp -a ("bench: copied N bytes"). CopySteps counts
	// the layer steps that ran (were not cached).
	Copied    int64
	CopySteps int
	// DiskBefore and DiskAfter are the builder's disk usage (buildctl du,
	// every record) around the build, when measured.
	DiskBefore, DiskAfter int64
}

func (r *run) ok() bool { return r != nil && r.Err == nil }

// pushed is the bytes the build added to the registry.
func (r *run) pushed() int64 {
	if r.RegistryDelta == r.NewBytes {
		return r.RegistryDelta
	}
	return r.NewBytes
}

// diskGrowth is what the build added to the builder's disk; ok is false
// when it was not measured.
func (r *run) diskGrowth() (int64, bool) {
	if !r.ok() || r.DiskAfter == 0 {
		return 0, false
	}
	return r.DiskAfter - r.DiskBefore, true
}

// buildSpec is one build to run.
type buildSpec struct {
	label          string
	tool           tool
	dir, file, ref string
	salt           string
	args           map[string]string
	disk           bool // measure the builder's disk usage before and after
	unrecorded     bool // a warm-up: not part of the results
}

// build runs one build through buildctl (the dockerfile.v0 frontend, which
// for a Nixfile runs the nix-frontend image its `# syntax=` line names) and
// records the progress stream as data.
func (b *bench) build(s buildSpec) *run {
	r := &run{Label: s.label, Tool: s.tool, Ref: s.ref, Salt: s.salt}
	logf("%s: %s build of %s", s.label, s.tool, s.file)
	buildArgs := map[string]string{"SALT": s.salt, "NIX_CONFIG": b.nixConfig}
	for k, v := range s.args {
		buildArgs[k] = v
	}
	r.Err = try(func() {
		if s.disk {
			r.DiskBefore = b.diskUsage()
		}
		before := b.env.RegistryBytes(b.t)
		var mon *feMonitor
		if s.tool == nf {
			mon = startFEMonitor(s.salt)
		}
		r.Start = time.Now()
		res, err := b.env.TryBuild(b.t, harness.Buildctl, s.dir, harness.BuildOpts{
			File: s.file, Ref: s.ref, BuildArgs: buildArgs,
			// The last --progress wins: the stream as JSON, with timestamps.
			Args: []string{"--progress", "rawjson"},
		})
		r.Wall = time.Since(r.Start)
		if mon != nil {
			r.FE = mon.stop()
		}
		r.Prog = parseProgress(res.Log)
		if err != nil {
			panic(fatal{fmt.Sprintf("%v\n%s", err, lastLines(r.Prog.text(), 40))})
		}
		r.Digest = res.Digest
		r.RegistryDelta = b.env.RegistryBytes(b.t) - before
		r.Image = b.env.Inspect(b.t, s.ref).Images[0]
		b.attribute(r)
		log := r.Prog.text()
		if s.tool == nf {
			r.Built = harness.Built(log)
		} else {
			r.Built = nixBuildBuilt(log)
		}
		r.Copied, r.CopySteps = r.Prog.copied()
		if s.disk {
			r.DiskAfter = b.diskUsage()
		}
	})
	if s.unrecorded {
		return r
	}
	if b.logDir != "" && r.Prog != nil {
		name := fmt.Sprintf("%02d-%s-%s.txt", len(b.runs)+1, notRefChars.ReplaceAllString(strings.ToLower(s.label), "-"), short(s.tool))
		os.WriteFile(filepath.Join(b.logDir, name), []byte(r.Prog.timeline(r.Start)), 0o644)
	}
	if r.Err != nil {
		logf("%s: %s build FAILED: %v", s.label, s.tool, r.Err)
	} else {
		msg := fmt.Sprintf("%s: %s %.1fs, %d derivations built, %s copied, %s pushed", s.label, s.tool, r.Wall.Seconds(), len(r.Built), human(r.Copied), human(r.pushed()))
		if g, ok := r.diskGrowth(); ok {
			msg += fmt.Sprintf(", builder disk %+.1f MiB", float64(g)/(1<<20))
		}
		logf("%s", msg)
		if len(r.NewLayers) > 0 && len(r.NewLayers) <= 10 {
			logf("  new layers: %s", strings.Join(r.NewLayers, "; "))
		}
	}
	b.runs = append(b.runs, r)
	return r
}

// diskUsage is the builder's disk usage: the sum of every record `buildctl
// du` lists (the client's DiskUsage, as the harness's), pulled images, the
// /nix cache mounts, snapshots and the compressed layers BuildKit keeps for
// the images it exported.
func (b *bench) diskUsage() int64 {
	var n int64
	for _, r := range b.env.DiskUsage(b.t) {
		n += r.Size
	}
	return n
}

// attribute finds the image's blobs the registry first stored during the
// build, by the modification time of their files.
func (b *bench) attribute(r *run) {
	img := r.Image
	type blob struct {
		d     digest.Digest
		layer bool
	}
	blobs := []blob{{img.Digest, false}, {img.Manifest.Config.Digest, false}}
	for _, l := range img.Manifest.Layers {
		blobs = append(blobs, blob{l.Digest, true})
	}
	describe := layerCreatedBy(img)
	for _, bl := range blobs {
		fi, err := os.Stat(b.blobPath(bl.d))
		if err != nil {
			panic(fatal{fmt.Sprintf("blob %s of %s not in the registry's storage: %v", bl.d, r.Ref, err)})
		}
		if !fi.ModTime().Before(r.Start) {
			r.NewBytes += fi.Size()
			r.NewBlobs++
			if bl.layer {
				r.NewLayerBytes += fi.Size()
				r.NewLayers = append(r.NewLayers, fmt.Sprintf("%s (%s)", describe[bl.d], human(fi.Size())))
			}
		}
	}
}

func (b *bench) blobPath(d digest.Digest) string {
	return filepath.Join(b.env.RepoRoot, ".cache/registry/docker/registry/v2/blobs", d.Algorithm().String(), d.Encoded()[:2], d.Encoded(), "data")
}

var notRefChars = regexp.MustCompile(`[^a-z0-9]+`)

// timeline is the stream as text with every vertex's start and duration
// relative to t0, for -logs.
func (p *progress) timeline(t0 time.Time) string {
	var b strings.Builder
	for _, v := range p.list() {
		state := v.state()
		fmt.Fprintf(&b, "%7.2fs %7.2fs %s%s\n", v.Started.Sub(t0).Seconds(), span{v.Started, v.Completed}.Duration().Seconds(), v.Name, state)
		var ids []string
		for id := range v.Statuses {
			ids = append(ids, id)
		}
		sort.Strings(ids)
		for _, id := range ids {
			s := v.Statuses[id]
			fmt.Fprintf(&b, "        %7.2fs %7.2fs %s\n", s.Start.Sub(t0).Seconds(), s.Duration().Seconds(), id)
		}
		for _, l := range strings.Split(strings.TrimRight(v.Log.String(), "\n"), "\n") {
			if l != "" {
				fmt.Fprintf(&b, "                  %s\n", l)
			}
		}
	}
	b.WriteString(p.other.String())
	return b.String()
}

var nixBuildLine = regexp.MustCompile(`(?m)building '/nix/store/[a-z0-9]{32}-([^']+)\.drv'`)

// nixBuildBuilt returns the derivations nix-build says it built.
func nixBuildBuilt(log string) []string {
	var out []string
	for _, m := range nixBuildLine.FindAllStringSubmatch(log, -1) {
		out = append(out, m[1])
	}
	sort.Strings(out)
	return out
}

// progress is buildctl's --progress=rawjson stream, folded: every vertex
// with its earliest start and latest completion (BuildKit reports some
// vertices more than once), its sub-steps and its log.
type progress struct {
	vertices map[digest.Digest]*vertex
	order    []digest.Digest
	other    strings.Builder // lines that were not JSON: buildctl's own errors
}

type vertex struct {
	Name      string
	Cached    bool
	Started   time.Time
	Completed time.Time
	Error     string
	Log       bytes.Buffer
	Statuses  map[string]*span
}

type span struct{ Start, End time.Time }

func (s span) Duration() time.Duration {
	if s.Start.IsZero() || s.End.IsZero() {
		return 0
	}
	return s.End.Sub(s.Start)
}

func earliest(a, b time.Time) time.Time {
	if a.IsZero() || (!b.IsZero() && b.Before(a)) {
		return b
	}
	return a
}

func latest(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

func parseProgress(stream string) *progress {
	p := &progress{vertices: map[digest.Digest]*vertex{}}
	get := func(d digest.Digest) *vertex {
		v := p.vertices[d]
		if v == nil {
			v = &vertex{Statuses: map[string]*span{}}
			p.vertices[d] = v
			p.order = append(p.order, d)
		}
		return v
	}
	sc := bufio.NewScanner(strings.NewReader(stream))
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	for sc.Scan() {
		line := sc.Bytes()
		var ss bkclient.SolveStatus
		if len(line) == 0 || line[0] != '{' || json.Unmarshal(line, &ss) != nil {
			p.other.Write(line)
			p.other.WriteByte('\n')
			continue
		}
		for _, v := range ss.Vertexes {
			vx := get(v.Digest)
			vx.Name = v.Name
			vx.Cached = vx.Cached || v.Cached
			if v.Error != "" {
				vx.Error = v.Error
			}
			if v.Started != nil {
				vx.Started = earliest(vx.Started, *v.Started)
			}
			if v.Completed != nil {
				vx.Completed = latest(vx.Completed, *v.Completed)
			}
		}
		for _, s := range ss.Statuses {
			vx := get(s.Vertex)
			sp := vx.Statuses[s.ID]
			if sp == nil {
				sp = &span{}
				vx.Statuses[s.ID] = sp
			}
			if s.Started != nil {
				sp.Start = earliest(sp.Start, *s.Started)
			}
			if s.Completed != nil {
				sp.End = latest(sp.End, *s.Completed)
			}
		}
		for _, l := range ss.Logs {
			get(l.Vertex).Log.Write(l.Data)
		}
	}
	return p
}

func (p *progress) list() []*vertex {
	out := make([]*vertex, 0, len(p.order))
	for _, d := range p.order {
		out = append(out, p.vertices[d])
	}
	return out
}

// text is the stream as plain text: every vertex's name and log.
func (p *progress) text() string {
	var b strings.Builder
	for _, v := range p.list() {
		state := v.state()
		fmt.Fprintf(&b, "#%s%s\n", v.Name, state)
		for _, l := range strings.Split(strings.TrimRight(v.Log.String(), "\n"), "\n") {
			if l != "" {
				fmt.Fprintf(&b, "    %s\n", l)
			}
		}
	}
	b.WriteString(p.other.String())
	return b.String()
}

// match returns the vertices whose name matches re.
func (p *progress) match(re string) []*vertex {
	rx := regexp.MustCompile(re)
	var out []*vertex
	for _, v := range p.list() {
		if rx.MatchString(v.Name) {
			out = append(out, v)
		}
	}
	return out
}

// spanOf is the time from the first start to the last completion of vs.
func spanOf(vs []*vertex) span {
	var s span
	for _, v := range vs {
		s.Start = earliest(s.Start, v.Started)
		s.End = latest(s.End, v.Completed)
	}
	return s
}

// status finds a sub-step of the image exporter by the start of its id
// ("exporting layers", "exporting config", "pushing layers").
func (p *progress) status(prefix string) span {
	var s span
	for _, v := range p.list() {
		for id, sp := range v.Statuses {
			if strings.HasPrefix(id, prefix) {
				s.Start = earliest(s.Start, sp.Start)
				s.End = latest(s.End, sp.End)
			}
		}
	}
	return s
}

var markLine = regexp.MustCompile(`bench: (\w+) (\w+) ([0-9]+\.[0-9]+)`)

// mark finds a "bench: <what> <start|end> <unix time>" line the baseline
// Dockerfile prints.
func (p *progress) mark(what, which string) time.Time {
	for _, m := range markLine.FindAllStringSubmatch(p.text(), -1) {
		if m[1] == what && m[2] == which {
			sec, frac, _ := strings.Cut(m[3], ".")
			s, _ := strconv.ParseInt(sec, 10, 64)
			for len(frac) < 9 {
				frac += "0"
			}
			ns, _ := strconv.ParseInt(frac[:9], 10, 64)
			return time.Unix(s, ns)
		}
	}
	return time.Time{}
}

var (
	copiedLine     = regexp.MustCompile(`nix-frontend: copied ([0-9]+) store paths, ([0-9.]+) (B|KiB|MiB|GiB), NAR hashes verified`)
	baseCopiedLine = regexp.MustCompile(`bench: copied ([0-9]+) bytes`)
)

// copied sums what the build copied out of the /nix cache mount: the
// "copied" lines of nix-frontend's layer steps that ran (their NAR size,
// as the step rounds it), or the byte count the baseline's RUN step prints
// after its cp -a. steps is the number of layer steps that copied.
func (p *progress) copied() (total int64, steps int) {
	unit := map[string]float64{"B": 1, "KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30}
	for _, v := range p.list() {
		log := v.Log.String()
		for _, m := range copiedLine.FindAllStringSubmatch(log, -1) {
			f, _ := strconv.ParseFloat(m[2], 64)
			total += int64(f * unit[m[3]])
			steps++
		}
		for _, m := range baseCopiedLine.FindAllStringSubmatch(log, -1) {
			n, _ := strconv.ParseInt(m[1], 10, 64)
			total += n
		}
	}
	return total, steps
}

// feStats is what the nix-frontend process (the gateway frontend BuildKit
// runs from the frontend image) used.
type feStats struct {
	Found  bool
	PID    int
	PeakKB int64         // VmHWM: peak resident set size
	CPU    time.Duration // user + system
}

// feMonitor watches /proc for the frontend process of one build, known by
// the build's salt among its frontend options (BuildKit passes them in the
// environment as BUILDKIT_FRONTEND_OPT_<n>), and samples its peak RSS and
// CPU time until it exits or the build ends. VmHWM only grows, so the last
// sample is the peak up to 20 ms before the process exited.
type feMonitor struct {
	salt  string
	stopc chan struct{}
	done  chan struct{}
	mu    sync.Mutex
	st    feStats
}

func startFEMonitor(salt string) *feMonitor {
	m := &feMonitor{salt: salt, stopc: make(chan struct{}), done: make(chan struct{})}
	go m.loop()
	return m
}

func (m *feMonitor) stop() feStats {
	close(m.stopc)
	<-m.done
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.st
}

func (m *feMonitor) loop() {
	defer close(m.done)
	checked := map[int]bool{}
	want := []byte("build-arg:SALT=" + m.salt + "\x00")
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	pid := 0
	for {
		select {
		case <-m.stopc:
			return
		case <-tick.C:
		}
		if pid == 0 {
			ents, err := os.ReadDir("/proc")
			if err != nil {
				continue
			}
			for _, e := range ents {
				n, err := strconv.Atoi(e.Name())
				if err != nil || checked[n] {
					continue
				}
				cmd, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", n))
				if err != nil {
					continue
				}
				// A container's process is "runc init" until it execs the
				// entrypoint: look at it again later.
				if len(cmd) > 0 && !bytes.HasPrefix(cmd, []byte("runc")) {
					checked[n] = true
				}
				if string(cmd) != "/bin/nix-frontend\x00" {
					continue
				}
				environ, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", n))
				if err == nil && bytes.Contains(environ, want) {
					pid = n
					break
				}
			}
		}
		if pid != 0 {
			hwm, cpu, err := procStats(pid)
			if err != nil || hwm == 0 {
				continue // exited (a zombie has no VmHWM); keep the last sample
			}
			m.mu.Lock()
			m.st = feStats{Found: true, PID: pid, PeakKB: max(hwm, m.st.PeakKB), CPU: max(cpu, m.st.CPU)}
			m.mu.Unlock()
		}
	}
}

// procStats reads a process's VmHWM and CPU time.
func procStats(pid int) (int64, time.Duration, error) {
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, err
	}
	var hwm int64
	for _, l := range strings.Split(string(status), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "VmHWM:" {
			hwm, _ = strconv.ParseInt(f[1], 10, 64)
		}
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, 0, err
	}
	s := string(stat)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 13 {
		return 0, 0, fmt.Errorf("short stat")
	}
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	// Linux reports CPU time in USER_HZ, 100 per second.
	return hwm, time.Duration(utime+stime) * 10 * time.Millisecond, nil
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func human(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.2f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

// state is how a vertex ended, for the text forms of the stream.
func (v *vertex) state() string {
	switch {
	case v.Error != "":
		return " ERROR " + v.Error
	case v.Cached:
		return " CACHED"
	}
	return ""
}
