# Pier — see README.md. Every target works from a clean checkout.
GO      ?= go
BIN     := bin/pier
VERSION := $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X main.pierVersion=$(VERSION)

.PHONY: all build run test vet fmt clean

all: build

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/pier

# A local 3-node cluster on 127.0.0.1 in the foreground; Ctrl-C stops it.
run: build
	./testing/localcluster/run.sh

vet:
	$(GO) vet ./...

test: vet
	$(GO) test -race -count=1 -timeout 20m ./...

fmt:
	gofmt -l -w $$(git ls-files '*.go')

clean:
	rm -rf bin data
