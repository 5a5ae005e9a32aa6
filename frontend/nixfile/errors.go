package nixfile

import (
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/moby/buildkit/frontend/dockerfile/parser"
)

// Errors is every validation problem of a Nixfile, sorted by line, so that a
// user can fix them all in one go instead of one build per mistake.
type Errors struct {
	File string
	List []*Error
}

// Error is one located problem. Suggest, when set, says how to fix it.
type Error struct {
	Location []parser.Range
	Msg      string
	Suggest  string
}

func (e *Error) Error() string {
	if e.Suggest == "" {
		return e.Msg
	}
	return e.Msg + " (" + e.Suggest + ")"
}

// Line is the first line of the problem, 0 if it has no location.
func (e *Error) Line() int {
	if len(e.Location) == 0 {
		return 0
	}
	return e.Location[0].Start.Line
}

// Error lists all problems, one per line, as "Nixfile:12: message (hint)".
func (e *Errors) Error() string {
	var b strings.Builder
	for i, x := range e.List {
		if i > 0 {
			b.WriteByte('\n')
		}
		if l := x.Line(); l > 0 {
			fmt.Fprintf(&b, "%s:%d: %s", e.File, l, x.Error())
		} else {
			fmt.Fprintf(&b, "%s: %s", e.File, x.Error())
		}
	}
	return b.String()
}

// Unwrap exposes the single problems to errors.As and errors.Is.
func (e *Errors) Unwrap() []error {
	out := make([]error, len(e.List))
	for i, x := range e.List {
		out[i] = x
	}
	return out
}

// First returns the first problem wrapped with parser.WithLocation, the form
// BuildKit's frontends use to attach the offending source lines to an error.
// When there is more than one problem the message says how many more there
// are, so that the user knows to look at the full list.
func (e *Errors) First() error {
	if e == nil || len(e.List) == 0 {
		return nil
	}
	f := e.List[0]
	var err error = f
	if n := len(e.List) - 1; n > 0 {
		err = &moreError{first: f, more: n}
	}
	if len(f.Location) == 0 {
		return err
	}
	return parser.WithLocation(err, f.Location)
}

type moreError struct {
	first *Error
	more  int
}

func (m *moreError) Error() string {
	s := "s"
	if m.more == 1 {
		s = ""
	}
	return fmt.Sprintf("%s [and %d more problem%s]", m.first.Error(), m.more, s)
}

func (m *moreError) Unwrap() error { return m.first }

// errorsCollector gathers problems while parsing.
type errorsCollector struct {
	list []*Error
}

func (c *errorsCollector) add(loc []parser.Range, msg, suggest string) {
	c.list = append(c.list, &Error{Location: loc, Msg: msg, Suggest: suggest})
}

// addErr records an error returned by BuildKit, keeping the location BuildKit
// attached to it when there is one.
func (c *errorsCollector) addErr(loc []parser.Range, err error) {
	var le *parser.LocationError
	if errors.As(err, &le) {
		if len(le.Locations) > 0 && len(le.Locations[0]) > 0 {
			loc = le.Locations[0]
		}
		if inner := le.Unwrap(); inner != nil {
			err = inner
		}
	}
	c.add(loc, err.Error(), "")
}

func (c *errorsCollector) result(file string) error {
	if len(c.list) == 0 {
		return nil
	}
	sort.SliceStable(c.list, func(i, j int) bool { return c.list[i].Line() < c.list[j].Line() })
	return &Errors{File: file, List: c.list}
}
