package bench

import (
	"fmt"
	"io"
	"runtime"
	"sort"
	"strings"
	"time"
)

// Result is what Run measured. Latencies are in milliseconds, rates per second. The
// JSON names are stable: `dtc bench --json` prints this object.
type Result struct {
	Options Options `json:"options"`
	// GoMaxProcs is dtc's GOMAXPROCS, FloorGoMaxProcs the floor's (see Run).
	GoMaxProcs      int    `json:"gomaxprocs"`
	FloorGoMaxProcs int    `json:"floor_gomaxprocs"`
	NumCPU          int    `json:"num_cpu"`
	GoVersion       string `json:"go_version"`
	Shards          int    `json:"shards"`

	// dtc's measured phase, as the load's client saw it. Txns counts the transactions
	// that finished (with or without error); the latencies are those of the committed
	// ones.
	Txns       int64            `json:"txns"`
	Errors     int64            `json:"errors"`
	ErrorKinds map[string]int64 `json:"error_kinds,omitempty"`
	ElapsedS   float64          `json:"elapsed_s"`
	TPS        float64          `json:"tps"`
	MeanMs     float64          `json:"mean_ms"`
	P50Ms      float64          `json:"p50_ms"`
	P90Ms      float64          `json:"p90_ms"`
	P99Ms      float64          `json:"p99_ms"`
	P999Ms     float64          `json:"p999_ms"`
	MaxMs      float64          `json:"max_ms"`
	// CPUUsPerTxn is the process's CPU time (user + system, every thread: the load's
	// client, dtc and the participants together) per transaction; CPUCores is that
	// CPU time over the elapsed time: how many cores were busy on average.
	CPUUsPerTxn float64 `json:"cpu_us_per_txn"`
	CPUCores    float64 `json:"cpu_cores"`
	// OtherCPUCores is how many cores the machine's other processes kept busy on
	// average meanwhile (/proc/stat): a figure measured on a busy machine is a figure
	// about that machine.
	OtherCPUCores float64 `json:"other_cpu_cores"`
	// Per transaction, the whole process: read-like and write-like syscalls
	// (/proc/self/io: socket reads and writes, the logs' pwrites) and context switches
	// (getrusage: a thread that blocked, voluntary, or was preempted).
	ReadsPerTxn       float64 `json:"reads_per_txn"`
	WritesPerTxn      float64 `json:"writes_per_txn"`
	CtxSwitchesPerTxn float64 `json:"ctx_switches_per_txn"`
	// Go heap allocations per transaction (objects and bytes) and GC cycles per
	// second, the whole process.
	AllocsPerTxn     float64 `json:"allocs_per_txn"`
	AllocBytesPerTxn float64 `json:"alloc_bytes_per_txn"`
	GCsPerSec        float64 `json:"gcs_per_sec"`

	// The coordinator's log during the measured phase: fsyncs (group commits) per
	// second, records written per fsync, bytes per transaction and how long each fsync
	// took under load. SyncWaitMeanMs is dtc's own figure (dtc_log_sync_duration_seconds):
	// the mean wait of a record that asked for a sync, from its append until durable.
	SyncsPerSec    float64 `json:"syncs_per_sec"`
	RecordsPerSync float64 `json:"records_per_sync"`
	LogBytesPerTxn float64 `json:"log_bytes_per_txn"`
	LogFsyncP50Ms  float64 `json:"log_fsync_p50_ms"`
	LogFsyncP99Ms  float64 `json:"log_fsync_p99_ms"`
	// LogFsyncBusy is the fraction of the time the coordinator's log spent in fsync.
	LogFsyncBusy   float64 `json:"log_fsync_busy"`
	SyncWaitMeanMs float64 `json:"sync_wait_mean_ms"`
	// DecisionMeanMs is the mean of dtc_prepare_duration_seconds: from a transaction's
	// begin inside dtc until its decision was durable, without the client's HTTP
	// exchange and the hand-offs between the API and the engine.
	DecisionMeanMs float64 `json:"decision_mean_ms"`
	// The same for the participants' logs, all K together (zero in ModeNoop).
	ParticipantSyncsPerSec float64 `json:"participant_syncs_per_sec"`
	// ParticipantRequestsPerTxn is how many HTTP requests the participants received
	// per transaction, of every kind (the floor sends 2K).
	ParticipantRequestsPerTxn float64 `json:"participant_requests_per_txn"`
	ParticipantRecordsPerSync float64 `json:"participant_records_per_sync"`
	ParticipantFsyncP50Ms     float64 `json:"participant_fsync_p50_ms"`
	// ParticipantFsyncBusy is the time the K participants' logs spent in fsync, over
	// the elapsed time (it may exceed 1: their fsyncs overlap).
	ParticipantFsyncBusy float64 `json:"participant_fsync_busy"`
	// From dtc's metrics over the measured phase.
	Committed         int64 `json:"committed"`
	Aborted           int64 `json:"aborted"`
	ParticipantErrors int64 `json:"participant_errors"`
	Hazards           int64 `json:"hazards"`

	// The raw-HTTP floor (see floor.go), measured in the same run with the same load.
	FloorTxns              int64            `json:"floor_txns"`
	FloorErrors            int64            `json:"floor_errors"`
	FloorErrorKinds        map[string]int64 `json:"floor_error_kinds,omitempty"`
	FloorTPS               float64          `json:"floor_tps"`
	FloorP50Ms             float64          `json:"floor_p50_ms"`
	FloorP99Ms             float64          `json:"floor_p99_ms"`
	FloorP999Ms            float64          `json:"floor_p999_ms"`
	FloorCPUUsPerTxn       float64          `json:"floor_cpu_us_per_txn"`
	FloorCPUCores          float64          `json:"floor_cpu_cores"`
	FloorOtherCores        float64          `json:"floor_other_cpu_cores"`
	FloorReadsPerTxn       float64          `json:"floor_reads_per_txn"`
	FloorWritesPerTxn      float64          `json:"floor_writes_per_txn"`
	FloorCtxSwitchesPerTxn float64          `json:"floor_ctx_switches_per_txn"`
	FloorAllocsPerTxn      float64          `json:"floor_allocs_per_txn"`
	FloorAllocBytesPerTxn  float64          `json:"floor_alloc_bytes_per_txn"`
	FloorGCsPerSec         float64          `json:"floor_gcs_per_sec"`
	// The fsync floor: one small write + fdatasync on an idle disk, in the data
	// directory's file system.
	FsyncP50Ms   float64 `json:"fsync_p50_ms"`
	FsyncP99Ms   float64 `json:"fsync_p99_ms"`
	FsyncMaxMs   float64 `json:"fsync_max_ms"`
	FsyncSamples int64   `json:"fsync_samples"`
	// SyncsOnPath is how many fsyncs one after the other a transaction waits for before
	// its client is answered (a participant's prepare, then dtc's decision);
	// DurableFloorP50Ms is the floor's p50 plus that many idle fsyncs: the least a
	// durable transaction can take.
	SyncsOnPath       int     `json:"syncs_on_path"`
	DurableFloorP50Ms float64 `json:"durable_floor_p50_ms"`
	// FloorFsyncP50Ms is the floor issue 6 names for concurrency 1: the client's round
	// trip and two fan-outs one after the other (the floor's p50), plus one fsync.
	FloorFsyncP50Ms float64 `json:"floor_fsync_p50_ms"`
	// The sync floor, measured at concurrency 1 (closed loop) only: the floor's
	// transaction with, on its way, the SyncsOnPath fsyncs in a row that dtc's waits
	// for (a write+fdatasync in each inner handler before its prepare-like
	// answer when the participants are durable, and in the outer handler after the
	// prepare-like round when dtc's log is), answered then, its commit-like round sent
	// after, as dtc answers (see floor.go). With noop participants it is issue 6's
	// concurrency-1 floor measured as one sequence rather than summed
	// (FloorFsyncP50Ms). SyncFloorP50Ratio is dtc's p50 over its p50.
	SyncFloorTxns     int64   `json:"sync_floor_txns,omitempty"`
	SyncFloorErrors   int64   `json:"sync_floor_errors,omitempty"`
	SyncFloorP50Ms    float64 `json:"sync_floor_p50_ms,omitempty"`
	SyncFloorP99Ms    float64 `json:"sync_floor_p99_ms,omitempty"`
	SyncFloorP50Ratio float64 `json:"sync_floor_p50_ratio,omitempty"`

	// Ratios to the floor: Ratio is tps/floor_tps (issue 6 wants ≥ 0.70 for K=2 and
	// ≥ 0.65 for K=5 at C=64); P50Ratio is p50/floor_p50 (≤ 1.3 at C=1); CPURatio is
	// CPU per transaction over the floor's.
	Ratio    float64 `json:"ratio"`
	P50Ratio float64 `json:"p50_ratio"`
	P99Ratio float64 `json:"p99_ratio"`
	CPURatio float64 `json:"cpu_ratio"`

	// Memory sampled during dtc's measured phase (not after a GC).
	Samples []Sample `json:"samples,omitempty"`
}

// syncFloorShape says where the sync floor's fsyncs are.
func syncFloorShape(o Options) string {
	switch {
	case o.Mode == ModeDurable && o.Log == LogDurable:
		return "each inner server's before its prepare answer, then the outer one's after the prepares"
	case o.Mode == ModeDurable:
		return "each inner server's before its prepare answer"
	default:
		return "the outer server's after the prepares: issue 6's floor for concurrency 1"
	}
}

// fsyncsInARow is "1 fsync" or "n fsyncs in a row".
func fsyncsInARow(n int) string {
	if n == 1 {
		return "1 fsync"
	}
	return fmt.Sprintf("%d fsyncs in a row", n)
}

func newResult(o Options) *Result {
	return &Result{
		Options:   o,
		NumCPU:    runtime.NumCPU(),
		GoVersion: runtime.Version(),
	}
}

// perTxn is n per transaction of ph.
func perTxn(n int64, ph *phase) float64 { return ratio(float64(n), float64(ph.done)) }

func ratio(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}

func perSec(n int64, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(n) / d.Seconds()
}

// WriteText prints a readable report: dtc against its floor, side by side, with the
// ratios, then the logs, the errors and the memory.
func (r *Result) WriteText(w io.Writer) error {
	ew := &errWriter{w: w}
	o := r.Options
	loop := fmt.Sprintf("closed loop, concurrency %d", o.Concurrency)
	if o.Rate > 0 {
		loop = fmt.Sprintf("open loop at %.0f/s, at most %d in flight", o.Rate, o.Concurrency)
	}
	bound := fmt.Sprintf("%v", o.Duration)
	if o.Transactions > 0 {
		bound = fmt.Sprintf("%d transactions (at most %v)", o.Transactions, o.Duration)
	}
	kind := o.Mode
	if o.Passive {
		kind += ", passive: begin synced"
	} else {
		kind += ", asking: begin lazy"
	}
	ew.printf("dtc bench: %d participants (%s), coordinator log %s, %d shards, phase-2 batching %s, tracing %s; %s; %s in %d rounds after %v warm-up\n",
		o.Participants, kind, o.Log, r.Shards, onOff(!o.NoBatch), onOff(o.Tracing), loop, bound, o.Rounds, max(o.Warmup, 0))
	ew.printf("%s, %d CPUs, GOMAXPROCS %d for dtc and %d for the floor; everything in one process on 127.0.0.1\n\n",
		r.GoVersion, r.NumCPU, r.GoMaxProcs, r.FloorGoMaxProcs)

	ew.printf("%-22s %12s %12s %8s\n", "", "dtc", "floor", "ratio")
	ew.printf("%-22s %12.0f %12.0f %8.2f\n", "throughput (txn/s)", r.TPS, r.FloorTPS, r.Ratio)
	ew.printf("%-22s %12.3f %12.3f %8.2f\n", "latency p50 (ms)", r.P50Ms, r.FloorP50Ms, r.P50Ratio)
	ew.printf("%-22s %12.3f %12.3f %8.2f\n", "latency p99 (ms)", r.P99Ms, r.FloorP99Ms, r.P99Ratio)
	ew.printf("%-22s %12.3f %12.3f\n", "latency p99.9 (ms)", r.P999Ms, r.FloorP999Ms)
	ew.printf("%-22s %12.1f %12.1f %8.2f\n", "CPU per txn (µs)", r.CPUUsPerTxn, r.FloorCPUUsPerTxn, r.CPURatio)
	ew.printf("%-22s %12.2f %12.2f\n", "cores busy (this)", r.CPUCores, r.FloorCPUCores)
	ew.printf("%-22s %12.2f %12.2f\n", "cores busy (others)", r.OtherCPUCores, r.FloorOtherCores)
	ew.printf("%-22s %12.1f %12.1f\n", "read syscalls/txn", r.ReadsPerTxn, r.FloorReadsPerTxn)
	ew.printf("%-22s %12.1f %12.1f\n", "write syscalls/txn", r.WritesPerTxn, r.FloorWritesPerTxn)
	ew.printf("%-22s %12.1f %12.1f\n", "ctx switches/txn", r.CtxSwitchesPerTxn, r.FloorCtxSwitchesPerTxn)
	ew.printf("%-22s %12.0f %12.0f %8.2f\n", "allocations/txn", r.AllocsPerTxn, r.FloorAllocsPerTxn, ratio(r.AllocsPerTxn, r.FloorAllocsPerTxn))
	ew.printf("%-22s %12.0f %12.0f %8.2f\n", "allocated bytes/txn", r.AllocBytesPerTxn, r.FloorAllocBytesPerTxn, ratio(r.AllocBytesPerTxn, r.FloorAllocBytesPerTxn))
	ew.printf("%-22s %12.1f %12.1f\n", "GC cycles/s", r.GCsPerSec, r.FloorGCsPerSec)
	ew.printf("%-22s %12d %12d\n", "transactions", r.Txns, r.FloorTxns)
	ew.printf("%-22s %12d %12d\n", "errors", r.Errors, r.FloorErrors)
	if max(r.OtherCPUCores, r.FloorOtherCores) > busyMachineCores {
		ew.printf("\nwarning: other processes kept %.2f cores busy during dtc's phase and %.2f during the floor's:\n"+
			"these figures are partly about them\n", r.OtherCPUCores, r.FloorOtherCores)
	}
	ew.printf("\ndtc latency: mean %.3f ms, p90 %.3f ms, max %.3f ms; inside dtc, begin to durable decision: mean %.3f ms\n",
		r.MeanMs, r.P90Ms, r.MaxMs, r.DecisionMeanMs)
	ew.printf("floor: %d raw HTTP exchanges per transaction (1 outer, %d+%d inner), no parsing, no fsync\n",
		2*o.Participants+1, o.Participants, o.Participants)
	ew.printf("fsync floor: write+fdatasync p50 %.3f ms, p99 %.3f ms, max %.3f ms (%d samples)\n",
		r.FsyncP50Ms, r.FsyncP99Ms, r.FsyncMaxMs, r.FsyncSamples)
	if o.Concurrency == 1 && r.SyncsOnPath != 1 { // with 1, the durable floor's line says the same
		ew.printf("floor p50 + one fsync: %.3f ms (issue 6's floor for concurrency 1); dtc p50 is %.2f× it\n",
			r.FloorFsyncP50Ms, ratio(r.P50Ms, r.FloorFsyncP50Ms))
	}
	if r.SyncsOnPath > 0 {
		ew.printf("durable floor p50: %.3f ms (the floor's p50 + %s before the answer); dtc p50 is %.2f× it\n",
			r.DurableFloorP50Ms, fsyncsInARow(r.SyncsOnPath), ratio(r.P50Ms, r.DurableFloorP50Ms))
	}
	if r.SyncFloorTxns > 0 {
		ew.printf("sync floor (measured: the floor's transaction with %s on its way, %s): p50 %.3f ms, p99 %.3f ms, %d transactions, %d errors; dtc p50 is %.2f× it\n",
			fsyncsInARow(r.SyncsOnPath), syncFloorShape(o), r.SyncFloorP50Ms, r.SyncFloorP99Ms, r.SyncFloorTxns, r.SyncFloorErrors, r.SyncFloorP50Ratio)
	}

	ew.printf("\ncoordinator log: %.0f syncs/s, %.1f records/sync, %.0f bytes/txn; fsync under load p50 %.3f ms, p99 %.3f ms, busy %.0f%% of the time; a synced record waits %.3f ms on average\n",
		r.SyncsPerSec, r.RecordsPerSync, r.LogBytesPerTxn, r.LogFsyncP50Ms, r.LogFsyncP99Ms, 100*r.LogFsyncBusy, r.SyncWaitMeanMs)
	if o.Log == LogNoSync {
		ew.printf("  (log nosync: its fsyncs returned at once; NOT durable)\n")
	}
	if o.Mode == ModeDurable {
		ew.printf("participant logs (all %d): %.0f syncs/s, %.1f records/sync; fsync under load p50 %.3f ms, busy %.0f%% of the time (summed)\n",
			o.Participants, r.ParticipantSyncsPerSec, r.ParticipantRecordsPerSync, r.ParticipantFsyncP50Ms, 100*r.ParticipantFsyncBusy)
	}
	ew.printf("participant HTTP requests: %.2f per transaction (the floor's: %d)\n",
		r.ParticipantRequestsPerTxn, 2*o.Participants)
	ew.printf("dtc metrics: %d committed, %d aborted, %d participant errors, %d heuristic hazards\n",
		r.Committed, r.Aborted, r.ParticipantErrors, r.Hazards)
	if len(r.ErrorKinds) > 0 {
		ew.printf("errors by kind: %s\n", formatKinds(r.ErrorKinds))
	}
	if len(r.FloorErrorKinds) > 0 {
		ew.printf("floor errors by kind: %s\n", formatKinds(r.FloorErrorKinds))
	}
	if len(r.Samples) > 0 {
		first, last := r.Samples[0], r.Samples[len(r.Samples)-1]
		ew.printf("memory: RSS %s → %s, heap %s → %s, goroutines %d → %d (%d samples)\n",
			mib(first.RSSBytes), mib(last.RSSBytes), mib(int64(first.HeapBytes)), mib(int64(last.HeapBytes)),
			first.Goroutines, last.Goroutines, len(r.Samples))
	}
	return ew.err
}

func onOff(on bool) string {
	if on {
		return "on"
	}
	return "off"
}

func formatKinds(m map[string]int64) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s %d", k, m[k])
	}
	return strings.Join(parts, ", ")
}

func mib(b int64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }

// errWriter keeps the first write error.
type errWriter struct {
	w   io.Writer
	err error
}

func (e *errWriter) printf(format string, a ...any) {
	if e.err == nil {
		_, e.err = fmt.Fprintf(e.w, format, a...)
	}
}
