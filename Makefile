# hermes-drain-operator
#
# Every tool is pinned here and built once, from Go modules, into a cache outside
# the clone keyed by name and version (TOOLS_CACHE). bin/ only holds links into
# that cache, so a fresh clone on a machine that built the tools before reuses
# them, and a new machine builds them. Nothing is downloaded at run time but Go
# modules.

SHELL := /usr/bin/env bash -o pipefail
.SHELLFLAGS := -ec
.DEFAULT_GOAL := help

K8S_VERSION              := v1.36.3
ETCD_VERSION             := v3.6.16
KWOK_VERSION             := v0.8.0
CONTROLLER_TOOLS_VERSION := v0.21.0
HELM_VERSION             := v3.22.0
GOLANGCI_LINT_VERSION    := v2.15.0
# Prometheus 3.16.0's promtool (the Go module is tagged v0.316.0): the chart's alert tests.
PROMTOOL_VERSION         := v0.316.0
# The real node: containerd's version is pinned by hack/tools/containerd/go.mod.
CONTAINERD_VERSION       := v2.4.2

TOOLS_CACHE ?= $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/hermes-drain-operator/tools
BIN         := bin
# Same flags for every build so they share Go's build cache.
GO_BUILD    := CGO_ENABLED=0 go build -trimpath

K8S_MINOR := $(word 2,$(subst ., ,$(K8S_VERSION)))
K8S_LDFLAGS := $(foreach p,k8s.io/component-base/version k8s.io/client-go/pkg/version,\
	-X $(p).gitVersion=$(K8S_VERSION) -X $(p).gitMajor=1 -X $(p).gitMinor=$(K8S_MINOR) \
	-X $(p).gitTreeState=clean)

ETCD           := $(TOOLS_CACHE)/etcd-$(ETCD_VERSION)/etcd
KUBE_APISERVER := $(TOOLS_CACHE)/kube-apiserver-$(K8S_VERSION)/kube-apiserver
KUBECTL        := $(TOOLS_CACHE)/kubectl-$(K8S_VERSION)/kubectl
KUBE_CONTROLLER_MANAGER := $(TOOLS_CACHE)/kube-controller-manager-$(K8S_VERSION)/kube-controller-manager
KUBE_SCHEDULER := $(TOOLS_CACHE)/kube-scheduler-$(K8S_VERSION)/kube-scheduler
CONTROLLER_GEN := $(TOOLS_CACHE)/controller-gen-$(CONTROLLER_TOOLS_VERSION)/controller-gen
KWOK           := $(TOOLS_CACHE)/kwok-$(KWOK_VERSION)/kwok
HELM           := $(TOOLS_CACHE)/helm-$(HELM_VERSION)/helm
GOLANGCI_LINT  := $(TOOLS_CACHE)/golangci-lint-$(GOLANGCI_LINT_VERSION)/golangci-lint
PROMTOOL       := $(TOOLS_CACHE)/promtool-$(PROMTOOL_VERSION)/promtool
KUBELET        := $(TOOLS_CACHE)/kubelet-$(K8S_VERSION)/kubelet
CONTAINERD     := $(TOOLS_CACHE)/containerd-$(CONTAINERD_VERSION)/containerd
CONTAINERD_SHIM := $(TOOLS_CACHE)/containerd-$(CONTAINERD_VERSION)/containerd-shim-runc-v2
CTR            := $(TOOLS_CACHE)/containerd-$(CONTAINERD_VERSION)/ctr

##@ General

.PHONY: help
help: ## Show the targets.
	@awk 'BEGIN {FS = ":.*##"} /^[a-zA-Z_-]+:.*?##/ { printf "  %-16s %s\n", $$1, $$2 } /^##@/ { printf "\n%s\n", substr($$0, 5) }' $(MAKEFILE_LIST)

##@ Development

.PHONY: generate
generate: $(BIN)/controller-gen ## Regenerate deepcopy, CRDs and RBAC from the Go markers.
	$(BIN)/controller-gen object:headerFile=hack/boilerplate.go.txt paths=./api/...
	$(BIN)/controller-gen crd rbac:roleName=hermes-drain-operator paths=./... \
		output:crd:artifacts:config=config/crd/bases output:rbac:artifacts:config=config/rbac
	hack/chart-generated.sh

.PHONY: verify-generated
verify-generated: generate ## Fail when generated files are not committed.
	@git diff --exit-code -- api config charts || { echo "generated files are stale: run 'make generate' and commit"; exit 1; }

.PHONY: vet
vet: ## go vet.
	go vet ./...

.PHONY: build
build: ## Build the manager and agent binaries into bin/.
	$(GO_BUILD) -o $(BIN)/manager ./cmd/manager
	$(GO_BUILD) -o $(BIN)/hermes-drain-agent ./cmd/hermes-drain-agent

.PHONY: plugin
plugin: ## Build the kubectl plugin into bin/kubectl-hermes_drain (put bin/ on PATH for `kubectl hermes-drain`).
	$(GO_BUILD) -o $(BIN)/kubectl-hermes_drain ./cmd/kubectl-hermes_drain

.PHONY: image
image: test-packages $(BIN)/kubectl ## Write the operator, agent, pause, test-gateway and kubectl images as tarballs into bin/images (no Docker engine needed).
	$(GO_BUILD) -o $(BIN)/manager ./cmd/manager
	$(GO_BUILD) -o $(BIN)/hermes-drain-agent ./cmd/hermes-drain-agent
	$(GO_BUILD) -o $(BIN)/pause ./hack/pause
	$(GO_BUILD) -o $(BIN)/gatewaysim ./test/gatewaysim/cmd/gatewaysim
	go run ./hack/image --out $(BIN)/images --manager $(BIN)/manager --agent $(BIN)/hermes-drain-agent --pause $(BIN)/pause \
		--gatewaysim $(BIN)/gatewaysim --busybox "$$(command -v busybox)" \
		--kubectl $(BIN)/kubectl --kubectl-ref registry.k8s.io/kubectl:$(K8S_VERSION)

# UNIT_PACKAGES hold every test that needs no control plane, cluster or node;
# the tests that do are built with `!unit` (a TestMain that starts etcd and
# kube-apiserver, the kwok and real-node suites under test/).
UNIT_PACKAGES := ./api/... ./cmd/... ./controllers/... ./internal/... ./test/gatewaysim/...

.PHONY: test-unit
test-unit: test-packages ## Every test that needs no control plane (no etcd, no cluster): about 30 s warm.
	go test -tags unit -count=1 $(UNIT_PACKAGES)

.PHONY: lint
lint: $(BIN)/golangci-lint ## golangci-lint (pinned, .golangci.yml): gofmt, goimports, vet, staticcheck, errcheck, unused, ineffassign.
	$(BIN)/golangci-lint run ./...

.PHONY: demo
demo: cluster-tools build ## Drain five simulated gateways on a local cluster, cancel, tear down (about a minute warm).
	go run ./hack/demo

##@ Test

.PHONY: test
test: test-tools test-packages node-tools image plugin verify-generated vet lint ## Unit, envtest (real kube-apiserver + etcd), end-to-end (kwok, real exec) and real-node (kubelet, containerd, runc) tests.
	KUBEBUILDER_ASSETS=$(abspath $(BIN)) go test ./... -count=1 -timeout 20m

.PHONY: chaos
chaos: test-tools ## Kill the manager in every phase of 6 drains of 100 pods, 24 kills (make test runs a short version).
	CHAOS_PODS=100 CHAOS_ROUNDS=6 go test ./test/chaos/ -count=1 -v -timeout 30m

.PHONY: bench
bench: cluster-tools ## Drain 100, 1000 and 10,000 gateways through exec and through agents (and, up to 1000, a kubectl loop and bare client-go exec); writes docs/bench/ (about 40 minutes).
	BENCH_SIZES=100,1000,10000 BENCH_RUNS=1 BENCH_IDLE=60s BENCH_TRAFFIC_GATEWAYS=100 BENCH_WAVE_GATEWAYS=100 BENCH_OUT=docs/bench \
		go test ./test/bench/ -count=1 -v -timeout 180m

# The in-container program is tested under dash (Debian's sh) and busybox ash.
.PHONY: test-packages
test-packages: ## Install (once) the Debian packages the tests need: busybox-static.
	@command -v busybox >/dev/null || { echo ">> installing busybox-static"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq busybox-static; }

.PHONY: test-tools
test-tools: cluster-tools $(BIN)/controller-gen $(BIN)/helm $(BIN)/promtool ## Build (once) the binaries the tests need.

.PHONY: cluster-tools
cluster-tools: $(BIN)/etcd $(BIN)/kube-apiserver $(BIN)/kube-controller-manager $(BIN)/kube-scheduler $(BIN)/kubectl $(BIN)/kwok ## Build (once) the local cluster's binaries.

# The real node (test/node): kubelet, containerd, its runc shim and ctr,
# built once; runc, the loopback CNI plugin and busybox from Debian.
.PHONY: node-tools
node-tools: cluster-tools $(BIN)/kubelet $(BIN)/containerd $(BIN)/containerd-shim-runc-v2 $(BIN)/ctr ## Build (once) the real node's binaries and install its Debian packages.
	@command -v runc >/dev/null && [ -x /usr/lib/cni/loopback ] && command -v busybox >/dev/null || { \
		echo ">> installing runc, containernetworking-plugins, busybox-static"; apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq runc containernetworking-plugins busybox-static; }

##@ Tools (built once into $(TOOLS_CACHE))

$(BIN)/%: | $(BIN)
	@ln -sfn "$<" "$@"

$(BIN):
	@mkdir -p $@

$(BIN)/etcd: $(ETCD)
$(BIN)/kube-apiserver: $(KUBE_APISERVER)
$(BIN)/kubectl: $(KUBECTL)
$(BIN)/kube-controller-manager: $(KUBE_CONTROLLER_MANAGER)
$(BIN)/kube-scheduler: $(KUBE_SCHEDULER)
$(BIN)/controller-gen: $(CONTROLLER_GEN)
$(BIN)/kwok: $(KWOK)
$(BIN)/helm: $(HELM)
$(BIN)/golangci-lint: $(GOLANGCI_LINT)
$(BIN)/promtool: $(PROMTOOL)
$(BIN)/kubelet: $(KUBELET)
$(BIN)/containerd: $(CONTAINERD)
$(BIN)/containerd-shim-runc-v2: $(CONTAINERD_SHIM)
$(BIN)/ctr: $(CTR)

# Each recipe builds into a temporary name and renames, so an interrupted build
# never leaves a binary that looks finished.
$(ETCD):
	@echo ">> building etcd $(ETCD_VERSION) (about 2 min, once)"
	@mkdir -p $(@D)
	cd hack/tools/etcd && $(GO_BUILD) -o $@.tmp . && mv $@.tmp $@

$(KUBE_APISERVER) $(KUBECTL) $(KUBE_CONTROLLER_MANAGER) $(KUBE_SCHEDULER) $(KUBELET):
	@echo ">> building $(@F) $(K8S_VERSION) (kube-apiserver about 6 min, the others 1-2 min, once)"
	@mkdir -p $(@D)
	cd hack/tools/kube && $(GO_BUILD) -ldflags '$(K8S_LDFLAGS)' -o $@.tmp k8s.io/kubernetes/cmd/$(@F) && mv $@.tmp $@

# containerd's tags leave out the storage drivers and docs this node never uses.
$(CONTAINERD) $(CTR):
	@echo ">> building $(@F) $(CONTAINERD_VERSION) (containerd about 5 min cold, once)"
	@mkdir -p $(@D)
	cd hack/tools/containerd && $(GO_BUILD) -tags 'urfave_cli_no_docs no_btrfs no_devmapper no_zfs' \
		-o $@.tmp github.com/containerd/containerd/v2/cmd/$(@F) && mv $@.tmp $@

$(CONTAINERD_SHIM):
	@echo ">> building $(@F) $(CONTAINERD_VERSION)"
	@mkdir -p $(@D)
	cd hack/tools/containerd && $(GO_BUILD) -tags 'urfave_cli_no_docs no_grpc' \
		-o $@.tmp github.com/containerd/containerd/v2/cmd/$(@F) && mv $@.tmp $@

$(CONTROLLER_GEN):
	@echo ">> building controller-gen $(CONTROLLER_TOOLS_VERSION)"
	$(call go-install,sigs.k8s.io/controller-tools/cmd/controller-gen@$(CONTROLLER_TOOLS_VERSION))

$(KWOK):
	@echo ">> building kwok $(KWOK_VERSION) (about 2 min, once)"
	$(call go-install,sigs.k8s.io/kwok/cmd/kwok@$(KWOK_VERSION))

$(HELM):
	@echo ">> building helm $(HELM_VERSION) (about 2 min, once)"
	$(call go-install,helm.sh/helm/v3/cmd/helm@$(HELM_VERSION))

$(GOLANGCI_LINT):
	@echo ">> building golangci-lint $(GOLANGCI_LINT_VERSION) (about 4 min cold, once)"
	$(call go-install,github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$(GOLANGCI_LINT_VERSION))

# remove_all_sd leaves out Prometheus' service discoveries (the cloud SDKs):
# rule checks and rule tests need none, and they are most of the build
# (docs/benchmarks.md, "Numbers behind the design").
$(PROMTOOL):
	@echo ">> building promtool $(PROMTOOL_VERSION) (about 9 min cold on 2 cores, once)"
	$(call go-install,-tags remove_all_sd github.com/prometheus/prometheus/cmd/promtool@$(PROMTOOL_VERSION))

# go-install installs a module's command into a private GOBIN, then renames it
# into place.
define go-install
	@mkdir -p $(@D)
	tmp=$$(mktemp -d $(@D)/.install.XXXX) && CGO_ENABLED=0 GOBIN=$$tmp go install -trimpath $(1) \
		&& mv $$tmp/$(@F) $@ && rmdir $$tmp
endef

.PHONY: clean
clean: ## Remove bin/ (the tool cache stays).
	rm -rf $(BIN)
