# dtc — distributed transaction coordinator.
# `make run` starts the daemon with example participants; `make test` is what CI runs.

GO      ?= go
BIN     := bin
PKGS    := ./...
# Packages with goroutines of their own: tested again under the race detector.
RACE_PKGS := ./wal/... ./coordlog/... ./cluster/... ./httpnet/... ./participant/... ./client/... ./examples/... ./internal/... ./bench/... ./sqlpart/...

.PHONY: all build test race lint vet fmt-check run run-sql bench chaos chaos-nightly clean fuzz

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
# concurrent packages. go test ./... includes the chaos campaigns: a simulated one of 300
# swarm seeds (cmd/chaos) and a short real one, dtc and three banks with 34 kill -9s,
# proxy faults and failpoints, plus a deliberately broken build it must catch, a
# cluster one: three dtc serve --cluster nodes over an embedded etcd, kill -9s and
# SIGSTOPs past the lease, and one with two SQL participants (dtc-sql over PostgreSQL
# and MariaDB, skipped if the databases do not answer) (chaosreal).
test: lint
	$(GO) test -count=1 $(PKGS)
	DTC_TEST_DB_RESTART=1 $(GO) test -count=1 -run TestDatabaseRestart ./sqlpart/
	$(GO) test -count=1 -race $(RACE_PKGS)
	$(GO) test -count=1 -race -short ./chaosreal/...
	$(MAKE) --no-print-directory fuzz FUZZ_TIME=$(FUZZ_TIME_SHORT)

# Fuzz targets, as package:name, one a line: the API's request decoder, participant URL
# normaliser and credentials parser; the participant's request decoders, signature
# check and record replay; the log's frame and record decoders. Each starts from its
# committed seed corpus (testdata/fuzz/<name>) and what earlier runs found; a failing
# input is written there, to be committed with its fix. make test runs each for
# FUZZ_TIME_SHORT, make fuzz for FUZZ_TIME.
FUZZ_TARGETS := \
	./httpnet/apiserver:FuzzSubmitBody \
	./httpnet/transport:FuzzNormalizeParticipantURL \
	./httpnet/apiserver:FuzzParseCredentials \
	./participant:FuzzDecodePrepareRequest \
	./participant:FuzzDecodeTxnRequest \
	./participant:FuzzDecodeBatchRequest \
	./participant:FuzzAuthHeaders \
	./participant:FuzzReplayRecord \
	./wal:FuzzScanFrames \
	./wal:FuzzOpenDamagedLog
FUZZ_TIME_SHORT ?= 3s
FUZZ_TIME       ?= 2m
fuzz:
	@for t in $(FUZZ_TARGETS); do \
		pkg=$${t%%:*}; name=$${t##*:}; \
		echo "fuzz $$name ($$pkg) for $(FUZZ_TIME)"; \
		$(GO) test -run '^$$' -fuzz "^$$name$$" -fuzztime $(FUZZ_TIME) $$pkg || exit 1; \
	done

race:
	$(GO) test -count=1 -race $(RACE_PKGS)
	$(GO) test -count=1 -race -short ./chaosreal/...

# A short fault campaign from the command line: simulated swarm seeds, then real dtc and
# bank processes built with their failpoints live (go build -toolexec, in a cache and a
# temporary directory of their own: the tree is never rewritten, which the last step
# checks), then the same with dtc as a cluster of three nodes over an embedded etcd,
# nodes killed and paused (SIGSTOP) past their lease. Reports go to $TMPDIR/dtc-chaos;
# see README "Chaos".
CHAOS_SEEDS    ?= 200
CHAOS_DURATION ?= 30s
CHAOS_SEED     ?= 1
chaos:
	$(GO) run ./cmd/chaos sim --seeds $(CHAOS_SEEDS) --from 1 --progress never
	$(GO) run ./cmd/chaos real --duration $(CHAOS_DURATION) --seed $(CHAOS_SEED) --passive 2
	$(GO) run ./cmd/chaos real --duration $(CHAOS_DURATION) --seed $(CHAOS_SEED) --cluster 3 --pauses 3
	@if git status --porcelain 2>/dev/null | grep -E '__failpoint_(stash|binding)__|failpoint_toolexec_extra'; then \
		echo "chaos: failpoint rewrites were left in the source tree"; exit 1; fi

# The nightly-size simulated campaign: 20000 swarm seeds from seed 1 (issue 13). Long:
# see README "Simulated campaigns" for its measured speed. Exit 0 means no seed broke a rule.
NIGHTLY_SEEDS ?= 20000
chaos-nightly:
	$(GO) run ./cmd/chaos sim --seeds $(NIGHTLY_SEEDS) --from 1 --progress never

# Performance, as ratios against this machine's floor measured in the same run (dtc
# bench), plus the log's group commit and the simulator's speed. Takes about 3 minutes.
# At concurrency 1 it runs twice: with durable participants (two fsyncs in a row before
# the client's answer), and with no-op ones, where dtc's decision is the only fsync,
# as in issue 6's floor. Last, concurrency 1 with passive participants (they do not ask
# about transactions in doubt), whose begin records dtc syncs before the prepares.
bench: build
	$(GO) test -run '^$$' -bench GroupSyncer -benchtime 3000x ./wal
	$(GO) test -run '^$$' -bench Swarm -benchtime 200x ./scenarios
	$(BIN)/dtc bench --participants 2 --concurrency 64 --duration 10s
	$(BIN)/dtc bench --participants 5 --concurrency 64 --duration 10s
	$(BIN)/dtc bench --participants 2 --concurrency 1 --duration 10s
	$(BIN)/dtc bench --participants 2 --concurrency 1 --duration 10s --mode noop
	$(BIN)/dtc bench --participants 2 --concurrency 1 --duration 10s --passive

# Two minutes at 80% of the maximum throughput, sampling memory: nothing may grow.
soak: build
	$(BIN)/dtc bench --soak 0.8 --duration 2m

# The demo: dtc and three banks on 127.0.0.1, a scripted workload, then serving until
# Ctrl-C. Flags go in ARGS, e.g. make run ARGS=--exit (bin/demo --help lists them).
run: build
	$(BIN)/demo $(ARGS)

# Money moved between PostgreSQL and MariaDB by dtc, each database a participant
# through its own two-phase commit (dtc-sql): commit, NACK, timeout, kill -9 between
# prepare and commit. Starts and sets up the databases first if needed (.ci/databases).
run-sql: build
	bash .ci/databases
	$(BIN)/sqldemo --bin $(BIN) $(ARGS)

clean:
	rm -rf $(BIN) data .run
