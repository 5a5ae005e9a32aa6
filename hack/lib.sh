# Shared settings for the hack/ scripts. Source it; it defines paths only and
# starts nothing.
#
# Everything the scripts create lives under .cache/ in the checkout (ignored
# by git), so a checkout is self-contained and `hack/teardown` knows exactly
# what it owns.

NF_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
NF_CACHE=${NF_CACHE:-$NF_ROOT/.cache}
NF_BIN=$NF_CACHE/bin
NF_STATE=$NF_CACHE/state
NF_REGISTRY_ADDR=127.0.0.1:5000
NF_BUILDKIT_SOCK=$NF_STATE/buildkitd.sock
NF_BUILDER=nix-frontend
# The Nix images (hack/nix-image): the Nix users run, the oldest Nix
# supported, and the first with nix-eval-jobs.
NF_NIX_IMAGE=$NF_REGISTRY_ADDR/nix:2.26
NF_NIX_OLD_IMAGE=$NF_REGISTRY_ADDR/nix:2.8
NF_NIX_EVALJOBS_IMAGE=$NF_REGISTRY_ADDR/nix:2.26-eval-jobs
NF_FRONTEND_IMAGE=$NF_REGISTRY_ADDR/nix-frontend:dev
# Slow artefacts (Nix built from source) are kept per machine, outside the
# checkout, so that a new clone on the same machine does not build them again.
NF_MACHINE_CACHE=${NF_MACHINE_CACHE:-/var/cache/nix-frontend}
# Nix and nix-eval-jobs built from source (hack/nix-eval-jobs-build), keyed
# by the recipe.
NF_EVAL_JOBS_TARBALL=$NF_MACHINE_CACHE/nix-eval-jobs-$(sha256sum "$NF_ROOT/hack/nix-eval-jobs-build" | cut -c1-16).tar.gz

export BUILDKIT_HOST=${BUILDKIT_HOST:-unix://$NF_BUILDKIT_SOCK}
export PATH=$NF_BIN:$PATH

# The Nix settings every offline build on this machine needs: no substituters
# (there is no internet), no sandbox (BuildKit steps are not privileged) and
# no build users (steps run as root in a single-user store).
NF_OFFLINE_NIX_CONFIG='substituters =
sandbox = false
build-users-group ='

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }
