package main

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Other builds and tests on the machine make the numbers lie (and tests
// that prune the /nix cache mounts would make rebuilds look cold), so the
// benchmark waits for quiet before it starts and records whether anything
// else ran while it measured.

// ancestors are this process and its parents (go run, bench/run, …),
// never counted as other activity.
func ancestors() map[int]bool {
	out := map[int]bool{}
	for pid := os.Getpid(); pid > 1 && !out[pid]; {
		out[pid] = true
		ppid, _, err := procInfo(pid)
		if err != nil {
			break
		}
		pid = ppid
	}
	return out
}

func procInfo(pid int) (ppid int, argv []string, err error) {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, nil, err
	}
	s := string(stat)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 2 {
		return 0, nil, fmt.Errorf("short stat")
	}
	ppid, _ = strconv.Atoi(f[1])
	cmd, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return 0, nil, err
	}
	return ppid, strings.Split(strings.TrimRight(string(cmd), "\x00"), "\x00"), nil
}

// others lists the builds and tests running on the machine that are not
// the benchmark's: buildctl, docker buildx, go test/vet/build and test
// binaries.
func others(self map[int]bool) []string {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var out []string
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || self[pid] {
			continue
		}
		ppid, argv, err := procInfo(pid)
		if err != nil || len(argv) == 0 || self[ppid] {
			continue
		}
		name := filepath.Base(argv[0])
		arg1 := ""
		if len(argv) > 1 {
			arg1 = argv[1]
		}
		switch {
		case name == "buildctl", name == "docker-buildx", name == "buildx",
			name == "docker" && arg1 == "buildx",
			name == "go" && (arg1 == "test" || arg1 == "vet" || arg1 == "build"),
			strings.HasSuffix(name, ".test"):
			out = append(out, name+" "+arg1)
		}
	}
	sort.Strings(out)
	return out
}

// cpuTimes reads the machine's total and idle CPU time (in USER_HZ).
func cpuTimes() (total, idle int64) {
	dt, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0
	}
	line, _, _ := strings.Cut(string(dt), "\n")
	f := strings.Fields(line)
	for i := 1; i < len(f); i++ {
		v, _ := strconv.ParseInt(f[i], 10, 64)
		total += v
		if i == 4 || i == 5 { // idle, iowait
			idle += v
		}
	}
	return total, idle
}

// waitQuiet waits until, for a minute, nothing else has built or tested
// and the CPUs have been at least 80% idle, or max.
func waitQuiet(self map[int]bool, max time.Duration) (time.Duration, bool) {
	start := time.Now()
	quietSince := time.Now()
	said, saidCPU := false, false
	t0, i0 := cpuTimes()
	for {
		t1, i1 := cpuTimes()
		busy := 0.0
		if t1 > t0 {
			busy = 1 - float64(i1-i0)/float64(t1-t0)
		}
		t0, i0 = t1, i1
		if o := others(self); len(o) > 0 {
			quietSince = time.Now()
			if !said {
				logf("waiting for other builds and tests to finish (%s); at most %s", strings.Join(o, ", "), max)
				said = true
			}
		} else if busy > 0.2 {
			quietSince = time.Now()
			if !saidCPU {
				logf("waiting for the CPUs to calm down (%.0f%% busy); at most %s", 100*busy, max)
				saidCPU = true
			}
		}
		if time.Since(quietSince) >= time.Minute {
			return time.Since(start), false
		}
		if time.Since(start) > max {
			logf("the machine is still busy after %s; measuring anyway, the results will say so", max)
			return time.Since(start), true
		}
		time.Sleep(time.Second)
	}
}

// activity samples other activity once a second while the benchmark runs.
type activity struct {
	mu      sync.Mutex
	samples int
	busy    int
	seen    map[string]bool
	stopc   chan struct{}
	done    chan struct{}
}

func startActivity(self map[int]bool) *activity {
	a := &activity{seen: map[string]bool{}, stopc: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(a.done)
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for {
			select {
			case <-a.stopc:
				return
			case <-tick.C:
			}
			o := others(self)
			a.mu.Lock()
			a.samples++
			if len(o) > 0 {
				a.busy++
			}
			for _, s := range o {
				a.seen[s] = true
			}
			a.mu.Unlock()
		}
	}()
	return a
}

func (a *activity) stop() { close(a.stopc); <-a.done }

// summary says how much of the run shared the machine.
func (a *activity) summary() (float64, []string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	var names []string
	for s := range a.seen {
		names = append(names, s)
	}
	sort.Strings(names)
	if a.samples == 0 {
		return 0, names
	}
	return float64(a.busy) / float64(a.samples), names
}

func sortStrings(s []string) []string { sort.Strings(s); return s }
