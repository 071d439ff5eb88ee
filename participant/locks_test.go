package participant

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dtc-project/dtc/locks"
	"github.com/dtc-project/dtc/wal"
)

// keyedService is testService naming keys: a payload {"r":[…],"w":[…],"v":{key:version}}
// reads r, writes w and read each key of v at that version. A commit bumps the version
// of every key it wrote.
type keyedService struct {
	*testService
	Versions map[string]uint64
	payloads map[string]json.RawMessage // of the prepared txns
}

type keysPayload struct {
	R []string          `json:"r"`
	W []string          `json:"w"`
	V map[string]uint64 `json:"v"`
}

func newKeyedService() *keyedService {
	return &keyedService{testService: newTestService(), Versions: map[string]uint64{}, payloads: map[string]json.RawMessage{}}
}

func (s *keyedService) Keys(_ string, payload json.RawMessage) (KeySet, error) {
	var k keysPayload
	if err := json.Unmarshal(payload, &k); err != nil {
		return KeySet{}, err
	}
	return KeySet{Reads: k.R, Writes: k.W, ReadVersions: k.V}, nil
}

func (s *keyedService) Version(key string) uint64 { return s.Versions[key] }

func (s *keyedService) Prepare(id string, payload json.RawMessage) error {
	if err := s.testService.Prepare(id, payload); err != nil {
		return err
	}
	s.payloads[id] = payload
	return nil
}

func (s *keyedService) Commit(id string) {
	s.testService.Commit(id)
	k, _ := s.Keys(id, s.payloads[id])
	for _, w := range k.Writes {
		s.Versions[w]++
	}
	delete(s.payloads, id)
}

func (s *keyedService) Rollback(id string) {
	s.testService.Rollback(id)
	delete(s.payloads, id)
}

type recordedWaits struct {
	mu    sync.Mutex
	waits []LockWait
}

func (r *recordedWaits) get() []LockWait {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.waits)
}

func (r *recordedWaits) LockWaiting(w LockWait) {
	r.mu.Lock()
	r.waits = append(r.waits, w)
	r.mu.Unlock()
}

func newLocked(t *testing.T, policy locks.Policy) (*Participant, *manualStore, *recordedWaits) {
	t.Helper()
	cfg := testConfig()
	cfg.Locks = locks.DefaultConfig(policy)
	svc := newKeyedService()
	p, err := New(cfg, svc, newFakeClock())
	if err != nil {
		t.Fatal(err)
	}
	snap, _ := svc.Snapshot()
	if err := p.Replay(wal.Pos{}, encodeRecord(logRecord{Type: recCheckpoint, Checkpoint: &checkpoint{Service: snap}})); err != nil {
		t.Fatal(err)
	}
	st := newManualStore()
	if err := p.Start(st); err != nil {
		t.Fatal(err)
	}
	obs := &recordedWaits{}
	p.SetLockObserver(obs)
	return p, st, obs
}

func preparePrio(p *Participant, a *answer, id, payload string, prio int64) {
	p.PreparePriority(id, json.RawMessage(payload), "http://coord", prio, func(v Vote) {
		s := voteString(v)
		if v.Cause != "" {
			s += fmt.Sprintf(" [cause %s key %s]", v.Cause, v.Key)
		}
		a.add("prepare " + id + ": " + s)
	})
}

func wantAnswers(t *testing.T, a *answer, want ...string) {
	t.Helper()
	if got := a.take(); !slices.Equal(got, want) {
		t.Fatalf("answers:\n got %q\nwant %q", got, want)
	}
}

func TestLocksNoWaitRefusesNamingKeyAndHolder(t *testing.T) {
	p, st, _ := newLocked(t, locks.PolicyNoWait)
	a := &answer{}
	preparePrio(p, a, "T1", `{"w":["x"]}`, 0)
	st.persist(t, 1)
	preparePrio(p, a, "T2", `{"r":["y","x"]}`, 0)
	wantAnswers(t, a, "prepare T1: ACK", "prepare T2: NACK conflict on key x: locked by transaction T1 [cause conflict key x]")
	commit(p, a, "T1")
	st.persist(t, 1)
	preparePrio(p, a, "T3", `{"r":["x"]}`, 0)
	st.persist(t, 1)
	wantAnswers(t, a, "commit T1: 200 committed", "prepare T3: ACK")
}

// Under wait, a conflicting prepare waits; the commit that frees its key is appended to
// the log before anything the waiting prepare does (the bug found before: locks freed
// before the phase-2 record was appended).
func TestLocksWaitGoesOnAfterThePhase2RecordIsAppended(t *testing.T) {
	p, st, obs := newLocked(t, locks.PolicyWait)
	a := &answer{}
	preparePrio(p, a, "T1", `{"w":["x"]}`, 0)
	st.persist(t, 1)
	preparePrio(p, a, "T2", `{"w":["x"]}`, 0)
	wantAnswers(t, a, "prepare T1: ACK")
	if w := p.LockWaits(); len(w) != 1 || w[0].TxnID != "T2" || w[0].Key != "x" || !slices.Equal(w[0].WaitsFor, []string{"T1"}) {
		t.Fatalf("LockWaits: %+v", w)
	}
	if len(obs.waits) != 1 || obs.waits[0].TxnID != "T2" || obs.waits[0].Coordinator != "http://coord" {
		t.Fatalf("observer heard %+v", obs.waits)
	}
	if s := p.Stats(); s.LockWaiting != 1 || s.LockWaits != 1 {
		t.Fatalf("stats %+v", s)
	}
	commit(p, a, "T1")
	st.persist(t, 2)
	if got := st.types(); !slices.Equal(got[len(got)-3:], []string{"prepare", "commit", "prepare"}) {
		t.Fatalf("records: %v, want the commit of T1 before the prepare of T2", got)
	}
	wantAnswers(t, a, "commit T1: 200 committed", "prepare T2: ACK")
	if len(p.LockWaits()) != 0 {
		t.Fatal("still waiting")
	}
}

// A rollback of a prepare that waits ends the wait with a NACK, fences the id, and
// lets the next waiter in.
func TestLocksRollbackCancelsTheWait(t *testing.T) {
	p, st, _ := newLocked(t, locks.PolicyWait)
	a := &answer{}
	preparePrio(p, a, "T1", `{"w":["x"]}`, 0)
	st.persist(t, 1)
	preparePrio(p, a, "T2", `{"w":["x"]}`, 0)
	preparePrio(p, a, "T2", `{"w":["x"]}`, 0) // a retry joins the wait
	preparePrio(p, a, "T3", `{"r":["x"]}`, 0)
	wantAnswers(t, a, "prepare T1: ACK")
	rollback(p, a, "T2")
	st.persist(t, 1)
	wantAnswers(t, a,
		"prepare T2: NACK rolled back while waiting for locks (waiting for key x) [cause conflict key x]",
		"prepare T2: NACK rolled back while waiting for locks (waiting for key x) [cause conflict key x]",
		"rollback T2: 200 aborted")
	preparePrio(p, a, "T2", `{"w":["x"]}`, 0)
	wantAnswers(t, a, "prepare T2: NACK fenced: rolled back before prepare")
	p.CancelWait("T3", "lock wait ended: context deadline exceeded")
	wantAnswers(t, a, "prepare T3: NACK lock wait ended: context deadline exceeded (waiting for key x) [cause conflict key x]")
	if s := p.Stats(); s.LockWaiting != 0 || s.LockedKeys != 1 {
		t.Fatalf("stats %+v", s)
	}
}

func TestLocksWoundWaitNamesTheYoungerHolder(t *testing.T) {
	p, st, obs := newLocked(t, locks.PolicyWoundWait)
	a := &answer{}
	preparePrio(p, a, "young", `{"w":["x"]}`, 20)
	st.persist(t, 1)
	preparePrio(p, a, "old", `{"w":["x"]}`, 10)
	preparePrio(p, a, "younger", `{"w":["x"]}`, 30)
	wantAnswers(t, a, "prepare young: ACK")
	if len(obs.waits) != 2 || !slices.Equal(obs.waits[0].Wound, []string{"young"}) || obs.waits[0].WoundCoordinator[0] != "http://coord" || len(obs.waits[1].Wound) != 0 {
		t.Fatalf("observer heard %+v", obs.waits)
	}
	rollback(p, a, "young") // the coordinator aborted it
	st.persist(t, 2)
	wantAnswers(t, a, "rollback young: 200 aborted", "prepare old: ACK")
}

func TestLocksOCCValidatesReadVersions(t *testing.T) {
	p, st, _ := newLocked(t, locks.PolicyOCC)
	a := &answer{}
	preparePrio(p, a, "T1", `{"w":["x"],"v":{"x":0}}`, 0)
	st.persist(t, 1)
	preparePrio(p, a, "T2", `{"w":["x"],"v":{"x":0}}`, 0)
	wantAnswers(t, a, "prepare T1: ACK", "prepare T2: NACK conflict on key x: locked by transaction T1 [cause conflict key x]")
	commit(p, a, "T1")
	st.persist(t, 1)
	preparePrio(p, a, "T3", `{"w":["x"],"v":{"x":0}}`, 0)
	preparePrio(p, a, "T4", `{"w":["x"],"v":{"x":1}}`, 0)
	st.persist(t, 1)
	wantAnswers(t, a, "commit T1: 200 committed",
		"prepare T3: NACK conflict on key x: read version 0, current version 1 [cause conflict key x]",
		"prepare T4: ACK")
}

// A transaction prepared before a restart holds its locks after it, with its priority.
func TestLocksRetakenOnReplay(t *testing.T) {
	cfg := testConfig()
	cfg.Locks = locks.DefaultConfig(locks.PolicyWoundWait)
	m := newMemLog(cfg)
	open := func() *Participant {
		p, err := OpenSync(cfg, newKeyedService(), m.clock, m.opts)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	p := open()
	a := &answer{}
	preparePrio(p, a, "young", `{"w":["x"]}`, 20)
	preparePrio(p, a, "done", `{"w":["y"]}`, 5)
	commit(p, a, "done")
	wantAnswers(t, a, "prepare young: ACK", "prepare done: ACK", "commit done: 200 committed")
	p.Close()
	for round := range 2 { // from the log, then from a checkpoint
		p = open()
		obs := &recordedWaits{}
		p.SetLockObserver(obs)
		preparePrio(p, a, "old", `{"w":["x","y"]}`, 10)
		if len(obs.waits) != 1 || !slices.Equal(obs.waits[0].Wound, []string{"young"}) {
			t.Fatalf("round %d: after a restart, observer heard %+v", round, obs.waits)
		}
		p.CancelWait("old", "test")
		wantAnswers(t, a, "prepare old: NACK test (waiting for key x) [cause conflict key x]")
		done := make(chan error, 1)
		p.Checkpoint(func(err error) { done <- err })
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		p.Close()
	}
}

func TestLocksPolicyNeedsKeys(t *testing.T) {
	cfg := testConfig()
	cfg.Locks = locks.DefaultConfig(locks.PolicyWait)
	if _, err := New(cfg, newTestService(), newFakeClock()); err == nil || !strings.Contains(err.Error(), "Keyed") {
		t.Fatalf("New: %v", err)
	}
	cfg.Locks.WaitersMax = 0
	if err := cfg.Validate(); err == nil {
		t.Fatal("Validate took WaitersMax 0")
	}
}

// Over HTTP: the prepare carries the priority (fast path and decoder), an unknown
// field is ignored, a NACK carries cause and key, and a request that ends stops its
// wait.
func TestLocksHTTP(t *testing.T) {
	cfg := testConfig()
	cfg.Locks = locks.DefaultConfig(locks.PolicyWoundWait)
	m := newMemLog(cfg)
	p, err := OpenSync(cfg, newKeyedService(), m.clock, m.opts)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	obs := &recordedWaits{}
	p.SetLockObserver(obs)
	srv := httptest.NewServer(NewHandler(p, HandlerOptions{Logger: discardLogger()}))
	defer srv.Close()
	post := func(ctx context.Context, body string) (string, error) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, srv.URL+"/prepare", strings.NewReader(body))
		resp, err := srv.Client().Do(req)
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		var b strings.Builder
		_, _ = fmt.Fprint(&b, resp.StatusCode, " ")
		buf := make([]byte, 512)
		n, _ := resp.Body.Read(buf)
		b.Write(buf[:n])
		return strings.TrimSpace(b.String()), nil
	}
	ctx := context.Background()
	if got, _ := post(ctx, `{"txn_id":"young","payload":{"w":["x"]},"coordinator":"http://c","priority":20}`); got != `200 {"vote":"ACK"}` {
		t.Fatalf("young: %s", got)
	}
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if _, err := post(short, `{"txn_id":"old","priority":10,"payload":{"w":["x"]},"coordinator":"http://c","future":1}`); err == nil {
		t.Fatal("the waiting prepare answered")
	}
	if w := obs.get(); len(w) != 1 || !slices.Equal(w[0].Wound, []string{"young"}) {
		t.Fatalf("observer heard %+v (the priority was not read?)", w)
	}
	// The handler cancels the wait when the request ends; wait (bounded) for it.
	for i := 0; len(p.LockWaits()) > 0; i++ {
		if i == 500 {
			t.Fatal("the wait outlived its request")
		}
		time.Sleep(10 * time.Millisecond)
	}
	v := Vote{Reason: "conflict on key x: locked by transaction young", Cause: CauseConflict, Key: "x"}
	if b, _ := json.Marshal(v.Response()); string(b) != `{"vote":"NACK","reason":"conflict on key x: locked by transaction young","cause":"conflict","key":"x"}` {
		t.Fatalf("NACK on the wire: %s", b)
	}
}

// The Resolver reports a lock wait to the coordinator at once, and under wound-wait
// asks it to abort the younger holder, with the resolver's bearer token.
func TestLocksWaitReportsReachTheCoordinator(t *testing.T) {
	type call struct{ method, path, cause, auth, body string }
	calls := make(chan call, 16)
	coord := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b := make([]byte, 1024)
		n, _ := r.Body.Read(b)
		calls <- call{r.Method, r.URL.Path, r.Header.Get(HeaderAbortCause), r.Header.Get("Authorization"), string(b[:n])}
		if strings.HasSuffix(r.URL.Path, "/abort") {
			w.WriteHeader(http.StatusOK)
		} else {
			w.WriteHeader(http.StatusAccepted)
		}
	}))
	defer coord.Close()
	cfg := testConfig()
	cfg.Locks = locks.DefaultConfig(locks.PolicyWoundWait)
	p, err := OpenSync(cfg, newKeyedService(), newFakeClock(), newMemLog(cfg).opts)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	r, err := NewResolver(p, ResolverOptions{Coordinator: coord.URL, BearerToken: "tok", ParticipantURL: "http://me/prepare", Interval: time.Hour, Logger: discardLogger()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { r.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	// Run sets the observer on its goroutine: wait (bounded) until it has.
	for i := 0; ; i++ {
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
	p.PreparePriority("young", json.RawMessage(`{"w":["x"]}`), "", 20, func(v Vote) { a.add(voteString(v)) })
	p.PreparePriority("old", json.RawMessage(`{"w":["x"]}`), "", 10, func(v Vote) { a.add(voteString(v)) })
	got := map[string]call{}
	for len(got) < 2 {
		select {
		case c := <-calls:
			got[c.path] = c
		case <-time.After(10 * time.Second):
			t.Fatalf("coordinator heard only %+v", got)
		}
	}
	if c := got["/v1/waits"]; c.method != "POST" || c.auth != "Bearer tok" || c.body != `{"participant":"http://me/prepare","waiter":"old","holders":["young"],"key":"x"}` {
		t.Fatalf("wait report %+v", c)
	}
	if c := got["/v1/transactions/young/abort"]; c.method != "POST" || c.cause != AbortCauseWound || c.auth != "Bearer tok" {
		t.Fatalf("wound %+v", c)
	}
	for i := 0; r.Stats().WaitReports < 1 || r.Stats().Wounds < 1; i++ {
		if i == 500 {
			t.Fatalf("stats %+v", r.Stats())
		}
		time.Sleep(10 * time.Millisecond)
	}
	p.CancelWait("old", "test")
}
