// Package protocol is the contract between the frontend, which writes
// requests into the LLB it generates, and the helper commands that run them
// next to Nix inside build steps: where things are inside a step, one request
// and one result type per command, how failures are reported, and the checks
// every value from a step passes before it shapes LLB or a layer.
package protocol

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
)

// Paths inside build steps.
const (
	// HelperRoot is where the frontend image is mounted.
	HelperRoot = "/.nix-frontend"
	// HelperBinary is the helper's path inside build steps.
	HelperBinary = HelperRoot + "/bin/nix-frontend"
	// RequestFile is where a step finds its request: a file, not an
	// environment variable, so requests of any size fit (Linux caps one
	// variable at 128 KiB).
	RequestFile = "/.nix-frontend-request.json"
	// SrcDir is where the build context is mounted for evaluation.
	SrcDir = "/.nix-frontend-src"
	// InDir is where a step's inputs (earlier steps' outputs) are mounted.
	InDir = "/.nix-frontend-in"
	// OutDir is the step's output. For the layer and link steps it is the
	// layer itself, rooted like the image.
	OutDir = "/.nix-frontend-out"
	// LayersDir holds the outputs of layer steps, one per layer: see
	// LayerDir.
	LayersDir = "/.nix-frontend-layers"
	// MetaDir is a second output of steps whose first is a layer: what the
	// frontend reads about it.
	MetaDir = "/.nix-frontend-meta"
	// ReportDir is a cache mount shared by all steps: a step that fails
	// writes its report there (see Report), because a failed step has no
	// output the frontend could read.
	ReportDir = "/.nix-frontend-reports"
)

// Files steps write into their outputs.
const (
	EvalFile     = "eval.json"      // eval: EvalResult
	DrvDir       = "drv"            // eval: drv/<drv base>/closure, nix-store --export of the .drv closure
	DrvClosure   = "closure"        //
	FetchFile    = "fetch.json"     // fetch: FetchResult
	ResultDir    = "results"        // build: results/<job key>.json, BuildResult
	LinksFile    = "links.json"     // links (in MetaDir): LinksResult
	ArchiveFile  = "archive.json"   // unpack: ArchiveResult
	ArchiveDir   = "archive"        // unpack: archive/config.json, archive/<n>.tar
	ConfigFile   = "config.json"    // unpack: the image config, as in the archive
	PushedFile   = "pushed.json"    // push: PushResult
	SBOMFile     = "sbom.spdx.json" // sbom: the SPDX document
	ReportSuffix = ".report.json"   // in ReportDir
	ReportFile   = "report.json"    // report: the Report copied out of ReportDir
)

// Exit codes of helper commands, besides 0.
const (
	// ExitFailed is a failure the step reported in ReportDir.
	ExitFailed = 1
	// ExitStoreLost says the /nix cache mount lacks store paths an earlier,
	// cached step made (BuildKit pruned the mount, or this is a new
	// builder): the frontend runs the stage's fetch and build steps again
	// and retries.
	ExitStoreLost = 75
)

// Request is any step's request.
type Request interface {
	// Command is the helper command that runs it.
	Command() string
}

// Encode renders a request as the bytes of its request file. The bytes
// key the step's cache, so a request holds only what the step's result
// depends on.
func Encode(r Request) ([]byte, error) {
	return json.Marshal(r)
}

// Digest names a request: its reports, and the step in errors.
func Digest(encoded []byte) string {
	sum := sha256.Sum256(encoded)
	return hex.EncodeToString(sum[:])
}

// Decode reads a request file, rejecting fields the command does not know:
// a request from another nix-frontend version fails loudly.
func Decode[R Request](dt []byte) (R, error) {
	var r R
	dec := json.NewDecoder(bytes.NewReader(dt))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&r); err != nil {
		return r, fmt.Errorf("reading the %s request: %w", r.Command(), err)
	}
	return r, nil
}

// Report is what a failed step leaves in ReportDir under its request's
// digest, for the frontend to turn into an error at the Nixfile line.
type Report struct {
	// Error is the message, as a person should read it.
	Error string `json:"error"`
	// Eval holds an evaluation's results when the step was an
	// evaluation: every installable's error, each at its INSTALL line.
	Eval *EvalResult `json:"eval,omitempty"`
	// Missing lists store paths the step needed and the store lacks
	// (ExitStoreLost).
	Missing []string `json:"missing,omitempty"`
	// Group is the link group (INSTALL line) of a link tree collision.
	Group *int `json:"group,omitempty"`
}

// ReportName is the file a step with this request digest reports to.
func ReportName(digest string) string { return digest + ReportSuffix }
