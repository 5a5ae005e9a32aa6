// Package nixlog turns Nix's machine-readable log (`--log-format
// internal-json`) into plain lines a person can read in BuildKit's progress
// output, and keeps a summary of what was built, what was substituted and
// what failed.
//
// Build steps run Nix like this (Nix 2.8 resets the log format when it parses
// -L, so -L must come before --log-format):
//
//	nix build -L --log-format internal-json ...
//
// Nix then writes one `@nix {...}` JSON object per line on stderr. Lines
// without that prefix (output of tools that do not use Nix's logger) are
// passed through unchanged.
//
// # Output format
//
// The decoder writes these lines, one per event:
//
//	nix: building <name>              a derivation build starts
//	nix: substituting <store path>    a path is fetched from a binary cache
//	<pname>> <line>                   a line of a builder's log, as `nix build -L` prints it
//	<pname> (post)> <line>            a line of a post-build hook's log
//	<pname>: phase <phase>            a stdenv builder entered a phase
//	error: ... / warning: ...         Nix's own messages, colours removed
//	<text>                            other Nix activities (downloads, copies)
//
// <name> is the derivation's name ("hello-2.12.1"), <pname> the name without
// its version ("hello"), the same prefix Nix uses for -L output. Every build
// start prints exactly one `nix: building <name>` line and every substitution
// exactly one `nix: substituting <store path>` line, so tests can count them.
// With [Decoder.Timings] set, the end of each build that did not fail prints
// `nix: finished building <name> in 1.2s`.
//
// ANSI colour sequences are removed from everything the decoder writes,
// because BuildKit's plain progress output shows them as garbage.
package nixlog

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"path"
	"regexp"
	"strings"
	"sync"
	"time"
)

// ActivityType is Nix's ActivityType enum (src/libutil/logging.hh). The
// numbers are part of Nix's log protocol and have been stable since Nix 2.4;
// later versions only append new ones.
type ActivityType int

const (
	ActUnknown       ActivityType = 0
	ActCopyPath      ActivityType = 100
	ActFileTransfer  ActivityType = 101
	ActRealise       ActivityType = 102
	ActCopyPaths     ActivityType = 103
	ActBuilds        ActivityType = 104
	ActBuild         ActivityType = 105
	ActOptimiseStore ActivityType = 106
	ActVerifyPaths   ActivityType = 107
	ActSubstitute    ActivityType = 108
	ActQueryPathInfo ActivityType = 109
	ActPostBuildHook ActivityType = 110
	ActBuildWaiting  ActivityType = 111
	ActFetchTree     ActivityType = 112 // newer Nix only
	ActFetchToStore  ActivityType = 113 // newer Nix only
)

// ResultType is Nix's ResultType enum (src/libutil/logging.hh).
type ResultType int

const (
	ResFileLinked       ResultType = 100
	ResBuildLogLine     ResultType = 101
	ResUntrustedPath    ResultType = 102
	ResCorruptedPath    ResultType = 103
	ResSetPhase         ResultType = 104
	ResProgress         ResultType = 105
	ResSetExpected      ResultType = 106
	ResPostBuildLogLine ResultType = 107
	ResFetchStatus      ResultType = 108 // newer Nix only
)

// Nix's verbosity levels (lvlError = 0 ... lvlVomit = 7).
const (
	LevelError     = 0
	LevelWarn      = 1
	LevelNotice    = 2
	LevelInfo      = 3
	LevelTalkative = 4
	LevelChatty    = 5
	LevelDebug     = 6
	LevelVomit     = 7
)

// DefaultTailLines is how many log lines the summary keeps per derivation.
const DefaultTailLines = 30

// Summary is what a decoded log says about the build as a whole.
type Summary struct {
	// Builds lists the .drv paths whose build started, in order. Its length
	// is the number of derivations Nix built (or tried to build).
	Builds []string
	// Substituted lists the store paths fetched from a binary cache.
	Substituted []string
	// Failed lists the .drv paths whose builder failed (or that could not be
	// built at all, e.g. for a platform mismatch), in the order Nix reported
	// them.
	Failed []string
	// DependencyFailed lists the .drv paths that were not built because
	// one of their dependencies failed.
	DependencyFailed []string
	// Errors holds Nix's error messages (level error), colours removed.
	Errors []string

	tails map[string][]string
}

// Tail returns the last log lines (at most Decoder.TailLines) of a
// derivation's build. drv is a .drv store path, or a derivation name
// ("hello-2.12") which matches the first build of that name.
func (s Summary) Tail(drv string) []string {
	if t, ok := s.tails[drv]; ok {
		return append([]string(nil), t...)
	}
	for _, p := range s.Builds {
		if DrvName(p) == drv {
			return append([]string(nil), s.tails[p]...)
		}
	}
	return nil
}

// Decoder decodes Nix's internal-json log. It is an io.WriteCloser, so it can
// be a command's Stderr directly; Close flushes a last unterminated line.
// Configure the exported fields before the first Write.
type Decoder struct {
	// Verbosity is the highest Nix level (LevelError ... LevelVomit) whose
	// messages and activities are printed. NewDecoder sets LevelInfo, what
	// Nix itself shows when stderr is not a terminal. Build starts,
	// substitutions and build log lines are always printed.
	Verbosity int
	// Timings makes the end of each build that has not failed print
	// `nix: finished building <name> in 1.2s`. Nix 2.8 ends build
	// activities only when the whole `nix build` ends, so there the
	// durations run to the end of the command.
	Timings bool
	// Now is the clock used for timings; time.Now when nil.
	Now func() time.Time
	// TailLines is how many lines per derivation the summary keeps;
	// DefaultTailLines when zero.
	TailLines int

	mu      sync.Mutex
	w       io.Writer
	partial []byte
	acts    map[uint64]*activity
	sum     Summary
	failed  map[string]bool
	// substituting counts running substitutions per store path.
	substituting map[string]int
	werr         error
}

type activity struct {
	typ    ActivityType
	parent uint64
	drv    string // actBuild, actPostBuildHook: the .drv path
	path   string // actSubstitute: the store path
	pname  string // name without version, the -L prefix
	start  time.Time
}

// NewDecoder returns a decoder writing readable lines to w.
func NewDecoder(w io.Writer) *Decoder {
	return &Decoder{w: w, Verbosity: LevelInfo}
}

// Decode reads Nix's stderr from r until EOF, writes readable lines to w and
// returns the summary. The error is a read or write error, never a build
// failure: look at Summary.Failed and Nix's exit status for those.
func Decode(r io.Reader, w io.Writer) (Summary, error) {
	d := NewDecoder(w)
	br := bufio.NewReaderSize(r, 64<<10)
	for {
		line, err := br.ReadBytes('\n')
		if len(line) > 0 {
			if werr := d.line(bytes.TrimRight(line, "\r\n")); werr != nil {
				return d.Summary(), werr
			}
		}
		if err == io.EOF {
			return d.Summary(), nil
		}
		if err != nil {
			return d.Summary(), err
		}
	}
}

// Write decodes complete lines in p and keeps an unterminated rest for the
// next call.
func (d *Decoder) Write(p []byte) (int, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	n := len(p)
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			d.partial = append(d.partial, p...)
			break
		}
		line := p[:i]
		if len(d.partial) > 0 {
			line = append(d.partial, line...)
			d.partial = nil
		}
		d.lineLocked(bytes.TrimRight(line, "\r"))
		p = p[i+1:]
	}
	return n, d.werr
}

// Close decodes a last line that had no newline.
func (d *Decoder) Close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(d.partial) > 0 {
		d.lineLocked(bytes.TrimRight(d.partial, "\r"))
		d.partial = nil
	}
	return d.werr
}

// Summary returns what has been decoded so far.
func (d *Decoder) Summary() Summary {
	d.mu.Lock()
	defer d.mu.Unlock()
	s := d.sum
	s.Builds = append([]string(nil), s.Builds...)
	s.Substituted = append([]string(nil), s.Substituted...)
	s.Failed = append([]string(nil), s.Failed...)
	s.DependencyFailed = append([]string(nil), s.DependencyFailed...)
	s.Errors = append([]string(nil), s.Errors...)
	s.tails = make(map[string][]string, len(d.sum.tails))
	for k, v := range d.sum.tails {
		s.tails[k] = append([]string(nil), v...)
	}
	return s
}

func (d *Decoder) line(b []byte) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.lineLocked(b)
	return d.werr
}

// event is one `@nix` object; see JSONLogger in Nix's src/libutil/logging.cc.
type event struct {
	Action string            `json:"action"`
	ID     uint64            `json:"id"` // (pid << 32) + n: too big for float64
	Level  int               `json:"level"`
	Type   int               `json:"type"`
	Text   string            `json:"text"`
	Parent uint64            `json:"parent"`
	Fields []json.RawMessage `json:"fields"`
	Msg    string            `json:"msg"`
}

func (e *event) str(i int) (string, bool) {
	if i >= len(e.Fields) {
		return "", false
	}
	var s string
	if json.Unmarshal(e.Fields[i], &s) != nil {
		return "", false
	}
	return s, true
}

const prefix = "@nix "

func (d *Decoder) lineLocked(b []byte) {
	if d.acts == nil {
		d.acts = make(map[uint64]*activity)
		d.failed = make(map[string]bool)
		d.substituting = make(map[string]int)
		d.sum.tails = make(map[string][]string)
	}
	if !bytes.HasPrefix(b, []byte(prefix)) {
		d.println(string(b))
		return
	}
	var e event
	if err := json.Unmarshal(b[len(prefix):], &e); err != nil {
		// Not ours to judge: show it as it came.
		d.println(string(b))
		return
	}
	switch e.Action {
	case "start":
		d.start(&e)
	case "stop":
		d.stop(&e)
	case "result":
		d.result(&e)
	case "msg":
		d.msg(&e)
	}
}

func (d *Decoder) now() time.Time {
	if d.Now != nil {
		return d.Now()
	}
	return time.Now()
}

func (d *Decoder) verbosity() int { return d.Verbosity }

func (d *Decoder) start(e *event) {
	a := &activity{typ: ActivityType(e.Type), parent: e.Parent, start: d.now()}
	d.acts[e.ID] = a
	switch a.typ {
	case ActBuild:
		drv, ok := e.str(0)
		if !ok {
			drv = textPath(e.Text)
		}
		a.drv = drv
		a.pname = PName(DrvName(drv))
		d.sum.Builds = append(d.sum.Builds, drv)
		d.println("nix: building " + DrvName(drv))
	case ActSubstitute:
		p, ok := e.str(0)
		if !ok {
			p = textPath(e.Text)
		}
		a.path = p
		d.substituting[p]++
		d.sum.Substituted = append(d.sum.Substituted, p)
		d.println("nix: substituting " + p)
	case ActPostBuildHook:
		drv, _ := e.str(0)
		a.drv = drv
		a.pname = PName(DrvName(drv))
		d.println("nix: post-build " + DrvName(drv))
	case ActBuildWaiting, ActQueryPathInfo:
		// Noise: waiting for a lock, asking caches about paths.
	case ActCopyPath:
		// A substitution already printed its line; its copy is the same
		// event seen from the store's side (Nix's progress bar hides it too).
		// Nix 2.8 does not log parent ids, so also match on the path.
		p, _ := e.str(0)
		if d.hasAncestor(e.Parent, ActSubstitute) || (p != "" && d.substituting[p] > 0) {
			return
		}
		d.printText(e)
	case ActFileTransfer:
		if d.hasAncestor(e.Parent, ActCopyPath) || d.hasAncestor(e.Parent, ActQueryPathInfo) ||
			d.hasAncestor(e.Parent, ActSubstitute) {
			return
		}
		d.printText(e)
	default:
		d.printText(e)
	}
}

func (d *Decoder) printText(e *event) {
	if e.Text != "" && e.Level <= d.verbosity() {
		d.println(StripANSI(e.Text))
	}
}

func (d *Decoder) hasAncestor(id uint64, t ActivityType) bool {
	for range 64 { // guard against a cycle in a corrupt log
		if id == 0 {
			return false
		}
		a, ok := d.acts[id]
		if !ok {
			return false
		}
		if a.typ == t {
			return true
		}
		id = a.parent
	}
	return false
}

func (d *Decoder) stop(e *event) {
	a, ok := d.acts[e.ID]
	if !ok {
		return
	}
	// Children may still refer to it through parent links, so keep build
	// activities until the end (they are few); drop the rest.
	if a.typ != ActBuild && a.typ != ActSubstitute && a.typ != ActCopyPath && a.typ != ActQueryPathInfo {
		delete(d.acts, e.ID)
	}
	if a.typ == ActSubstitute && d.substituting[a.path] > 0 {
		d.substituting[a.path]--
	}
	if a.typ == ActBuild && d.Timings && !d.failed[a.drv] {
		dur := d.now().Sub(a.start)
		d.println(fmt.Sprintf("nix: finished building %s in %.1fs", DrvName(a.drv), dur.Seconds()))
	}
}

func (d *Decoder) result(e *event) {
	a := d.acts[e.ID]
	pname, drv := "unnamed", ""
	if a != nil && a.pname != "" {
		pname, drv = a.pname, a.drv
	}
	switch ResultType(e.Type) {
	case ResBuildLogLine, ResPostBuildLogLine:
		l, ok := e.str(0)
		if !ok {
			return
		}
		l = StripANSI(strings.TrimRight(l, "\r\n"))
		d.addTail(drv, l)
		sep := "> "
		if ResultType(e.Type) == ResPostBuildLogLine {
			sep = " (post)> "
		}
		d.println(pname + sep + l)
	case ResSetPhase:
		if p, ok := e.str(0); ok {
			d.println(pname + ": phase " + p)
		}
	}
}

func (d *Decoder) addTail(drv, l string) {
	n := d.TailLines
	if n <= 0 {
		n = DefaultTailLines
	}
	t := append(d.sum.tails[drv], l)
	if len(t) > n {
		t = append(t[:0:0], t[len(t)-n:]...)
	}
	d.sum.tails[drv] = t
}

func (d *Decoder) msg(e *event) {
	text := strings.TrimRight(StripANSI(e.Msg), "\n")
	if e.Level <= LevelError {
		d.sum.Errors = append(d.sum.Errors, text)
		d.noteFailures(text)
	}
	if e.Level <= d.verbosity() {
		d.println(text)
	}
}

// Build failure messages across Nix versions (after colours are removed):
//
//	2.4–2.2x: builder for '/nix/store/…-x.drv' failed with exit code 1
//	          builder for '/nix/store/…-x.drv' failed due to signal 9 (Killed)
//	          3 dependencies of derivation '/nix/store/…-x.drv' failed to build
//	          a 'aarch64-linux' with features {} is required to build '/nix/store/…-x.drv', but I am a 'x86_64-linux' …
//	newer:    Cannot build '/nix/store/…-x.drv'.
//	          Reason: builder failed with exit code 1.
//	          Cannot build '/nix/store/…-x.drv'.
//	          Reason: 1 dependency failed.
var (
	reBuilderFailed = regexp.MustCompile(`builder for '([^']+\.drv)' failed`)
	reDepsFailed    = regexp.MustCompile(`dependencies of derivation '([^']+\.drv)' failed to build`)
	reCannotBuild   = regexp.MustCompile(`Cannot build '([^']+\.drv)'\.?\s*(?:Reason:\s*([^\n]*))?`)
	reRequiredBuild = regexp.MustCompile(`is required to build '([^']+\.drv)'`)
	reHashMismatch  = regexp.MustCompile(`hash mismatch in fixed-output derivation '([^']+\.drv)'`)
)

func (d *Decoder) noteFailures(text string) {
	for _, re := range []*regexp.Regexp{reBuilderFailed, reRequiredBuild, reHashMismatch} {
		for _, m := range re.FindAllStringSubmatch(text, -1) {
			d.addFailed(m[1])
		}
	}
	for _, m := range reDepsFailed.FindAllStringSubmatch(text, -1) {
		d.addDepFailed(m[1])
	}
	for _, m := range reCannotBuild.FindAllStringSubmatch(text, -1) {
		if strings.Contains(m[2], "dependenc") {
			d.addDepFailed(m[1])
		} else {
			d.addFailed(m[1])
		}
	}
}

func (d *Decoder) addFailed(drv string) {
	if d.failed[drv] {
		return
	}
	d.failed[drv] = true
	d.sum.Failed = append(d.sum.Failed, drv)
}

func (d *Decoder) addDepFailed(drv string) {
	for _, p := range d.sum.DependencyFailed {
		if p == drv {
			return
		}
	}
	d.sum.DependencyFailed = append(d.sum.DependencyFailed, drv)
}

func (d *Decoder) println(s string) {
	if d.werr != nil || d.w == nil {
		return
	}
	_, d.werr = io.WriteString(d.w, s+"\n")
}

// textPath finds a quoted store path in an activity text such as
// "building '/nix/store/…-x.drv'", for logs whose fields are missing.
func textPath(text string) string {
	text = StripANSI(text)
	if i := strings.IndexByte(text, '\''); i >= 0 {
		if j := strings.IndexByte(text[i+1:], '\''); j >= 0 {
			return text[i+1 : i+1+j]
		}
	}
	return text
}

// DrvName returns the name of a store path without its hash and without a
// ".drv" suffix: "/nix/store/<hash>-hello-2.12.drv" → "hello-2.12".
func DrvName(storePath string) string {
	base := path.Base(storePath)
	base = strings.TrimSuffix(base, ".drv")
	// Nix hashes are 32 base-32 characters followed by '-'.
	if len(base) > 33 && base[32] == '-' {
		base = base[33:]
	}
	return base
}

// PName strips the version from a derivation name the way Nix's DrvName does:
// the name ends at the first '-' that is followed by a character that is not
// a letter ("hello-2.12" → "hello", "gnu-config-2024" → "gnu-config").
func PName(name string) string {
	for i := 0; i+1 < len(name); i++ {
		if name[i] == '-' && !isAlpha(name[i+1]) {
			return name[:i]
		}
	}
	return name
}

func isAlpha(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }

var reANSI = regexp.MustCompile(`\x1b(?:\[[0-9;?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)|[@-Z\\-_])`)

// StripANSI removes terminal escape sequences (colours, OSC hyperlinks).
func StripANSI(s string) string {
	if strings.IndexByte(s, 0x1b) < 0 {
		return s
	}
	return reANSI.ReplaceAllString(s, "")
}
