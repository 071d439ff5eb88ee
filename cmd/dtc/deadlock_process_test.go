package main

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
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dtc-project/dtc/client"
	"github.com/dtc-project/dtc/coordinator"
)

// The two-service deadlock of issue 16 across real processes: dtc serve and two bank
// processes under --lock-policy wait (their waits reported to dtc by the library's
// Resolver). A proxy of the test in front of each bank orders the prepares so that the
// deadlock forms: the prepare of a transaction named in after goes in only once the
// other transaction's prepare was answered ACK there.
type orderProxy struct {
	t      *testing.T
	target string
	srv    *httptest.Server

	mu    sync.Mutex
	after map[string]string // client txn id -> the one whose ACK it waits for
	acked map[string]chan struct{}
	let   map[string]time.Time // client txn id -> when its held prepare went in
}

func newOrderProxy(t *testing.T, target string) *orderProxy {
	p := &orderProxy{t: t, target: target, after: map[string]string{}, acked: map[string]chan struct{}{}, let: map[string]time.Time{}}
	p.srv = httptest.NewServer(p)
	t.Cleanup(func() { p.srv.CloseClientConnections(); p.srv.Close() })
	return p
}

func (p *orderProxy) prepareURL() string { return p.srv.URL + "/prepare" }

func (p *orderProxy) ackedCh(id string) chan struct{} {
	ch := p.acked[id]
	if ch == nil {
		ch = make(chan struct{})
		p.acked[id] = ch
	}
	return ch
}

func (p *orderProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	var id string
	var mine chan struct{}
	if path.Base(r.URL.Path) == "prepare" {
		var m struct {
			TxnID string `json:"txn_id"`
		}
		_ = json.Unmarshal(body, &m)
		id, _, _ = coordinator.SplitTxnID(m.TxnID)
		p.mu.Lock()
		first, held := p.after[id]
		var wait chan struct{}
		if held {
			wait = p.ackedCh(first)
		} else {
			mine = p.ackedCh(id)
		}
		p.mu.Unlock()
		if held {
			select {
			case <-wait:
			case <-r.Context().Done():
				return
			}
			p.mu.Lock()
			p.let[id] = time.Now()
			p.mu.Unlock()
		}
	}
	req, _ := http.NewRequestWithContext(r.Context(), r.Method, "http://"+p.target+r.URL.RequestURI(), bytes.NewReader(body))
	req.Header = r.Header.Clone()
	req.Host = r.Host
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	answer, _ := io.ReadAll(resp.Body)
	if mine != nil && bytes.Contains(answer, []byte(`"ACK"`)) {
		p.mu.Lock()
		select {
		case <-mine:
		default:
			close(mine)
		}
		p.mu.Unlock()
	}
	for k, v := range resp.Header {
		w.Header()[k] = v
	}
	w.WriteHeader(resp.StatusCode)
	_, _ = w.Write(answer)
}

// processDeadlock starts dtc (with extra flags) and two banks under wait with n
// accounts each (x0… at a, y0… at b), behind order proxies.
func processDeadlock(t *testing.T, n int, extra ...string) (*dtcNode, *orderProxy, *orderProxy) {
	d := startDTC(t, extra...)
	var xs, ys []string
	for i := range n {
		xs, ys = append(xs, fmt.Sprintf("x%d=1000", i)), append(ys, fmt.Sprintf("y%d=1000", i))
	}
	a := startBank(t, strings.Join(xs, ","), d.url, "--lock-policy", "wait")
	b := startBank(t, strings.Join(ys, ","), d.url, "--lock-policy", "wait")
	return d, newOrderProxy(t, a.addr), newOrderProxy(t, b.addr)
}

// processDeadlockPair begins the deadlock on x<round> at a and y<round> at b: t1 takes
// x, t2 takes y, then t1 asks for y and t2 for x. t1 is begun first (the older).
func processDeadlockPair(t *testing.T, d *dtcNode, a, b *orderProxy, round int, timeout time.Duration) (t1, t2 string) {
	t.Helper()
	t1, t2 = fmt.Sprintf("pt1-%d", round), fmt.Sprintf("pt2-%d", round)
	a.mu.Lock()
	a.after[t2] = t1
	a.mu.Unlock()
	b.mu.Lock()
	b.after[t1] = t2
	b.mu.Unlock()
	op := func(account string, amount int) json.RawMessage {
		return json.RawMessage(fmt.Sprintf(`{"ops":[{"account":%q,"amount":%d}]}`, account, amount))
	}
	x, y := fmt.Sprintf("x%d", round), fmt.Sprintf("y%d", round)
	ctx := context.Background()
	if _, err := d.cli.SubmitAsync(ctx, client.Request{ID: t1, PrepareTimeout: timeout, Participants: []client.Participant{
		{URL: a.prepareURL(), Payload: op(x, -1)}, {URL: b.prepareURL(), Payload: op(y, 1)}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := d.cli.SubmitAsync(ctx, client.Request{ID: t2, PrepareTimeout: timeout, Participants: []client.Participant{
		{URL: b.prepareURL(), Payload: op(y, -1)}, {URL: a.prepareURL(), Payload: op(x, 1)}}}); err != nil {
		t.Fatal(err)
	}
	return t1, t2
}

func waitDecided(t *testing.T, d *dtcNode, id string) client.View {
	t.Helper()
	var v client.View
	eventually(t, id+" decided", func() bool {
		var err error
		v, err = d.view(id)
		return err == nil && v.Final()
	})
	return v
}

// 50 deadlocks across three processes: each time the younger is aborted with cause
// deadlock and the older commits. The time from the closing prepare going into its
// bank to the victim's abort decision is logged (median and max), not asserted.
func TestProcessTwoServiceDeadlockIsBrokenByTheDetector(t *testing.T) {
	const rounds = 50
	d, a, b := processDeadlock(t, rounds)
	var took []time.Duration
	for round := range rounds {
		t1, t2 := processDeadlockPair(t, d, a, b, round, 20*time.Second)
		v1, v2 := waitDecided(t, d, t1), waitDecided(t, d, t2)
		if v1.State != client.StateCommitted || v2.State != client.StateAborted || v2.AbortCause != coordinator.CauseDeadlock {
			t.Fatalf("round %d: t1 %s (%s: %s), t2 %s (%s: %s)", round, v1.State, v1.AbortCause, v1.Reason, v2.State, v2.AbortCause, v2.Reason)
		}
		var closed time.Time
		eventually(t, "both held prepares went in", func() bool {
			a.mu.Lock()
			ta, okA := a.let[t2]
			a.mu.Unlock()
			b.mu.Lock()
			tb, okB := b.let[t1]
			b.mu.Unlock()
			closed = ta
			if tb.After(ta) {
				closed = tb
			}
			return okA && okB
		})
		took = append(took, v2.DecidedAt.Sub(closed))
	}
	slices.Sort(took)
	t.Logf("processes, %d deadlocks: closing prepare into its bank -> victim's abort decided: median %v, max %v, min %v",
		rounds, took[len(took)/2], took[len(took)-1], took[0])
}

// With --deadlock-detection=false the same deadlock lasts until the prepare deadline:
// neither is decided before it, and the first decided is a timeout.
func TestProcessTwoServiceDeadlockWithoutDetectionTimesOut(t *testing.T) {
	d, a, b := processDeadlock(t, 1, "--deadlock-detection=false")
	const deadline = 500 * time.Millisecond
	t1, t2 := processDeadlockPair(t, d, a, b, 0, deadline)
	v1, v2 := waitDecided(t, d, t1), waitDecided(t, d, t2)
	first := v1
	if v2.DecidedAt.Before(*v1.DecidedAt) {
		first = v2
	}
	if first.State != client.StateAborted || first.AbortCause != coordinator.CauseTimeout {
		t.Fatalf("first decided, %s: %s (%s): %s", first.ID, first.State, first.AbortCause, first.Reason)
	}
	for _, v := range []client.View{v1, v2} {
		if waited := v.DecidedAt.Sub(v1.BeganAt); waited < deadline || v.AbortCause == coordinator.CauseDeadlock {
			t.Fatalf("%s: %s (%s) %v after %s began, before its %v deadline", v.ID, v.State, v.AbortCause, waited, t1, deadline)
		}
	}
	t.Logf("%s: %s (%s); %s: %s (%s)", t1, v1.State, v1.AbortCause, t2, v2.State, v2.AbortCause)
}
