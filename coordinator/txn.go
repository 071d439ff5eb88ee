package coordinator

import (
	"encoding/json"
	"fmt"
	"time"
)

// phase is where a transaction is in its lifecycle. The order matters: later phases
// compare greater.
type phase uint8

const (
	phPreparing phase = iota + 1 // prepares sent, votes being collected
	phQuerying                   // found undecided in the log: asking participants for their status
	phDeciding                   // decision made in memory; its record is not durable yet
	phPhase2                     // decision durable and told; commit or rollback being delivered
	phDone                       // every participant acknowledged (or contradicted: a hazard)
)

type txn struct {
	id             string
	wire           string // the id participants see: id, the incarnation separator and a nonce
	parts          []part
	phase          phase
	decision       Decision
	reason         string     // why it aborted, in words
	cause          AbortCause // why it aborted, as a class (logged with the decision; none in older logs)
	priority       int64      // smaller is older; assigned once at begin (Record.Priority)
	prepareTimeout time.Duration
	payloadSum     string
	owner          string // the API client that began it (Record.Owner)
	recovered      bool   // found in the log at Start
	// queued: the id is in Engine.doneIDs, the expiry queue of finished transactions. A
	// finished transaction is queued once, however many records say it ended (its end
	// record and the snapshots of later checkpoints, all replayed).
	queued bool

	began, decided, ended time.Time

	gen         uint64            // generation of the deadline and log-retry timers
	decisionLSN uint64            // LSN of the decision record once the log accepted it
	beginLSN    uint64            // LSN of a synced begin record; its prepares wait until it is durable
	payloads    []json.RawMessage // the prepares' payloads, until the prepares are sent
	logRetries  int
	waiters     []func(View)
}

type part struct {
	url    string
	vote   Vote
	reason string
	acked  bool   // acknowledged phase 2
	hazard string // contradicted the decision: what it answered

	// lastSaid is what the participant last answered (or why it did not), and when:
	// for an operator looking at a transaction in doubt.
	lastSaid   string
	lastSaidAt time.Time

	seq      uint64 // Seq of the outstanding request; 0 when none
	attempts int    // phase-2 or status requests that got no usable answer
	gen      uint64 // generation of this participant's retry timer

	// What the API shows of this participant's history, kept in memory only (a replayed
	// transaction has none of it): when its vote (or status, or deadline) was counted,
	// when it answered phase 2, how many phase-2 requests went to it, and why the last
	// one that failed got no usable answer.
	votedAt, answeredAt time.Time
	phase2Sent          int
	phase2Err           string
}

// finished reports whether phase 2 needs nothing more from this participant.
func (p *part) finished() bool { return p.acked || p.hazard != "" }

// timeOut marks every participant that has not answered (prepare or, in recovery,
// status) as TIMEOUT at now and returns their URLs. At least one has not: the engine decides as
// soon as the last answer is in, so a live deadline always finds someone missing.
func (t *txn) timeOut(why string, now time.Time) []string {
	var late []string
	for i := range t.parts {
		p := &t.parts[i]
		if p.vote == VoteNone {
			p.vote, p.reason, p.seq, p.votedAt = VoteTimeout, why, 0, now
			late = append(late, p.url)
		}
	}
	if len(late) == 0 {
		panic(fmt.Sprintf("coordinator: txn %s: deadline with every answer in, but undecided", t.id))
	}
	return late
}

func (t *txn) phase2Kind() MsgKind {
	if t.decision == Commit {
		return MsgCommit
	}
	return MsgRollback
}

func (t *txn) sameRequest(req *Request, sum string) bool {
	if len(req.Participants) != len(t.parts) || sum != t.payloadSum || req.Owner != t.owner {
		return false
	}
	for i, p := range req.Participants {
		if p.URL != t.parts[i].url {
			return false
		}
	}
	return true
}

// apply changes the engine's state as one record says. It is the only place records turn
// into state, both when they are first written and when they are replayed.
func (e *Engine) apply(rec *Record) error {
	t := e.txns[rec.Txn]
	switch rec.Type {
	case RecCheckpoint:
		return nil
	case RecBegin, RecSnapshot:
		if t != nil && t.phase != phDone && rec.Type == RecBegin {
			return fmt.Errorf("coordinator: begin record for txn %q, which is still in progress", rec.Txn)
		}
		if t != nil && t.phase != phDone {
			e.inflight--
			if t.phase == phPhase2 {
				e.phase2--
			}
		}
		// A later checkpoint's snapshot of a transaction that already ended keeps the
		// place it has in the expiry queue.
		queued := t != nil && t.queued && rec.Type == RecSnapshot && rec.EndedUnixMs != 0
		t = &txn{
			id:             rec.Txn,
			wire:           rec.TxnID,
			parts:          make([]part, len(rec.Participants)),
			phase:          phPreparing,
			prepareTimeout: time.Duration(rec.PrepareTimeoutMs) * time.Millisecond,
			payloadSum:     rec.PayloadSum,
			owner:          rec.Owner,
			began:          time.UnixMilli(rec.TimeUnixMs),
			queued:         queued,
			priority:       rec.Priority,
		}
		if t.priority == 0 { // a log written before priorities: derive one from its begin
			began := t.began
			if rec.BeganUnixMs != 0 {
				began = time.UnixMilli(rec.BeganUnixMs)
			}
			t.priority = Priority(began, rec.Txn)
		}
		if t.wire == "" {
			t.wire = rec.Txn
		}
		for i, u := range rec.Participants {
			t.parts[i].url = u
		}
		e.txns[rec.Txn] = t
		e.inflight++
		if rec.Type == RecSnapshot {
			return e.applySnapshot(t, rec)
		}
		return nil
	}
	if t == nil {
		// Records of a transaction whose begin sat in a segment a checkpoint deleted, or
		// that ended and was forgotten: nothing left to do for it.
		return nil
	}
	switch rec.Type {
	case RecDecision:
		if t.phase >= phPhase2 && t.decision != rec.Decision {
			return fmt.Errorf("coordinator: txn %q decided %s, then %s", t.id, t.decision, rec.Decision)
		}
		if t.phase >= phDeciding {
			return nil
		}
		t.decision, t.reason, t.cause, t.phase = rec.Decision, rec.Reason, rec.Cause, phDeciding
		for i := range t.parts {
			if i < len(rec.Votes) {
				t.parts[i].vote = rec.Votes[i]
			}
		}
	case RecHazard:
		if i := *rec.Participant; i < len(t.parts) {
			t.parts[i].hazard = rec.Hazard
		}
	case RecEnd:
		if t.phase == phDone {
			return nil
		}
		if t.phase < phDeciding {
			return fmt.Errorf("coordinator: end record for undecided txn %q", t.id)
		}
		if t.phase == phPhase2 {
			e.phase2--
		}
		t.phase = phDone
		t.ended = time.UnixMilli(rec.TimeUnixMs)
		e.inflight--
		if !t.queued {
			e.doneIDs = append(e.doneIDs, t.id)
			t.queued = true
		}
	}
	return nil
}

func (e *Engine) applySnapshot(t *txn, rec *Record) error {
	if rec.BeganUnixMs != 0 {
		t.began = time.UnixMilli(rec.BeganUnixMs)
	}
	t.reason = rec.Reason
	for i := range t.parts {
		p := &t.parts[i]
		if rec.Votes != nil {
			p.vote = rec.Votes[i]
		}
		if rec.Acked != nil {
			p.acked = rec.Acked[i]
		}
		if rec.Hazards != nil {
			p.hazard = rec.Hazards[i]
		}
	}
	if rec.Decision == Undecided {
		return nil
	}
	t.decision, t.cause, t.phase = rec.Decision, rec.Cause, phDeciding
	if rec.DecidedUnixMs != 0 {
		t.decided = time.UnixMilli(rec.DecidedUnixMs)
	}
	if rec.EndedUnixMs != 0 {
		return e.apply(&Record{Type: RecEnd, Txn: t.id, TimeUnixMs: rec.EndedUnixMs})
	}
	return nil
}

// mustApply applies a record the engine itself just wrote; failing is a programming error.
func (e *Engine) mustApply(rec *Record) {
	if err := e.apply(rec); err != nil {
		panic(err)
	}
}

// snapshot returns the record that replaces everything the log says about t. Votes are
// kept only with a decision: an undecided transaction asks again after a restart.
func (t *txn) snapshot(now time.Time) *Record {
	n := len(t.parts)
	rec := &Record{
		Type: RecSnapshot, Txn: t.id, TxnID: t.wire, TimeUnixMs: now.UnixMilli(),
		Participants: make([]string, n), PrepareTimeoutMs: t.prepareTimeout.Milliseconds(),
		PayloadSum: t.payloadSum, BeganUnixMs: t.began.UnixMilli(), Owner: t.owner, Priority: t.priority,
	}
	var hazards bool
	for i := range t.parts {
		rec.Participants[i] = t.parts[i].url
		hazards = hazards || t.parts[i].hazard != ""
	}
	// Only a decision the log accepted may be carried forward; one still waiting to be
	// appended is not on disk and must not reach it by this back door.
	if t.decisionLSN != 0 || t.phase >= phPhase2 {
		rec.Decision, rec.Reason, rec.Cause = t.decision, t.reason, t.cause
		if !t.decided.IsZero() {
			rec.DecidedUnixMs = t.decided.UnixMilli()
		}
		rec.Acked = make([]bool, n)
		rec.Votes = make([]Vote, n)
		for i := range t.parts {
			rec.Acked[i] = t.parts[i].acked
			rec.Votes[i] = t.parts[i].vote
		}
	}
	if hazards {
		rec.Hazards = make([]string, n)
		for i := range t.parts {
			rec.Hazards[i] = t.parts[i].hazard
		}
	}
	if t.phase == phDone {
		rec.EndedUnixMs = t.ended.UnixMilli()
	}
	return rec
}

// priorityTieBits is how many low bits of a priority the transaction id's hash fills:
// two transactions begun within the same 1024 ns are ordered by their hashes.
const priorityTieBits = 10

// Priority is the priority of a transaction begun at began with the client id id:
// smaller is older. It is the begin time in Unix nanoseconds whose low priorityTieBits
// bits are replaced by a hash of the id, so that transactions begun at the same instant
// (the simulator's clock, a coarse clock) are still ordered, the same way every time.
// It is at least 1 (0 means "none" on the wire).
func Priority(began time.Time, id string) int64 {
	h := uint64(14695981039346656037) // FNV-1a
	for i := 0; i < len(id); i++ {
		h ^= uint64(id[i])
		h *= 1099511628211
	}
	const mask = 1<<priorityTieBits - 1
	p := began.UnixNano()&^mask | int64(h&mask)
	return max(p, 1)
}
