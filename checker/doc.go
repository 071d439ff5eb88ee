// Package checker records the history of a run and judges it: the invariants of
// DESIGN.md §6, checked directly, and a per-transaction outcome model checked with
// porcupine. The deterministic simulator and the real-process chaos tool both use it;
// it knows histories and porcupine, nothing of either of them.
//
//	simulator / chaos tool                       checker
//	──────────────────────                       ───────
//	client calls      ── Submit, Return ──▶ ┐
//	status answers,   ── Told ────────────▶ │
//	phase-2 messages                        ├─▶ Recorder ─History()─▶ Check ─▶ Report
//	prepare votes     ── Voted ───────────▶ │      (mutex)                 │      (violations,
//	durable applies   ── Applied ─────────▶ │                              │       porcupine result)
//	end of heal phase ── FinalParticipant,  │                              └──▶ WriteHTML
//	                     FinalCoordinator ▶ │                                   (porcupine's
//	crashes, heals    ── Note ────────────▶ ┘                                    visualization)
//
// Times are nanoseconds chosen by the caller (virtual time in the simulator, wall time
// in real runs); the checker only compares them. A History is plain data with JSON tags
// and a deterministic order, so a run's history can be saved, diffed and checked again.
//
// # What Check checks
//
// Atomicity. No transaction is committed at one participant and aborted at another:
// every Applied outcome and every final participant state that is committed or aborted
// agrees. (A participant that applies both outcomes fails too.)
//
// Validity. A transaction committed anywhere (a client, a status answer, a phase-2
// message, a participant, a final state) has an ACK vote from every one of its
// participants, voted no later than the first sign of the commit. The participants are
// those the first client op named; without an op, every participant seen voting,
// applying or holding it. A participant outside that list never commits.
//
// Stability. Every outcome reported to anyone (client returns, Told, the coordinator's
// final state) is the same, and it is the outcome participants applied. An outcome once
// told never changes, whoever asks and whenever.
//
// Liveness (Options.CheckLiveness, for runs with a heal phase). At the end every
// transaction is committed or aborted at the coordinator, or "not-found" (forgotten after
// all participants acknowledged, or never durably begun: presumed aborted). No
// participant holds "prepared" (or any state other than committed, aborted, unknown).
// A participant may hold "unknown" if the outcome is aborted (it was never prepared, or
// it forgot the fence) or if it applied the commit earlier (it forgot the transaction);
// "unknown" for a commit it never applied means the commit never reached it. Every
// participant of a transaction must have a final state recorded. Disagreement between
// final states is left to atomicity and stability, so one bug reads as one violation.
//
// Linearizability. Porcupine checks the history against a model of one transaction's
// outcome, partitioned by transaction id so that the search stays small. The state is
// undecided, committed or aborted. Operations: a client call spans Submit to Return;
// Told, Applied and Voted are instantaneous at their time; committed/aborted final
// states are instantaneous one past the latest recorded time. Step: an output of
// Unknown is always allowed and changes nothing; a final output decides an undecided
// transaction; once decided, every final output must equal the state. A search that runs
// out of Options.PorcupineTimeout makes the result Unknown: the Report is then not OK,
// but no violation is invented.
//
// # Why an open-ended operation allows every outcome
//
// A client whose call timed out, whose connection dropped, or whose coordinator crashed
// does not know what happened: the transaction may have committed, aborted, or not even
// begun, and it may be decided long after the client gave up (recovery resumes it). Such
// an operation has an open end: its return time is +∞ (math.MaxInt64), so it is
// concurrent with everything after its call, and its output Unknown is compatible with
// every state. Constraining it in any way would reject correct histories; it is the other
// observations (participants, status answers, the final states) that pin the outcome down.
//
// Such an operation fits anywhere in any interval, so its end never changes the verdict;
// it only costs search. In a transaction whose outcomes conflict porcupine must search
// exhaustively, and k open ends make that 2^k, so there (and only there) Check closes
// them at the time the client gave up. Operations returns the open ends untouched.
//
// Bank. CheckBank checks the bank example's invariant on final balances: the total is
// what it was at the start and no account is negative.
//
// Violations are sorted by kind (atomicity, validity, stability, liveness,
// linearizability, bank), then transaction, then detail, so two runs with the same seed
// print the same report.
package checker
