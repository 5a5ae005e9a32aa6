package steps

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// PushRequest uploads a stage's closure to a Nix binary cache
// (NIX_PUSH_CACHE), so that other runners substitute what this one built.
type PushRequest struct {
	// URL is the cache, as Nix's `nix copy --to` takes it: https://…,
	// s3://bucket?region=…, file://…. Credentials are not in it: they come
	// from the netrc and aws secrets.
	URL         string   `json:"url"`
	Results     []string `json:"results"`
	DrvClosures []string `json:"drvClosures"`
	Out         string   `json:"out"`
}

// Command implements Request.
func (PushRequest) Command() string { return "push" }

// PushedFile is what a push step writes: the URL and how many paths.
const PushedFile = "pushed.json"

// SigningKeySecret is `--secret id=nix-signing-key`: a Nix secret key
// (nix-store --generate-binary-cache-key) that signs what is pushed.
const SigningKeySecret = "/run/secrets/nix-frontend/signing-key"

// Push signs the closure when a signing key was given and copies it to the
// cache; Nix skips what the cache already has.
func Push(ctx context.Context, req PushRequest, stderr io.Writer) error {
	if err := requireNix(); err != nil {
		return err
	}
	_, paths, err := realisedClosure(ctx, req.Results, req.DrvClosures, stderr)
	if err != nil {
		return err
	}
	if _, err := os.Stat(SigningKeySecret); err == nil {
		args := append([]string{"store", "sign", "--key-file", SigningKeySecret}, paths...)
		if err := nixCmd(ctx, nil, io.Discard, stderr, "nix", args...); err != nil {
			return fmt.Errorf("signing the closure: %w", err)
		}
	}
	args := append([]string{"copy", "--to", req.URL}, paths...)
	if err := nixCmd(ctx, nil, io.Discard, stderr, "nix", args...); err != nil {
		return fmt.Errorf("pushing to the Nix binary cache NIX_PUSH_CACHE=%s: %w", req.URL, err)
	}
	fmt.Fprintf(stderr, "nix-frontend: %d store paths are in %s\n", len(paths), req.URL)
	if err := os.MkdirAll(req.Out, 0o755); err != nil {
		return err
	}
	return writeJSON(filepath.Join(req.Out, PushedFile), map[string]any{"url": req.URL, "paths": len(paths)})
}
