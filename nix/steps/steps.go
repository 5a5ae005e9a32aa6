// Package steps is what nix-frontend's helper does inside build steps, next
// to the Nix store: evaluate installables, build one derivation, export a
// closure. The request and result types are the contract between the
// frontend, which writes requests into the LLB it generates, and the helper
// binary that runs them; both sides use this package.
package steps

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"

	"golang.org/x/sys/unix"
)

// Paths inside build steps.
const (
	// HelperRoot is where the frontend image is mounted; the helper binary
	// is HelperRoot + "/bin/nix-frontend".
	HelperRoot = "/.nix-frontend"
	// SrcDir is where the build context is mounted for evaluation.
	SrcDir = "/.nix-frontend-src"
	// InDir is where a step's inputs (earlier steps' outputs) are mounted.
	InDir = "/.nix-frontend-in"
	// OutDir is the step's output.
	OutDir = "/.nix-frontend-out"
	// StoreDir is the Nix store; nix-frontend supports the default only,
	// which is what every binary cache and nixpkgs build assumes.
	StoreDir = "/nix/store"
)

// HelperBinary is the helper's path inside build steps.
const HelperBinary = HelperRoot + "/bin/nix-frontend"

// Files a step writes into its output.
const (
	JobsFile     = "jobs.json"     // eval: []EvalJob
	DrvDir       = "drv"           // eval: drv/<drv basename>/closure (nix-store --export of the .drv closure)
	DrvClosure   = "closure"       //
	ResultFile   = "result.json"   // build: BuildResult
	ManifestFile = "manifest.json" // export: Manifest
	LinksDir     = "links"         // export: the link tree, rooted like the image
)

// PathInfo is what the image needs to know of a store path. Only fields that
// depend on the path's contents are kept, so results are byte-identical
// wherever the same path was built.
type PathInfo struct {
	Path       string   `json:"path"`
	NarHash    string   `json:"narHash"`
	NarSize    int64    `json:"narSize"`
	References []string `json:"references,omitempty"`
	// Deriver is the derivation that built the path, for the SBOM.
	Deriver string `json:"deriver,omitempty"`
}

// Name is the store path without /nix/store/ and the hash: "hello-2.12".
func (p PathInfo) Name() string { return StorePathName(p.Path) }

// StorePathName returns "hello-2.12" for "/nix/store/<hash>-hello-2.12".
func StorePathName(p string) string {
	base := filepath.Base(p)
	if i := strings.IndexByte(base, '-'); i >= 0 {
		return base[i+1:]
	}
	return base
}

// DrvKey is the directory name under DrvDir for a .drv path.
func DrvKey(drvPath string) string { return filepath.Base(drvPath) }

// writeJSON writes v as indented JSON with a trailing newline.
func writeJSON(path string, v any) error {
	dt, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(dt, '\n'), 0o644)
}

// ReadJSON reads a file written by a step.
func ReadJSON(path string, v any) error {
	dt, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	return json.Unmarshal(dt, v)
}

// Request is any step's request; the helper reads it from its argument.
type Request interface {
	Command() string
}

// RequestEnv is the environment variable that carries a step's request.
const RequestEnv = "NIX_FRONTEND_REQUEST"

// Encode renders a request as the argument the helper receives. The
// request is part of the build step's command line, hence of its cache key:
// it must hold only what the step's result depends on.
func Encode(r Request) (string, error) {
	dt, err := json.Marshal(r)
	return string(dt), err
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
		if execErr, ok := err.(*exec.Error); ok {
			return fmt.Errorf("%s: %w (is Nix installed in the Nix image and on its PATH?)", name, execErr.Err)
		}
		return fmt.Errorf("%s %s: %w\n%s", name, strings.Join(args, " "), err, tail.String())
	}
	return nil
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

// pathInfos returns the closure of paths with their metadata, sorted by path.
func pathInfos(ctx context.Context, paths []string) ([]PathInfo, error) {
	if len(paths) == 0 {
		return nil, nil
	}
	args := append([]string{"path-info", "--json", "--recursive"}, paths...)
	out, err := nixOutput(ctx, "nix", args...)
	if err != nil {
		return nil, err
	}
	var infos []PathInfo
	if err := json.Unmarshal(out, &infos); err != nil {
		// Nix 2.19+ prints an object keyed by path.
		var byPath map[string]PathInfo
		if err2 := json.Unmarshal(out, &byPath); err2 != nil {
			return nil, fmt.Errorf("reading nix path-info output: %w", err)
		}
		for p, info := range byPath {
			info.Path = p
			infos = append(infos, info)
		}
	}
	for i := range infos {
		sort.Strings(infos[i].References)
	}
	sort.Slice(infos, func(i, j int) bool { return infos[i].Path < infos[j].Path })
	return infos, nil
}

// missingPaths returns the paths that are not in the store.
func missingPaths(paths []string) []string {
	var missing []string
	for _, p := range paths {
		if _, err := os.Lstat(p); err != nil {
			missing = append(missing, p)
		}
	}
	return missing
}

// importDrvs adds .drv closures exported by the evaluation step to the
// store, for a store that no longer has them (a pruned or new /nix cache).
func importDrvs(ctx context.Context, files []string, stderr io.Writer) error {
	for _, f := range files {
		in, err := os.Open(f)
		if err != nil {
			return err
		}
		err = nixCmd(ctx, in, io.Discard, stderr, "nix-store", "--import")
		in.Close()
		if err != nil {
			return fmt.Errorf("importing derivations from the evaluation step: %w", err)
		}
	}
	return nil
}

// ErrNoNix is returned when the Nix image has no Nix on its PATH.
var ErrNoNix = fmt.Errorf("the Nix image has no nix-store and nix on its PATH: set the NIX_IMAGE build argument to an image with Nix 2.8 or later, such as nixos/nix")

// requireNix checks that the Nix image has the commands the steps run, and
// sets up the credentials the build gave.
func requireNix() error {
	if err := useCredentials(); err != nil {
		return err
	}
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

// Where build steps find the credentials the build was given.
const (
	// NetrcSecret is `--secret id=netrc`: a netrc file for HTTP fetches
	// and binary caches.
	NetrcSecret = "/run/secrets/nix-frontend/netrc"
	// AccessTokensSecret is `--secret id=access-tokens`: Nix's
	// access-tokens setting ("github.com=ghp_..." entries), for flake
	// inputs on private forges.
	AccessTokensSecret = "/run/secrets/nix-frontend/access-tokens"
	// SSHAgentSocket is `--ssh default`, for git+ssh flake inputs.
	SSHAgentSocket = "/run/nix-frontend/ssh-agent.sock"
)

// useCredentials hands the credentials mounted into this step to the Nix
// processes it starts, through their environment only.
func useCredentials() error {
	var extra []string
	if _, err := os.Stat(NetrcSecret); err == nil {
		extra = append(extra, "netrc-file = "+NetrcSecret)
	}
	if dt, err := os.ReadFile(AccessTokensSecret); err == nil {
		tokens := strings.Join(strings.Fields(string(dt)), " ")
		if tokens != "" {
			extra = append(extra, "access-tokens = "+tokens)
		}
	}
	if len(extra) > 0 {
		if err := os.Setenv("NIX_CONFIG", os.Getenv("NIX_CONFIG")+"\n"+strings.Join(extra, "\n")); err != nil {
			return err
		}
	}
	if _, err := os.Stat(SSHAgentSocket); err == nil {
		return os.Setenv("SSH_AUTH_SOCK", SSHAgentSocket)
	}
	return nil
}
