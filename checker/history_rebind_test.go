package checker

import "testing"

// A client op rebound to the incarnation it ended up in is judged with that incarnation's
// events, and the client id it was submitted under is left with nothing to judge.
func TestRebindMovesTheOpToItsIncarnation(t *testing.T) {
	r := NewRecorder()
	op := r.Submit(0, "t1", []string{"p1", "p2"}, 1)
	r.Voted("t1@a", "p1", true, 2)
	r.Voted("t1@a", "p2", true, 2)
	r.Applied("t1@a", "p1", Committed, 4)
	r.Applied("t1@a", "p2", Committed, 4)
	r.Return(op, Committed, 3)
	r.Rebind(op, "t1@a")
	for _, p := range []string{"p1", "p2"} {
		r.FinalParticipant("t1@a", p, "committed")
	}
	r.FinalCoordinator("t1@a", "committed")
	h := r.History()
	if h.Ops[0].Txn != "t1@a" {
		t.Fatalf("op bound to %q", h.Ops[0].Txn)
	}
	if rep := Check(h, Options{CheckLiveness: true}); !rep.OK() {
		t.Fatalf("clean history reported: %s", rep)
	}
	// Without the rebind the client's committed outcome has no participant behind it.
	r2 := NewRecorder()
	op = r2.Submit(0, "t1", []string{"p1"}, 1)
	r2.Applied("t1@a", "p1", Aborted, 2)
	r2.Return(op, Committed, 3)
	r2.Rebind(op, "t1@a")
	if rep := Check(r2.History(), Options{}); rep.OK() {
		t.Fatal("told committed, aborted at p1: want a violation")
	}
}
