# dtc — distributed transaction coordinator.
# `make run` starts the daemon with example participants; `make test` is what CI runs.

GO      ?= go
BIN     := bin
PKGS    := ./...
# Packages with goroutines of their own: tested again under the race detector.
RACE_PKGS := ./wal/... ./httpnet/... ./participant/... ./client/...

.PHONY: all build test race lint vet fmt-check run bench clean

all: build

build:
	$(GO) build -o $(BIN)/ ./cmd/...

lint: fmt-check vet

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet $(PKGS)

# The whole suite: formatting, vet, unit tests, scenarios, then the race detector on the
# concurrent packages.
test: lint
	$(GO) test -count=1 $(PKGS)
	$(GO) test -count=1 -race $(RACE_PKGS)

race:
	$(GO) test -count=1 -race $(RACE_PKGS)

bench:
	$(GO) test -run '^$$' -bench . -benchtime 2000x ./wal

run: build
	@echo "make run: not wired yet"

clean:
	rm -rf $(BIN) data .run
