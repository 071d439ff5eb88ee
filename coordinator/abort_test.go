package coordinator

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// Abort of a transaction still preparing decides abort at once; the caller hears the
// outcome only once it is durable, late votes change nothing, and the cause is kept in
// the log, the view and a restart.
func TestAbortWhilePreparing(t *testing.T) {
	w := newWorld(t, 1)
	id := w.mustSubmit("t1", pA, pB)
	w.deliver(0) // A votes ACK; B's prepare is still in flight
	var heard []View
	v, err := w.e.Abort(id, CauseDeadlock, "cycle t1 -> t2 -> t1", func(v View) { heard = append(heard, v) })
	if err != nil || v.State != StateAborting {
		t.Fatalf("abort: %v, %+v", err, v)
	}
	if len(heard) != 0 {
		t.Fatal("told before the decision was durable")
	}
	w.sync()
	if len(heard) != 1 || heard[0].State != StateAborted || heard[0].AbortCause != CauseDeadlock ||
		!strings.Contains(heard[0].Reason, "cycle t1 -> t2 -> t1") {
		t.Fatalf("heard %+v", heard)
	}
	if c := decidedCause(w, id); c != CauseDeadlock {
		t.Fatalf("note cause %q", c)
	}
	w.settle() // B's late ACK is ignored; both roll back
	w.checkAtomic(id)
	// Idempotent: again, with another cause, changes nothing.
	v, err = w.e.Abort(id, CauseClient, "again", nil)
	if err != nil || v.AbortCause != CauseDeadlock || strings.Contains(v.Reason, "again") {
		t.Fatalf("second abort: %v %+v", err, v)
	}
	w.crash(false)
	v = wantState(t, w, id, StateAborted)
	if v.AbortCause != CauseDeadlock {
		t.Fatalf("abort cause lost in a restart: %+v", v)
	}
}

// A decided transaction is never changed: Abort after commit answers committed.
func TestAbortAfterCommitChangesNothing(t *testing.T) {
	w := newWorld(t, 1)
	id := w.mustSubmit("t1", pA, pB)
	w.deliverAll() // commit decided, not yet durable
	var heard []View
	v, err := w.e.Abort(id, CauseWound, "older wants it", func(v View) { heard = append(heard, v) })
	if err != nil || v.State != StateCommitting {
		t.Fatalf("abort while committing: %v %+v", err, v)
	}
	w.sync()
	if len(heard) != 1 || heard[0].State != StateCommitted || heard[0].AbortCause != CauseNone {
		t.Fatalf("heard %+v", heard)
	}
	w.settle()
	v, err = w.e.Abort(id, CauseClient, "", func(v View) { heard = append(heard, v) })
	if err != nil || v.State != StateCommitted || len(heard) != 2 {
		t.Fatalf("abort after commit: %v %+v %d", err, v, len(heard))
	}
	w.checkAtomic(id)
	if _, err := w.e.Abort("nope", CauseClient, "", nil); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown id: %v", err)
	}
	if _, err := w.e.Abort("t1@0000000000000000", CauseClient, "", nil); !errors.Is(err, ErrNotFound) {
		t.Fatalf("another incarnation: %v", err)
	}
}

// Abort by the participants' id (with its nonce) works as by the client's.
func TestAbortByWireID(t *testing.T) {
	w := newWorld(t, 1)
	id := w.mustSubmit("t1", pA, pB)
	if _, err := w.e.Abort(w.wire(id), CauseWound, "wounded", nil); err != nil {
		t.Fatal(err)
	}
	w.settle()
	v := wantState(t, w, id, StateAborted)
	if v.AbortCause != CauseWound {
		t.Fatalf("%+v", v)
	}
	w.checkAtomic(id)
}

// A NACK that carries cause conflict aborts with cause conflict; another NACK with nack.
func TestConflictNackCause(t *testing.T) {
	w := newWorld(t, 1)
	id := w.mustSubmit("t1", pA, pB)
	m := w.net[0]
	w.net = w.net[1:]
	w.e.Step(Reply{Txn: m.Txn, Participant: m.Participant, Seq: m.Seq, Kind: m.Kind,
		Vote: VoteNACK, Reason: "conflict on key x", Cause: "conflict"})
	w.settle()
	v := wantState(t, w, id, StateAborted)
	if v.AbortCause != CauseConflict || decidedCause(w, id) != CauseConflict {
		t.Fatalf("%+v", v)
	}
	w.checkAtomic(id)
}

// The priority is assigned once at begin, sent in every prepare, kept by the log (begin
// and checkpoint) and the same after a restart; an older transaction has a smaller one.
func TestPriorityAssignedOnceAndReplayed(t *testing.T) {
	w := newWorld(t, 1)
	older := w.mustSubmit("older", pA, pB)
	for _, m := range w.net {
		if m.Kind != MsgPrepare || m.Priority == 0 {
			t.Fatalf("prepare without priority: %+v", m)
		}
	}
	po := w.net[0].Priority
	w.now = w.now.Add(time.Millisecond)
	younger := w.mustSubmit("younger", pA, pB)
	vo, _ := w.e.Get(older)
	vy, _ := w.e.Get(younger)
	if vo.Priority != po || vy.Priority <= vo.Priority {
		t.Fatalf("priorities: older %d (sent %d), younger %d", vo.Priority, po, vy.Priority)
	}
	w.sync()
	w.crash(false)
	if v, _ := w.e.Get(older); v.Priority != po {
		t.Fatalf("after restart: %d, want %d", v.Priority, po)
	}
	if err := w.e.Checkpoint(); err != nil {
		t.Fatal(err)
	}
	w.sync()
	for i, r := range w.log.recs {
		if r.Type == RecCheckpoint && r.Bracket == "begin" {
			w.log.recs = w.log.recs[i:]
			break
		}
	}
	w.log.durable = len(w.log.recs)
	w.crash(false)
	if v, _ := w.e.Get(older); v.Priority != po {
		t.Fatalf("after a checkpoint and a restart: %d, want %d", v.Priority, po)
	}
	w.settle()
	w.checkAtomic(older, younger)
}

// Transactions begun at the same instant still get distinct, ordered priorities,
// the same every time; a log without priorities gets them from the begin time.
func TestPriorityTieBreak(t *testing.T) {
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	a, b := Priority(at, "a"), Priority(at, "b")
	if a == b || a != Priority(at, "a") {
		t.Fatalf("Priority(a)=%d Priority(b)=%d", a, b)
	}
	if later := Priority(at.Add(time.Microsecond*2), "a"); later <= max(a, b) {
		t.Fatalf("a later begin must be younger: %d <= %d", later, max(a, b))
	}
	if p := Priority(time.Unix(0, 0), ""); p < 1 {
		t.Fatalf("priority %d: must be at least 1", p)
	}
	w := newWorld(t, 1)
	rec := &Record{Type: RecBegin, Txn: "old", TxnID: "old@1", TimeUnixMs: at.UnixMilli(), Participants: []string{pA}}
	w.log.recs = append(w.log.recs, rec)
	w.log.durable = len(w.log.recs)
	w.crash(false)
	if v, _ := w.e.Get("old"); v.Priority != Priority(at, "old") {
		t.Fatalf("derived priority %d, want %d", v.Priority, Priority(at, "old"))
	}
}
