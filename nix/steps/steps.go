// Package steps is what nix-frontend's helper does inside build steps, next
// to the Nix store: evaluate installables, fetch what builds need from
// outside, build derivations, and turn store paths into layers. Each
// command reads a request of package protocol and writes its results to the
// step's output; a failure is reported as an error (see Failure).
package steps

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"

	"github.com/nix-frontend/nix-frontend/nix/protocol"
	"github.com/nix-frontend/nix-frontend/nix/storepath"
	"golang.org/x/sys/unix"
)

// StoreLostError says the store lacks paths an earlier, cached step made:
// the frontend realises them again (protocol.ExitStoreLost).
type StoreLostError struct {
	Missing []string
}

func (e *StoreLostError) Error() string {
	n := len(e.Missing)
	shown := e.Missing[:min(n, 5)]
	return fmt.Sprintf("the /nix cache lacks %d store paths an earlier step made (%s); realising them again", n, strings.Join(shown, ", "))
}

// Report turns a command's error into its exit code and report.
func Report(err error) (int, protocol.Report) {
	rep := protocol.Report{Error: err.Error()}
	var lost *StoreLostError
	if errors.As(err, &lost) {
		rep.Missing = lost.Missing
		return protocol.ExitStoreLost, rep
	}
	var ef *EvalFailedError
	if errors.As(err, &ef) {
		rep.Eval = ef.Result
	}
	var lc *LinkCollisionError
	if errors.As(err, &lc) {
		rep.Group = &lc.Group
	}
	return protocol.ExitFailed, rep
}

// writeJSON writes v as indented JSON with a trailing newline.
func writeJSON(path string, v any) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	dt, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(dt, '\n'), 0o644)
}

// readJSON reads a file an earlier step wrote.
func readJSON(path string, v any) error {
	dt, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	return json.Unmarshal(dt, v)
}

// nixCmd runs a Nix command with stdin, stdout and stderr as given; on
// failure the error holds what Nix printed last.
func nixCmd(ctx context.Context, stdin io.Reader, stdout, stderr io.Writer, name string, args ...string) error {
	cmd := exec.CommandContext(ctx, name, args...)
	var tail tailBuffer
	cmd.Stdin, cmd.Stdout = stdin, stdout
	if stderr == nil {
		cmd.Stderr = &tail
	} else {
		cmd.Stderr = io.MultiWriter(stderr, &tail)
	}
	if err := cmd.Run(); err != nil {
		var execErr *exec.Error
		if errors.As(err, &execErr) {
			return fmt.Errorf("%s: %w (is Nix installed in the Nix image and on its PATH?)", name, execErr.Err)
		}
		return fmt.Errorf("%s %s: %w\n%s", name, shortArgs(args), err, tail.String())
	}
	return nil
}

// shortArgs shows a command line without hundreds of store paths.
func shortArgs(args []string) string {
	if len(args) > 8 {
		return strings.Join(args[:8], " ") + fmt.Sprintf(" … (%d more)", len(args)-8)
	}
	return strings.Join(args, " ")
}

// nixOutput runs a Nix command and returns its stdout.
func nixOutput(ctx context.Context, name string, args ...string) ([]byte, error) {
	var out bytes.Buffer
	err := nixCmd(ctx, nil, &out, nil, name, args...)
	return out.Bytes(), err
}

// tailBuffer keeps the last 4 KiB written to it.
type tailBuffer struct{ b []byte }

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.b = append(t.b, p...)
	if len(t.b) > 4096 {
		t.b = t.b[len(t.b)-4096:]
	}
	return len(p), nil
}

func (t *tailBuffer) String() string { return strings.TrimSpace(string(t.b)) }

// pathInfos returns the closure of paths with their metadata, sorted by
// path, in one form whatever the Nix version printed: NAR hashes as
// "sha256:<base32>", references sorted.
func pathInfos(ctx context.Context, paths []string) ([]protocol.PathInfo, error) {
	if len(paths) == 0 {
		return nil, nil
	}
	out, err := nixOutput(ctx, "nix", append([]string{"path-info", "--json", "--recursive"}, paths...)...)
	if err != nil {
		return nil, err
	}
	infos, err := parsePathInfo(out)
	if err != nil {
		return nil, fmt.Errorf("reading nix path-info output: %w", err)
	}
	return infos, nil
}

// rawPathInfo is one path of `nix path-info --json`: Nix 2.8 to 2.18 print
// a list of these with "path" set, later versions an object keyed by path.
type rawPathInfo struct {
	Path       string   `json:"path"`
	NarHash    string   `json:"narHash"`
	NarSize    int64    `json:"narSize"`
	References []string `json:"references"`
	Deriver    *string  `json:"deriver"`
}

func parsePathInfo(out []byte) ([]protocol.PathInfo, error) {
	var raw []rawPathInfo
	if err := json.Unmarshal(out, &raw); err != nil {
		var byPath map[string]*rawPathInfo
		if err2 := json.Unmarshal(out, &byPath); err2 != nil {
			return nil, err
		}
		raw = raw[:0]
		for p, info := range byPath {
			if info == nil {
				return nil, fmt.Errorf("%s is not valid in the store", p)
			}
			info.Path = p
			raw = append(raw, *info)
		}
	}
	infos := make([]protocol.PathInfo, 0, len(raw))
	for _, r := range raw {
		h, err := storepath.ParseNarHash(r.NarHash)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", r.Path, err)
		}
		pi := protocol.PathInfo{Path: r.Path, NarHash: h.String(), NarSize: r.NarSize, References: append([]string(nil), r.References...)}
		if r.Deriver != nil {
			pi.Deriver = *r.Deriver
		}
		sort.Strings(pi.References)
		infos = append(infos, pi)
	}
	sort.Slice(infos, func(i, j int) bool { return infos[i].Path < infos[j].Path })
	return infos, nil
}

// invalidPaths returns the paths the store does not hold as valid.
func invalidPaths(ctx context.Context, paths []string) ([]string, error) {
	if len(paths) == 0 {
		return nil, nil
	}
	var out bytes.Buffer
	err := nixCmd(ctx, nil, &out, nil, "nix-store", append([]string{"--check-validity", "--print-invalid"}, paths...)...)
	if err != nil {
		return nil, err
	}
	return strings.Fields(out.String()), nil
}

// importDrvs adds a .drv closure exported by the evaluation step to the
// store unless the store has the derivation: a pruned or new /nix cache.
func importDrvs(ctx context.Context, drvs []string, closure string, stderr io.Writer) error {
	missing, err := invalidPaths(ctx, drvs)
	if err != nil || len(missing) == 0 {
		return err
	}
	in, err := os.Open(closure)
	if err != nil {
		return fmt.Errorf("the store lacks %s and the evaluation's export of it is missing: %w", missing[0], err)
	}
	defer in.Close()
	if err := nixCmd(ctx, in, io.Discard, stderr, "nix-store", "--import"); err != nil {
		return fmt.Errorf("importing derivations from the evaluation step: %w", err)
	}
	return nil
}

// drvInput is where build and fetch steps find the evaluation's export of
// their derivation's closure.
func drvInput(drvPath string) string {
	return filepath.Join(protocol.InDir, protocol.DrvDir, storepath.Base(drvPath), protocol.DrvClosure)
}

// ErrNoNix is returned when the Nix image has no Nix on its PATH.
var ErrNoNix = errors.New("the Nix image has no nix-store and nix on its PATH: set the NIX_IMAGE build argument to an image with Nix 2.8 or later, such as nixos/nix")

// requireNix checks that the Nix image has the commands the steps run and
// that the store is initialised.
func requireNix() error {
	for _, c := range []string{"nix", "nix-store"} {
		if _, err := exec.LookPath(c); err != nil {
			return ErrNoNix
		}
	}
	return initStore()
}

// initStore makes sure the store in the /nix cache mount is initialised
// before concurrent Nix processes use it: on an empty store (a new runner),
// Nix processes that start at once race to create the store's state and
// one fails ("creating symlink ... gcroots/profiles: File exists"). Steps
// share /nix, so a lock file there serialises the first use.
func initStore() error {
	state := "/nix/var/nix"
	if err := os.MkdirAll(state, 0o755); err != nil {
		return err
	}
	marker := filepath.Join(state, ".nix-frontend-initialised")
	if _, err := os.Stat(marker); err == nil {
		return nil
	}
	f, err := os.OpenFile(filepath.Join(state, ".nix-frontend-init.lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
		return err
	}
	defer unix.Flock(int(f.Fd()), unix.LOCK_UN)
	if _, err := os.Stat(marker); err == nil {
		return nil
	}
	if out, err := exec.Command("nix-store", "--init").CombinedOutput(); err != nil {
		return fmt.Errorf("initialising the Nix store: %v\n%s", err, out)
	}
	return os.WriteFile(marker, nil, 0o644)
}

// addNixConfig appends settings to the NIX_CONFIG of the Nix processes this
// step starts.
func addNixConfig(lines ...string) {
	os.Setenv("NIX_CONFIG", os.Getenv("NIX_CONFIG")+"\n"+strings.Join(lines, "\n"))
}
