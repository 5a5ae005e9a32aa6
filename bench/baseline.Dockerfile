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
# BUILD_USERS=1 runs the builders as Nix's build users, as the nixos/nix
# image does (its nix.conf has build-users-group = nixbld, and its /etc the
# nixbld group with 32 users); the Debian image has none, so they are added
# here, once. Without it, builders run as root (NIX_CONFIG's
# build-users-group is empty).
ARG BUILD_USERS=
RUN if [ -n "$BUILD_USERS" ]; then \
      members=; for i in $(seq 1 32); do \
        echo "nixbld$i:x:$((30000 + i)):30000:Nix build user $i:/var/empty:/bin/false" >> /etc/passwd; \
        members="$members${members:+,}nixbld$i"; \
      done; \
      echo "nixbld:x:30000:$members" >> /etc/group; \
    fi
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
    users=; if [ -n "$BUILD_USERS" ]; then users="--option build-users-group nixbld"; fi; \
    nix-build default.nix --argstr salt "$SALT" $NIX_ARGS $attrs $users -o /tmp/result; \
    echo "bench: copy start $(date +%s.%N)"; \
    mkdir -p /out/nix/store; \
    cp -a $(nix-store -qR /tmp/result*) /out/nix/store/; \
    echo "bench: copy end $(date +%s.%N)"; \
    echo "bench: copied $(du -sb /out/nix/store | cut -f1) bytes"

FROM scratch
COPY --from=build /out /
