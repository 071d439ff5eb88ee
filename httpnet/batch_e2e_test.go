package httpnet_test

// The end-to-end test of phase-2 batching: a Runtime, its API and two banks. The
// Transport's own batching tests are in package transport (batch_test.go).

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/dtc-project/dtc/client"
	"github.com/dtc-project/dtc/httpnet"
	"github.com/dtc-project/dtc/participant"
)

// End to end: a Runtime and two banks behind participant.NewHandler, which offers
// batching. Every commit and rollback travels in batches; the commits of four
// transactions that come while bob's bank holds one batch reach it together in the
// next; a participant that does not offer batching still gets its commit alone. The
// counters agree with what happened, in Runtime.TransportStats and on /metrics.
func TestBatchEndToEnd(t *testing.T) {
	a, b := twoBanks(t)
	plain := newFakeParticipant(t) // no Dtc-Batch-Max
	c := startCoord(t, "", func(o *httpnet.Options) {
		o.Engine.RequestTimeout = time.Minute // a held batch is not retried
		// The commits that come while bob's batch is held wait for it, however long
		// it is held: no second sender beside a slow batch.
		o.Transport.BatchSlowAfter = -1
	})
	c.waitReady()
	ctx := context.Background()

	b.gate.set("commit", hold)
	var ids []string
	v, err := c.cli.Submit(ctx, client.Request{ID: "e2e-0", Participants: transfer(a, b, 1)})
	if err != nil || v.State != client.StateCommitted {
		t.Fatalf("%+v %v", v, err)
	}
	ids = append(ids, v.TxnID)
	eventually(t, "bob's first batch held", func() bool { return b.gate.heldCount("commit") == 1 })
	var (
		wg sync.WaitGroup
		mu sync.Mutex
	)
	for i := 1; i <= 4; i++ {
		wg.Go(func() {
			v, err := c.cli.Submit(ctx, client.Request{ID: fmt.Sprintf("e2e-%d", i), Participants: transfer(a, b, 1)})
			if err != nil || v.State != client.StateCommitted {
				t.Errorf("%+v %v", v, err)
				return
			}
			mu.Lock()
			ids = append(ids, v.TxnID)
			mu.Unlock()
		})
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	for _, id := range ids {
		a.waitStatus(id, participant.StateCommitted) // alice's bank is not held
	}
	eventually(t, "bob's four commits queued behind the held batch", func() bool {
		return c.rt.TransportStats().BatchQueued == 4
	})
	b.gate.release("commit")
	for i, id := range ids {
		b.waitStatus(id, participant.StateCommitted)
		c.waitView(fmt.Sprintf("e2e-%d", i), "phase 2 acknowledged", func(v client.View) bool { return v.PhaseTwoDone })
	}
	if n := b.gate.callCount("commit"); n != 2 {
		t.Errorf("bob's bank got %d batches, want 2: the held one and the four commits together", n)
	}
	if a.balance("alice") != 95 || b.balance("bob") != 105 {
		t.Errorf("balances %d/%d, want 95/105", a.balance("alice"), b.balance("bob"))
	}
	s := c.rt.TransportStats()
	if s.Prepare != 10 || s.Commit != 0 || s.Rollback != 0 || s.BatchOps != 10 || s.Batch < 2+1 || s.Batch > 2+5 ||
		s.BatchParticipants != 2 || s.BatchQueued != 0 {
		t.Errorf("stats %+v: want 10 prepares, and the 10 commits in 3 to 7 batches", s)
	}

	// A NACK: both banks' rollbacks go in batches.
	v, err = c.cli.Submit(ctx, client.Request{ID: "e2e-nack", Participants: transfer(a, b, 1000)})
	if err != nil || v.State != client.StateAborted {
		t.Fatalf("%+v %v", v, err)
	}
	c.waitView("e2e-nack", "phase 2 acknowledged", func(v client.View) bool { return v.PhaseTwoDone })
	b.waitStatus(v.TxnID, participant.StateAborted)
	before := s
	s = c.rt.TransportStats()
	if s.Rollback != 0 || s.Commit != 0 || s.BatchOps <= before.BatchOps || len(b.holds()) != 0 {
		t.Errorf("stats %+v after the NACK (before %+v), bob's holds %v: want the rollbacks in batches", s, before, b.holds())
	}

	// A participant without the header gets its commit alone, beside a batched one.
	v, err = c.cli.Submit(ctx, client.Request{ID: "e2e-plain", Participants: []client.Participant{
		{URL: plain.url()}, {URL: a.prepareURL(), Payload: op("alice", 1)},
	}})
	if err != nil || v.State != client.StateCommitted {
		t.Fatalf("%+v %v", v, err)
	}
	c.waitView("e2e-plain", "phase 2 acknowledged", func(v client.View) bool { return v.PhaseTwoDone })
	before = s
	s = c.rt.TransportStats()
	if s.Commit != 1 || s.BatchOps != before.BatchOps+1 || s.BatchParticipants != 2 {
		t.Errorf("stats %+v (before %+v): want one commit alone and one in a batch", s, before)
	}

	// /metrics says the same.
	mfs, err := c.rt.Metrics().Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			name := mf.GetName()
			for _, l := range m.GetLabel() {
				name += "{" + l.GetName() + "=" + l.GetValue() + "}"
			}
			got[name] = m.GetCounter().GetValue() + m.GetGauge().GetValue() // one of them is set
		}
	}
	want := map[string]float64{
		"dtc_participant_batching":                      2,
		"dtc_participant_batch_queued":                  0,
		"dtc_participant_requests_total{kind=prepare}":  float64(s.Prepare),
		"dtc_participant_requests_total{kind=commit}":   1,
		"dtc_participant_requests_total{kind=rollback}": 0,
		"dtc_participant_requests_total{kind=status}":   float64(s.Status),
		"dtc_participant_requests_total{kind=batch}":    float64(s.Batch),
		"dtc_participant_batch_ops_total":               float64(s.BatchOps),
	}
	for name, w := range want {
		if g, ok := got[name]; !ok || g != w {
			t.Errorf("%s = %v (present %v), want %v", name, g, ok, w)
		}
	}
}
