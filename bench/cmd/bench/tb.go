package main

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// benchTB lets the benchmark use the integration harness, whose helpers
// take a testing.TB, outside `go test`. Fatal errors panic with a fatal
// value that measure() recovers, so one failed measurement is reported
// in the results instead of ending the run.
type benchTB struct {
	testing.TB // nil: only the methods below are called
	name       string
	root       string
	n          int
	cleanups   []func()
}

type fatal struct{ msg string }

func (f fatal) Error() string { return f.msg }

func newTB(name, root string) *benchTB { return &benchTB{name: name, root: root} }

func (t *benchTB) Helper()                        {}
func (t *benchTB) Name() string                   { return t.name }
func (t *benchTB) Cleanup(f func())               { t.cleanups = append(t.cleanups, f) }
func (t *benchTB) Logf(format string, a ...any)   { logf(format, a...) }
func (t *benchTB) Log(a ...any)                   { logf("%s", fmt.Sprint(a...)) }
func (t *benchTB) Errorf(format string, a ...any) { panic(fatal{fmt.Sprintf(format, a...)}) }
func (t *benchTB) Error(a ...any)                 { panic(fatal{fmt.Sprint(a...)}) }
func (t *benchTB) Fatalf(format string, a ...any) { panic(fatal{fmt.Sprintf(format, a...)}) }
func (t *benchTB) Fatal(a ...any)                 { panic(fatal{fmt.Sprint(a...)}) }
func (t *benchTB) FailNow()                       { panic(fatal{"FailNow"}) }
func (t *benchTB) Fail()                          { panic(fatal{"Fail"}) }
func (t *benchTB) Failed() bool                   { return false }
func (t *benchTB) Skip(a ...any)                  { panic(fatal{"skipped: " + fmt.Sprint(a...)}) }
func (t *benchTB) Skipf(format string, a ...any) {
	panic(fatal{"skipped: " + fmt.Sprintf(format, a...)})
}
func (t *benchTB) SkipNow()      { panic(fatal{"skipped"}) }
func (t *benchTB) Skipped() bool { return false }

// TempDir returns a new directory under the run's work directory.
func (t *benchTB) TempDir() string {
	t.n++
	dir := filepath.Join(t.root, fmt.Sprintf("tmp%03d", t.n))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		panic(fatal{err.Error()})
	}
	return dir
}

// cleanup runs the registered cleanups, last first.
func (t *benchTB) cleanup() {
	for i := len(t.cleanups) - 1; i >= 0; i-- {
		t.cleanups[i]()
	}
	t.cleanups = nil
}

// try runs f, turning a Fatal of the harness (or of the benchmark) into an
// error.
func try(f func()) (err error) {
	defer func() {
		if r := recover(); r != nil {
			if ft, ok := r.(fatal); ok {
				err = ft
				return
			}
			panic(r)
		}
	}()
	f()
	return nil
}

// must fails the current measurement.
func must(err error, what string) {
	if err != nil {
		panic(fatal{what + ": " + err.Error()})
	}
}
