// Package coordinator is dtc's two-phase-commit engine: a single-threaded,
// non-blocking state machine that is the same code in production and in the simulator.
//
// It never blocks, starts no goroutine, reads no wall clock and no global random
// source, and touches neither files nor the network. It is written against interfaces it
// defines itself (env.go), and whatever takes time comes back to it as an Event:
//
//	           Submit / Get / List / Checkpoint            (method calls, answered at once
//	client ──────────────────────────────────┐              or through a done callback)
//	                                         ▼
//	                  ┌──────────────────────────────────────┐
//	  Step(Reply) ───▶│                Engine                │── Transport.Send(Message)
//	  Step(Timer) ───▶│  txns: id → phase, votes, acks, ...  │── Clock.SetTimer(d, Timer)
//	  Step(Synced) ──▶│  waiting: decisions until durable    │── Log.Append(Record, sync)
//	                  └──────────────────────────────────────┘── Observer.Observe(Note)
//
// # Lifecycle (presumed abort)
//
//	begin ─prepare all─▶ preparing ─all ACK──────────▶ [commit durable] ─▶ phase 2 ─all acked─▶ done
//	                         │ any NACK / ERROR / deadline
//	                         └────────────────────────▶ [abort durable]  ─▶ phase 2 ─all acked─▶ done
//
// Records: begin (lazy or synced, below), decision (synced), hazard (lazy), end (lazy);
// checkpoint and snapshot records let the log's owner delete old segments. Begin and
// snapshot carry the optional "owner" (Request.Owner: the API client that began the
// transaction); it is omitted when empty, so logs written before it existed read as
// before (their transactions have no owner) and logs without authentication are
// unchanged. Begin and snapshot also carry the transaction's "priority" (Priority: its
// begin time in Unix nanoseconds with a hash of its id in the low bits; smaller is older),
// sent in every prepare and used by participants for wound-wait and by the deadlock
// detector to pick the youngest of a cycle; a decision and a snapshot carry the abort's
// "cause" (AbortCause). A log without them reads as before: the priority is derived from
// the begin time, and the cause is absent.
//
// Engine.Abort aborts a transaction that is not decided yet (a client cancelling it, an
// older transaction wounding it, the deadlock detector's victim); a decided one is never
// changed, so it is idempotent.
//
// # The rule
//
// An outcome is told to nobody — not the client, not a participant, not a status query —
// before its decision record is durable. The engine appends the decision with sync, keeps
// the transaction in the "committing"/"aborting" state (which no participant acts on), and
// only when Step(LogSynced) covers the record's LSN does it call the waiting clients'
// callbacks and send phase 2.
//
// A begin record is lazy when every participant of the transaction is known to ask the
// coordinator about the transactions it holds in doubt (it said so on its last answer,
// Reply.Asks): a transaction whose begin was lost in a crash can never have been told
// anything, so it is presumed aborted, and each participant that prepared it learns so
// when it asks. Otherwise the begin is synced before the first prepare leaves, so that a
// restart finds the transaction and resolves it itself: a participant that never asks
// would otherwise hold its prepared change for ever. The engine remembers who asks in a
// bounded table (Config.AskersMax); forgetting errs on the safe side.
//
// # Recovery
//
// After a restart the owner feeds every durable record to Replay, in log order, and calls
// Start. Replay goes through the same apply function that the records went through when
// they were first written; there is no second code path for "after a restart". Start
// then resumes each transaction: a decided one resumes phase 2 (idempotent at the
// participants); an undecided one asks every participant for its status and commits only
// if all of them report prepared within Config.RecoveryTimeout, otherwise aborts. Until
// those decisions are durable the engine is not Ready: Submit fails with ErrRecovering,
// and so does Get for an id it does not know, because it may not have read its last word
// on it yet. After that, Get answers ErrNotFound for an unknown id, which a participant in
// doubt takes as aborted (presumed abort). This is safe because a transaction is
// forgotten only after every participant acknowledged its outcome.
//
// # Incarnations
//
// Participants know a transaction by View.TxnID: the client's id, '@', and a nonce drawn
// when the transaction began. A client-chosen id may be submitted again after the engine
// lost its begin in a crash and answered "not found" for it; the new begin is a new
// incarnation, so a participant acting late on that "not found" aborts only the old one
// (SplitTxnID tells the story in full).
//
// # Bounds
//
// Config bounds in-flight transactions, participants and payload per transaction,
// waiters per transaction and remembered finished transactions. Phase-2 retries are one
// outstanding request per participant with capped exponential backoff and jitter.
// Exceeding a bound is an error value naming it (ErrBusy, *RequestError), never a crash.
//
// # Invariants (asserted: breaking one is a programming error and panics)
//
//   - a transaction is decided at most once; a replayed log never decides it differently;
//   - LogSynced never reports more records than were appended;
//   - Replay happens only before Start, Step only after it.
package coordinator
