package evaljobs

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strings"

	"github.com/nix-frontend/nix-frontend/nix/nixlog"
)

// Job is one line of nix-eval-jobs output (and of Evaluate's). Field names
// are nix-eval-jobs' (src/drv.cc, src/worker.cc); fields this package does
// not know are ignored.
type Job struct {
	// Attr is the attribute path joined with dots, components containing
	// dots quoted; for our requests JobAttr of the installable's index.
	Attr     string   `json:"attr"`
	AttrPath []string `json:"attrPath"`
	DrvPath  string   `json:"drvPath,omitempty"`
	Name     string   `json:"name,omitempty"`
	System   string   `json:"system,omitempty"`
	// Outputs maps output names to store paths. nix-eval-jobs writes null
	// for outputs of content-addressed derivations, whose paths are not
	// known before the build; they decode to "".
	Outputs map[string]string `json:"outputs,omitempty"`
	// Error is set, and the derivation fields are empty, when this job
	// failed to evaluate. It is Nix's message, colours removed. A line with
	// an error but no attrPath reports a failure of the whole evaluation.
	Error string `json:"error,omitempty"`

	// Meta (with --meta) is kept as the raw JSON the evaluator wrote.
	Meta json.RawMessage `json:"meta,omitempty"`
}

// ParseJob decodes one output line.
func ParseJob(line []byte) (Job, error) {
	var j Job
	dec := json.NewDecoder(bytes.NewReader(line))
	if err := dec.Decode(&j); err != nil {
		return Job{}, err
	}
	if dec.More() {
		return Job{}, fmt.Errorf("trailing data after the JSON object")
	}
	return j, nil
}

// ReadJobs reads nix-eval-jobs output until EOF. Blank lines are skipped;
// anything else that is not one JSON object per line is an error naming the
// line, since nix-eval-jobs writes nothing else on stdout.
func ReadJobs(r io.Reader) ([]Job, error) {
	var jobs []Job
	br := bufio.NewReaderSize(r, 64<<10)
	for n := 1; ; n++ {
		line, err := br.ReadBytes('\n')
		if t := bytes.TrimSpace(line); len(t) > 0 {
			if t[0] != '{' {
				return jobs, fmt.Errorf("evaljobs: line %d: not a JSON object: %.80q", n, t)
			}
			j, perr := ParseJob(t)
			if perr != nil {
				return jobs, fmt.Errorf("evaljobs: line %d: %v", n, perr)
			}
			jobs = append(jobs, j)
		}
		if err == io.EOF {
			return jobs, nil
		}
		if err != nil {
			return jobs, err
		}
	}
}

// MatchJobs returns one job per target of req (see Request.Targets), in
// order, from the lines of an evaluation of Expr(req) in any order. A target
// without a line gets a job with an Error: the whole evaluation's error if
// there was one, else a note that the evaluator reported nothing for it.
func MatchJobs(req Request, jobs []Job) []Job {
	ts := req.targets()
	out := make([]Job, len(ts))
	seen := make([]bool, len(ts))
	var global []string
	for _, j := range jobs {
		if len(j.AttrPath) == 0 {
			if j.Error != "" {
				global = append(global, j.Error)
			}
			continue
		}
		i := jobIndex(j.AttrPath[0])
		if i < 0 || i >= len(ts) || len(j.AttrPath) != 1 || seen[i] {
			continue
		}
		out[i], seen[i] = j, true
	}
	for i := range out {
		if seen[i] {
			continue
		}
		msg := fmt.Sprintf("the evaluator reported no result for %s", ts[i])
		if len(global) > 0 {
			msg = strings.Join(global, "\n")
		}
		out[i] = Job{Attr: JobAttr(i), AttrPath: []string{JobAttr(i)}, Error: msg}
	}
	return out
}

var (
	reTraceHint = regexp.MustCompile(`^\s*\((use '--show-trace'|stack trace truncated)[^)]*\)\s*$`)
	// reWrapperPos is a trace frame's position in the expression Expr
	// generates (or in none).
	reWrapperPos = regexp.MustCompile(`^\s*at «(string|none)»:`)
)

// TrimNixError keeps the meaningful part of what Nix printed on stderr for a
// failed evaluation: from the first "error:" line on, without colours,
// without the "use '--show-trace'" hints, and without the trace frames
// (Nix 2.2x) that point into the expression Expr generated, which show
// nix-frontend's code rather than the user's. Warnings before it are
// dropped.
func TrimNixError(stderr string) string {
	s := nixlog.StripANSI(stderr)
	lines := strings.Split(s, "\n")
	start := -1
	for i, l := range lines {
		if strings.HasPrefix(l, "error:") {
			start = i
			break
		}
	}
	if start < 0 {
		return strings.TrimSpace(s)
	}
	var kept []string
	for _, l := range lines[start:] {
		if reTraceHint.MatchString(l) {
			continue
		}
		kept = append(kept, strings.TrimRight(l, " \t\r"))
	}
	return strings.TrimSpace(strings.Join(dropWrapperFrames(kept), "\n"))
}

// dropWrapperFrames removes, from an error that starts with a bare "error:"
// line followed by blank-line-separated trace frames and the message, the
// frames positioned in the generated expression. When only the message
// remains, it becomes the error: "error: <message>".
func dropWrapperFrames(lines []string) []string {
	if len(lines) == 0 || lines[0] != "error:" {
		return lines
	}
	var blocks [][]string
	var cur []string
	for _, l := range lines[1:] {
		if strings.TrimSpace(l) == "" {
			if len(cur) > 0 {
				blocks, cur = append(blocks, cur), nil
			}
			continue
		}
		cur = append(cur, l)
	}
	if len(cur) > 0 {
		blocks = append(blocks, cur)
	}
	var kept [][]string
	for _, b := range blocks {
		if strings.HasPrefix(strings.TrimSpace(b[0]), "…") && slices.ContainsFunc(b, reWrapperPos.MatchString) {
			continue
		}
		kept = append(kept, b)
	}
	if len(kept) == 1 && strings.HasPrefix(strings.TrimSpace(kept[0][0]), "error:") {
		return dedent(kept[0])
	}
	out := []string{lines[0]}
	for _, b := range kept {
		out = append(append(out, ""), b...)
	}
	return out
}

// dedent removes the indentation the lines share.
func dedent(lines []string) []string {
	common := -1
	for _, l := range lines {
		n := len(l) - len(strings.TrimLeft(l, " "))
		if common < 0 || n < common {
			common = n
		}
	}
	out := make([]string, len(lines))
	for i, l := range lines {
		out[i] = l[common:]
	}
	return out
}
