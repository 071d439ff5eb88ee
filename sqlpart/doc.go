// Package sqlpart makes a SQL database a participant of dtc's two-phase commit, through
// the database's own: PostgreSQL's PREPARE TRANSACTION / COMMIT PREPARED / ROLLBACK
// PREPARED (pg_prepared_xacts), MariaDB's and MySQL's XA START … XA END, XA PREPARE,
// XA COMMIT, XA ROLLBACK (XA RECOVER). It speaks the participant protocol of DESIGN §3
// (NewHandler) with the wire types of package participant, so dtc coordinates it like
// any other participant; cmd/dtc-sql is the same as a standalone service.
//
// # How the parts connect
//
//	HTTP (NewHandler,      Go code (PrepareFunc)      Run: resolver + GC rounds
//	 phase 2 in batches)
//	        │                      │                         │
//	        └──────────┬───────────┴─────────────────────────┘
//	                   ▼
//	        Participant (one mutex per transaction in progress)
//	                   │ database/sql pool (PoolConnsMax)
//	                   ▼
//	        the database: the prepared transactions + Table
//
// The participant keeps nothing that matters in memory: after a crash, what is
// prepared is in the database's prepared transactions and what was decided is in Table.
//
// # The prepare payload
//
//	{"statements":[{"sql":"UPDATE accounts SET balance = balance - $1 WHERE id = $2","args":[10,"alice"],"rows":1}, …]}
//
// See Payload. At most Config.StatementsMax statements and Config.PayloadMaxBytes bytes.
//
// # Global transaction ids
//
// A transaction is prepared under gid = "dtc_" + 8 hex digits of SHA-256(Name) + "_" +
// 32 hex digits of SHA-256(Name, 0, txn id): 45 bytes, deterministic, valid for both
// databases, and every gid of one participant starts with the same prefix (GIDPrefix),
// which is how the resolver finds its orphans among other prepared transactions.
//
// # The table
//
// Table (default dtc_sqlpart_txns) has one row per transaction: gid, name, txn_id,
// coordinator, payload_sha256, state, created_at, updated_at. Its state is
//
//	preparing  written (committed) before the transaction starts: it maps gid to txn id
//	           and coordinator, so that an orphan found prepared after a crash can be
//	           asked about. On PostgreSQL it is committed without waiting for the disk:
//	           the prepare that follows syncs the log past it. A new transaction's row
//	           is inserted without being read first (on PostgreSQL in one pipelined
//	           round trip); a row that exists, or MySQL, takes a lookup first. On
//	           MariaDB a new transaction has no such row: see committed.
//	committed  set by an UPDATE inside the transaction that is prepared: it becomes
//	           visible exactly when COMMIT PREPARED / XA COMMIT commits the work, so
//	           "committed" is never lost and never early. On MariaDB a new
//	           transaction's row is instead inserted inside it, already committed
//	           (XA START and the INSERT, with a 1 s lock wait: no commit and no log
//	           flush of its own). While the transaction is prepared that row is
//	           visible to READ UNCOMMITTED reads only, which is how the resolver, a
//	           repeated prepare and a commit of a session being torn down find it; if
//	           the transaction never prepares, the row goes with it. A repeated or
//	           fenced prepare (the INSERT finds the row, or XA START finds the gid)
//	           goes the preparing way.
//	aborted    set after ROLLBACK PREPARED, or by a rollback of a transaction never
//	           prepared here (a fence): the prepare's UPDATE … WHERE state =
//	           'preparing' then matches no row, and a late prepare is NACKed.
//
// # States of one transaction, and what each call answers
//
//	state (DB)                    prepare            commit             rollback          status
//	no row / preparing, not       run, prepare: ACK  409 unknown (*)    fence: aborted    unknown
//	  prepared                    or NACK
//	prepared (in the DB's list)   ACK (same payload) COMMIT PREPARED    ROLLBACK PREPARED prepared
//	committed (row)               ACK (same payload) 200 committed      409 committed     committed
//	aborted (row)                 NACK (fenced)      409 aborted        200 aborted       aborted
//
// (*) On MariaDB/MySQL a commit finding the row "preparing" (or, on MariaDB, an
// uncommitted row) and the gid not listed retries (and answers 503 after its tries): only an ACKed, so prepared, transaction is
// committed, and one whose session is being torn down is for a moment not listed.
//
// # Phase 2 in batches
//
// NewHandler also serves POST …/batch (HandlerOptions.BatchMaxOps, default 64) and
// offers it on every answer in the Dtc-Batch-Max header. dtc then sends a busy
// participant its commits and rollbacks many to a request, as those of the
// participant library are: one HTTP exchange where there were many. Each op does what
// …/commit or …/rollback does. Up to PoolConnsMax transactions of a batch run at
// once, each on a connection of its own (the ops of one transaction in the order
// given), and the answer comes once each op has its result; a database error is that
// op's result (unavailable: dtc retries it), never the others'.
//
// Commit and rollback always look the transaction up in the database's prepared list
// and Table; they never guess. A database error in phase 2 is answered 503 (the
// coordinator retries): a lost connection after ACK is never a reason to roll back.
// Before the prepare, any error (a statement's, a constraint's, a lost connection, a
// timeout) rolls the work back and is NACK with the database's message.
//
// # Lock waits
//
// A prepare's statement that meets a row lock held by another transaction does what
// Config.LockPolicy says:
//
//	wait     it waits, up to StatementTimeout. On PostgreSQL the participant reports
//	         the wait to the prepare's coordinator (Config.Coordinator if the prepare
//	         named none) as the participant library does, so that a deadlock across
//	         two databases (T1 holds x at A and waits for y at B, T2 the reverse) is
//	         broken by aborting its youngest transaction, not left to the deadline:
//	           POST {coordinator}/v1/waits {"participant","waiter","holders","key"} → 202
//	         A statement still running after WaitPollInterval is looked at, and again
//	         every WaitPollInterval, on a pool of its own (WaitConnsMax):
//	         pg_blocking_pids(backend) names the sessions in its way. One running
//	         another prepare of this participant is that prepare's transaction (the
//	         participant keeps backend pid → transaction while its prepares run); a
//	         prepared transaction (pid 0) is found through pg_locks: the lock the
//	         statement waits for, granted to a holder without a pid, whose
//	         transaction-id lock leads to pg_prepared_xacts.gid, whose row in Table
//	         gives the dtc transaction id. The wait is reported at once, at once again
//	         when a transaction not reported comes in its way, every WaitReportInterval
//	         while it lasts, and no more once it ends. Only transactions of the same
//	         coordinator are reported; blockers that are not dtc transactions known
//	         here (another client's session, another participant's prepare still
//	         running its statements) are not. MariaDB/MySQL waits are not reported.
//	no-wait  it fails at once: PostgreSQL SET LOCAL lock_timeout = 1 (ms; 0 would mean
//	         no limit); MariaDB SET SESSION innodb_lock_wait_timeout = 0 (MySQL: 1 s,
//	         its least) for the statements only, set back before XA END. The vote is
//	         NACK with cause conflict and the database's message.
//
// Under either policy a lock the database refused for a deadlock it saw itself (both
// transactions in one database) is NACK with cause conflict too.
//
// A rollback that finds its transaction's prepare still running its statements (on
// PostgreSQL) cancels it: the blocked statement is cancelled (pgx sends a cancel request
// and closes the connection, so the backend rolls back), the prepare answers NACK, and
// the rollback then fences the transaction. This is what frees a deadlock victim's
// locks at the participant where its prepare was blocked. LockWaitStats counts the
// waits, reports and cancellations.
//
// # In doubt
//
// Run's first round asks the coordinator about every transaction this participant has
// prepared (orphans of an earlier run); later rounds, every ResolveInterval, about
// those prepared longer than InDoubtAfter. It asks GET
// {coordinator}/v1/transactions/{txn id} with participant.AskCoordinator, the
// coordinator being the one the prepare named (or Config.Coordinator): committed →
// commit, aborted or 404 "not_found" (presumed abort) → rollback, anything else → ask
// again later. Rows decided longer than RetainDecided ago are deleted by GC.
//
// # Invariants and limits
//
//   - ACK only once the database has prepared the transaction.
//   - One process per Name and database: the calls for one transaction are serialized
//     by the process's lock; two processes with the same Name would race.
//   - On MariaDB/MySQL the session that prepared an XA transaction holds it: another
//     connection can finish it only once that session is gone, and while the session
//     is torn down XA RECOVER may not list it. The connection that prepared is kept
//     ("parked", at most PoolConnsMax/2 at once) and phase 2 runs on it, then it goes
//     back to the pool. If it fails, it is closed and its session's end awaited before
//     another connection finishes the transaction. Beyond the bound, the connection is
//     closed at once and the ACK waits until the server's process list no longer
//     shows its session. MariaDB ≥ 10.5 (MySQL ≥ 5.7.7) keeps a prepared XA
//     transaction when its session ends, so a lost connection never rolls back.
//   - Bounds: StatementsMax, PayloadMaxBytes, PoolConnsMax, WaitConnsMax, StatementTimeout,
//     PrepareTimeout, PreparedMax (counted in memory, recounted from the database every
//     round; NACK beyond it), ResolvePerRoundMax, ResolveConcurrencyMax,
//     GCRowsPerRoundMax.
package sqlpart
