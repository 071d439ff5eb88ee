package httpnet

import (
	"testing"
	"time"

	"github.com/dtc-project/dtc/waitfor"
)

// The cluster's detector does not see the decisions of other nodes' transactions: their
// edges go RemoteWaitTTL after their last report, a local one's stay (its decision
// removes them), and what the graph no longer holds is forgotten.
func TestSweepDropsRemoteEdgesAfterTheirTTL(t *testing.T) {
	g := waitfor.New(0)
	t0 := time.Unix(1000, 0)
	add := func(w, h string) {
		if _, err := g.Add(waitfor.Txn{ID: w, Priority: 1}, []waitfor.Txn{{ID: h, Priority: 2}}); err != nil {
			t.Fatal(err)
		}
	}
	add("local1", "remote1") // remote1 reported long ago: goes
	add("local2", "remote2") // remote2 re-told recently: stays
	add("remote3", "local3") // remote3 long ago, but local3 also waits for local1
	add("local3", "local1")
	seen := map[string]seenTxn{
		"local1": {at: t0}, "remote1": {at: t0},
		"local2": {at: t0}, "remote2": {at: t0.Add(RemoteWaitTTL)},
		"remote3": {at: t0}, "local3": {at: t0},
		"gone": {at: t0.Add(RemoteWaitTTL)}, // the graph holds it no more (a victim, say)
	}
	local := func(id string) bool { return id[:5] == "local" }
	sweepSeen(g, seen, t0.Add(RemoteWaitTTL+time.Second), local)

	for _, e := range []struct {
		w, h string
		want bool
	}{
		{"local1", "remote1", false},
		{"local2", "remote2", true},
		{"remote3", "local3", false},
		{"local3", "local1", true},
	} {
		if got := g.Has(e.w, e.h); got != e.want {
			t.Errorf("edge %s -> %s held: %v, want %v", e.w, e.h, got, e.want)
		}
	}
	for _, id := range []string{"remote1", "remote3", "gone"} {
		if _, ok := seen[id]; ok {
			t.Errorf("%s still in seen", id)
		}
	}
	for _, id := range []string{"local1", "local2", "remote2", "local3"} {
		if _, ok := seen[id]; !ok {
			t.Errorf("%s forgotten", id)
		}
	}
	if g.Edges() != 2 {
		t.Errorf("%d edges, want 2", g.Edges())
	}
}
