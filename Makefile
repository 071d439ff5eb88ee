# dtc — distributed transaction coordinator.
# `make run` starts the daemon with example participants; `make test` is what CI runs.

GO      ?= go
BIN     := bin
PKGS    := ./...
# Packages with goroutines of their own: tested again under the race detector.
RACE_PKGS := ./wal/... ./httpnet/... ./participant/... ./client/...

.PHONY: all build test race lint vet fmt-check run bench clean

all: build

# Every command: bin/dtc, bin/bank and bin/demo (and whatever else lives in cmd/).
build:
	$(GO) build -o $(BIN)/ ./cmd/... ./examples/...

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

# The demo: dtc and three banks on 127.0.0.1, a scripted workload, then serving until
# Ctrl-C. Flags go in ARGS, e.g. make run ARGS=--exit (bin/demo --help lists them).
run: build
	$(BIN)/demo $(ARGS)

clean:
	rm -rf $(BIN) data .run
