# Builds the manager image: a static binary on distroless, running as a non-root user.
# Without a container engine, `make image` builds the equivalent image from Go instead
# (hack/tools/image: OCI layout and tarball under dist/image, with a CycloneDX SBOM), reproducibly;
# see "Image and plugin archives" in the README.
FROM golang:1.27 AS builder
ARG TARGETOS
ARG TARGETARCH
WORKDIR /workspace
COPY go.mod go.sum ./
RUN go mod download
COPY api/ api/
COPY cmd/ cmd/
COPY controllers/ controllers/
COPY internal/ internal/
RUN CGO_ENABLED=0 GOOS=${TARGETOS:-linux} GOARCH=${TARGETARCH} go build -trimpath -ldflags "-s -w" -o manager ./cmd/manager

FROM gcr.io/distroless/static:nonroot
WORKDIR /
COPY --from=builder /workspace/manager .
USER 65532:65532
ENTRYPOINT ["/manager"]
