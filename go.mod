module github.com/nix-frontend/nix-frontend

go 1.26.8

require (
	github.com/containerd/containerd/v2 v2.4.2 // indirect
	github.com/moby/buildkit v0.34.2 // indirect
	github.com/opencontainers/go-digest v1.0.0 // indirect
	github.com/opencontainers/image-spec v1.1.1 // indirect
)
