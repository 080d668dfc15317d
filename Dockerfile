# The operator's image (the default target) and the agent's (--target agent),
# for those who build with Docker. `make image` writes the same images
# without a Docker engine (hack/image); a test keeps the two alike: the same
# static binaries at the same paths, run as distroless's nonroot user.
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY api/ api/
COPY cmd/ cmd/
COPY controllers/ controllers/
COPY internal/ internal/
RUN CGO_ENABLED=0 go build -trimpath -o /manager ./cmd/manager
RUN CGO_ENABLED=0 go build -trimpath -o /hermes-drain-agent ./cmd/hermes-drain-agent

# docker build --target agent -t hermes-drain-agent .
FROM scratch AS agent
COPY --from=build /hermes-drain-agent /hermes-drain-agent
USER 65532:65532
ENTRYPOINT ["/hermes-drain-agent"]

FROM scratch
COPY --from=build /manager /manager
USER 65532:65532
ENTRYPOINT ["/manager"]
