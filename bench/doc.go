// Package bench is dtc's measuring instrument (issue 6): it runs dtc and K participants
// in this process on 127.0.0.1, drives transactions through dtc's HTTP API, and
// measures, in the same run, the floor that the hardware sets — the same HTTP exchanges
// against handlers that do nothing, and the latency of an fsync — so that dtc's figures
// come with the ratios that say how far from that floor it is.
//
//	load (C workers, or arrivals at a Rate) ──POST /v1/transactions──▶ dtc (httpnet:
//	  one keep-alive pool                                              Runtime + Server,
//	                                                                   log in DataDir)
//	                                          prepare / commit ─────────┤
//	                                                                   ▼
//	                                          K participants (participant.OpenGroupSync
//	                                          over their own logs, or no-op handlers)
//
//	floor: load ──POST──▶ outer handler ──K parallel POSTs, then K more──▶ K trivial handlers
//	fsync floor: write+fdatasync of a small record to a preallocated file in DataDir
//	sync floor (concurrency 1 only): the floor's transaction with dtc's fsyncs in a row
//	  on its way — each inner handler's before it answers a prepare (durable mode), the
//	  outer's after the prepares — answered then, the commits sent after (floor.go)
//
// Run measures once and returns a Result (WriteText for people, encoding/json for
// machines: `dtc bench --json`). Soak holds a fraction of the maximum throughput and
// samples memory, to show that nothing grows.
//
// What is measured, exactly:
//   - Latency is the client's: from sending the request (closed loop) or from the
//     transaction's scheduled arrival (open loop, no coordinated omission) until dtc's
//     answer is read. dtc answers once the decision is durable, before phase 2.
//     Latencies go in a log-linear histogram (0.8 % resolution, fixed memory).
//   - CPU per transaction is the whole process's (getrusage: user + system, every
//     thread) over the transactions: the load's client, dtc and the participants. The
//     floor's includes its client and trivial servers the same way.
//   - Log syncs and records are counted below the log, by a wal.FS that wraps the OS's
//     (countFS): dtc's /metrics has no count of fsyncs.
//   - Memory: RSS from /proc/self/status, the Go heap (in a sample taken with a GC,
//     the bytes that GC found live; otherwise HeapAlloc), runtime.NumGoroutine.
//
// Everything runs in one Go process, as the issue asks ("everything on one machine"),
// which is not quite the same as separate processes: an fsync holds its P while it
// blocks, so in one process the participants' fsyncs would take scheduling slots from
// dtc that, across processes, the kernel gives to dtc's threads. dtc's phases therefore
// run with GOMAXPROCS = cores + one per syncing log (dtc's and each durable
// participant's), as its K+1 processes would have with cores+1 each (package
// maxprocs). Measured with 2 participants on 2 cores: with cores+1 for both, dtc kept
// 1.70 cores busy and the floor 1.97. The floors run with GOMAXPROCS = cores
// (runtime.NumCPU), where the raw floor, which syncs nothing, does best (the sync
// floor does as well either way): against cores+1, p50 0.17
// instead of 0.27 ms at concurrency 1 and 7% more transactions/s at 64 (it was
// measured with cores+1 until 2026-11-26, which flattered dtc's ratios by as much).
// GOMAXPROCS set in the environment applies to both.
//
// Everything Run and Soak start, they stop and wait for before returning; their data
// directory is removed. Every load is bounded in time, and in count when Transactions
// is set. The logs of dtc and the participants go nowhere unless Options.Logger says
// otherwise (set it to measure what logging costs).
//
// RunContention (contention.go, dtc bench --contention) is a benchmark of its own (issue
// 16): participants built on the participant library, its lock table holding keys from
// prepare to phase 2 and its Resolver reporting waits and wounds, with a log in memory
// (libpart.go), and the committed throughput of three policies in one run: timeout-only, deadlock
// detection, wound-wait.
package bench
