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
//
// ANSI colour sequences are removed from everything the decoder writes,
// because BuildKit's plain progress output shows them as garbage.
package nixlog

import (
	"bytes"
	"encoding/json"
	"io"
	"regexp"
	"slices"
	"strings"
	"sync"

	"github.com/nix-frontend/nix-frontend/nix/storepath"
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

// Nix's verbosity levels: errors, and what Nix shows when stderr is not a
// terminal (lvlInfo), the most this decoder prints.
const (
	LevelError = 0
	LevelInfo  = 3
)

// Summary is what a decoded log says about the build as a whole.
type Summary struct {
	// Builds lists the .drv paths whose build started, in order. Its length
	// is the number of derivations Nix built (or tried to build).
	Builds []string
	// Failed lists the .drv paths whose builder failed (or that could not be
	// built at all, e.g. for a platform mismatch), in the order Nix reported
	// them.
	Failed []string
	// Errors holds Nix's error messages (level error), colours removed.
	Errors []string
}

// Decoder decodes Nix's internal-json log. It is an io.WriteCloser, so it can
// be a command's Stderr directly; Close flushes a last unterminated line.
// Messages and activities up to LevelInfo are printed; build starts,
// substitutions and build log lines always are.
type Decoder struct {
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
}

// NewDecoder returns a decoder writing readable lines to w.
func NewDecoder(w io.Writer) *Decoder {
	return &Decoder{w: w}
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
	s.Builds = slices.Clone(s.Builds)
	s.Failed = slices.Clone(s.Failed)
	s.Errors = slices.Clone(s.Errors)
	return s
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

func (d *Decoder) start(e *event) {
	a := &activity{typ: ActivityType(e.Type), parent: e.Parent}
	d.acts[e.ID] = a
	switch a.typ {
	case ActBuild:
		drv, ok := e.str(0)
		if !ok {
			drv = textPath(e.Text)
		}
		a.drv = drv
		a.pname = storepath.PName(storepath.DrvName(drv))
		d.sum.Builds = append(d.sum.Builds, drv)
		d.println("nix: building " + storepath.DrvName(drv))
	case ActSubstitute:
		p, ok := e.str(0)
		if !ok {
			p = textPath(e.Text)
		}
		a.path = p
		d.substituting[p]++
		d.println("nix: substituting " + p)
	case ActPostBuildHook:
		drv, _ := e.str(0)
		a.drv = drv
		a.pname = storepath.PName(storepath.DrvName(drv))
		d.println("nix: post-build " + storepath.DrvName(drv))
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
	if e.Text != "" && e.Level <= LevelInfo {
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
}

func (d *Decoder) result(e *event) {
	a := d.acts[e.ID]
	pname := "unnamed"
	if a != nil && a.pname != "" {
		pname = a.pname
	}
	switch ResultType(e.Type) {
	case ResBuildLogLine, ResPostBuildLogLine:
		l, ok := e.str(0)
		if !ok {
			return
		}
		l = StripANSI(strings.TrimRight(l, "\r\n"))
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

func (d *Decoder) msg(e *event) {
	text := strings.TrimRight(StripANSI(e.Msg), "\n")
	if e.Level <= LevelError {
		d.sum.Errors = append(d.sum.Errors, text)
		d.noteFailures(text)
	}
	if e.Level <= LevelInfo {
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
	// A derivation whose dependency failed ("dependencies of derivation
	// … failed to build", "Reason: 1 dependency failed") is a consequence,
	// not a failure of its own.
	for _, m := range reCannotBuild.FindAllStringSubmatch(text, -1) {
		if !strings.Contains(m[2], "dependenc") {
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

var reANSI = regexp.MustCompile(`\x1b(?:\[[0-9;?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)|[@-Z\\-_])`)

// StripANSI removes terminal escape sequences (colours, OSC hyperlinks).
func StripANSI(s string) string {
	if strings.IndexByte(s, 0x1b) < 0 {
		return s
	}
	return reANSI.ReplaceAllString(s, "")
}
