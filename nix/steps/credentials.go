package steps

import (
	"os"
	"strings"
)

// Where fetching steps find the credentials the build was given. Only the
// steps that fetch (evaluation, fetch, push) mount them; builders never see
// them.
const (
	// NetrcSecret is `--secret id=netrc`: a netrc file for HTTP fetches
	// and binary caches.
	NetrcSecret = "/run/secrets/nix-frontend/netrc"
	// AccessTokensSecret is `--secret id=access-tokens`: Nix's
	// access-tokens setting ("github.com=ghp_..." entries), for flake
	// inputs on private forges.
	AccessTokensSecret = "/run/secrets/nix-frontend/access-tokens"
	// SigningKeySecret is `--secret id=nix-signing-key`: a Nix secret key
	// (nix-store --generate-binary-cache-key) that signs what is pushed.
	SigningKeySecret = "/run/secrets/nix-frontend/signing-key"
	// AWSSecret is `--secret id=aws`: AWS credentials for s3:// caches.
	AWSSecret = "/root/.aws/credentials"
	// SSHAgentSocket is `--ssh default`, for git+ssh flake inputs.
	SSHAgentSocket = "/run/nix-frontend/ssh-agent.sock"
)

// useCredentials hands the credentials mounted into this step to the Nix
// processes it starts, through their environment only.
func useCredentials() {
	var extra []string
	if _, err := os.Stat(NetrcSecret); err == nil {
		extra = append(extra, "netrc-file = "+NetrcSecret)
	}
	if dt, err := os.ReadFile(AccessTokensSecret); err == nil {
		if tokens := strings.Join(strings.Fields(string(dt)), " "); tokens != "" {
			extra = append(extra, "access-tokens = "+tokens)
		}
	}
	if len(extra) > 0 {
		addNixConfig(extra...)
	}
	if _, err := os.Stat(SSHAgentSocket); err == nil {
		os.Setenv("SSH_AUTH_SOCK", SSHAgentSocket)
	}
}
