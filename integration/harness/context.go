package harness

import (
	"io"
	"os"
	"path/filepath"
	"testing"
)

// Context writes a build context into a new temporary directory: files maps
// slash-separated paths to contents. A Nixfile gets the frontend image's
// `# syntax=` line prepended unless it has a syntax directive already.
func (e *Env) Context(t testing.TB, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		if filepath.Base(name) == "Nixfile" || filepath.Ext(name) == ".Nixfile" {
			content = e.WithSyntax(content)
		}
		WriteFile(t, filepath.Join(dir, name), content)
	}
	return dir
}

// WithSyntax prepends the `# syntax=` line of the frontend under test.
func (e *Env) WithSyntax(nixfile string) string {
	if len(nixfile) >= 9 && nixfile[:9] == "# syntax=" {
		return nixfile
	}
	return "# syntax=" + e.FrontendImage + "\n" + nixfile
}

// WriteFile writes a file, creating its directory.
func WriteFile(t testing.TB, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// AddBusybox copies the static busybox into dir/busybox/bin/busybox, where
// test derivations import it from as their builder.
func (e *Env) AddBusybox(t testing.TB, dir string) {
	t.Helper()
	copyExecutable(t, e.Busybox, filepath.Join(dir, "busybox", "bin", "busybox"))
}

// AddBusyboxAarch64 copies an aarch64 static busybox into
// dir/busybox-aarch64/bin/busybox, the builder of aarch64-linux test
// derivations (hack/setup fetches it).
func (e *Env) AddBusyboxAarch64(t testing.TB, dir string) {
	t.Helper()
	copyExecutable(t, filepath.Join(e.RepoRoot, ".cache", "busybox-aarch64", "bin", "busybox"),
		filepath.Join(dir, "busybox-aarch64", "bin", "busybox"))
}

func copyExecutable(t testing.TB, src, dst string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		t.Fatal(err)
	}
	in, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}
