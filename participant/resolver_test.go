package participant

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeCoordinator answers GET /v1/transactions/{id} from a table.
type fakeCoordinator struct {
	mu      sync.Mutex
	answers map[string]func(w http.ResponseWriter)
	asked   []string
}

func (c *fakeCoordinator) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	id, ok := strings.CutPrefix(r.URL.Path, "/v1/transactions/")
	c.mu.Lock()
	c.asked = append(c.asked, id)
	f := c.answers[id]
	c.mu.Unlock()
	if !ok || f == nil {
		http.Error(w, "unexpected", http.StatusTeapot)
		return
	}
	f(w)
}

func state(s string) func(w http.ResponseWriter) {
	return func(w http.ResponseWriter) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"id":"x","state":%q,"participants":[]}`, s)
	}
}

func status(code int, body string) func(w http.ResponseWriter) {
	return func(w http.ResponseWriter) {
		w.WriteHeader(code)
		fmt.Fprint(w, body)
	}
}

func TestResolver(t *testing.T) {
	coord := &fakeCoordinator{answers: map[string]func(http.ResponseWriter){
		"c-committed": state("committed"),
		"c-aborted":   state("aborted"),
		"c-unknown":   status(404, `{"error":{"code":"not_found","message":"no such transaction"}}`),
		"c-recover":   status(503, `{"error":{"code":"recovering","message":"try later"}}`),
		"c-running":   state("committing"),
		"c-bare404":   status(404, "404 page not found"),
		"c-noroute":   status(404, `{"error":{"code":"no_route","message":"no such endpoint"}}`),
		"c@n1":        status(200, `{"id":"c","txn_id":"c@n1","state":"committed"}`),
		"c@old":       status(200, `{"id":"c","txn_id":"c@n1","state":"committed"}`), // another incarnation
		"d-default":   state("committed"),
		"c/slash":     state("aborted"),
	}}
	// The test server speaks the state field with the asked id; fix "id" to match.
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := httptest.NewRecorder()
		coord.ServeHTTP(rec, r)
		body := strings.Replace(rec.Body.String(), `"id":"x"`, `"id":`+jsonString(strings.TrimPrefix(r.URL.Path, "/v1/transactions/")), 1)
		for k, v := range rec.Header() {
			w.Header()[k] = v
		}
		w.WriteHeader(rec.Code)
		fmt.Fprint(w, body)
	}))
	defer srv.Close()

	m := newMemLog(testConfig())
	p, svc := m.open(t)
	defer p.Close()
	a := &answer{}
	for _, id := range []string{"c-committed", "c-aborted", "c-unknown", "c-recover", "c-running", "c-bare404", "c-noroute", "c@n1", "c@old", "c/slash"} {
		p.Prepare(id, nil, srv.URL, func(v Vote) { a.add(voteString(v)) })
	}
	p.Prepare("d-default", nil, "", func(v Vote) { a.add(voteString(v)) })
	m.clock.Advance(30 * time.Second)
	p.Prepare("young", nil, srv.URL, func(v Vote) { a.add(voteString(v)) })
	for _, v := range a.take() {
		if v != "ACK" {
			t.Fatalf("prepare: %s", v)
		}
	}

	r, err := NewResolver(p, ResolverOptions{Coordinator: srv.URL, Clock: m.clock, Logger: discardLogger()})
	if err != nil {
		t.Fatal(err)
	}
	if got := r.ResolveOnce(context.Background()); len(got) != 0 {
		t.Fatalf("nothing is in doubt yet, resolved %v", got)
	}
	m.clock.Advance(30 * time.Second) // all but "young" are in doubt now
	got := map[string]string{}
	for _, res := range r.ResolveOnce(context.Background()) {
		got[res.TxnID] = res.Outcome
	}
	want := map[string]string{
		"c-committed": ResolvedCommitted,
		"c-aborted":   ResolvedRolledBack,
		"c-unknown":   ResolvedRolledBack, // presumed abort
		"c-recover":   ResolvedPending,
		"c-running":   ResolvedPending,
		"c-bare404":   ResolvedPending, // not the coordinator talking
		"c-noroute":   ResolvedPending, // the coordinator, but not about a transaction
		"c@n1":        ResolvedCommitted,
		"c@old":       ResolvedPending, // an answer about another incarnation settles nothing
		"d-default":   ResolvedCommitted,
		"c/slash":     ResolvedRolledBack,
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("resolutions\n got %v\nwant %v", got, want)
	}
	for id, s := range map[string]State{
		"c-committed": StateCommitted, "c-aborted": StateAborted, "c-unknown": StateAborted,
		"c-recover": StatePrepared, "c-running": StatePrepared, "c-bare404": StatePrepared,
		"c-noroute": StatePrepared, "c@n1": StateCommitted, "c@old": StatePrepared,
		"d-default": StateCommitted, "young": StatePrepared, "c/slash": StateAborted,
	} {
		expectStatus(t, p, id, s)
	}
	checkServiceMatches(t, p, svc)

	// Later the coordinator finishes recovering: the next round settles it.
	coord.mu.Lock()
	coord.answers["c-recover"] = state("aborted")
	coord.mu.Unlock()
	r.ResolveOnce(context.Background())
	expectStatus(t, p, "c-recover", StateAborted)
}

func TestResolverRunStops(t *testing.T) {
	m := newMemLog(testConfig())
	p, _ := m.open(t)
	defer p.Close()
	r, err := NewResolver(p, ResolverOptions{Interval: time.Millisecond, Clock: m.clock, Logger: discardLogger()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { r.Run(ctx); close(done) }()
	cancel()
	<-done
}

func TestResolverRejectsBadDefault(t *testing.T) {
	m := newMemLog(testConfig())
	p, _ := m.open(t)
	defer p.Close()
	if _, err := NewResolver(p, ResolverOptions{Coordinator: "localhost:7070"}); err == nil {
		t.Fatal("accepted a coordinator URL without scheme")
	}
}

func jsonString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// While a Resolver runs, every answer of the handler says that the participant asks
// about transactions in doubt (HeaderInDoubt), so that a coordinator may keep its begin
// lazy; without one, no answer says so.
func TestHandlerSaysItAsksWhileAResolverRuns(t *testing.T) {
	m := newMemLog(testConfig())
	p, _ := m.open(t)
	defer p.Close()
	srv := httptest.NewServer(NewHandler(p, HandlerOptions{Logger: discardLogger()}))
	defer srv.Close()
	header := func() []string {
		t.Helper()
		resp, err := http.Get(srv.URL + "/status?txn_id=x")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.Header.Values(HeaderInDoubt)
	}
	if h := header(); len(h) != 0 {
		t.Fatalf("no resolver runs, yet %s: %q", HeaderInDoubt, h)
	}
	r, err := NewResolver(p, ResolverOptions{Coordinator: "http://127.0.0.1:1", Interval: time.Hour, Logger: discardLogger()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { r.Run(ctx); close(done) }()
	deadline := time.Now().Add(10 * time.Second)
	for !p.Asks() && time.Now().Before(deadline) {
		runtime.Gosched()
	}
	if h := header(); len(h) != 1 || h[0] != InDoubtAsk {
		t.Fatalf("a resolver runs, %s: %q, want [%s]", HeaderInDoubt, h, InDoubtAsk)
	}
	cancel()
	<-done
	if h := header(); len(h) != 0 {
		t.Fatalf("the resolver stopped, yet %s: %q", HeaderInDoubt, h)
	}
}
