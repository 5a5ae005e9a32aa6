package protocol

import (
	"errors"
	"fmt"
	"path"
	"strings"
	"unicode"

	"github.com/nix-frontend/nix-frontend/nix/evaljobs"
	"github.com/nix-frontend/nix-frontend/nix/storepath"
)

// EvalRequest evaluates a stage's INSTALL lines, one evaljobs.Request each.
// The evaluation step has the network and the build's credentials: Nix
// fetches flake inputs and builtins fetchers' files while it evaluates.
type EvalRequest struct {
	Installs []evaljobs.Request `json:"installs"`
	// Evaluator is "nix-eval-jobs", "nix" (the built-in evaluator, which
	// drives `nix eval`) or "" for nix-eval-jobs when the image has it.
	Evaluator string `json:"evaluator,omitempty"`
}

func (EvalRequest) Command() string { return "eval" }

// Evaluators.
const (
	EvaluatorNixEvalJobs = "nix-eval-jobs"
	EvaluatorNix         = "nix"
)

// EvalResult is what an evaluation found: per INSTALL line, one job per
// installable, in order.
type EvalResult struct {
	// Evaluator is the evaluator that ran, and Workers how many
	// evaluations it ran at once.
	Evaluator string        `json:"evaluator"`
	Workers   int           `json:"workers"`
	Installs  []EvalInstall `json:"installs"`
	// Substituters says the Nix configuration names binary caches, so
	// builds may substitute paths: that needs a fetch step, with the
	// network, before the hermetic build.
	Substituters bool `json:"substituters,omitempty"`
	// FixedOutput counts, for every derivation of a job, the fixed-output
	// derivations (downloads) in its build closure: those build in a fetch
	// step, with the network.
	FixedOutput map[string]int `json:"fixedOutput,omitempty"`
}

// EvalInstall is one INSTALL line's jobs.
type EvalInstall struct {
	Jobs []evaljobs.Job `json:"jobs"`
}

// Failed reports whether any installable failed to evaluate.
func (r *EvalResult) Failed() bool {
	for _, in := range r.Installs {
		for _, j := range in.Jobs {
			if j.Error != "" {
				return true
			}
		}
	}
	return false
}

// NeedsFetch says whether a derivation's build needs a fetch step first.
func (r *EvalResult) NeedsFetch(drvPath string) bool {
	return r.Substituters || r.FixedOutput[drvPath] > 0
}

// Validate checks everything an evaluator printed that the frontend uses
// to make LLB: derivation and output paths, output names, systems and names.
func (r *EvalResult) Validate(installs int) error {
	if len(r.Installs) != installs {
		return fmt.Errorf("the evaluation returned %d results for %d INSTALL lines", len(r.Installs), installs)
	}
	var errs []error
	for _, in := range r.Installs {
		for _, j := range in.Jobs {
			if j.Error != "" {
				continue
			}
			if err := ValidateJob(j); err != nil {
				errs = append(errs, fmt.Errorf("the evaluator's result for %s: %w", printable(j.Attr), err))
			}
		}
	}
	for d, n := range r.FixedOutput {
		if err := storepath.ValidateDrv(d); err != nil || n < 0 {
			errs = append(errs, fmt.Errorf("the evaluation's fixed-output count for %.200q: %v", d, err))
		}
	}
	return errors.Join(errs...)
}

// ValidateJob checks an evaluated job's derivation path, system, name and
// outputs.
func ValidateJob(j evaljobs.Job) error {
	if err := storepath.ValidateDrv(j.DrvPath); err != nil {
		return err
	}
	if err := storepath.ValidateSystem(j.System); err != nil {
		return err
	}
	if err := validateName(j.Name); err != nil {
		return err
	}
	if len(j.Outputs) == 0 {
		return fmt.Errorf("%s has no outputs", j.DrvPath)
	}
	for name, p := range j.Outputs {
		if err := storepath.ValidateOutputName(name); err != nil {
			return err
		}
		// An empty path is a content-addressed output, reported later.
		if p != "" {
			if err := storepath.Validate(p); err != nil {
				return err
			}
		}
	}
	return nil
}

// validateName checks a derivation name, which shows in progress lines.
func validateName(n string) error {
	if n == "" || len(n) > 211 || strings.IndexFunc(n, func(r rune) bool { return !unicode.IsPrint(r) || r == ' ' }) >= 0 {
		return fmt.Errorf("%.100q is not a derivation name", n)
	}
	return nil
}

// printable quotes a value from a step for an error message.
func printable(s string) string { return fmt.Sprintf("%.100q", s) }

// FetchRequest realises, with the network, what a job's build needs from
// outside: it substitutes what the binary caches have and builds the
// fixed-output derivations (downloads) whose inputs are present. Ordinary
// derivations never build here; the result names those a further fetch
// waits for, which a hermetic build step makes first.
type FetchRequest struct {
	DrvPath string `json:"drvPath"`
	// Round counts the fetch steps before this one for the same job.
	Round int `json:"round,omitempty"`
	// Recover is set when the frontend runs the step again because the
	// store lost what it fetched before (see ExitStoreLost).
	Recover string `json:"recover,omitempty"`
}

func (FetchRequest) Command() string { return "fetch" }

// FetchResult says what a fetch step did and what is left.
type FetchResult struct {
	Substituted int `json:"substituted"`
	Fetched     int `json:"fetched"`
	// Waiting are ordinary derivations the remaining fixed-output
	// derivations need built before they can run.
	Waiting []string `json:"waiting,omitempty"`
}

// Validate checks the derivations a fetch step named.
func (r *FetchResult) Validate() error {
	for _, d := range r.Waiting {
		if err := storepath.ValidateDrv(d); err != nil {
			return err
		}
	}
	return nil
}

// BuildRequest realises derivations without the network or the build's
// credentials: its jobs, installed derivations, each of which the step
// writes a BuildResult for; or, with Drvs set, the derivations a fetch step
// waits for, and no results.
type BuildRequest struct {
	Jobs []BuildJob `json:"jobs"`
	// Drvs are derivations to realise instead of the jobs.
	Drvs []string `json:"drvs,omitempty"`
	// Fetched says fetch steps ran for the jobs: a derivation that must
	// download and is not in the store means the store lost what those
	// steps fetched.
	Fetched bool `json:"fetched,omitempty"`
	// Network says the INSTALL line lets builders use the network
	// (INSTALL --network=default).
	Network string `json:"network,omitempty"`
	// ImageArchive asks whether the single job's single output is an
	// image tarball.
	ImageArchive bool   `json:"imageArchive,omitempty"`
	Recover      string `json:"recover,omitempty"`
}

func (BuildRequest) Command() string { return "build" }

// BuildJob is an installed derivation and its selected outputs.
type BuildJob struct {
	// Name is the derivation's name, for messages.
	Name    string            `json:"name"`
	DrvPath string            `json:"drvPath"`
	Outputs map[string]string `json:"outputs"`
	// System is the derivation's Nix system; one the build host is not
	// becomes an extra platform, built through the host's emulators.
	System string `json:"system,omitempty"`
	// Key names the result file: results/<Key>.json.
	Key string `json:"key"`
}

// BuildResult is a job's outputs and their runtime closure.
type BuildResult struct {
	DrvPath string            `json:"drvPath"`
	Outputs map[string]string `json:"outputs"`
	Closure []PathInfo        `json:"closure"`
	// ImageArchive says the single output is an image tarball (dockerTools),
	// when the request asked.
	ImageArchive bool `json:"imageArchive,omitempty"`
	// LayerSteps are the layer steps of earlier builds that wrote paths
	// of the closure, as the store recorded them when the build step ran
	// (LayerRecordsDir), ordered by request digest.
	LayerSteps []LayerRequest `json:"layerSteps,omitempty"`
}

// Validate checks the result: its paths, and that the closure is closed
// under references and holds the outputs.
func (r *BuildResult) Validate() error {
	if err := storepath.ValidateDrv(r.DrvPath); err != nil {
		return err
	}
	if err := ValidateClosure(r.Closure); err != nil {
		return err
	}
	have := make(map[string]bool, len(r.Closure))
	for _, p := range r.Closure {
		have[p.Path] = true
	}
	for name, p := range r.Outputs {
		if err := storepath.ValidateOutputName(name); err != nil {
			return err
		}
		if !have[p] {
			return fmt.Errorf("output %s (%.200q) is not in its closure", name, p)
		}
	}
	for _, l := range r.LayerSteps {
		if err := l.Validate(); err != nil {
			return fmt.Errorf("a recorded layer step: %w", err)
		}
	}
	return nil
}

// PathInfo is what the image needs to know of a store path. Only fields
// that depend on the path's contents are kept, so results are
// byte-identical wherever and by whichever Nix the path was built.
type PathInfo struct {
	Path string `json:"path"`
	// NarHash is "sha256:<base32>", as Nix's database holds it.
	NarHash    string   `json:"narHash"`
	NarSize    int64    `json:"narSize"`
	References []string `json:"references,omitempty"`
	// Deriver is the derivation that built the path, for the SBOM.
	Deriver string `json:"deriver,omitempty"`
}

// Name is the store path without the store directory and hash.
func (p PathInfo) Name() string { return storepath.Name(p.Path) }

// maxNarSize bounds a store path's size: 1 PiB.
const maxNarSize = 1 << 50

// Validate checks one path's information.
func (p PathInfo) Validate() error {
	if err := storepath.Validate(p.Path); err != nil {
		return err
	}
	if _, err := storepath.ParseNarHash(p.NarHash); err != nil {
		return fmt.Errorf("%s: %w", p.Path, err)
	}
	if p.NarSize < 0 || p.NarSize > maxNarSize {
		return fmt.Errorf("%s: NAR size %d is out of range", p.Path, p.NarSize)
	}
	for _, r := range p.References {
		if err := storepath.Validate(r); err != nil {
			return fmt.Errorf("%s refers to %w", p.Path, err)
		}
	}
	if p.Deriver != "" {
		if err := storepath.ValidateDrv(p.Deriver); err != nil {
			return fmt.Errorf("%s: deriver: %w", p.Path, err)
		}
	}
	return nil
}

// ValidateClosure checks a closure: every path valid, sorted, once, and
// every reference inside the closure.
func ValidateClosure(paths []PathInfo) error {
	have := make(map[string]bool, len(paths))
	for i, p := range paths {
		if err := p.Validate(); err != nil {
			return err
		}
		if i > 0 && paths[i-1].Path >= p.Path {
			return fmt.Errorf("the closure is not sorted, or lists %s twice", p.Path)
		}
		have[p.Path] = true
	}
	for _, p := range paths {
		for _, r := range p.References {
			if !have[r] {
				return fmt.Errorf("%s refers to %s, which is not in the closure", p.Path, r)
			}
		}
	}
	return nil
}

// LayerRequest copies store paths out of the store into the step's
// outputs, one per layer: layer i into LayerDir(i), rooted like the image.
// Each path is verified against Nix's database, serialised as NAR and
// restored, so a layer holds exactly what Nix registered and its bytes
// depend on nothing but its paths. A step writes several layers because a
// step costs a container start whatever it copies; a layer's bytes do not
// depend on the step that writes it.
//
// A step that succeeded records itself in the /nix cache mount
// (LayerRecordsDir), and a build step reports the records of its closure
// (BuildResult.LayerSteps): a later build writes a layer it shares with an
// earlier one by the earlier build's step, which BuildKit's cache answers
// without copying, whatever else changed.
type LayerRequest struct {
	Layers [][]LayerPath `json:"layers"`
	// Recover is set only when the frontend runs the step again because
	// the store had lost some of its paths: see ExitStoreLost.
	Recover string `json:"recover,omitempty"`
}

func (LayerRequest) Command() string { return "layer" }

// MaxStepLayers is the most layers one layer step writes.
const MaxStepLayers = 32

// Validate checks the request's paths and hashes.
func (r LayerRequest) Validate() error {
	if len(r.Layers) == 0 || len(r.Layers) > MaxStepLayers {
		return fmt.Errorf("a layer step writes 1 to %d layers, not %d", MaxStepLayers, len(r.Layers))
	}
	for _, l := range r.Layers {
		if len(l) == 0 {
			return errors.New("a layer without store paths")
		}
		for _, p := range l {
			if err := storepath.Validate(p.Path); err != nil {
				return err
			}
			if _, err := storepath.ParseNarHash(p.NarHash); err != nil {
				return fmt.Errorf("%s: %w", p.Path, err)
			}
		}
	}
	return nil
}

// StorePaths are the store paths the step copies.
func (r LayerRequest) StorePaths() []string {
	var out []string
	for _, l := range r.Layers {
		for _, p := range l {
			out = append(out, p.Path)
		}
	}
	return out
}

// LayerDir is where a layer step writes its layer i.
func LayerDir(i int) string { return fmt.Sprintf("%s/%d", LayersDir, i) }

// LayerRecordsDir is where, in the /nix cache mount, layer steps record
// themselves: steps/<request digest>.json holds a step's request, and
// paths/<store path base>/<request digest> says that step wrote the path.
const LayerRecordsDir = "/nix/var/nix-frontend/layer-steps"

// LayerPath is a store path of a layer and the NAR hash it must have.
type LayerPath struct {
	Path    string `json:"path"`
	NarHash string `json:"narHash"`
	NarSize int64  `json:"narSize"`
}

// LinksRequest writes the link tree of the installed store paths into the
// step's output, which is the link layer, and looks in the closure for what
// a FROM scratch image needs beside it.
type LinksRequest struct {
	Groups []LinkGroup `json:"groups"`
	// Closure is searched for a CA bundle (CABundlePath in a store path).
	Closure []string `json:"closure,omitempty"`
	// Recover: see LayerRequest.
	Recover string `json:"recover,omitempty"`
}

// CABundlePath is where a store path holds a CA bundle: nixpkgs' cacert.
const CABundlePath = "etc/ssl/certs/ca-bundle.crt"

// BasicFiles are the files a FROM scratch image gets unless its link tree
// has them, relative to the image's root.
var BasicFiles = []string{"etc/passwd", "etc/group", "tmp", "etc/ssl/certs/ca-certificates.crt"}

func (LinksRequest) Command() string { return "links" }

// LinkGroup links the top-level directories of store paths under Root.
type LinkGroup struct {
	Root     string   `json:"root"` // absolute, e.g. "/usr/local"
	Priority int      `json:"priority"`
	Paths    []string `json:"paths"`
	// Line is the Nixfile line that asked for these links, for errors.
	Line int `json:"line"`
}

// LinksResult is what a links step wrote, in MetaDir.
type LinksResult struct {
	// Programs are the link trees' programs as the image sees them
	// ("/usr/local/bin/hello"), sorted.
	Programs []string `json:"programs,omitempty"`
	// Empty says the trees have no entries: no link layer.
	Empty bool `json:"empty,omitempty"`
	// Provides are the BasicFiles the trees put in the image.
	Provides []string `json:"provides,omitempty"`
	// CABundle is the closure's CA bundle, "" when it has none.
	CABundle string `json:"caBundle,omitempty"`
}

// Validate checks the programs' paths and the CA bundle's.
func (r *LinksResult) Validate() error {
	for _, p := range r.Programs {
		if !path.IsAbs(p) || path.Clean(p) != p {
			return fmt.Errorf("link tree program %.200q is not a clean absolute path", p)
		}
	}
	if r.CABundle != "" {
		dir, ok := strings.CutSuffix(r.CABundle, "/"+CABundlePath)
		if !ok {
			return fmt.Errorf("CA bundle %.200q is not %s of a store path", r.CABundle, CABundlePath)
		}
		if err := storepath.Validate(dir); err != nil {
			return err
		}
	}
	return nil
}

// UnpackRequest splits an image tarball Nix built (dockerTools) into its
// config and one tar per layer; BuildKit unpacks the layers.
type UnpackRequest struct {
	Archive string `json:"archive"`
}

func (UnpackRequest) Command() string { return "unpack" }

// ArchiveResult says how many layers an image tarball has.
type ArchiveResult struct {
	Layers int `json:"layers"`
}

// MaxArchiveLayers bounds the layers of an image tarball.
const MaxArchiveLayers = 1000

// Validate checks the layer count.
func (r *ArchiveResult) Validate() error {
	if r.Layers < 0 || r.Layers > MaxArchiveLayers {
		return fmt.Errorf("the image tarball has %d layers", r.Layers)
	}
	return nil
}

// PushRequest signs (with the nix-signing-key secret, when given) and
// uploads store paths to a Nix binary cache.
type PushRequest struct {
	// URL is the cache as `nix copy --to` takes it. It holds no
	// credentials: those come from the netrc and aws secrets.
	URL     string   `json:"url"`
	Paths   []string `json:"paths"`
	Recover string   `json:"recover,omitempty"`
}

func (PushRequest) Command() string { return "push" }

// PushResult is what a push step did.
type PushResult struct {
	Paths int `json:"paths"`
}

// SBOMRequest writes the SPDX document of a platform's closures from the
// evaluation and build steps' results, mounted into the step: a document of
// a large closure is too large to travel in LLB.
type SBOMRequest struct {
	Name string `json:"name"`
	Tool string `json:"tool"`
	// Created is the document's creation time, in Unix seconds.
	Created int64 `json:"created"`
	// Evals are EvalResult files, Results BuildResult files.
	Evals   []string `json:"evals"`
	Results []string `json:"results"`
}

func (SBOMRequest) Command() string { return "sbom" }
