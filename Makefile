# Pier — see README.md. Every target works from a clean checkout.
GO      ?= go
BIN     := bin/pier
VERSION := $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X main.pierVersion=$(VERSION)

.PHONY: all build run test vet fmt clean oci-conformance

all: build

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/pier

# A local 3-node cluster on 127.0.0.1 in the foreground; Ctrl-C stops it.
run: build
	./testing/localcluster/run.sh

vet:
	$(GO) vet ./...

# -p 1: packages one at a time. The in-process clusters run on tight raft and
# gossip timeouts; beside another package's tests under -race on two cores
# they missed heartbeats (2026-12-05: three lost-quorum flakes in one run).
test: vet
	$(GO) test -race -count=1 -p 1 -timeout 25m ./...

# The OCI distribution-spec conformance suite (pull, push, content discovery,
# content management) against an in-process 3-node cluster. The suite is
# built from its pinned module in a scratch module of its own, so Pier's
# go.mod does not carry ginkgo and friends; its report goes to bin/oci-conformance/.
OCI_CONFORMANCE ?= github.com/opencontainers/distribution-spec/conformance@v0.0.0-20260831232431-97274622c111
oci-conformance:
	@mkdir -p bin && dir=$$(mktemp -d) && cd $$dir && $(GO) mod init pier-oci-conformance >/dev/null 2>&1 && \
	  $(GO) get $(OCI_CONFORMANCE) >/dev/null 2>&1 && \
	  $(GO) test -c -o $(CURDIR)/bin/oci-conformance.test $${OCI_CONFORMANCE_PKG:-$(firstword $(subst @, ,$(OCI_CONFORMANCE)))} && \
	  rm -rf $$dir
	@PIER_OCI_CONFORMANCE=$(CURDIR)/bin/oci-conformance.test PIER_OCI_RESULTS=$(CURDIR)/bin/oci-conformance \
	  $(GO) test -v -count=1 -run '^TestOCIConformance$$' ./testing/clustertest/ > bin/oci-conformance.log 2>&1; st=$$?; \
	  grep -E '^(--- |ok |FAIL)|: FAIL$$' bin/oci-conformance.log; \
	  echo "oci-conformance: $$(grep -cE ': Pass$$' bin/oci-conformance.log) passed, $$(grep -cE ': FAIL$$' bin/oci-conformance.log) failed, $$(grep -cE ': Skip$$' bin/oci-conformance.log) skipped (bin/oci-conformance.log)"; \
	  exit $$st

fmt:
	gofmt -l -w $$(git ls-files '*.go')

clean:
	rm -rf bin data

# Pier against nginx on this machine: 3 local nodes, big pushes and pulls,
# a pull with a node down, 10 KiB loads with wrk; installs nginx and wrk with
# apt-get when missing. Not part of `make test`; see BENCHMARKS.md.
.PHONY: bench
bench: build
	GO='$(GO)' ./testing/bench/bench.sh

# The metadata state machine (fsm) at 100k, 1M and 10M artifacts: snapshot
# and Persist time, worst Apply latency while a snapshot persists, restore
# time, RSS per artifact; each size in a process of its own, a size that
# would not fit in memory skipped. SIZES=100000,1000000 for a shorter run
# (benchmeta's default is all three; make's $(or) split the list at its
# commas, so the old default ran 100k alone).
# Not part of `make test`; see BENCHMARKS.md, "Metadata".
.PHONY: bench-meta
bench-meta:
	$(GO) build -o bin/benchmeta ./testing/bench/cmd/benchmeta
	./bin/benchmeta $(if $(SIZES),-sizes '$(SIZES)') -md bin/bench-meta.md

# Issue 18: in-process clusters of 5, 10, 20 and 50 real nodes (raft, gossip,
# peer service, erasure-coded shards on 127.0.0.1): membership convergence,
# leader reconcile time, placement balance of 20 x 1 MiB objects per node,
# repair after losing 5 nodes (1 of 5); each size in a process of its own.
# SCALE_SIZES=5,10 for a shorter run. Not part of `make test` (no nginx,
# MinIO or SeaweedFS either); see BENCHMARKS.md, "Scale".
.PHONY: bench-scale
bench-scale:
	$(GO) build -o bin/benchscale ./testing/bench/cmd/benchscale
	./bin/benchscale $(if $(SCALE_SIZES),-sizes '$(SCALE_SIZES)') -md bin/bench-scale.md

# ---- Docker image, compose cluster and chaos suite (testing/chaos) ----
# The image packs the host-built static binary (see Dockerfile); GO_TAGS picks
# the build, e.g. `make image GO_TAGS=faults IMAGE=pier:faults`.
COMPOSE     ?= docker-compose
IMAGE       ?= pier:dev
GO_TAGS     ?=
IMAGE_BIN    = bin/image/pier-$(or $(GO_TAGS),none)
CHAOS_FLAGS ?=
CHAOS        = bin/chaos
INTRUDER_IMAGE ?= pier-intruder:dev

.PHONY: image intruder-image compose-up compose-down chaos chaos-planted chaos-tools

image:
	CGO_ENABLED=0 $(GO) build -trimpath -tags '$(GO_TAGS)' -ldflags '$(LDFLAGS)' -o $(IMAGE_BIN) ./cmd/pier
	docker build -q --build-arg GO_TAGS=$(GO_TAGS) -t $(IMAGE) .

# The chaos suite's intruder (testing/chaos/intruder), packed the same way.
intruder-image:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '-s -w' -o bin/image/intruder ./testing/chaos/intruder
	docker build -q -f testing/chaos/intruder/Dockerfile -t $(INTRUDER_IMAGE) .

# dc1 (5 nodes) on 127.0.0.1:8081-8085; COMPOSE_PROFILES=dc2 adds dc2 on
# :8091-8093, replicating with dc1 (federation is on in docker-compose.yml).
# PIER_HTTP_PREFIX / PIER_DC2_HTTP_PREFIX move the ports (808 / 809).
comma      := ,
HTTP_PREFIX = $(or $(PIER_HTTP_PREFIX),808)
DC2_PREFIX  = $(or $(PIER_DC2_HTTP_PREFIX),809)
WAIT_PORTS  = $(foreach n,1 2 3 4 5,$(HTTP_PREFIX)$(n)) $(if $(filter dc2,$(subst $(comma), ,$(COMPOSE_PROFILES))),$(foreach n,1 2 3,$(DC2_PREFIX)$(n)))
compose-up: image
	PIER_IMAGE=$(IMAGE) $(COMPOSE) up -d
	@for i in $$(seq 1 120); do \
	  ok=0; for p in $(WAIT_PORTS); do curl -fsS -m 1 http://127.0.0.1:$$p/readyz >/dev/null 2>&1 && ok=$$((ok+1)); done; \
	  if [ $$ok = $(words $(WAIT_PORTS)) ]; then echo "ready on 127.0.0.1 ports $(WAIT_PORTS)"; exit 0; fi; sleep 0.5; \
	done; echo "not every node of ports $(WAIT_PORTS) ready after 60s" >&2; $(COMPOSE) logs --tail 20 >&2; exit 1

compose-down:
	$(COMPOSE) --profile dc2 --profile spare down -v --remove-orphans

# Issue 19's acceptance with the docker client (testing/ocidocker/run.sh): a
# compose cluster of its own (project pier-ocidocker, 127.0.0.1:28081-28085,
# access control on), docker login with a token, docker push to node 1, pull
# from node 3 with the same digest, the leader killed, pull again; torn down
# with its volumes at the end. About half a minute.
.PHONY: oci-docker
oci-docker:
	$(MAKE) image IMAGE=pier:ocidocker GO_TAGS=
	COMPOSE='$(COMPOSE)' PIER_IMAGE=pier:ocidocker ./testing/ocidocker/run.sh

# The scenarios enter the nodes' network namespaces with the host's iptables.
chaos-tools:
	@command -v iptables >/dev/null && command -v nsenter >/dev/null || \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq iptables util-linux; }

# Starts dc1, runs every scenario, prints the report, tears everything down
# (also on failure and Ctrl-C); fails if an invariant was violated.
chaos: chaos-tools image intruder-image
	$(GO) build -o $(CHAOS) ./testing/chaos
	./$(CHAOS) -image $(IMAGE) -pier $(IMAGE_BIN) -intruder-image $(INTRUDER_IMAGE) $(CHAOS_FLAGS)

# The suite against builds with planted faults (-tags faults, PIER_FAULT),
# and with the cluster key leaked to the intruder: succeeds only if each run
# reports the violation the fault must cause.
chaos-planted: chaos-tools intruder-image
	$(MAKE) image GO_TAGS=faults IMAGE=pier:faults
	$(GO) build -o $(CHAOS) ./testing/chaos
	./$(CHAOS) -image pier:faults -pier bin/image/pier-faults -fault skip-checksum \
	  -scenarios corrupt -warmup 8s -expect-violations wrong-bytes $(CHAOS_FLAGS)
	./$(CHAOS) -image pier:faults -pier bin/image/pier-faults -fault drop-shard \
	  -scenarios kill-m -warmup 8s -expect-violations lost $(CHAOS_FLAGS)
	./$(CHAOS) -image pier:faults -pier bin/image/pier-faults -intruder-image $(INTRUDER_IMAGE) \
	  -intruder-leak-key -scenarios intruder -expect-violations intruder $(CHAOS_FLAGS)
