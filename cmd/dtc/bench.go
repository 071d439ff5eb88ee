package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"runtime"
	"slices"
	"time"

	"github.com/dtc-project/dtc/bench"
)

const benchHelp = `Usage: dtc bench [flags]

Measures dtc on this machine against the floor the machine sets, in one run. It starts,
in this process on 127.0.0.1, a coordinator (the same runtime and API as dtc serve, with
its log in a temporary directory) and --participants participants built on the
participant package (durable: each syncs its log before it votes and before it
acknowledges; noop: answers without a log), and drives transactions through the HTTP
API at --concurrency (closed loop) or --rate (open loop, latency from each arrival's
scheduled time).

In the same run, alternating with dtc, it measures the floor: the same number of raw
HTTP exchanges per transaction (1 outer request, then --participants in parallel, twice)
against handlers that do nothing, and the latency of write+fdatasync. At --concurrency
1 (closed loop) it also measures the sync floor: that transaction with the fsyncs dtc's
waits for in a row on its way (each participant's before it votes, when durable; then
the outer handler's, the decision's), answered before the commits, as dtc answers.
It prints dtc's throughput, p50/p99/p99.9 latency, log syncs per second, records per
sync and CPU time per transaction next to the floor's, and the ratios. Other processes
busy on the machine skew both; the report says how busy they were. It also says how
many requests the participants got per transaction: with phase-2 batching (on unless
--no-batch), fewer than the floor's.

The participants say that they ask dtc about transactions left in doubt (they run the
participant package's Resolver and send Dtc-In-Doubt: ask), so dtc keeps each begin
record lazy. With --passive they say nothing, like services that only implement the
protocol's endpoints, and dtc syncs every begin before its prepares leave: one fsync
more on every transaction's path. The floors are the same either way.

An fdatasync holds its Go scheduling slot while it blocks, so dtc's phases run with
GOMAXPROCS = cores + one per syncing log (dtc's and each durable participant's), as
they would have as separate processes; the floors' run with GOMAXPROCS = cores, where
the raw floor does best (the sync floor does as well either way). GOMAXPROCS in the
environment sets both.

With --soak F it instead measures the maximum throughput once dtc is warm (a closed
loop long enough to fill what dtc remembers of finished transactions, then a probe),
holds F × that for --duration in an open loop, and samples RSS, the live heap and
goroutines, then says whether any of them grew.

With --contention K it instead runs the contention benchmark (issue 16): two participants
built on the participant library (its lock table and wait reports, a log in memory)
that lock one key each per transaction from prepare to phase 2, K hot keys
each, --concurrency clients (closed loop) of transfers in a random direction, for
--duration under each policy in turn: timeout-only (participants wait; deadlock
detection off, so a deadlock lasts until the prepare deadline, --contention-timeout),
detection (participants report their waits; the coordinator aborts the youngest of a
cycle at once) and wound-wait (an older transaction aborts a younger holder). It prints
committed txn/s (and its ratio to timeout-only), p50/p99 latency, aborts by cause,
deadlocks found and the mean time from a cycle's closing report to its victim's durable
abort.

With --tracing on, dtc traces every transaction with OpenTelemetry and exports the
spans over OTLP/HTTP (as dtc serve --otlp-endpoint) to a collector in the process that
discards them; --tracing compare runs the benchmark with it off and on, --tracing-turns
times each in turns (off, on, on, off, off, on, …: both see the same drift of the
machine's speed; the floor gets 2s of each run), and reports the throughput lost: all
the runs of each together, and the median of the pairs'.

With --sql (and --participants 2) it measures transfers across one PostgreSQL and one
MariaDB table (--pg-dsn, --mysql-dsn; tables of the run's own, dropped after): through
dtc (its API and log, in this process) and two sqlpart participants over HTTP, and the
floor: the same statements with PREPARE TRANSACTION / XA PREPARE and COMMIT PREPARED /
XA COMMIT driven directly, no coordinator (--concurrency default 8; --duration default
5s each, in 5 turns each, dtc's and the floor's taking turns, so that both see the same
load from the rest of the machine, after a second of each unmeasured, which opens the
connections). Both run the same workload: each worker cycles through 16 accounts of
its own, so that a transfer never waits on the rows of one still in flight or
committing (dtc answers at the decision and commits after). It checks that nothing is
left prepared, and says how many requests dtc sent the participants per transfer: they
offer batches, so phase 2 goes in POST …/batch, several transfers to a request.

With --cluster N it measures cluster mode instead (in this process: an embedded etcd,
the nodes, two participants that answer without a disk, the clients): the throughput of
the single node over its local log, then of clusters of 1..N nodes over etcd (clients
round-robin over the nodes; --concurrency default 32, --duration default 5s each), then
the takeover time over --kills abrupt node deaths (no handoff, the lease left to expire;
--lease-ttl): from the death to each of the node's shards answering again elsewhere.

Examples:
  dtc bench                                   # 2 participants, concurrency 64, 10s
  dtc bench --cluster 3                       # cluster mode against the local log, takeover
  dtc bench --participants 2 --sql            # PostgreSQL + MariaDB, against their own 2PC
  dtc bench --participants 5 --concurrency 64
  dtc bench --concurrency 1 --json | jq .sync_floor_p50_ratio
  dtc bench --concurrency 1 --passive         # the latency a synced begin costs
  dtc bench --soak 0.8 --duration 2m
  dtc bench --tracing compare --duration 10s  # what OpenTelemetry tracing costs
  dtc bench --contention 4 --duration 10s     # timeout-only vs detection vs wound-wait

Exit codes:
  0  the run finished without errors (a soak: and nothing grew)
  1  the run had errors, or a soak found growth or could not hold the rate
  2  bad flags
`

func runBench(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlags("bench")
	var (
		participants = fs.Int("participants", 2, "participants per transaction")
		concurrency  = fs.Int("concurrency", 64, "transactions in flight (closed loop)")
		duration     = fs.Duration("duration", 10*time.Second, "how long dtc is measured (the floor gets as long)")
		transactions = fs.Int("transactions", 0, "stop after this many transactions (0: by duration)")
		rate         = fs.Float64("rate", 0, "open loop at this many transactions per second (0: closed loop)")
		mode         = fs.String("mode", bench.ModeDurable, "participants: durable or noop")
		shards       = fs.Int("shards", 0, "coordinator shards (0: dtc serve's default)")
		noBatch      = fs.Bool("no-batch", false, "as dtc serve --no-batch: the coordinator sends every commit and rollback in a request of its own, never in POST …/batch")
		passive      = fs.Bool("passive", false, "participants that do not ask about transactions in doubt (no Dtc-In-Doubt header): dtc syncs every begin before its prepares")
		dataDir      = fs.String("data-dir", "", "where the temporary logs go (default: the system's temp dir); it decides which disk is measured")
		jsonOut      = fs.Bool("json", false, "print the result as one JSON object")
		soak         = fs.Float64("soak", 0, "run a soak at this fraction of the maximum throughput instead (e.g. 0.8)")
		sampleEvery  = fs.Duration("sample-every", 5*time.Second, "soak: how often memory is sampled")
		traceRatio   = fs.Float64("tracing-sample-ratio", 1, "with --tracing on or compare: the fraction of transactions traced (as dtc serve --otlp-sample-ratio)")
		clusterNodes = fs.Int("cluster", 0, "measure cluster mode instead: the local-log single node, then clusters of 1..N nodes over an etcd embedded in this process, then the takeover time")
		kills        = fs.Int("kills", 20, "with --cluster: node deaths the takeover measure deals (0: no takeover measure)")
		leaseTTL     = fs.Duration("lease-ttl", 2*time.Second, "with --cluster: the takeover cluster's lease TTL (whole seconds)")
		clShards     = fs.Int("cluster-shards", 64, "with --cluster: shards of the clusters whose throughput is measured")
		sqlBench     = fs.Bool("sql", false, "with --participants 2: transfers across one PostgreSQL and one MariaDB table through sqlpart participants, against the databases' own two-phase commit driven directly")
		pgDSN        = fs.String("pg-dsn", "postgres://postgres@127.0.0.1:5432/test", "with --sql: the PostgreSQL database")
		myDSN        = fs.String("mysql-dsn", "mysql://root@127.0.0.1:3306/test", "with --sql: the MariaDB/MySQL database")
		contention   = fs.Int("contention", 0, "instead: the contention benchmark with this many hot keys per participant (see above)")
		contTimeout  = fs.Duration("contention-timeout", 5*time.Second, "--contention: the coordinator's prepare deadline (dtc serve's default)")
		tracing      = fs.String("tracing", "off", "OpenTelemetry tracing of dtc, exported over OTLP/HTTP to a collector in the process that discards it: off, on, or compare (runs with it off and on, in turns, and the difference)")
		traceTurns   = fs.Int("tracing-turns", 3, "with --tracing compare: how many runs with tracing off, and as many with it on, taken in turns")
	)
	if ok, code := parse(fs, benchHelp, args, []string{}, stdout, stderr); !ok {
		return code
	}
	if fs.NArg() > 0 {
		return usageError(stderr, "bench", "unexpected argument %q", fs.Arg(0))
	}
	if *sqlBench {
		if *participants != 2 {
			return usageError(stderr, "bench", "--sql measures 2 participants (one PostgreSQL, one MariaDB table); got --participants %d", *participants)
		}
		d := *duration
		if !fs.Changed("duration") {
			d = 5 * time.Second
		}
		c := *concurrency
		if !fs.Changed("concurrency") {
			c = 8
		}
		return benchSQL(ctx, bench.SQLOptions{PostgresDSN: *pgDSN, MySQLDSN: *myDSN, Concurrency: c, Duration: d}, *jsonOut, stdout, stderr)
	}
	if *clusterNodes > 0 {
		d := *duration
		if !fs.Changed("duration") {
			d = 5 * time.Second
		}
		c := *concurrency
		if !fs.Changed("concurrency") {
			c = 32
		}
		return benchCluster(ctx, bench.EtcdOptions{Nodes: *clusterNodes, Shards: *clShards, Concurrency: c, Duration: d,
			Kills: *kills, NoTakeover: *kills == 0, LeaseTTL: *leaseTTL}, *jsonOut, stdout, stderr)
	}
	if *contention != 0 {
		if *contention < 0 || *contTimeout <= 0 {
			return usageError(stderr, "bench", "--contention takes a positive number of hot keys and --contention-timeout a positive duration")
		}
		co := bench.ContentionOptions{HotKeys: *contention, Concurrency: *concurrency, Duration: *duration, PrepareTimeout: *contTimeout}
		rs, err := bench.RunContention(ctx, co)
		if err != nil {
			fmt.Fprintf(stderr, "dtc bench: %v\n", err)
			return exitNo
		}
		if *jsonOut {
			b, _ := json.MarshalIndent(rs, "", "  ")
			fmt.Fprintf(stdout, "%s\n", b)
		} else {
			bench.WriteContention(stdout, co, rs)
		}
		for _, r := range rs {
			if r.Errors > 0 {
				return exitNo
			}
		}
		return exitOK
	}
	o := bench.Options{
		Participants: *participants, Concurrency: *concurrency, Duration: *duration,
		Transactions: *transactions, Rate: *rate, Mode: *mode, Shards: *shards, DataDir: *dataDir,
		NoBatch: *noBatch, Passive: *passive,
	}
	if !*jsonOut {
		o.Progress = stderr
	}
	if !(*traceRatio > 0 && *traceRatio <= 1) {
		return usageError(stderr, "bench", "--tracing-sample-ratio %v: want a fraction in (0, 1]", *traceRatio)
	}
	o.TracingSampleRatio = *traceRatio
	switch *tracing {
	case "off":
	case "on":
		o.Tracing = true
	case "compare":
		if *soak > 0 {
			return usageError(stderr, "bench", "--tracing compare does not go with --soak")
		}
		if *traceTurns < 1 || *traceTurns > tracingTurnsMax {
			return usageError(stderr, "bench", "--tracing-turns %d: want 1 to %d", *traceTurns, tracingTurnsMax)
		}
		return benchTracingCompare(ctx, o, *traceTurns, *jsonOut, stdout, stderr)
	default:
		return usageError(stderr, "bench", "--tracing %q: want off, on or compare", *tracing)
	}
	if err := o.Validate(); err != nil {
		return usageError(stderr, "bench", "%v", err)
	}
	if *soak > 0 {
		if *soak > 1 {
			return usageError(stderr, "bench", "--soak is a fraction of the maximum, in (0, 1]; got %v", *soak)
		}
		res, err := bench.Soak(ctx, o, *soak, *sampleEvery, stdout)
		if err != nil {
			fmt.Fprintf(stderr, "dtc bench: %v\n", err)
			return exitNo
		}
		if !res.OK {
			fmt.Fprintf(stderr, "dtc bench: soak failed: %v\n", res.Problems)
			return exitNo
		}
		return exitOK
	}
	res, err := bench.Run(ctx, o)
	if err != nil {
		fmt.Fprintf(stderr, "dtc bench: %v\n", err)
		return exitNo
	}
	if *jsonOut {
		res.Samples = nil
		enc := json.NewEncoder(stdout)
		if err := enc.Encode(res); err != nil {
			fmt.Fprintf(stderr, "dtc bench: %v\n", err)
			return exitNo
		}
	} else if err := res.WriteText(stdout); err != nil {
		fmt.Fprintf(stderr, "dtc bench: %v\n", err)
		return exitNo
	}
	if res.Errors > 0 {
		return exitNo
	}
	return exitOK
}

// tracingTurnsMax bounds --tracing-turns.
const tracingTurnsMax = 50

// benchTracingCompare runs the benchmark turns times with tracing off and as many with
// it on, in turns (off, on, on, off, …: a drift of the machine's speed during the
// command weighs on both alike), and reports what tracing costs. The floor, which
// tracing does not change, gets 2s of each run.
func benchTracingCompare(ctx context.Context, o bench.Options, turns int, jsonOut bool, stdout, stderr io.Writer) int {
	if o.FloorDuration == 0 {
		o.FloorDuration = min(o.Duration, 2*time.Second)
	}
	var runs [2][]*bench.Result // [0] off, [1] on, in the order run
	for pair := range turns {
		order := []bool{false, true}
		if pair%2 == 1 {
			order = []bool{true, false}
		}
		for _, on := range order {
			o.Tracing = on
			r, err := bench.Run(ctx, o)
			if err != nil {
				fmt.Fprintf(stderr, "dtc bench: tracing %s: %v\n", onOff(on), err)
				return exitNo
			}
			r.Samples = nil
			i := 0
			if on {
				i = 1
			}
			runs[i] = append(runs[i], r)
			if o.Progress != nil {
				fmt.Fprintf(o.Progress, "dtc bench: pair %d/%d, tracing %s: %s\n", pair+1, turns, onOff(on), runLine(r))
			}
		}
	}
	off, on := sumRuns(runs[0]), sumRuns(runs[1])
	pairLosses := make([]float64, turns)
	for i := range turns {
		pairLosses[i] = lossPercent(runs[0][i].TPS, runs[1][i].TPS)
	}
	slices.Sort(pairLosses)
	c := tracingCost{Turns: turns, Off: runs[0], On: runs[1],
		OffTPS: off.tps, OnTPS: on.tps, OffCPUUsPerTxn: off.cpuPerTxn, OnCPUUsPerTxn: on.cpuPerTxn,
		OffFloorRatio: off.ratio, OnFloorRatio: on.ratio,
		ThroughputLoss: lossPercent(off.tps, on.tps), PairLossMedian: median(pairLosses),
		PairLossMin: pairLosses[0], PairLossMax: pairLosses[turns-1], FloorRatioLoss: lossPercent(off.ratio, on.ratio)}
	if jsonOut {
		if err := json.NewEncoder(stdout).Encode(c); err != nil {
			fmt.Fprintf(stderr, "dtc bench: %v\n", err)
			return exitNo
		}
	} else {
		c.write(stdout)
	}
	if off.errors > 0 || on.errors > 0 {
		return exitNo
	}
	return exitOK
}

// tracingCost is what dtc bench --tracing compare reports (its JSON with --json).
type tracingCost struct {
	Turns  int             `json:"turns"`
	Off    []*bench.Result `json:"tracing_off"`
	On     []*bench.Result `json:"tracing_on"`
	OffTPS float64         `json:"tracing_off_tps"` // all runs' transactions over all runs' time
	OnTPS  float64         `json:"tracing_on_tps"`
	// CPU per transaction, all runs together; the floor ratio is the runs' mean.
	OffCPUUsPerTxn float64 `json:"tracing_off_cpu_us_per_txn"`
	OnCPUUsPerTxn  float64 `json:"tracing_on_cpu_us_per_txn"`
	OffFloorRatio  float64 `json:"tracing_off_floor_ratio"`
	OnFloorRatio   float64 `json:"tracing_on_floor_ratio"`
	// Throughput lost, in percent: all runs together, each pair's (the median and
	// range), and against the floor.
	ThroughputLoss float64 `json:"throughput_loss_percent"`
	PairLossMedian float64 `json:"pair_loss_median_percent"`
	PairLossMin    float64 `json:"pair_loss_min_percent"`
	PairLossMax    float64 `json:"pair_loss_max_percent"`
	FloorRatioLoss float64 `json:"floor_ratio_loss_percent"`
}

func (c *tracingCost) write(w io.Writer) {
	for pair := range c.Turns {
		fmt.Fprintf(w, "pair %d: off %s\n        on  %s\n", pair+1, runLine(c.Off[pair]), runLine(c.On[pair]))
	}
	fmt.Fprintf(w, "tracing off, %d runs: %.0f txn/s, CPU %.0f µs/txn, %.2f of the floor\n", c.Turns, c.OffTPS, c.OffCPUUsPerTxn, c.OffFloorRatio)
	fmt.Fprintf(w, "tracing on,  %d runs: %.0f txn/s, CPU %.0f µs/txn, %.2f of the floor\n", c.Turns, c.OnTPS, c.OnCPUUsPerTxn, c.OnFloorRatio)
	fmt.Fprintf(w, "throughput lost to tracing: %.1f%% (each pair: median %.1f%%, %.1f%% to %.1f%%)\n",
		c.ThroughputLoss, c.PairLossMedian, c.PairLossMin, c.PairLossMax)
	// Against the floor measured in the same runs: less swayed by what else the
	// machine was doing during each.
	fmt.Fprintf(w, "as a fraction of the floor: %.1f%% lost\n", c.FloorRatioLoss)
}

// runLine sums up one run of the benchmark on a line.
func runLine(r *bench.Result) string {
	return fmt.Sprintf("%.0f txn/s, p50 %.2f ms, p99 %.2f ms, CPU %.0f µs/txn, %.2f of the floor, others %.2f cores",
		r.TPS, r.P50Ms, r.P99Ms, r.CPUUsPerTxn, r.Ratio, r.OtherCPUCores)
}

func onOff(on bool) string {
	if on {
		return "on"
	}
	return "off"
}

// runsSum is several runs of the benchmark taken together.
type runsSum struct {
	tps, cpuPerTxn, ratio float64
	errors                int64
}

func sumRuns(rs []*bench.Result) runsSum {
	var txns, elapsed, cpu, ratio float64
	var sum runsSum
	for _, r := range rs {
		txns += float64(r.Txns)
		elapsed += r.ElapsedS
		cpu += r.CPUUsPerTxn * float64(r.Txns)
		ratio += r.Ratio
		sum.errors += r.Errors
	}
	if elapsed > 0 {
		sum.tps = txns / elapsed
	}
	if txns > 0 {
		sum.cpuPerTxn = cpu / txns
	}
	if len(rs) > 0 {
		sum.ratio = ratio / float64(len(rs))
	}
	return sum
}

// lossPercent is how much less on is than off, in percent of off (0 when off is 0).
func lossPercent(off, on float64) float64 {
	if off <= 0 {
		return 0
	}
	return 100 * (off - on) / off
}

// median of sorted xs (not empty).
func median(xs []float64) float64 {
	n := len(xs)
	if n%2 == 1 {
		return xs[n/2]
	}
	return (xs[n/2-1] + xs[n/2]) / 2
}

// benchCluster runs dtc bench --cluster: throughput of the local log and of clusters of
// 1..N nodes, then the takeover time.
func benchCluster(ctx context.Context, o bench.EtcdOptions, jsonOut bool, stdout, stderr io.Writer) int {
	if err := o.Validate(); err != nil {
		return usageError(stderr, "bench", "%v", err)
	}
	if !jsonOut {
		o.Progress = stderr
	}
	res, err := bench.RunEtcdCluster(ctx, o)
	if err != nil {
		fmt.Fprintf(stderr, "dtc bench: %v\n", err)
		return exitNo
	}
	if jsonOut {
		if err := json.NewEncoder(stdout).Encode(res); err != nil {
			fmt.Fprintf(stderr, "dtc bench: %v\n", err)
			return exitNo
		}
		return exitOK
	}
	o = res.Options
	fmt.Fprintf(stdout, "cluster mode against the local log, %d clients, %v each, 2 participants answering without a disk;\n", o.Concurrency, o.Duration)
	fmt.Fprintf(stdout, "etcd, every node, the participants and the clients run in this process and share its cores (%d)\n", runtime.NumCPU())
	fmt.Fprintf(stdout, "  local log, 1 node:              %8.0f txn/s\n", res.LocalTPS)
	for i, tps := range res.ClusterTPS {
		fmt.Fprintf(stdout, "  cluster, %d node(s), %d shards: %8.0f txn/s  %5.1f %% of the local log\n", i+1, o.Shards, tps, 100*res.Ratio[i])
	}
	if res.Failed > 0 {
		fmt.Fprintf(stdout, "  submissions that did not commit: %d\n", res.Failed)
	}
	if res.Kills > 0 {
		fmt.Fprintf(stdout, "takeover, %d kills of a node (no handoff) in a cluster of %d, %d shards, lease %v:\n", res.Kills, o.Nodes, o.TakeoverShards, o.LeaseTTL)
		p := res.Takeover
		fmt.Fprintf(stdout, "  per shard (%d):          p50 %v  p99 %v  max %v\n", p.N, p.P50.Round(time.Millisecond), p.P99.Round(time.Millisecond), p.Max.Round(time.Millisecond))
		p = res.KillWorst
		fmt.Fprintf(stdout, "  per kill, its last shard: p50 %v  p99 %v  max %v\n", p.P50.Round(time.Millisecond), p.P99.Round(time.Millisecond), p.Max.Round(time.Millisecond))
	}
	return exitOK
}

// benchSQL runs dtc bench --participants 2 --sql.
func benchSQL(ctx context.Context, o bench.SQLOptions, jsonOut bool, stdout, stderr io.Writer) int {
	if err := o.Validate(); err != nil {
		return usageError(stderr, "bench", "%v", err)
	}
	if !jsonOut {
		o.Progress = stderr
	}
	res, err := bench.RunSQL(ctx, o)
	if err != nil {
		fmt.Fprintf(stderr, "dtc bench: %v\n", err)
		return exitNo
	}
	if jsonOut {
		if err := json.NewEncoder(stdout).Encode(res); err != nil {
			fmt.Fprintf(stderr, "dtc bench: %v\n", err)
			return exitNo
		}
	} else {
		o = res.Options
		fmt.Fprintf(stdout, "transfers across a PostgreSQL and a MariaDB table, %d in flight, %v each (in turns):\n", o.Concurrency, o.Duration)
		fmt.Fprintf(stdout, "  workload (dtc and floor alike): each worker cycles through %d accounts of its own, so no transfer\n"+
			"  touches the rows of one in flight or still committing (dtc commits after answering)\n", res.AccountsPerWorker)
		fmt.Fprintf(stdout, "  dtc (HTTP API, its log, two sqlpart participants): %7.0f transfers/s (%d did not commit; %d PostgreSQL prepares blocked on a row lock)\n", res.DtcTPS, res.DtcFailed, res.DtcLockWaits)
		fmt.Fprintf(stdout, "  floor (the databases' own 2PC, driven directly):   %7.0f transfers/s (%d failed)\n", res.FloorTPS, res.FloorFailed)
		fmt.Fprintf(stdout, "  dtc's requests to the participants: %.2f per transfer (4 without batches)", res.DtcRequestsPerTransfer)
		if res.DtcBatchOps > 0 {
			fmt.Fprintf(stdout, "; phase 2 in batches of %.1f on average", res.DtcBatchOps)
		}
		fmt.Fprintln(stdout)
		fmt.Fprintf(stdout, "  dtc / floor: %.2f\n", res.Ratio)
	}
	if res.DtcFailed > 0 || res.FloorFailed > 0 {
		return exitNo
	}
	return exitOK
}
