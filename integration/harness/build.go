package harness

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	bkclient "github.com/moby/buildkit/client"
	"github.com/moby/buildkit/cmd/buildctl/build"
	gateway "github.com/moby/buildkit/frontend/gateway/client"
	"github.com/moby/buildkit/session"
	"github.com/moby/buildkit/session/sshforward/sshprovider"
	"github.com/nix-frontend/nix-frontend/frontend"
	digest "github.com/opencontainers/go-digest"
	"github.com/tonistiigi/fsutil"
)

// Via names the way a build reaches nix-frontend.
type Via string

const (
	// InProcess runs frontend.Build in the test process through the gateway
	// client: fast, and the frontend's code is the test binary's.
	InProcess Via = "in-process"
	// Buildctl runs `buildctl build` with the dockerfile.v0 frontend, which
	// reads the Nixfile's `# syntax=` line and runs the frontend image.
	Buildctl Via = "buildctl"
	// Buildx runs `docker buildx build` on the remote-driver builder.
	Buildx Via = "buildx"
)

// AllVias is every way in, for tests that must hold for each.
var AllVias = []Via{InProcess, Buildctl, Buildx}

// BuildOpts describe one build.
type BuildOpts struct {
	File      string            // build file in the context; default "Nixfile"
	Ref       string            // push the image here (default: a fresh name in the local registry)
	Output    string            // instead of pushing, an output spec such as "type=oci,dest=x.tar"
	BuildArgs map[string]string // merged over Env.DefaultBuildArgs
	Target    string
	Platforms []string
	Attrs     map[string]string // more frontend options (in-process and buildctl)
	Args      []string          // more command-line arguments (buildctl, buildx)
	Cache     Cache             // BuildKit cache to export and import
	// Secrets maps secret IDs to files (--secret id=ID,src=FILE), and SSH
	// is an SSH agent socket (--ssh default=SOCK), for every way in.
	Secrets map[string]string
	SSH     string
	// CancelWhen, in-process only, cancels the build when a step whose
	// name it accepts starts: a build interrupted at a chosen point.
	CancelWhen func(step string) bool
}

// credentialArgs are the --secret and --ssh flags of buildctl and buildx.
func (o BuildOpts) credentialArgs() []string {
	var args []string
	for _, id := range sortedKeys(o.Secrets) {
		args = append(args, "--secret", "id="+id+",src="+o.Secrets[id])
	}
	if o.SSH != "" {
		args = append(args, "--ssh", "default="+o.SSH)
	}
	return args
}

// Cache is where a build exports BuildKit's cache to and imports it from,
// as specs in the CLI syntax: "type=registry,ref=host/repo:tag,mode=max",
// "type=local,dest=dir" for exports, "type=local,src=dir" for imports.
// buildctl gets them as --export-cache/--import-cache, buildx as
// --cache-to/--cache-from, the in-process client as SolveOpt.CacheExports
// and CacheImports.
type Cache struct {
	Exports []string
	Imports []string
}

// cliArgs are the cache flags of buildctl (buildx: false) or buildx.
func (c Cache) cliArgs(buildx bool) []string {
	exportFlag, importFlag := "--export-cache", "--import-cache"
	if buildx {
		exportFlag, importFlag = "--cache-to", "--cache-from"
	}
	var args []string
	for _, s := range c.Exports {
		args = append(args, exportFlag, s)
	}
	for _, s := range c.Imports {
		args = append(args, importFlag, s)
	}
	return args
}

// Result is a finished build.
type Result struct {
	Ref    string
	Digest digest.Digest // of the pushed manifest or index ("" when not pushed)
	Log    string        // the progress stream as plain text
	Status *Status       // the progress stream as data (in-process only)
}

// DefaultBuildArgs point builds at the local Nix image and make Nix work
// offline.
func (e *Env) DefaultBuildArgs() map[string]string {
	return map[string]string{"NIX_IMAGE": e.NixImage, "NIX_CONFIG": OfflineNixConfig}
}

var refCounter struct {
	sync.Mutex
	n int
}

var notRefChars = regexp.MustCompile(`[^a-z0-9]+`)

// NewRef returns an unused image reference in the local registry, named
// after name (a test name, say).
func (e *Env) NewRef(name string) string {
	name = strings.Trim(notRefChars.ReplaceAllString(strings.ToLower(name), "-"), "-")
	if len(name) > 100 {
		name = name[:100]
	}
	refCounter.Lock()
	defer refCounter.Unlock()
	refCounter.n++
	return fmt.Sprintf("%s/test/%s:%d-%d", e.Registry, name, time.Now().UnixNano(), refCounter.n)
}

// Build builds dir via the given path and fails the test on error.
func (e *Env) Build(t testing.TB, via Via, dir string, o BuildOpts) *Result {
	t.Helper()
	res, err := e.TryBuild(t, via, dir, o)
	if err != nil {
		t.Fatalf("build via %s failed: %v\n%s", via, err, res.Log)
	}
	return res
}

// TryBuild builds dir via the given path and returns the build's error, for
// tests that expect failures. The Result holds the log either way.
func (e *Env) TryBuild(t testing.TB, via Via, dir string, o BuildOpts) (*Result, error) {
	t.Helper()
	if o.File == "" {
		o.File = "Nixfile"
	}
	if o.Ref == "" && o.Output == "" {
		o.Ref = e.NewRef(t.Name())
	}
	args := e.DefaultBuildArgs()
	maps.Copy(args, o.BuildArgs)
	o.BuildArgs = args
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	switch via {
	case InProcess:
		return e.buildInProcess(ctx, dir, o)
	case Buildctl:
		return e.buildCLI(ctx, t, dir, o, e.buildctlArgs(dir, o))
	case Buildx:
		return e.buildCLI(ctx, t, dir, o, e.buildxArgs(dir, o))
	}
	return &Result{}, fmt.Errorf("unknown path %q", via)
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func (o BuildOpts) output() string {
	if o.Output != "" {
		return o.Output
	}
	return "type=image,name=" + o.Ref + ",push=true,registry.insecure=true,oci-mediatypes=true"
}

func (e *Env) buildctlArgs(dir string, o BuildOpts) []string {
	args := []string{"buildctl", "build", "--frontend", "dockerfile.v0", "--progress", "plain",
		"--local", "context=" + dir, "--local", "dockerfile=" + filepath.Dir(filepath.Join(dir, o.File)),
		"--opt", "filename=" + filepath.Base(o.File), "--output", o.output()}
	for _, k := range sortedKeys(o.BuildArgs) {
		args = append(args, "--opt", "build-arg:"+k+"="+o.BuildArgs[k])
	}
	for _, k := range sortedKeys(o.Attrs) {
		args = append(args, "--opt", k+"="+o.Attrs[k])
	}
	if o.Target != "" {
		args = append(args, "--opt", "target="+o.Target)
	}
	if len(o.Platforms) > 0 {
		args = append(args, "--opt", "platform="+strings.Join(o.Platforms, ","))
	}
	args = append(args, o.Cache.cliArgs(false)...)
	args = append(args, o.credentialArgs()...)
	return append(args, o.Args...)
}

func (e *Env) buildxArgs(dir string, o BuildOpts) []string {
	args := []string{"docker", "buildx", "build", "--builder", e.Builder, "--progress", "plain",
		"-f", filepath.Join(dir, o.File), "--output", o.output()}
	for _, k := range sortedKeys(o.BuildArgs) {
		args = append(args, "--build-arg", k+"="+o.BuildArgs[k])
	}
	if o.Target != "" {
		args = append(args, "--target", o.Target)
	}
	if len(o.Platforms) > 0 {
		args = append(args, "--platform", strings.Join(o.Platforms, ","))
	}
	args = append(args, o.Cache.cliArgs(true)...)
	args = append(args, o.credentialArgs()...)
	args = append(args, o.Args...)
	return append(args, dir)
}

func (e *Env) buildCLI(ctx context.Context, t testing.TB, dir string, o BuildOpts, argv []string) (*Result, error) {
	meta := filepath.Join(t.TempDir(), "metadata.json")
	argv = append(argv[:len(argv):len(argv)], "--metadata-file", meta)
	if argv[0] == "docker" {
		// buildx wants the context last.
		argv[len(argv)-3], argv[len(argv)-2], argv[len(argv)-1] = argv[len(argv)-2], argv[len(argv)-1], argv[len(argv)-3]
	}
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.Env = append(os.Environ(), "BUILDKIT_HOST="+e.BuildkitHost, "BUILDX_NO_DEFAULT_ATTESTATIONS=1")
	err := cmd.Run()
	res := &Result{Ref: o.Ref, Log: out.String()}
	if err != nil {
		return res, fmt.Errorf("%s: %w", strings.Join(argv[:3], " "), err)
	}
	if dt, err := os.ReadFile(meta); err == nil {
		var md map[string]any
		if json.Unmarshal(dt, &md) == nil {
			if d, ok := md["containerimage.digest"].(string); ok {
				res.Digest = digest.Digest(d)
			}
		}
	}
	return res, nil
}

func (e *Env) buildInProcess(ctx context.Context, dir string, o BuildOpts) (*Result, error) {
	res := &Result{Ref: o.Ref}
	c, err := bkclient.New(ctx, e.BuildkitHost)
	if err != nil {
		return res, err
	}
	defer c.Close()
	ctxFS, err := fsutil.NewFS(dir)
	if err != nil {
		return res, err
	}
	dfFS, err := fsutil.NewFS(filepath.Dir(filepath.Join(dir, o.File)))
	if err != nil {
		return res, err
	}
	attrs := map[string]string{
		"filename":         filepath.Base(o.File),
		frontend.SourceOpt: e.FrontendImage,
	}
	for k, v := range o.BuildArgs {
		attrs["build-arg:"+k] = v
	}
	maps.Copy(attrs, o.Attrs)
	if o.Target != "" {
		attrs["target"] = o.Target
	}
	if len(o.Platforms) > 0 {
		attrs["platform"] = strings.Join(o.Platforms, ",")
	}
	// The CLI's own parsers, so every way in reads the specs alike.
	exports, err := build.ParseOutput([]string{o.output()})
	if err != nil {
		return res, err
	}
	cacheExports, err := build.ParseExportCache(o.Cache.Exports)
	if err != nil {
		return res, err
	}
	cacheImports, err := build.ParseImportCache(o.Cache.Imports)
	if err != nil {
		return res, err
	}
	ch := make(chan *bkclient.SolveStatus)
	st := newStatus()
	done := make(chan struct{})
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if o.CancelWhen != nil {
		st.onStart = func(name string) {
			if o.CancelWhen(name) {
				cancel()
			}
		}
	}
	go func() { st.consume(ch); close(done) }()
	var attachables []session.Attachable
	var secrets, ssh []string
	for _, id := range sortedKeys(o.Secrets) {
		secrets = append(secrets, "id="+id+",src="+o.Secrets[id])
	}
	if len(secrets) > 0 {
		sp, err := build.ParseSecret(secrets)
		if err != nil {
			return res, err
		}
		attachables = append(attachables, sp)
	}
	if o.SSH != "" {
		ssh = append(ssh, "default="+o.SSH)
		configs, err := build.ParseSSH(ssh)
		if err != nil {
			return res, err
		}
		sp, err := sshprovider.NewSSHAgentProvider(configs)
		if err != nil {
			return res, err
		}
		attachables = append(attachables, sp)
	}
	resp, err := c.Build(ctx, bkclient.SolveOpt{
		Session:       attachables,
		LocalMounts:   map[string]fsutil.FS{"context": ctxFS, "dockerfile": dfFS},
		FrontendAttrs: attrs,
		Exports:       exports,
		CacheExports:  cacheExports,
		CacheImports:  cacheImports,
	}, "nix-frontend-test", frontend.Build, ch)
	<-done
	res.Status, res.Log = st, st.String()
	if err != nil {
		return res, err
	}
	if d := resp.ExporterResponse["containerimage.digest"]; d != "" {
		res.Digest = digest.Digest(d)
	}
	return res, nil
}

// Solve runs f as a frontend in-process on the test daemon, with the
// progress stream's logs written to logs.
func (e *Env) Solve(t testing.TB, f gateway.BuildFunc, logs io.Writer) error {
	t.Helper()
	ctx := context.Background()
	c, err := bkclient.New(ctx, e.BuildkitHost)
	if err != nil {
		return err
	}
	defer c.Close()
	ch := make(chan *bkclient.SolveStatus)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for st := range ch {
			for _, l := range st.Logs {
				logs.Write(l.Data)
			}
		}
	}()
	_, err = c.Build(ctx, bkclient.SolveOpt{}, "nix-frontend-test", f, ch)
	<-done
	return err
}
