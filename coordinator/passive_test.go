package coordinator

import (
	"strings"
	"testing"
	"time"
)

// Participants that never ask the coordinator about transactions in doubt (issue 11).
// Presumed abort with a lazy begin is safe only for participants that ask: a begin lost
// in a crash leaves the restarted engine with no record of the transaction, and a
// participant that never asks would hold its prepared change for ever.

const (
	pP = "http://passive.test/prepare" // never asks
	pQ = "http://quiet.test/prepare"   // never asks, and has no status endpoint
)

func passiveWorld(t *testing.T) *world {
	w := newWorld(t, 1)
	w.part(pP).passive = true
	q := w.part(pQ)
	q.passive, q.noStatus = true, true
	return w
}

// A transaction with a participant not known to ask syncs its begin before any prepare
// leaves.
func TestBeginIsSyncedBeforePreparesToAPassiveParticipant(t *testing.T) {
	w := passiveWorld(t)
	id := w.mustSubmit("t1", pA, pP)
	if len(w.net) != 0 {
		t.Fatalf("prepares left before the begin was durable: %+v", w.net)
	}
	wantState(t, w, id, StatePreparing)
	wantTypes(t, w, "begin")
	w.sync()
	if len(w.net) != 2 || w.net[0].Kind != MsgPrepare || w.net[1].Kind != MsgPrepare {
		t.Fatalf("after the begin is durable, want two prepares, got %+v", w.net)
	}
	w.settle()
	wantState(t, w, id, StateCommitted)
	w.checkAtomic(id)
	if !w.notes[0].DurableBegin {
		t.Fatalf("NoteBegun should say the begin is durable: %+v", w.notes[0])
	}
}

// Participants that all ask keep the lazy begin: the prepares leave at once, with no sync.
func TestBeginStaysLazyWhenEveryParticipantAsks(t *testing.T) {
	w := passiveWorld(t)
	w.mustSubmit("t1", pA, pB)
	if len(w.net) != 2 || w.log.syncs != 0 {
		t.Fatalf("want two prepares before any sync, got net=%+v syncs=%d", w.net, w.log.syncs)
	}
}

// The engine learns from each answer whether its participant asks, and unlearns it.
func TestEngineLearnsWhoAsksFromTheAnswers(t *testing.T) {
	w := passiveWorld(t)
	const pX = "http://x.test/prepare"
	w.mustSubmit("t1", pX)
	if len(w.net) != 0 {
		t.Fatal("an unknown participant's first transaction must sync its begin")
	}
	w.settle()
	w.mustSubmit("t2", pX) // pX answered t1 with Asks
	if len(w.net) != 1 {
		t.Fatalf("a participant that said it asks keeps the lazy begin, got net=%+v", w.net)
	}
	w.part(pX).passive = true // restarted without its resolver
	w.settle()
	w.mustSubmit("t3", pX)
	if len(w.net) != 0 {
		t.Fatal("a participant that stopped saying it asks must get synced begins again")
	}
	w.settle()
}

// The story: dtc dies after the prepares left and before anything was decided.
// The restarted engine finds the synced begin and asks every participant: it commits if
// all report prepared, and otherwise (one not prepared, or one that cannot tell) rolls
// back everyone. Either way the passive participant does not stay prepared.
func TestCrashDuringPrepareLeavesNoPassiveParticipantPrepared(t *testing.T) {
	for _, c := range []struct {
		name     string
		passive  string
		prepared []int // which prepares arrive before the crash
		want     string
	}{
		{"all prepared, status endpoint", pP, []int{0, 1}, StateCommitted},
		{"one prepared, status endpoint", pP, []int{1}, StateAborted},
		{"all prepared, no status endpoint", pQ, []int{0, 1}, StateAborted},
		{"passive prepared, no status endpoint", pQ, []int{1}, StateAborted},
	} {
		t.Run(c.name, func(t *testing.T) {
			w := passiveWorld(t)
			id := w.mustSubmit("t1", pA, c.passive)
			w.sync()
			for _, i := range c.prepared {
				w.part(w.net[i].URL).handle(w.net[i]) // prepared, answer lost in the crash
			}
			w.crash(false)
			if w.e.Ready() {
				t.Fatal("the engine must be recovering the transaction it found")
			}
			w.settle()
			v := wantState(t, w, id, c.want)
			if len(c.prepared) == 2 && c.passive == pQ && !strings.Contains(v.Reason, "cannot tell") {
				t.Fatalf("reason should say the participant cannot tell: %q", v.Reason)
			}
			for _, u := range []string{pA, c.passive} {
				if ids := w.part(u).preparedIDs(); len(ids) != 0 {
					t.Fatalf("%s still holds %v prepared", u, ids)
				}
			}
			w.checkAtomic(id)
		})
	}
}

// The deadline runs from Submit: a begin that takes too long to become durable aborts
// the transaction, and nobody was asked to prepare.
func TestSlowBeginSyncCountsAgainstTheDeadline(t *testing.T) {
	w := passiveWorld(t)
	id := w.mustSubmit("t1", pP)
	w.advance(w.cfg.PrepareTimeout)
	w.sync() // begin and the abort decision
	if len(w.net) != 1 || w.net[0].Kind != MsgRollback {
		t.Fatalf("want only the rollback, got %+v", w.net)
	}
	w.settle()
	wantState(t, w, id, StateAborted)
	w.checkAtomic(id)
}

// A prepare sent after a synced begin gets only the time left before the deadline.
func TestPrepareAfterSyncedBeginGetsTheTimeLeft(t *testing.T) {
	w := passiveWorld(t)
	w.mustSubmit("t1", pP)
	w.advance(300 * time.Millisecond)
	w.sync()
	if len(w.net) != 1 || w.net[0].Timeout != w.cfg.PrepareTimeout-300*time.Millisecond {
		t.Fatalf("want one prepare with %v left, got %+v", w.cfg.PrepareTimeout-300*time.Millisecond, w.net)
	}
}

// The view says what each participant last said and when, for an operator.
func TestViewShowsWhatEachParticipantLastSaid(t *testing.T) {
	w := passiveWorld(t)
	id := w.mustSubmit("t1", pA, pB)
	w.deliver(0)
	w.advance(10 * time.Millisecond)
	w.fail(0)
	v, _ := w.e.Get(id)
	a, b := v.Participants[0], v.Participants[1]
	if a.LastSaid != "ACK" || a.LastSaidAt == nil || !a.LastSaidAt.Equal(w.now.Add(-10*time.Millisecond)) {
		t.Fatalf("participant a: %+v", a)
	}
	if b.LastSaid != "no answer: connection refused" || b.LastSaidAt == nil || !b.LastSaidAt.Equal(w.now) {
		t.Fatalf("participant b: %+v", b)
	}
}

// The table of participants that ask is bounded; the longest-known is forgotten first.
func TestAskersTableIsBounded(t *testing.T) {
	a := newAskers(2)
	a.learn("x", true)
	a.learn("y", true)
	a.learn("z", true)
	if a.asks("x") || !a.asks("y") || !a.asks("z") {
		t.Fatalf("want x forgotten: %v", a.stamp)
	}
	a.learn("y", false)
	a.learn("x", true)
	if !a.asks("x") || a.asks("y") || !a.asks("z") || !a.all([]string{"x", "z"}) || a.all([]string{"x", "y"}) {
		t.Fatalf("after y stopped asking and x came back: %v", a.stamp)
	}
	for i := range 1000 {
		a.learn(string(rune('a'+i%26))+"!", i%3 != 0)
	}
	if len(a.stamp) > 2 || len(a.order) > 4 {
		t.Fatalf("table grew: %d entries, queue %d", len(a.stamp), len(a.order))
	}
}
