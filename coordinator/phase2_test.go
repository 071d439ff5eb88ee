package coordinator

import (
	"errors"
	"strings"
	"testing"
)

// Issue 12: a transaction whose participant never answers phase 2 keeps being retried
// (atomicity needs it), but once decided it no longer holds an in-flight slot: new
// transactions still get in.
func TestStuckPhase2DoesNotHoldAnInflightSlot(t *testing.T) {
	w := newWorld(t, 1)
	w.cfg.InflightMax = 2
	w.start()
	const gone = "http://gone.test/prepare"
	for _, id := range []string{"s1", "s2", "s3"} {
		w.mustSubmit(id, pA, gone)
		w.prepareWithout(gone)
		wantState(t, w, id, StateAborted)
	}
	if st := w.e.Stats(); st.Phase2 != 3 || st.Inflight != 3 {
		t.Fatalf("stats %+v: want 3 transactions in phase 2", st)
	}
	w.mustSubmit("fresh", pA, pB) // InflightMax is 2, yet three are stuck in phase 2
	w.mustSubmit("fresh2", pA, pB)
	if _, err := w.submit("third", pA, pB); !errors.Is(err, ErrBusy) || !strings.Contains(err.Error(), "InflightMax") {
		t.Fatalf("third undecided transaction: %v, want ErrBusy naming InflightMax", err)
	}
}

// Phase2Max bounds what stuck phase 2 may hold.
func TestPhase2MaxBoundsStuckTransactions(t *testing.T) {
	w := newWorld(t, 1)
	w.cfg.Phase2Max = 1
	w.start()
	w.mustSubmit("s1", "http://gone.test/prepare")
	w.prepareWithout("http://gone.test/prepare")
	if _, err := w.submit("s2", pA); !errors.Is(err, ErrBusy) || !strings.Contains(err.Error(), "Phase2Max") {
		t.Fatalf("submit with Phase2Max reached: %v, want ErrBusy naming Phase2Max", err)
	}
}

// An operator forgets a transaction whose participant is gone for good: it ends with a
// hazard on that participant, the end is synced, survives a restart, and nothing more is
// sent to the participant.
func TestForgetEndsATransactionWithAHazard(t *testing.T) {
	w := newWorld(t, 1)
	const gone = "http://gone.test/prepare"
	id := w.mustSubmit("f1", pA, gone)
	if _, err := w.e.Forget(id, "decommissioned"); !errors.Is(err, ErrUndecided) {
		t.Fatalf("forget while preparing: %v, want ErrUndecided", err)
	}
	w.prepareWithout(gone) // also delivers pA's rollback; the one to gone fails, and is retried later
	v, err := w.e.Forget(id, "decommissioned")
	if err != nil {
		t.Fatal(err)
	}
	if !v.PhaseTwoDone || !v.Hazard || v.Participants[1].Hazard != "forgotten by an operator: decommissioned" || v.Participants[0].Hazard != "" {
		t.Fatalf("after forget: %+v", v)
	}
	if w.e.Stats().Inflight != 0 || w.e.Stats().Phase2 != 0 {
		t.Fatalf("stats after forget: %+v", w.e.Stats())
	}
	w.advance(w.cfg.RetryBackoffMax * 2)
	if len(w.net) != 0 {
		t.Fatalf("sent after forget: %+v", w.net)
	}
	if v2, err := w.e.Forget(id, "again"); err != nil || v2.Participants[1].Hazard != v.Participants[1].Hazard {
		t.Fatalf("forgetting again: %+v %v", v2, err)
	}
	w.sync()
	w.crash(false)
	v, err = w.e.Get(id)
	if err != nil || !v.PhaseTwoDone || v.Participants[1].Hazard == "" || w.e.Stats().Inflight != 0 {
		t.Fatalf("after restart: %+v %v", v, err)
	}
	if _, err := w.e.Forget("nope", ""); !errors.Is(err, ErrNotFound) {
		t.Fatalf("forget unknown: %v", err)
	}
}

// prepareWithout runs the prepare phase of the transaction just submitted (its begin made
// durable first, as a participant not known to ask needs): every participant answers but
// the one at gone, whose requests fail. The decision is then made durable, and phase 2
// sent: its first round is delivered the same way.
func (w *world) prepareWithout(gone string) {
	for range 2 {
		w.sync()
		for len(w.net) > 0 {
			if w.net[0].URL == gone {
				w.fail(0)
			} else {
				w.deliver(0)
			}
		}
	}
	w.sync()
}
