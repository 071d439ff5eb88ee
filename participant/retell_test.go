package participant

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/dtc-project/dtc/locks"
)

// A wait is told again at once when a transaction it was not told of comes in its way:
// under wound-wait an older prepare queues ahead of a younger one, and when the holder
// goes the older one holds the key: the younger now waits for it, and its coordinator
// must hear that edge now (it may close a cycle), not at the next periodic report.
func TestLocksWaitToldAgainWhenTheKeyPassesToANewHolder(t *testing.T) {
	p, st, obs := newLocked(t, locks.PolicyWoundWait)
	a := &answer{}
	preparePrio(p, a, "H", `{"w":["x"]}`, 30)
	st.persist(t, 1)
	preparePrio(p, a, "W1", `{"w":["x"]}`, 20)
	preparePrio(p, a, "W0", `{"w":["x"]}`, 10) // older: queued ahead of W1
	wantAnswers(t, a, "prepare H: ACK")
	if w := obs.get(); len(w) != 2 || !slices.Equal(w[0].WaitsFor, []string{"H"}) || !slices.Equal(w[1].WaitsFor, []string{"H"}) {
		t.Fatalf("observer heard %+v", w)
	}
	rollback(p, a, "H") // wounded
	st.persist(t, 2)
	wantAnswers(t, a, "rollback H: 200 aborted", "prepare W0: ACK")
	w := obs.get()
	if len(w) != 3 || w[2].TxnID != "W1" || w[2].Key != "x" || !slices.Equal(w[2].WaitsFor, []string{"W0"}) || len(w[2].Wound) != 0 {
		t.Fatalf("after H's rollback the observer heard %+v, want W1 told again that it waits for W0", w)
	}
	if s := p.Stats(); s.LockWaitsRetold != 1 {
		t.Fatalf("stats %+v", s)
	}
	// A wait that only loses what it waited for is not told again.
	commit(p, a, "W0")
	st.persist(t, 2)
	wantAnswers(t, a, "commit W0: 200 committed", "prepare W1: ACK")
	if w := obs.get(); len(w) != 3 {
		t.Fatalf("observer heard %+v", w[3:])
	}
}

// Over HTTP: the Resolver sends the wait told again to the coordinator, a fake one
// that records the /v1/waits reports.
func TestLocksWaitToldAgainReachesTheCoordinator(t *testing.T) {
	reports := make(chan WaitReport, 64)
	coord := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v1/waits" {
			var rep WaitReport
			if err := json.NewDecoder(r.Body).Decode(&rep); err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			select {
			case reports <- rep:
			default:
			}
			w.WriteHeader(http.StatusAccepted)
			return
		}
		w.WriteHeader(http.StatusOK) // wounds
	}))
	defer coord.Close()
	cfg := testConfig()
	cfg.Locks = locks.DefaultConfig(locks.PolicyWoundWait)
	m := newMemLog(cfg)
	p, err := OpenSync(cfg, newKeyedService(), m.clock, m.opts)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	r, err := NewResolver(p, ResolverOptions{Coordinator: coord.URL, ParticipantURL: "http://me/prepare", Interval: time.Hour, Logger: discardLogger()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { r.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	for i := 0; ; i++ { // Run sets the observer on its goroutine
		p.mu.Lock()
		set := p.lockObs != nil
		p.mu.Unlock()
		if set {
			break
		}
		if i == 500 {
			t.Fatal("Run set no lock observer")
		}
		time.Sleep(10 * time.Millisecond)
	}
	a := &answer{}
	for _, tx := range []struct {
		id   string
		prio int64
	}{{"H", 30}, {"W1", 20}, {"W0", 10}} { // no coordinator named: the Resolver's
		p.PreparePriority(tx.id, json.RawMessage(`{"w":["x"]}`), "", tx.prio, func(v Vote) { a.add("prepare " + tx.id + ": " + voteString(v)) })
	}
	wantAnswers(t, a, "prepare H: ACK")
	t0 := time.Now()
	rollback(p, a, "H")
	wantAnswers(t, a, "rollback H: 200 aborted", "prepare W0: ACK")
	deadline := time.After(10 * time.Second)
	for {
		select {
		case rep := <-reports:
			if rep.Waiter == "W1" && slices.Equal(rep.Holders, []string{"W0"}) {
				if rep.Key != "x" || rep.Participant != "http://me/prepare" {
					t.Fatalf("report %+v", rep)
				}
				if s := p.Stats(); s.LockWaitsRetold != 1 {
					t.Fatalf("stats %+v", s)
				}
				t.Logf("W1 -> W0 reported %v after H's rollback (periodic reports every 1s)", time.Since(t0))
				p.CancelWait("W1", "test")
				return
			}
		case <-deadline:
			t.Fatal("the coordinator never heard that W1 waits for W0")
		}
	}
}

// Reports that find ConcurrencyMax in flight wait for a slot instead of being dropped
// until the next interval: with one report allowed in flight and the coordinator holding
// the first, the waits that begin meanwhile all reach it once it answers.
func TestLocksWaitReportsQueueBehindTheOneInFlight(t *testing.T) {
	release := make(chan struct{})
	var once sync.Once
	heard := make(chan string, 64)
	holding := make(chan struct{})
	coord := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var rep WaitReport
		_ = json.NewDecoder(r.Body).Decode(&rep)
		held := false
		once.Do(func() { held = true })
		if held {
			close(holding)
			select {
			case <-release:
			case <-time.After(10 * time.Second):
			}
		}
		select {
		case heard <- rep.Waiter:
		default:
		}
		w.WriteHeader(http.StatusAccepted)
	}))
	defer coord.Close()
	defer close(release)
	cfg := testConfig()
	cfg.Locks = locks.DefaultConfig(locks.PolicyWait)
	m := newMemLog(cfg)
	p, err := OpenSync(cfg, newKeyedService(), m.clock, m.opts)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	r, err := NewResolver(p, ResolverOptions{Coordinator: coord.URL, Interval: time.Hour, ConcurrencyMax: 1, Logger: discardLogger()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { r.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	for i := 0; ; i++ { // Run sets the observer on its goroutine
		p.mu.Lock()
		set := p.lockObs != nil
		p.mu.Unlock()
		if set {
			break
		}
		if i == 500 {
			t.Fatal("Run set no lock observer")
		}
		time.Sleep(10 * time.Millisecond)
	}
	a := &answer{}
	prep := func(id string) {
		p.PreparePriority(id, json.RawMessage(`{"w":["x"]}`), "", 0, func(v Vote) { a.add("prepare " + id + ": " + voteString(v)) })
	}
	prep("H")
	prep("W0")
	select { // W0's report is in flight, held by the coordinator
	case <-holding:
	case <-time.After(10 * time.Second):
		t.Fatal("W0's wait was never reported")
	}
	for _, id := range []string{"W1", "W2", "W3"} {
		prep(id)
	}
	t0 := time.Now()
	release <- struct{}{}
	want := map[string]bool{"W0": true, "W1": true, "W2": true, "W3": true}
	deadline := time.After(10 * time.Second)
	for len(want) > 0 {
		select {
		case id := <-heard:
			delete(want, id)
		case <-deadline:
			t.Fatalf("the coordinator never heard of %v", want)
		}
	}
	if s := r.Stats(); s.ReportsQueued != 3 {
		t.Fatalf("stats %+v: want W1, W2 and W3 queued behind W0", s)
	}
	t.Logf("all four waits reported %v after the held report was answered (periodic reports every 1s)", time.Since(t0))
	for _, id := range []string{"W0", "W1", "W2", "W3"} {
		p.CancelWait(id, "test")
	}
}
