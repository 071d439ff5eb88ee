package httpnet_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/dtc-project/dtc/client"
	"github.com/dtc-project/dtc/coordinator"
	"github.com/dtc-project/dtc/httpnet"
)

// lockPart is a participant that holds keys, as issue 16's wait policy does: a prepare
// takes an exclusive lock on the key its payload names ({"key":…}) and keeps it until
// phase 2; a prepare that finds the key held waits for it, and reports "I wait for the
// holder" to the coordinator (POST /v1/waits, as CONTRACT16 says) at once and then every
// reportEvery while it waits. A payload with "after":true first waits (bounded) until
// another transaction holds the key, so that a test can build a deadlock in a known
// order. Everything is in memory: it is the test's participant, not a durable one.
type lockPart struct {
	t           *testing.T
	coord       string // the coordinator's base URL, for wait reports
	reportEvery time.Duration
	srv         *httptest.Server

	mu       sync.Mutex
	changed  chan struct{}     // closed and replaced whenever a lock or a state changes
	holder   map[string]string // key -> txn id holding it
	state    map[string]string // txn id -> prepared, committed, aborted
	rollback map[string]time.Time
	reports  []waitSent
}

// waitSent is one wait report and the coordinator's answer.
type waitSent struct {
	at        time.Time
	waiter    string
	deadlocks []struct {
		Cycle  []string
		Victim string
	}
}

func newLockPart(t *testing.T, coord string) *lockPart {
	p := &lockPart{t: t, coord: coord, reportEvery: 200 * time.Millisecond, changed: make(chan struct{}),
		holder: map[string]string{}, state: map[string]string{}, rollback: map[string]time.Time{}}
	p.srv = httptest.NewServer(http.HandlerFunc(p.serve))
	t.Cleanup(p.srv.Close)
	return p
}

func (p *lockPart) url() string { return p.srv.URL + "/prepare" }

// notify wakes every waiting prepare; p.mu is held.
func (p *lockPart) notify() {
	close(p.changed)
	p.changed = make(chan struct{})
}

func (p *lockPart) serve(w http.ResponseWriter, r *http.Request) {
	var body struct {
		TxnID    string `json:"txn_id"`
		Priority int64  `json:"priority"`
		Payload  struct {
			Key   string `json:"key"`
			After bool   `json:"after"`
		} `json:"payload"`
	}
	if r.Method == http.MethodPost {
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
	} else {
		body.TxnID = r.URL.Query().Get("txn_id")
	}
	id := body.TxnID
	switch path.Base(r.URL.Path) {
	case "prepare":
		if body.Priority == 0 {
			p.t.Errorf("prepare of %s without a priority", id)
		}
		fmt.Fprint(w, p.prepare(r.Context(), id, body.Payload.Key, body.Payload.After))
	case "commit", "rollback":
		p.mu.Lock()
		st := "committed"
		if path.Base(r.URL.Path) == "rollback" {
			st = "aborted"
			p.rollback[id] = time.Now()
		}
		p.state[id] = st
		for k, h := range p.holder {
			if h == id {
				delete(p.holder, k)
			}
		}
		p.notify()
		p.mu.Unlock()
		fmt.Fprintf(w, `{"state":%q}`, st)
	default:
		p.mu.Lock()
		st := p.state[id]
		p.mu.Unlock()
		if st == "" {
			st = "unknown"
		}
		fmt.Fprintf(w, `{"state":%q}`, st)
	}
}

func (p *lockPart) prepare(ctx context.Context, id, key string, after bool) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	if after {
		for p.holder[key] == "" && p.state[id] == "" {
			if !p.wait(ctx, time.Second) {
				break
			}
		}
	}
	var lastReport time.Time
	for {
		switch h := p.holder[key]; {
		case p.state[id] == "aborted":
			return `{"vote":"NACK","reason":"rolled back while waiting"}`
		case h == "" || h == id:
			p.holder[key] = id
			p.state[id] = "prepared"
			p.notify()
			return `{"vote":"ACK"}`
		case time.Since(lastReport) >= p.reportEvery:
			lastReport = time.Now()
			p.mu.Unlock()
			p.report(id, h, key)
			p.mu.Lock()
			continue
		}
		if !p.wait(ctx, p.reportEvery) {
			return `{"vote":"NACK","reason":"gave up waiting"}`
		}
	}
}

// wait waits (p.mu held, released meanwhile) for a change or d; false when ctx ended.
func (p *lockPart) wait(ctx context.Context, d time.Duration) bool {
	ch := p.changed
	p.mu.Unlock()
	defer p.mu.Lock()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ch:
	case <-t.C:
	case <-ctx.Done():
		return false
	}
	return true
}

func (p *lockPart) report(waiter, holder, key string) {
	b, _ := json.Marshal(httpnet.WaitReport{Participant: p.url(), Waiter: waiter, Holders: []string{holder}, Key: key})
	sent := waitSent{at: time.Now(), waiter: waiter}
	resp, err := http.Post(p.coord+"/v1/waits", "application/json", bytes.NewReader(b))
	if err != nil {
		p.t.Logf("wait report: %v", err)
		return
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusServiceUnavailable {
		// Retry later, as the protocol says: in a cluster, the detector's shard may be
		// moving between nodes (not_owner). The next report, reportEvery later, goes
		// again, as the participant library's would.
		body, _ := io.ReadAll(resp.Body)
		p.t.Logf("wait report answered 503 (%s); the next one retries", bytes.TrimSpace(body))
		return
	}
	if resp.StatusCode != http.StatusAccepted {
		p.t.Errorf("wait report answered %d", resp.StatusCode)
		return
	}
	var ans struct {
		Detection string
		Deadlocks []struct {
			Cycle  []string
			Victim string
		}
	}
	if err := json.NewDecoder(resp.Body).Decode(&ans); err != nil {
		p.t.Errorf("wait report answer: %v", err)
	}
	sent.deadlocks = ans.Deadlocks
	p.mu.Lock()
	p.reports = append(p.reports, sent)
	p.mu.Unlock()
}

// closingReport is when the report that closed a cycle with victim (a client id) was sent.
func closingReport(parts []*lockPart, victim string) (time.Time, bool) {
	for _, p := range parts {
		p.mu.Lock()
		for _, r := range p.reports {
			for _, d := range r.deadlocks {
				if d.Victim == victim {
					p.mu.Unlock()
					return r.at, true
				}
			}
		}
		p.mu.Unlock()
	}
	return time.Time{}, false
}

func (p *lockPart) rolledBackAt(wire string) (time.Time, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	at, ok := p.rollback[wire]
	return at, ok
}

// deadlockPair begins the two-service deadlock of issue 16 on keys x (at a) and y (at
// b): T1 takes x at a and then waits for y at b; T2 takes y at b and waits for x at a.
// T1 is begun first, so it is the older.
func deadlockPair(t *testing.T, c *coord, a, b *lockPart, round int, timeout time.Duration) (t1, t2 string) {
	t.Helper()
	x, y := fmt.Sprintf("x%d", round), fmt.Sprintf("y%d", round)
	pay := func(key string, after bool) json.RawMessage {
		return json.RawMessage(fmt.Sprintf(`{"key":%q,"after":%v}`, key, after))
	}
	ctx := context.Background()
	t1, t2 = fmt.Sprintf("t1-%d", round), fmt.Sprintf("t2-%d", round)
	if _, err := c.cli.SubmitAsync(ctx, client.Request{ID: t1, PrepareTimeout: timeout, Participants: []client.Participant{
		{URL: a.url(), Payload: pay(x, false)}, {URL: b.url(), Payload: pay(y, true)}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.cli.SubmitAsync(ctx, client.Request{ID: t2, PrepareTimeout: timeout, Participants: []client.Participant{
		{URL: b.url(), Payload: pay(y, false)}, {URL: a.url(), Payload: pay(x, true)}}}); err != nil {
		t.Fatal(err)
	}
	return t1, t2
}

// The two-service deadlock, 50 times over real HTTP: with detection on, each is broken
// by aborting the younger transaction (cause deadlock, the cycle in its reason) and the
// older commits. The time from the report that closed the cycle to the victim's
// rollback reaching a participant is logged (median and max), not asserted.
func TestDeadlockDetectedOverHTTP(t *testing.T) {
	c := startCoord(t, "", nil)
	c.waitReady()
	a, b := newLockPart(t, c.url), newLockPart(t, c.url)
	const rounds = 50
	var took []time.Duration
	for round := range rounds {
		t1, t2 := deadlockPair(t, c, a, b, round, 20*time.Second)
		v1 := c.waitView(t1, "decided", client.View.Final)
		v2 := c.waitView(t2, "decided", client.View.Final)
		if v1.State != client.StateCommitted || v2.State != client.StateAborted || v2.AbortCause != coordinator.CauseDeadlock {
			t.Fatalf("round %d: t1 %s (%s), t2 %s (%s: %s)", round, v1.State, v1.AbortCause, v2.State, v2.AbortCause, v2.Reason)
		}
		if want := fmt.Sprintf("cycle %s -> %s -> %s, victim %s (youngest)", t2, t1, t2, t2); !bytes.Contains([]byte(v2.Reason), []byte(want)) {
			// The closing edge may be either one: t1's wait at b, or t2's at a.
			if alt := fmt.Sprintf("cycle %s -> %s -> %s, victim %s (youngest)", t1, t2, t1, t2); !bytes.Contains([]byte(v2.Reason), []byte(alt)) {
				t.Fatalf("round %d: reason %q names no cycle of t1 and t2", round, v2.Reason)
			}
		}
		if v1.Priority >= v2.Priority {
			t.Fatalf("round %d: t1 (begun first) has priority %d, t2 %d", round, v1.Priority, v2.Priority)
		}
		closed, ok := closingReport([]*lockPart{a, b}, t2)
		if !ok {
			t.Fatalf("round %d: no wait report was answered with the deadlock", round)
		}
		var rolled time.Time
		eventually(t, "the victim's rollback reaches a participant", func() bool {
			ra, okA := a.rolledBackAt(v2.TxnID)
			rb, okB := b.rolledBackAt(v2.TxnID)
			switch {
			case okA && okB:
				rolled = ra // the first
				if rb.Before(ra) {
					rolled = rb
				}
			case okA:
				rolled = ra
			case okB:
				rolled = rb
			}
			return okA || okB
		})
		took = append(took, rolled.Sub(closed))
	}
	slices.Sort(took)
	t.Logf("deadlock resolution over %d deadlocks (closing wait report sent -> victim's rollback at a participant): median %v, max %v, min %v",
		rounds, took[len(took)/2], took[len(took)-1], took[0])
	st, metrics := get(t, c.url+"/metrics")
	if st != 200 {
		t.Fatal(st)
	}
	for _, want := range []string{fmt.Sprintf("dtc_deadlocks_total %d", rounds), fmt.Sprintf(`dtc_aborts_total{cause="deadlock"} %d`, rounds),
		fmt.Sprintf("dtc_deadlock_resolution_seconds_count %d", rounds)} {
		if !bytes.Contains([]byte(metrics), []byte(want)) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}

// With detection off, nothing breaks the cycle: both transactions wait until the prepare
// deadline. The first to reach it aborts with cause timeout; its rollback may free the
// other's key just before the other's own deadline (then that one commits), so the test
// asserts that neither was decided before the older one's deadline, and that a timeout
// ended the wait.
func TestDeadlockWithoutDetectionTimesOut(t *testing.T) {
	c := startCoord(t, "", func(o *httpnet.Options) { o.NoDeadlockDetection = true })
	c.waitReady()
	a, b := newLockPart(t, c.url), newLockPart(t, c.url)
	const deadline = 400 * time.Millisecond
	t1, t2 := deadlockPair(t, c, a, b, 0, deadline)
	v1 := c.waitView(t1, "decided", client.View.Final)
	v2 := c.waitView(t2, "decided", client.View.Final)
	if v1.State != client.StateAborted || v1.AbortCause != coordinator.CauseTimeout {
		t.Fatalf("%s (the older): %s (%s): %s", t1, v1.State, v1.AbortCause, v1.Reason)
	}
	for _, v := range []client.View{v1, v2} {
		if waited := v.DecidedAt.Sub(v1.BeganAt); waited < deadline || v.AbortCause == coordinator.CauseDeadlock {
			t.Fatalf("%s: %s (%s) %v after %s began, before its %v deadline", v.ID, v.State, v.AbortCause, waited, t1, deadline)
		}
	}
	t.Logf("%s: %s (%s); %s: %s (%s)", t1, v1.State, v1.AbortCause, t2, v2.State, v2.AbortCause)
	st, metrics := get(t, c.url+"/metrics")
	if st != 200 || !bytes.Contains([]byte(metrics), []byte(`dtc_wait_reports_total{result="off"}`)) ||
		bytes.Contains([]byte(metrics), []byte(`dtc_wait_reports_total{result="off"} 0`)) {
		t.Errorf("/metrics should count the ignored reports: %d", st)
	}
}
