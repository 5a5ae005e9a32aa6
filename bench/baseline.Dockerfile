# The recipe nix-frontend is measured against (bench/run): the widely used
# multi-stage Dockerfile that builds with nix-build in a Nix image, keeps
# /nix in a cache mount, and copies the runtime closure into an image FROM
# scratch — one layer holding the whole closure. Built by BuildKit's own
# Dockerfile frontend (dockerfile.v0) on the same buildkitd as nix-frontend.
#
# Build arguments: NIX_IMAGE is the Nix image (the same nix-frontend gets);
# SALT and NIX_ARGS are passed to default.nix, ATTRS are the attributes to
# build; NIX_CONFIG is the same as nix-frontend gets.
ARG NIX_IMAGE=127.0.0.1:5000/nix:2.26
FROM ${NIX_IMAGE} AS build
WORKDIR /src
COPY . .
ARG NIX_CONFIG
ARG SALT
ARG NIX_ARGS=
ARG ATTRS=top
# The Debian Nix image keeps Nix in /usr/bin and has an empty /nix, so the
# whole store lives in the cache mount. The "bench:" lines time the copy
# and count its bytes for the export measurements.
RUN --mount=type=cache,target=/nix,id=nix-bench-baseline-store \
    set -e; \
    attrs=; for a in $ATTRS; do attrs="$attrs -A $a"; done; \
    nix-build default.nix --argstr salt "$SALT" $NIX_ARGS $attrs -o /tmp/result; \
    echo "bench: copy start $(date +%s.%N)"; \
    mkdir -p /out/nix/store; \
    cp -a $(nix-store -qR /tmp/result*) /out/nix/store/; \
    echo "bench: copy end $(date +%s.%N)"; \
    echo "bench: copied $(du -sb /out/nix/store | cut -f1) bytes"

FROM scratch
COPY --from=build /out /
