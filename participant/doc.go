// Package participant is what a Go service needs to take part in dtc's two-phase
// commit correctly: durable prepare, idempotent phase 2, fencing of late prepares, the
// status endpoint, log compaction, and asking the coordinator about transactions left
// in doubt (DESIGN §3).
//
// # How the parts connect
//
//	HTTP (NewHandler)        simulator            Resolver (in doubt → coordinator)
//	       │                     │                         │
//	       └──────────┬──────────┴─────────────────────────┘
//	                  ▼
//	     Participant (IO-free core, one mutex)
//	       │ Service calls, under the lock, in log order
//	       │ (also during replay: the service state is rebuilt from the log)
//	       ▼
//	     Service (the application: reserve / apply / release)
//	       │
//	     Store ── SyncStore (Append+Sync, done before return: simulator, tests)
//	          └── GroupSyncStore (wal.GroupSyncer: group commit, production)
//
// The core starts no goroutine, reads no wall clock (a Clock is injected) and uses no
// randomness. Calls answer through callbacks, which the core never runs while holding
// its lock, so a Store that calls done synchronously cannot deadlock it.
//
// # States of one transaction
//
//	           prepare: Service.Prepare ok
//	           (ACK once the prepare record is durable)
//	unknown ──────────────────────────────────────────▶ prepared
//	   │                                                 │    │
//	   │ rollback: fence record                 rollback │    │ commit
//	   ▼                                                 ▼    ▼
//	aborted (fenced)                               aborted    committed
//
// What each call answers, by state (a prepare the Service refuses, or the lock table
// refuses, is NACKed and leaves the transaction unknown; a different payload for a
// known id is NACKed):
//
//	state       prepare                commit              rollback            status
//	unknown     Service.Prepare: ACK   409 unknown         fence: 200 aborted  unknown
//	            (when durable) / NACK
//	prepared    ACK                    200 committed       200 aborted         prepared
//	committed   ACK                    200 committed       409 committed       committed
//	aborted     NACK (fenced: …)       409 aborted         200 aborted         aborted
//
// Decided transactions (committed, aborted, fenced) are remembered in a window of
// Config.DecidedMax, oldest forgotten first; a forgotten one is "unknown" again.
//
// # Locks and conflicts (issue 16)
//
// With Config.Locks naming a policy (package locks: no-wait, wait, wound-wait, occ) and
// a Service that implements Keyed (and Versioned for occ), a prepare first asks the
// Service for the keys the transaction reads and writes, and takes their locks (shared
// for reads, exclusive for writes), all or none, before Service.Prepare:
//
//	no-wait, occ  a conflict is a NACK at once, {"vote":"NACK","reason":"conflict on
//	              key x: …","cause":"conflict","key":"x"}; occ first compares each
//	              version read (KeySet.ReadVersions) with Versioned.Version and NACKs
//	              a difference ("read version 2, current version 3")
//	wait          the prepare waits; the LockObserver hears of it (LockWait: T waits
//	              for U on key K) and a running Resolver reports it to the coordinator
//	              (POST {coordinator}/v1/waits), at once again when a transaction
//	              it was not told of comes in its way (the key passes to a new
//	              holder), and every second while it lasts
//	wound-wait    the same, and for every younger holder in the way (PrepareRequest.
//	              Priority: smaller is older; 0 is the youngest) the Resolver asks
//	              POST {coordinator}/v1/transactions/{U}/abort, Dtc-Abort-Cause: wound
//
// A waiting prepare ends with a NACK (cause conflict) when its transaction is rolled
// back (the id is then fenced, as for any rollback before prepare), when its HTTP
// request ends (CancelWait: the coordinator's deadline) or when the participant
// closes. Locks are held until the commit or rollback record is appended and freed in
// the same critical section, never before: everything a prepare let in next does comes
// after that record in the log, so its ACK (its own record durable) implies the phase-2
// record is durable too. The prepare record keeps the priority; replay and checkpoints
// retake the locks of every transaction still prepared. The lock table is bounded
// (locks.Config: keys, waiters, keys per transaction); a full table is a NACK.
//
// # Phase 2 in batches
//
// POST …/batch (EndpointBatch) carries many transactions' commits and rollbacks in one
// request, {"ops":[{"op":"commit","txn_id":"…"},…]} (BatchRequest), and answers 200
// with one result per op, in order (BatchResponse): {"state":S} where the single
// endpoint answers 200, {"state":S,"conflict":true} where it answers 409, and
// {"error":{…}} with its code where it answers 4xx or 5xx (an invalid txn id, the
// participant unavailable). Each op is exactly the single call, with its idempotence,
// fencing and record (not urgent); the answer is written once every op's record is
// durable. A request that is wrong as a whole (not JSON, an unknown field or op, no
// ops, more than HandlerOptions.BatchMaxOps) is answered 400, or 413 for a body over
// its limit, and none of its ops is applied. Every answer of the handler carries the
// header Dtc-Batch-Max (HeaderBatchMax) with BatchMaxOps: a coordinator that has seen
// it may use …/batch for this participant, with at most that many ops a request.
//
// While a Resolver runs (Resolver.Run), every answer also carries HeaderInDoubt
// ("Dtc-In-Doubt: ask"): the participant asks the coordinator about the transactions it
// holds in doubt, so a coordinator may keep their begin records lazy. A participant
// without a Resolver says nothing, and the coordinator syncs the begin of every
// transaction naming it before the prepares leave, so that a restarted coordinator can
// resolve what it holds by itself.
//
// # Durability rules
//
//   - ACK is sent only once the prepare record (txn id, payload, coordinator, time) is
//     durable. NACK needs no record.
//   - commit and rollback are answered once their record is durable; so is a rollback
//     of an unknown transaction, which writes a fence. These records are not urgent
//     (see Store): a GroupSyncStore lets them share the next prepare's sync, or syncs
//     them after its LazyFlushInterval, since the coordinator has told the outcome
//     already and waits for these answers only to finish phase 2.
//   - A state is reported (status, phase-2 answers, 409s) only once durable: status of
//     a transaction whose prepare record is still on its way says "unknown".
//   - The core acts at once, in memory and in the Service, and appends the record in
//     the same critical section, so log order is the order of Service calls. When a
//     record is durable, every record before it is too.
//   - A rollback that arrives while the prepare record is being persisted logs a
//     rollback record after it; the prepare is then answered NACK, never ACK, and a
//     commit is a conflict: the transaction cannot end committed here.
//   - Any Store error is fatal: the core answers nothing from then on (prepare NACK,
//     phase 2 unavailable) and the process should restart and replay. An fsync is
//     never retried.
//
// # The log
//
// Records are JSON (one object with a "type": prepare, commit, rollback, fence,
// update, checkpoint), readable with `dtc log dump` and jq. A checkpoint holds the
// Service's Snapshot and the core's state (prepared transactions with their payloads,
// the decided window); once it is durable, the segments before it are removed. Every
// log starts with a checkpoint (Start writes one on a fresh log, with the Service's
// initial state, which is therefore used only once). Replay skips records older than
// the first checkpoint it meets and applies every later one strictly: a record that
// does not fit the state so far is corruption, and Open fails.
//
// # Invariants
//
//   - A transaction ACKed here can commit after any crash: its prepare record is durable
//     and replay re-reserves it in the Service.
//   - Once a rollback is answered, the transaction never commits here; once a commit is
//     answered, it never rolls back.
//   - A prepare that arrives after the rollback of the same id is NACKed, for as long as
//     the id is in the decided window.
//   - Memory is bounded: PreparedMax prepared, DecidedMax decided, InflightMax records
//     waiting for the disk; hitting a bound is an answer (NACK, ErrBusy/503), never
//     growth.
//   - The Service sees the same calls, with the same bytes, live and on replay.
//
// # Request signing
//
// With HandlerOptions.Auth holding keys (NewAuth, AuthOptions.Keys, read from a secret
// file by ReadKeyFile), the handler acts only on a POST (prepare, commit, rollback,
// batch) signed by the coordinator with a key it holds; the Transport of package
// httpnet/transport signs with Options.Signer (dtc serve --participant-secret-file).
// Three headers:
//
//	Dtc-Timestamp  time of signing, decimal Unix seconds
//	Dtc-Signature  "v1=" and the lowercase hex of HMAC-SHA256(secret, message)
//	Dtc-Key-Id     the key's id (absent for a key without one)
//
// The secret's bytes, as written in the file, are the HMAC key. The message is
//
//	"v1\n" TIMESTAMP "\n" METHOD "\n" HOST "\n" REQUEST_URI "\n" BODY
//
// TIMESTAMP as sent, HOST the Host header in lower case, REQUEST_URI the path and query
// as sent (r.RequestURI), BODY the body byte for byte. A request whose headers are
// missing, repeated or malformed, whose key id is unknown, whose timestamp is more than
// AuthOptions.SignatureWindow (30 s) from the participant's clock, or whose HMAC differs
// (compared in constant time) is answered 401, code CodeUnauthorized, with a message
// saying which, and changes nothing; the header checks are made before the body is read.
// Auth.Stats counts each reason. Within the window a replay is harmless, as every call is
// idempotent; the host is signed so that a prepare meant for one participant cannot be
// replayed at another with the same key (a proxy in front of the participant must keep
// the Host header). GET status is not checked: it changes nothing. Auth.Verify lets a
// service check a request it reads before the handler (the bank's hold_ms).
//
// AuthOptions.Coordinators, if set, lists the coordinators a prepare may name: another,
// or none, is answered NACK with the reason and reserves nothing.
//
// A transaction prepared longer than Config.InDoubtAfter is in doubt: the coordinator's
// phase 2 has not come. The Resolver asks the coordinator (GET
// {coordinator}/v1/transactions/{id}, with the id it was prepared under) and commits or
// rolls back; only a 404 whose error code is "not_found" (CodeTxnNotFound) is presumed
// abort, never a bare 404 or the coordinator's "no_route".
// Each query is counted and logged (Resolver.Stats); a transaction whose coordinator
// gives no usable answer is reported: a warning each time, Stats.CoordinatorUnreachable,
// and, through HandlerOptions.Resolver, its status answer (in_doubt_since,
// resolve_attempts, coordinator_unreachable, unreachable_since, last_resolve_error).
// ResolverOptions.BearerToken is sent with the queries.
//
// NewServer gives an http.Server with read, write and idle timeouts for the handler.
//
// With HandlerOptions.TracerProvider set, the handler continues the coordinator's
// OpenTelemetry trace: each request gets a span under the W3C traceparent it carries,
// in the request's context. Without it the handler makes no spans.
package participant
