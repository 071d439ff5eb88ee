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
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dtc-project/dtc/client"
	"github.com/dtc-project/dtc/coordinator"
	"github.com/dtc-project/dtc/examples/bank"
	"github.com/dtc-project/dtc/httpnet"
	"github.com/dtc-project/dtc/locks"
	"github.com/dtc-project/dtc/participant"
	"github.com/dtc-project/dtc/wal"
)

// The two-service deadlock of issue 16 with the participant LIBRARY: two banks
// (examples/bank on participant/, lock policy wait or wound-wait, their lock waits
// reported by a participant.Resolver) and a real httpnet coordinator.

// libBank is a bank participant with locks and a Resolver reporting its waits, behind
// an orderer.
type libBank struct {
	p     *participant.Participant
	srv   *httptest.Server
	order *orderer
}

func (b *libBank) url() string { return b.srv.URL + "/prepare" }

// orderer holds the prepare of a transaction named in after until the prepare of
// another one (after's value) was answered ACK here, so that a test builds a deadlock
// in a known order; it notes when it let each held prepare in.
type orderer struct {
	next http.Handler

	mu    sync.Mutex
	after map[string]string // client txn id -> client txn id it goes in after
	acked map[string]chan struct{}
	let   map[string]time.Time // client txn id -> when its held prepare went in
}

func (o *orderer) ackedCh(id string) chan struct{} {
	ch := o.acked[id]
	if ch == nil {
		ch = make(chan struct{})
		o.acked[id] = ch
	}
	return ch
}

func (o *orderer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if path.Base(r.URL.Path) != "prepare" || r.Method != http.MethodPost {
		o.next.ServeHTTP(w, r)
		return
	}
	body, _ := io.ReadAll(r.Body)
	r.Body = io.NopCloser(bytes.NewReader(body))
	var m struct {
		TxnID string `json:"txn_id"`
	}
	_ = json.Unmarshal(body, &m)
	id, _, _ := coordinator.SplitTxnID(m.TxnID)
	o.mu.Lock()
	first, held := o.after[id]
	var wait, mine chan struct{}
	if held {
		wait = o.ackedCh(first)
	} else {
		mine = o.ackedCh(id)
	}
	o.mu.Unlock()
	if held {
		select {
		case <-wait:
		case <-r.Context().Done():
			http.Error(w, "gave up", http.StatusServiceUnavailable)
			return
		}
		o.mu.Lock()
		o.let[id] = time.Now()
		o.mu.Unlock()
		o.next.ServeHTTP(w, r)
		return
	}
	rec := httptest.NewRecorder()
	o.next.ServeHTTP(rec, r)
	if strings.Contains(rec.Body.String(), `"ACK"`) {
		o.mu.Lock()
		select {
		case <-mine:
		default:
			close(mine)
		}
		o.mu.Unlock()
	}
	copyResponse(w, rec)
}

func newLibBank(t *testing.T, coordURL string, policy locks.Policy, accounts map[string]int64) *libBank {
	t.Helper()
	bk, err := bank.New(accounts)
	if err != nil {
		t.Fatal(err)
	}
	cfg := participant.DefaultConfig()
	cfg.Locks = locks.DefaultConfig(policy)
	p, err := participant.OpenSync(cfg, bk, participant.SystemClock{}, wal.Options{FS: wal.NewMemFS(), Dir: "bank", SegmentSizeBytes: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	o := &orderer{next: participant.NewHandler(p, participant.HandlerOptions{Logger: testLogger(t)}),
		after: map[string]string{}, acked: map[string]chan struct{}{}, let: map[string]time.Time{}}
	b := &libBank{p: p, order: o, srv: httptest.NewServer(o)}
	r, err := participant.NewResolver(p, participant.ResolverOptions{Coordinator: coordURL, ParticipantURL: b.url(), Interval: time.Hour, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { r.Run(ctx); close(done) }()
	t.Cleanup(func() {
		cancel()
		<-done
		b.srv.Close()
		if err := p.Close(); err != nil {
			t.Errorf("closing participant: %v", err)
		}
	})
	return b
}

// libDeadlockSetup is a coordinator and two banks: a with accounts x0…x(n-1), b with
// y0…y(n-1).
func libDeadlockSetup(t *testing.T, policy locks.Policy, n int, mod func(*httpnet.Options)) (*coord, *libBank, *libBank) {
	c := startCoord(t, "", mod)
	c.waitReady()
	xs, ys := map[string]int64{}, map[string]int64{}
	for i := range n {
		xs[fmt.Sprintf("x%d", i)], ys[fmt.Sprintf("y%d", i)] = 1000, 1000
	}
	return c, newLibBank(t, c.url, policy, xs), newLibBank(t, c.url, policy, ys)
}

// libDeadlockPair begins the deadlock on x<round> (at a) and y<round> (at b): T1
// moves 1 from x to y, T2 from y to x. T1 takes x at a, T2 takes y at b, and only then
// T1 asks for y at b and T2 for x at a. T1 is begun first: it is the older.
func libDeadlockPair(t *testing.T, c *coord, a, b *libBank, round int, timeout time.Duration) (t1, t2 string) {
	t.Helper()
	t1, t2 = fmt.Sprintf("lt1-%d", round), fmt.Sprintf("lt2-%d", round)
	a.order.mu.Lock()
	a.order.after[t2] = t1
	a.order.mu.Unlock()
	b.order.mu.Lock()
	b.order.after[t1] = t2
	b.order.mu.Unlock()
	op := func(account string, amount int) json.RawMessage {
		return json.RawMessage(fmt.Sprintf(`{"ops":[{"account":%q,"amount":%d}]}`, account, amount))
	}
	x, y := fmt.Sprintf("x%d", round), fmt.Sprintf("y%d", round)
	ctx := context.Background()
	if _, err := c.cli.SubmitAsync(ctx, client.Request{ID: t1, PrepareTimeout: timeout, Participants: []client.Participant{
		{URL: a.url(), Payload: op(x, -1)}, {URL: b.url(), Payload: op(y, 1)}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.cli.SubmitAsync(ctx, client.Request{ID: t2, PrepareTimeout: timeout, Participants: []client.Participant{
		{URL: b.url(), Payload: op(y, -1)}, {URL: a.url(), Payload: op(x, 1)}}}); err != nil {
		t.Fatal(err)
	}
	return t1, t2
}

// closedAt is when the second held prepare (the one whose wait closes the cycle) went
// in, at either bank.
func closedAt(t *testing.T, a, b *libBank, t1, t2 string) time.Time {
	t.Helper()
	var at time.Time
	eventually(t, "both held prepares went in", func() bool {
		a.order.mu.Lock()
		ta, okA := a.order.let[t2]
		a.order.mu.Unlock()
		b.order.mu.Lock()
		tb, okB := b.order.let[t1]
		b.order.mu.Unlock()
		at = ta
		if tb.After(ta) {
			at = tb
		}
		return okA && okB
	})
	return at
}

// With detection on, 50 times: the younger (T2) is aborted with cause deadlock and T1
// commits. The time from the closing wait's prepare going in to the victim's abort
// decision is logged (median and max), not asserted.
func TestDeadlockLibraryParticipantsDetected(t *testing.T) {
	const rounds = 50
	c, a, b := libDeadlockSetup(t, locks.PolicyWait, rounds, nil)
	var took []time.Duration
	for round := range rounds {
		t1, t2 := libDeadlockPair(t, c, a, b, round, 20*time.Second)
		v1 := c.waitView(t1, "decided", client.View.Final)
		v2 := c.waitView(t2, "decided", client.View.Final)
		if v1.State != client.StateCommitted || v2.State != client.StateAborted || v2.AbortCause != coordinator.CauseDeadlock {
			t.Fatalf("round %d: t1 %s (%s: %s), t2 %s (%s: %s)", round, v1.State, v1.AbortCause, v1.Reason, v2.State, v2.AbortCause, v2.Reason)
		}
		if !strings.Contains(v2.Reason, "victim "+t2) {
			t.Fatalf("round %d: reason %q names not %s the victim", round, v2.Reason, t2)
		}
		took = append(took, v2.DecidedAt.Sub(closedAt(t, a, b, t1, t2)))
	}
	slices.Sort(took)
	t.Logf("library participants, %d deadlocks: closing prepare in -> victim's abort decided: median %v, max %v, min %v",
		rounds, took[len(took)/2], took[len(took)-1], took[0])
	for _, bk := range []*libBank{a, b} {
		if s := bk.p.Stats(); s.LockWaiting != 0 || s.Prepared != 0 {
			t.Errorf("a bank still has waits or prepared transactions: %+v", s)
		}
	}
}

// With detection off nothing breaks the cycle: neither is decided before the older
// one's short deadline, and the first decided is a timeout.
func TestDeadlockLibraryParticipantsWithoutDetectionTimeOut(t *testing.T) {
	c, a, b := libDeadlockSetup(t, locks.PolicyWait, 1, func(o *httpnet.Options) { o.NoDeadlockDetection = true })
	const deadline = 400 * time.Millisecond
	t1, t2 := libDeadlockPair(t, c, a, b, 0, deadline)
	v1 := c.waitView(t1, "decided", client.View.Final)
	v2 := c.waitView(t2, "decided", client.View.Final)
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

// Under wound-wait no deadlock forms: T1 (older) wounds T2 when it finds y held by it;
// T2 ends aborted (wound), T1 commits. The detector is off: the wound alone ends it
// (with it on, the waits both report close a cycle for a moment, and the detector may
// abort T2 first).
func TestDeadlockLibraryParticipantsWoundWait(t *testing.T) {
	c, a, b := libDeadlockSetup(t, locks.PolicyWoundWait, 1, func(o *httpnet.Options) { o.NoDeadlockDetection = true })
	t1, t2 := libDeadlockPair(t, c, a, b, 0, 20*time.Second)
	v1 := c.waitView(t1, "decided", client.View.Final)
	v2 := c.waitView(t2, "decided", client.View.Final)
	if v1.State != client.StateCommitted || v2.State != client.StateAborted || v2.AbortCause != coordinator.CauseWound {
		t.Fatalf("t1 %s (%s: %s), t2 %s (%s: %s)", v1.State, v1.AbortCause, v1.Reason, v2.State, v2.AbortCause, v2.Reason)
	}
	if v1.Priority >= v2.Priority {
		t.Fatalf("t1 (begun first) has priority %d, t2 %d", v1.Priority, v2.Priority)
	}
}
