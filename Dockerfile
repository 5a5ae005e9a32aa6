# The nix-frontend image: one static binary in an otherwise empty image.
# BuildKit runs it as the frontend for `# syntax=` lines, and build steps mount
# it to run the same binary's helper commands next to Nix.
#
#   docker buildx build -t nix-frontend .                     # from source
#   docker buildx build --build-arg BUILD_FROM=prebuilt \
#     --build-context dist=.cache/dist -t nix-frontend .      # binary built on the host
ARG GO_VERSION=1.26
ARG BUILD_FROM=source

FROM --platform=$BUILDPLATFORM golang:${GO_VERSION}-bookworm AS build-source
WORKDIR /src
ENV CGO_ENABLED=0
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=bind,source=go.mod,target=go.mod \
    --mount=type=bind,source=go.sum,target=go.sum \
    go mod download
ARG TARGETOS TARGETARCH VERSION=dev COMMIT=unknown
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    --mount=type=bind,target=. \
    GOOS=$TARGETOS GOARCH=$TARGETARCH go build -trimpath \
      -ldflags "-s -w -X main.version=$VERSION -X main.commit=$COMMIT" \
      -o /out/nix-frontend ./cmd/nix-frontend

# A binary built on the host (hack/frontend-image does this where base images
# cannot be pulled): pass the directory as the named context "dist".
FROM scratch AS build-prebuilt
ARG TARGETOS TARGETARCH
COPY --from=dist nix-frontend-${TARGETOS}-${TARGETARCH} /out/nix-frontend

FROM build-${BUILD_FROM} AS build

FROM scratch
COPY --from=build /out/nix-frontend /bin/nix-frontend
LABEL moby.buildkit.frontend.network.none="true"
LABEL moby.buildkit.frontend.caps="moby.buildkit.frontend.inputs,moby.buildkit.frontend.subrequests,moby.buildkit.frontend.contexts"
ENTRYPOINT ["/bin/nix-frontend"]
