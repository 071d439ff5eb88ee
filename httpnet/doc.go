// Package httpnet runs dtc's coordinator engines in the real world: OS files for the
// log, the wall clock, HTTP to the participants, and the HTTP API for clients.
//
//	                HTTP API (Server)                                   participants
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
//   - The Transport owns the sender goroutines that make the requests to participants,
//     tracked by a WaitGroup: a Send goes to an idle sender, or starts one; senders stay
//     for the next request and exit when idle for a while. Every request has a timeout
//     (Message.Timeout or a default), so each ends with exactly one reply.
//     Transport.Close cancels them and waits.
//   - Phase-2 batching: a participant that offers it (the Dtc-Batch-Max header on any
//     of its answers) gets its commits and rollbacks through POST …/batch. Send puts
//     such a message in that participant's queue, and a sender (the same pool, handed
//     the queue instead of one message) sends what is queued, at most the participant's
//     maximum (and 1024) per request, again and again until the queue is empty. At most
//     TransportOptions.BatchInflight senders work for one participant; what comes
//     while they are busy waits for the next request. No timer: a message for an idle
//     participant leaves at once. A queued message's reply may come later than its
//     Timeout (each request it waits for is bounded by its own), but it comes; the
//     engine sends no retry while a reply is due. Each op gets its own reply, as the
//     single endpoint's answer would have made it; a batch without a usable answer
//     fails each of its ops (the engine retries them), and a 4xx from …/batch (but 408
//     and 429) turns batching off for that participant for a minute, unless its header
//     offers batches of fewer ops than were sent (a lowered limit). Prepare and status
//     are never batched; TransportOptions.NoBatch (dtc serve --no-batch) turns batching
//     off altogether. Transport.Close cancels the batches in flight and drops what is
//     queued, without a reply. Transport.Stats counts the requests of each kind and
//     the ops batches carried, and says how many participants get batches and how
//     many ops wait in their queues (on /metrics: dtc_participant_requests_total,
//     dtc_participant_batch_ops_total, dtc_participant_batching and
//     dtc_participant_batch_queued).
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
//     a ring of the last 300 samples that GET /v1/stats serves to the admin page (/ui/,
//     files embedded from ui/; obs.go). On a cluster node the stats are the node's own
//     and name it, with the cluster's nodes read from etcd (stats_cluster.go).
//   - Tracing (trace.go) is off unless Options.TracerProvider is set. Then the API
//     handler starts each transaction's span, the Transport a span per request to a
//     participant (and sends traceparent), and a decorator of each engine's Log with
//     its Observer make the decision's sync span; a bounded map (tracedTxnsMax) keeps
//     each transaction's trace context, by id, until the transaction ends.
//
// # Bounds
//
// A shard's inbox holds at most Options.InboxCap items. Producers wait when it is full:
// senders until there is room or the shard stops, API callers until there is room or
// their request's context ends. The number of producers is itself bounded: by the
// engine's limits (InflightMax transactions per shard, one outstanding request per
// participant) and by the Server's in-flight cap (429 beyond it). Idle senders are
// bounded by sendersMax. A participant's batch queue holds the phase-2 messages the
// engines sent it and not yet sent on, bounded by the same engine limits; at most 1024
// participants are remembered as offering batching (those with nothing queued are
// forgotten when the table is full). A shard's timer queue holds the timers its engine
// set and that are not yet due: the engine's rate of timers times its longest timeout.
// Responses from participants are read up to TransportOptions.ResponseMaxBytes (a
// batch's, 1 KiB more per op), request bodies up to ServerOptions.BodyMaxBytes (413
// beyond).
//
// # Who may do what (auth.go, allow.go, tls.go)
//
// With ServerOptions.Auth, every request but /healthz, /readyz (and /metrics unless
// MetricsAuth) names its client: a bearer token, looked up by its SHA-256 and compared
// in constant time, or a client certificate verified by the server's TLS configuration
// (ServerTLSConfig), by its subject common name. Roles: submit begins transactions and
// reads the ones it began (coordinator.Request.Owner, kept in the log), read reads
// everything, admin does everything. A participant's in-doubt query by the id it was
// told (client id '@' 64-bit random nonce) needs no credentials and gets the state
// only. Every participant URL of a submit is normalised (NormalizeParticipantURL) and
// must match ServerOptions.Participants (default: loopback) before the transaction
// begins, so no connection is ever made to a host the operator did not allow; two
// URLs with the same key are one participant listed twice. What a participant answers
// is never shown to API clients beyond a NACK's cleaned reason: a failed request's
// error is generic (its details go to the log, ReplyErrorDetail). The transport caps
// response headers (TransportOptions.ResponseHeaderMaxBytes) and may use TLS with a
// client certificate (TransportOptions.TLS, ClientTLSConfig). Serve's http.Server has
// read, write and idle timeouts (ServeOptions); a submit takes its in-flight slot only
// once its body is read. POST /v1/waits and POST /v1/transactions/{id}/abort take the
// same trust as that query: without credentials, a caller naming every transaction by
// its participant id is served as a participant (deadlock_api.go, asParticipant).
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
// Close (and Serve, on SIGTERM or SIGINT after a grace period for requests in flight)
// stops the shards, cancels requests to participants, and closes the GroupSyncer, which
// makes what is pending durable. Transactions in flight resume from the log at the next
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
// checkpoints, stops it and flushes its log. ClusterHandler wraps the Server: a request
// about a transaction of a shard owned elsewhere is forwarded once to its owner (a wait
// report: to the waiter's owner; each node has its own wait-for graph, so a cycle whose
// transactions live on different nodes is not found, and ends at the prepare deadline).
// A listing asks every other owner once, in parallel, and merges the pages by id, naming
// in the answer (partial, unreachable) the nodes that did not answer in time
// (cluster_list.go).
//
// # What is fatal
//
// A failed fsync (or a failed directory sync while removing segments): the log can no
// longer prove anything durable, and retrying an fsync proves nothing. Options.OnFatal
// is called, by default logging the error and exiting with status 1; a restart reads
// what is really on disk. A broken engine invariant panics. Everything else — a
// participant down, a disk full, a malformed request — is an answer, not a crash.
package httpnet
