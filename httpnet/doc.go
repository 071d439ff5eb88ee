// Package httpnet is dtc's daemon runtime: it runs the coordinator engines in the real
// world, one goroutine (a shard) per engine, over OS files for the log (or, in cluster
// mode, etcd), the wall clock, and a Transport to the participants. Three packages
// make the daemon, and their imports point one way:
//
//	httpnet/apiserver  the HTTP API (Server, auth, stats, metrics, admin page, Serve)
//	        │ calls Runtime.Submit, Get, List, Forget, Abort, ReportWaits, StatsResponse
//	        ▼
//	httpnet            the Runtime: shards, their logs, compaction, stats, deadlock
//	        │          detection, cluster glue (this package)
//	        ▼ Transport.For(shard.deliver)
//	httpnet/transport  requests to participants, phase-2 batching, allowlist, client TLS
//
// (httpnet/internal/tracing, the transactions' trace registry, is shared by all three.)
// This package's tests are also the daemon's end-to-end tests: they run the three
// together (helpers_test.go's coord) against real participant handlers. Inside the
// runtime:
//
//	               API handler (package apiserver)                     participants
//	client ──POST/GET──▶ handler goroutine ──do(call)──┐            ▲ prepare/commit/...
//	                         ▲ answer (buffered chan)   │            │
//	                         │                          ▼            │ sender goroutines
//	                 ┌───────┴──────── shard i (one goroutine) ──────┴──────┐ (Transport)
//	                 │ inbox (bounded chan): Reply | API call               │──replies──┐
//	                 │ timer queue (heap + one time.Timer) ─▶ TimerFired    │◀──────────┘
//	                 │ synced (1-buffered signal) ─▶ Step(LogSynced)        │
//	                 │ coordinator.Engine: owned by this goroutine only     │
//	                 └───────────┬────────────────────────▲─────────────────┘
//	                   ShardLog.Append                    │ notify (never blocks)
//	                             ▼                        │
//	              wal.GroupSyncer (group commit for all shards) ─▶ wal.Log
//
// # Goroutines and who owns them
//
//   - Each shard's goroutine owns its engine from the moment it starts: every call into
//     the engine (Start, Step, Submit, Get, List, Stats, Checkpoint) runs on it. API
//     calls are closures posted to the inbox; their answers travel back on channels the
//     caller made (buffered, so the shard never blocks on a caller that went away). A
//     Submit that waits for the decision gets one answer: the call's error, or the
//     decision.
//   - The Transport (package httpnet/transport) owns the sender goroutines that make
//     the requests to participants, phase-2 batching included; every Send ends with
//     exactly one reply, delivered to the shard's inbox (For). Close closes it, after
//     the shards.
//   - Timers cost no goroutine: each shard keeps the engine's timers in a heap owned by
//     its goroutine, with one time.Timer armed for the earliest, and steps TimerFired
//     for every timer whose deadline has passed. They are never cancelled (the engine
//     ignores stale ones). When a shard stops, its pending timers never fire.
//   - The wal.GroupSyncer owns the goroutine that syncs and calls the records' done
//     callbacks (and, while it builds the next segment, one more); ShardLog turns the
//     callbacks into a coalescing 1-buffered signal per shard, so the log never waits
//     for a shard.
//   - The runtime owns one compactor goroutine (a ticker): it removes log segments
//     before the lowest checkpoint of all shards, rebuilds the log's spare and reserved
//     segment if a full disk stopped that, and asks the shards to checkpoint, one after
//     the other, when the log has more than CompactSegments segments or refused a record
//     for lack of space (a checkpoint may use the reserved segment, so a full disk frees
//     itself). A shard that wrote nothing since its last checkpoint writes none.
//   - The runtime owns one sampler goroutine (stats.go, a ticker): once a second it
//     reads the counters and asks the shards for their gauges (as a scrape does), into
//     a ring of the last 300 samples; StatsResponse is what GET /v1/stats serves to the
//     admin page (package apiserver). On a cluster node the stats are the node's own
//     and name it, with the cluster's nodes read from etcd (stats_cluster.go).
//   - Tracing (httpnet/internal/tracing) is off unless Options.TracerProvider is set.
//     Then the API handler starts each transaction's span, the Transport a span per
//     request to a participant (and sends traceparent), and a decorator of each
//     engine's Log with its Observer make the decision's sync span; a bounded map keeps
//     each transaction's trace context, by id, until the transaction ends.
//
// # Bounds
//
// A shard's inbox holds at most Options.InboxCap items. Producers wait when it is full:
// senders until there is room or the shard stops, API callers until there is room or
// their request's context ends. The number of producers is itself bounded: by the
// engine's limits (InflightMax transactions per shard, one outstanding request per
// participant) and by the API server's in-flight cap (429 beyond it). A shard's timer
// queue holds the timers its engine set and that are not yet due: the engine's rate of
// timers times its longest timeout. The Transport's own bounds (senders, batch queues,
// response sizes) are in package httpnet/transport; the API's (bodies, pages) in
// package apiserver.
//
// # Who may do what
//
// The API server authenticates and authorizes its clients and checks every participant
// URL against the operator's allowlist before a transaction begins (package apiserver,
// and transport.Allowlist); the Transport never shows a participant's answer to API
// clients beyond a NACK's cleaned reason, and may use TLS and sign its requests
// (package httpnet/transport). What reaches the runtime has passed those checks; the
// engines still check their own limits.
//
// # Deadlock detection (deadlock.go)
//
// One waitfor.Graph per process, above the shards, behind a mutex: a wait report's
// transactions are looked up on their shards (only preparing ones count), its edges
// added, and the youngest transaction of each cycle it closes aborted through its
// shard (Engine.Abort, cause deadlock). Each shard's observer drops a transaction's
// edges when its decision is durable. Options.NoDeadlockDetection turns it off.
//
// # Startup, recovery and shutdown
//
// Open replays the log, routing every record to the shard its transaction id hashes to
// (checkpoint markers carry no transaction and are skipped), so the number of shards
// may change between restarts. Each shard then Starts its engine, which resumes phase 2
// of decided transactions and asks the participants of undecided ones for their status,
// and writes a checkpoint, so that every shard has a floor for compaction. /readyz
// answers 200 only when every engine is Ready. Readiness is also judged per request: a
// request routed to a shard that is still recovering is answered 503 (a Get of an id it
// does not know yet, a Submit), while the other shards serve; an id always routes to
// the shard that replayed all of its records, so their 404s are safe.
//
// Close (and apiserver.Serve, on SIGTERM or SIGINT after a grace period for requests in
// flight) stops the shards, cancels requests to participants, and closes the
// GroupSyncer, which makes what is pending durable. Transactions in flight resume from the log at the next
// start; nothing is lost by stopping at any point, gracefully or not.
//
// # Cluster mode
//
// With Options.Cluster (cluster.go) the runtime is one node of a cluster (package
// cluster): there is no wal; a cluster.Node decides which of the cluster's shards this
// node owns, and each owned shard is a shard as above, its engine over a cluster.Log in
// etcd. StartShard reads the shard's records from etcd and replays them through
// Engine.Replay before the shard's goroutine Starts the engine, as Open does from the
// wal. A lost shard (lease gone, fenced write) stops at once: its waiting callers get
// ErrStopped, and nothing more of it is answered, since shardFor checks Node.Valid.
// A handoff stops routing to the shard, lets its undecided transactions decide,
// checkpoints, stops it and flushes its log. The API server's ClusterHandler wraps its
// Server (NodeID, ClusterShardOf and RunsShard say where a transaction lives): a request
// about a transaction of a shard owned elsewhere is forwarded once to its owner (a wait
// report: to the waiter's owner; each node has its own wait-for graph, so a cycle whose
// transactions live on different nodes is not found, and ends at the prepare deadline).
// A listing asks every other owner once, in parallel, and merges the pages by id, naming
// in the answer (partial, unreachable) the nodes that did not answer in time
// (apiserver's cluster_list.go).
//
// # What is fatal
//
// A failed fsync (or a failed directory sync while removing segments): the log can no
// longer prove anything durable, and retrying an fsync proves nothing. Options.OnFatal
// is called, by default logging the error and exiting with status 1; a restart reads
// what is really on disk. A broken engine invariant panics. Everything else — a
// participant down, a disk full, a malformed request — is an answer, not a crash.
package httpnet
