# The operator's image, for those who build with Docker. `make image` writes
# the same image without a Docker engine (hack/image); a test keeps the two
# alike: the same static binary at /manager, run as distroless's nonroot user.
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY api/ api/
COPY cmd/ cmd/
COPY controllers/ controllers/
COPY internal/ internal/
RUN CGO_ENABLED=0 go build -trimpath -o /manager ./cmd/manager

FROM scratch
COPY --from=build /manager /manager
USER 65532:65532
ENTRYPOINT ["/manager"]
