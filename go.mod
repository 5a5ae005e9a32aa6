module github.com/nix-frontend/nix-frontend

go 1.26.8
