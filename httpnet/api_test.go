package httpnet_test

// Tests of the coordinator's HTTP API: validation (and that nothing a refused request
// carried reaches the log), listing, limits, metrics, sharding, compaction and the
// graceful shutdown.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/dtc-project/dtc/client"
	"github.com/dtc-project/dtc/coordinator"
	"github.com/dtc-project/dtc/httpnet"
	"github.com/dtc-project/dtc/httpnet/apiserver"
	"github.com/dtc-project/dtc/wal"
)

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// fakeParticipant answers the participant protocol from memory: prepare votes ACK,
// commit and rollback succeed, unless commitAnswer says otherwise. It counts prepares.
type fakeParticipant struct {
	srv *httptest.Server

	mu           sync.Mutex
	prepares     int
	commitStatus int    // 0: 200
	commitState  string // "": committed
	holdPrepare  chan struct{}
}

func newFakeParticipant(t testing.TB) *fakeParticipant {
	f := &fakeParticipant{}
	f.srv = httptest.NewServer(f)
	t.Cleanup(func() {
		f.mu.Lock()
		if f.holdPrepare != nil {
			select {
			case <-f.holdPrepare:
			default:
				close(f.holdPrepare)
			}
		}
		f.mu.Unlock()
		f.srv.Close()
	})
	return f
}

func (f *fakeParticipant) url() string { return f.srv.URL + "/prepare" }

func (f *fakeParticipant) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	hold := f.holdPrepare
	status, state := f.commitStatus, f.commitState
	f.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	switch path.Base(r.URL.Path) {
	case "prepare":
		f.mu.Lock()
		f.prepares++
		f.mu.Unlock()
		if hold != nil {
			_, _ = io.ReadAll(r.Body) // so that a client that leaves cancels the context
			select {
			case <-hold:
			case <-r.Context().Done():
				return
			}
		}
		fmt.Fprint(w, `{"vote":"ACK"}`)
	case "commit":
		if status == 0 {
			status, state = 200, "committed"
		}
		w.WriteHeader(status)
		fmt.Fprintf(w, `{"state":%q}`, state)
	case "rollback":
		fmt.Fprint(w, `{"state":"aborted"}`)
	case "status":
		fmt.Fprint(w, `{"state":"unknown"}`)
	default:
		http.NotFound(w, r)
	}
}

func (f *fakeParticipant) prepareCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.prepares
}

// Every malformed request gets its status and a message naming the problem, and
// nothing of it reaches the log.
func TestBadRequestsAreRefusedAndNeverLogged(t *testing.T) {
	f := newFakeParticipant(t)
	g := newFakeParticipant(t)
	c := startCoord(t, "", func(o *httpnet.Options) {})
	c.waitReady()
	p1, p2 := f.url(), g.url()

	// One valid transaction, to reuse its id.
	if st, body, _ := c.post("", `{"id":"taken","participants":["`+p1+`"]}`); st != 200 {
		t.Fatalf("valid request: %d %s", st, body)
	}

	big := `{"participants":["` + p1 + `"],"id":"` + strings.Repeat("x", 5<<20) + `"}`
	cases := []struct {
		name, query, body string
		status            int
		code              string
		mentions          string // the message must name this
	}{
		{"malformed JSON", "", `{"participants":[`, 400, apiserver.CodeMalformedJSON, "ends in the middle"},
		{"syntax error", "", `{"participants":[nope]}`, 400, apiserver.CodeMalformedJSON, "invalid JSON"},
		{"empty body", "", ``, 400, apiserver.CodeMalformedJSON, "empty body"},
		{"not an object", "", `["` + p1 + `"]`, 400, apiserver.CodeInvalid, "expected a JSON object"},
		{"trailing data", "", `{"participants":["` + p1 + `"]} {}`, 400, apiserver.CodeMalformedJSON, "after the JSON object"},
		{"unknown field", "", `{"participants":["` + p1 + `"],"timeout":5}`, 400, apiserver.CodeUnknownField, `"timeout"`},
		{"unknown participant field", "", `{"participants":[{"url":"` + p1 + `","weight":2}]}`, 400, apiserver.CodeUnknownField, `participants[0]: unknown field "weight"`},
		{"participant without url", "", `{"participants":[{"payload":{}}]}`, 400, apiserver.CodeInvalid, "participants[0].url: missing"},
		{"participant is a number", "", `{"participants":[7]}`, 400, apiserver.CodeInvalid, "participants[0]: expected a prepare URL"},
		{"no participants field", "", `{}`, 400, apiserver.CodeInvalid, "participants: missing"},
		{"empty participant list", "", `{"participants":[]}`, 400, apiserver.CodeInvalid, "participants: the list is empty"},
		{"participants not a list", "", `{"participants":"` + p1 + `"}`, 400, apiserver.CodeInvalid, "participants"},
		{"invalid URL", "", `{"participants":["` + p1 + `","::not a url"]}`, 400, apiserver.CodeInvalid, "participants[1].url"},
		{"relative URL", "", `{"participants":["/prepare"]}`, 400, apiserver.CodeInvalid, "participants[0].url"},
		{"non-HTTP URL", "", `{"participants":["ftp://127.0.0.1/prepare"]}`, 400, apiserver.CodeInvalid, "not an http or https URL"},
		{"URL with query", "", `{"participants":["` + p1 + `?x=1"]}`, 400, apiserver.CodeInvalid, "query"},
		{"duplicate participants", "", `{"participants":["` + p1 + `","` + p2 + `","` + p1 + `"]}`, 400, apiserver.CodeInvalid, "participants[2].url"},
		{"payload too large", "", `{"participants":[{"url":"` + p1 + `","payload":"` + strings.Repeat("y", 70<<10) + `"}]}`, 400, apiserver.CodeInvalid, "participants[0].payload"},
		{"negative timeout", "", `{"participants":["` + p1 + `"],"prepare_timeout_ms":-5}`, 400, apiserver.CodeInvalid, "prepare_timeout_ms"},
		{"zero timeout", "", `{"participants":["` + p1 + `"],"prepare_timeout_ms":0}`, 400, apiserver.CodeInvalid, "prepare_timeout_ms"},
		{"timeout over the limit", "", `{"participants":["` + p1 + `"],"prepare_timeout_ms":86400000}`, 400, apiserver.CodeInvalid, "prepare_timeout_ms"},
		{"absurd timeout", "", `{"participants":["` + p1 + `"],"prepare_timeout_ms":9000000000000000000}`, 400, apiserver.CodeInvalid, "prepare_timeout_ms"},
		{"timeout overflows", "", `{"participants":["` + p1 + `"],"prepare_timeout_ms":1e30}`, 400, apiserver.CodeInvalid, "prepare_timeout_ms"},
		{"fractional timeout", "", `{"participants":["` + p1 + `"],"prepare_timeout_ms":1.5}`, 400, apiserver.CodeInvalid, "prepare_timeout_ms"},
		{"id of the wrong type", "", `{"id":42,"participants":["` + p1 + `"]}`, 400, apiserver.CodeInvalid, "id"},
		{"id with a space", "", `{"id":"a b","participants":["` + p1 + `"]}`, 400, apiserver.CodeInvalid, "id"},
		{"id too long", "", `{"id":"` + strings.Repeat("k", 200) + `","participants":["` + p1 + `"]}`, 400, apiserver.CodeInvalid, "id"},
		{"oversized body", "", big, 413, apiserver.CodeBodyTooLarge, "larger than"},
		{"bad wait", "?wait=maybe", `{"participants":["` + p1 + `"]}`, 400, apiserver.CodeInvalid, "wait"},
		{"unknown query parameter", "?sync=1", `{"participants":["` + p1 + `"]}`, 400, apiserver.CodeInvalid, "sync"},
		{"reused id, other participants", "", `{"id":"taken","participants":["` + p2 + `"]}`, 409, apiserver.CodeConflict, "taken"},
		{"reused id, other payload", "", `{"id":"taken","participants":[{"url":"` + p1 + `","payload":{"a":1}}]}`, 409, apiserver.CodeConflict, "taken"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			st, body, hdr := c.post(tc.query, tc.body)
			var e apiserver.ErrorBody
			if err := json.Unmarshal([]byte(body), &e); err != nil {
				t.Fatalf("answer is not a JSON error: %d %q", st, body)
			}
			if st != tc.status || e.Error.Code != tc.code || !strings.Contains(e.Error.Message, tc.mentions) {
				t.Errorf("got %d %s %q, want %d %s mentioning %q", st, e.Error.Code, e.Error.Message, tc.status, tc.code, tc.mentions)
			}
			if ct := hdr.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type %q", ct)
			}
		})
	}

	// Other routes and methods.
	for _, tc := range []struct {
		method, path string
		status       int
		code         string
	}{
		{"PUT", "/v1/transactions", 405, apiserver.CodeMethodNotAllowed},
		{"DELETE", "/v1/transactions/taken", 405, apiserver.CodeMethodNotAllowed},
		{"POST", "/metrics", 405, apiserver.CodeMethodNotAllowed},
		{"GET", "/v1/transactions/never-seen", 404, apiserver.CodeNotFound},
		{"GET", "/v1/transactions/a/b", 404, apiserver.CodeNoRoute},
		{"GET", "/v2/anything", 404, apiserver.CodeNoRoute},
		{"GET", "/v1/transactions?state=bogus", 400, apiserver.CodeInvalid},
		{"GET", "/v1/transactions?limit=0", 400, apiserver.CodeInvalid},
		{"GET", "/v1/transactions?status=committed", 400, apiserver.CodeInvalid},
	} {
		req, _ := http.NewRequest(tc.method, c.url+tc.path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var e apiserver.ErrorBody
		err = json.NewDecoder(resp.Body).Decode(&e)
		resp.Body.Close()
		if err != nil || resp.StatusCode != tc.status || e.Error.Code != tc.code || e.Error.Message == "" {
			t.Errorf("%s %s: %d %+v (%v), want %d %s", tc.method, tc.path, resp.StatusCode, e, err, tc.status, tc.code)
		}
	}

	if n := f.prepareCount() + g.prepareCount(); n != 1 {
		t.Errorf("participants got %d prepares, want 1 (the valid request's)", n)
	}
	c.crash()
	recs := logRecords(t, c.dir)
	if n := countRecords(recs, coordinator.RecBegin); n != 1 {
		t.Errorf("the log holds %d begin records, want 1 (the valid request's)", n)
	}
	for _, r := range recs {
		if r.Txn != "" && r.Txn != "taken" {
			t.Errorf("the log holds a %s record of %q, which was refused", r.Type, r.Txn)
		}
	}
}

func TestListPaginatesAcrossShards(t *testing.T) {
	f := newFakeParticipant(t)
	c := startCoord(t, "", func(o *httpnet.Options) { o.Shards = 4 })
	c.waitReady()
	ctx := context.Background()
	var ids []string
	for i := range 11 {
		id := fmt.Sprintf("list-%02d", i)
		ids = append(ids, id)
		if _, err := c.cli.Submit(ctx, client.Request{ID: id, Participants: []client.Participant{{URL: f.url()}}}); err != nil {
			t.Fatal(err)
		}
	}
	var got []string
	after, pages := "", 0
	for {
		p, err := c.cli.List(ctx, client.ListOptions{State: client.StateCommitted, After: after, Limit: 4})
		if err != nil {
			t.Fatal(err)
		}
		pages++
		if len(p.Transactions) > 4 {
			t.Fatalf("page of %d, limit 4", len(p.Transactions))
		}
		for _, v := range p.Transactions {
			got = append(got, v.ID)
		}
		if p.Next == "" {
			break
		}
		after = p.Next
	}
	if !slices.Equal(got, ids) || pages != 3 {
		t.Errorf("listed %v in %d pages, want %v in 3", got, pages, ids)
	}
	p, err := c.cli.List(ctx, client.ListOptions{State: client.StateAborted})
	if err != nil || len(p.Transactions) != 0 || p.Next != "" {
		t.Errorf("aborted: %+v, %v: want none", p, err)
	}
	if st, body := get(t, c.url+"/v1/transactions?state=in-doubt"); st != 200 || !strings.Contains(body, `"transactions":[`) {
		t.Errorf("in-doubt list: %d %s", st, body)
	}
}

func TestInflightLimitsAnswer429(t *testing.T) {
	f := newFakeParticipant(t)
	f.holdPrepare = make(chan struct{})
	c := startCoord(t, "", func(o *httpnet.Options) {
		o.Shards = 1
		o.Engine.InflightMax = 1
	})
	c.waitReady()
	first, _, _ := c.post("?wait=false", `{"id":"busy-1","participants":["`+f.url()+`"]}`)
	if first != http.StatusAccepted {
		t.Fatalf("first: %d", first)
	}
	st, body, hdr := c.post("", `{"id":"busy-2","participants":["`+f.url()+`"]}`)
	if st != http.StatusTooManyRequests || !strings.Contains(body, apiserver.CodeBusy) || hdr.Get("Retry-After") == "" {
		t.Errorf("second: %d %s Retry-After %q, want 429 busy with Retry-After", st, body, hdr.Get("Retry-After"))
	}
	close(f.holdPrepare)
	c.waitView("busy-1", "committed", func(v client.View) bool { return v.State == client.StateCommitted })
}

func TestServerInflightCapAnswers429(t *testing.T) {
	f := newFakeParticipant(t)
	f.holdPrepare = make(chan struct{})
	dir := t.TempDir()
	rt, err := httpnet.Open(httpnet.Options{DataDir: dir, Engine: testEngineConfig(), Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Close()
	srv := httptest.NewServer(apiserver.NewServer(rt, apiserver.ServerOptions{InflightMax: 1}))
	defer srv.Close()
	eventually(t, "ready", rt.Ready)
	done := make(chan int)
	go func() {
		resp, err := http.Post(srv.URL+"/v1/transactions", "application/json", strings.NewReader(`{"participants":["`+f.url()+`"]}`))
		if err != nil {
			done <- 0
			return
		}
		resp.Body.Close()
		done <- resp.StatusCode
	}()
	eventually(t, "the first prepare arrives", func() bool { return f.prepareCount() == 1 })
	resp, err := http.Post(srv.URL+"/v1/transactions", "application/json", strings.NewReader(`{"participants":["`+f.url()+`"]}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" {
		t.Errorf("second request: %d, Retry-After %q: want 429 with Retry-After", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	close(f.holdPrepare)
	if st := <-done; st != http.StatusOK {
		t.Errorf("first request: %d", st)
	}
}

// A participant that answers commit with 409 "aborted" contradicts the decision: the
// hazard is shown, listed, counted, and not retried away.
func TestHeuristicHazardIsRecorded(t *testing.T) {
	f := newFakeParticipant(t)
	f.commitStatus, f.commitState = http.StatusConflict, "aborted"
	g := newFakeParticipant(t)
	c := startCoord(t, "", nil)
	c.waitReady()
	v, err := c.cli.Submit(context.Background(), client.Request{ID: "hz", Participants: []client.Participant{{URL: f.url()}, {URL: g.url()}}})
	if err != nil || v.State != client.StateCommitted {
		t.Fatalf("%+v %v", v, err)
	}
	v = c.waitView("hz", "ended", func(v client.View) bool { return v.PhaseTwoDone })
	if !v.Hazard || !strings.Contains(v.Participants[0].Hazard, "aborted") {
		t.Errorf("view %+v: want a hazard on participant 0", v)
	}
	p, err := c.cli.List(context.Background(), client.ListOptions{State: "heuristic"})
	if err != nil || len(p.Transactions) != 1 || p.Transactions[0].ID != "hz" {
		t.Errorf("heuristic list: %+v %v", p, err)
	}
	if _, body := get(t, c.url+"/metrics"); !strings.Contains(body, "dtc_heuristic_hazards_total 1") {
		t.Errorf("metrics do not count the hazard")
	}
}

func TestMetricsAndHealth(t *testing.T) {
	f := newFakeParticipant(t)
	c := startCoord(t, "", nil)
	c.waitReady()
	if _, err := c.cli.Submit(context.Background(), client.Request{Participants: []client.Participant{{URL: f.url()}}}); err != nil {
		t.Fatal(err)
	}
	// A participant that is not there: connection refused, counted by kind.
	dead := "http://" + freeAddr(t) + "/prepare"
	v, err := c.cli.Submit(context.Background(), client.Request{Participants: []client.Participant{{URL: dead}}})
	if err != nil || v.State != client.StateAborted || v.Participants[0].Vote != coordinator.VoteError {
		t.Fatalf("dead participant: %+v %v", v, err)
	}
	if st, body := get(t, c.url+"/healthz"); st != 200 || !strings.Contains(body, "ok") {
		t.Errorf("healthz: %d %s", st, body)
	}
	if st, body := get(t, c.url+"/readyz"); st != 200 || !strings.Contains(body, "ready") {
		t.Errorf("readyz: %d %s", st, body)
	}
	st, body := get(t, c.url+"/metrics")
	if st != 200 {
		t.Fatalf("metrics: %d", st)
	}
	for _, want := range []string{
		"dtc_transactions_begun_total 2",
		"dtc_transactions_committed_total 1",
		`dtc_transactions_aborted_total{reason="error"} 1`,
		`dtc_participant_errors_total{kind="connection",request="prepare"} 1`,
		"dtc_prepare_duration_seconds_count 2",
		"dtc_transaction_duration_seconds_count",
		"dtc_transactions_inflight",
		"dtc_transactions_in_doubt 0",
		"dtc_log_sync_duration_seconds_count",
		"dtc_ready 1",
		"go_goroutines",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
}

// Records are routed by the hash of their transaction id at replay, so the number of
// shards may change between restarts.
func TestShardCountMayChangeBetweenRestarts(t *testing.T) {
	f := newFakeParticipant(t)
	a, b := twoBanks(t)
	c := startCoord(t, "", func(o *httpnet.Options) { o.Shards = 3 })
	c.waitReady()
	ctx := context.Background()
	var ids []string
	for i := range 12 {
		id := fmt.Sprintf("rs-%d", i)
		ids = append(ids, id)
		if _, err := c.cli.Submit(ctx, client.Request{ID: id, Participants: []client.Participant{{URL: f.url()}}}); err != nil {
			t.Fatal(err)
		}
	}
	b.gate.set("commit", down)
	open, err := c.cli.Submit(ctx, client.Request{ID: "rs-open", Participants: transfer(a, b, 1)})
	if err != nil || open.State != client.StateCommitted {
		t.Fatalf("%+v %v", open, err)
	}
	for _, shards := range []int{5, 1} {
		c.restart(func(o *httpnet.Options) { o.Shards = shards })
		c.waitReady()
		for _, id := range ids {
			if v, err := c.cli.Get(ctx, id); err != nil || v.State != client.StateCommitted {
				t.Errorf("%d shards: %s: %+v %v", shards, id, v, err)
			}
		}
		if v, err := c.cli.Get(ctx, "rs-open"); err != nil || v.PhaseTwoDone {
			t.Errorf("%d shards: rs-open: %+v %v: want committed, phase 2 pending", shards, v, err)
		}
	}
	b.gate.release("commit")
	c.waitView("rs-open", "phase 2 acknowledged", func(v client.View) bool { return v.PhaseTwoDone })
	b.waitStatus(open.TxnID, "committed")
}

// With small segments the log is compacted as it goes, and what it still needs (a
// transaction whose phase 2 is not finished) survives compaction and a restart.
func TestLogIsCompacted(t *testing.T) {
	f := newFakeParticipant(t)
	a, b := twoBanks(t)
	c := startCoord(t, "", func(o *httpnet.Options) {
		o.SegmentSizeBytes = 8 << 10
		o.CompactInterval = 10 * time.Millisecond
		o.Engine.DoneRetention = 0 // forget finished transactions at once: small checkpoints
	})
	c.waitReady()
	ctx := context.Background()
	b.gate.set("commit", down)
	open, err := c.cli.Submit(ctx, client.Request{ID: "cp-open", Participants: transfer(a, b, 1)})
	if err != nil || open.State != client.StateCommitted {
		t.Fatalf("%+v %v", open, err)
	}
	segments := func() []uint64 {
		l, err := wal.Open(wal.Options{FS: wal.OSFS(), Dir: c.dir, ReadOnly: true}, nil)
		if err != nil {
			return nil // a segment removed while we read: look again
		}
		defer l.Close()
		return l.Segments()
	}
	for i := range 150 {
		if _, err := c.cli.Submit(ctx, client.Request{Participants: []client.Participant{{URL: f.url()}}}); err != nil {
			t.Fatalf("txn %d: %v", i, err)
		}
	}
	eventually(t, "old segments removed", func() bool {
		s := segments()
		return len(s) > 0 && s[0] > 1 && len(s) <= 4
	})
	c.restart(nil)
	c.waitReady()
	if v, err := c.cli.Get(ctx, "cp-open"); err != nil || v.State != client.StateCommitted || v.PhaseTwoDone {
		t.Fatalf("after compaction and restart: %+v %v: want committed, phase 2 pending", v, err)
	}
	b.gate.release("commit")
	b.waitStatus(open.TxnID, "committed")
}

// Serve shuts down gracefully: a request in flight gets its answer, then the runtime
// closes, and the log holds the transaction.
func TestGracefulShutdownLetsRequestsFinish(t *testing.T) {
	f := newFakeParticipant(t)
	f.holdPrepare = make(chan struct{})
	dir := t.TempDir()
	rt, err := httpnet.Open(httpnet.Options{DataDir: dir, Engine: testEngineConfig(), Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rt.Close() })
	addr := freeAddr(t)
	ln := listen(t, addr)
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() {
		served <- apiserver.Serve(ctx, ln, rt, apiserver.NewServer(rt, apiserver.ServerOptions{}),
			apiserver.ServeOptions{Grace: waitDeadline, Logger: testLogger(t)})
	}()
	cli, _ := client.New("http://"+addr, client.Options{})
	eventually(t, "ready", func() bool { return cli.Ready(context.Background()) == nil })
	answer := make(chan client.View, 1)
	go func() {
		v, err := cli.Submit(context.Background(), client.Request{ID: "graceful", Participants: []client.Participant{{URL: f.url()}}})
		if err != nil {
			t.Errorf("submit during shutdown: %v", err)
		}
		answer <- v
	}()
	eventually(t, "the prepare arrives", func() bool { return f.prepareCount() == 1 })
	cancel() // SIGTERM
	eventually(t, "new connections refused", func() bool {
		_, err := http.Get("http://" + addr + "/healthz")
		return err != nil
	})
	close(f.holdPrepare)
	if v := <-answer; v.State != client.StateCommitted {
		t.Errorf("the request in flight got %+v, want committed", v)
	}
	if err := <-served; err != nil {
		t.Errorf("Serve: %v", err)
	}
	recs := logRecords(t, dir)
	if countRecords(recs, coordinator.RecDecision) != 1 {
		t.Errorf("log: %d decisions, want 1", countRecords(recs, coordinator.RecDecision))
	}
}

// A client that gives up waiting does not stop its transaction: it runs to its end.
func TestClientThatLeavesDoesNotStopTheTransaction(t *testing.T) {
	f := newFakeParticipant(t)
	f.holdPrepare = make(chan struct{})
	c := startCoord(t, "", nil)
	c.waitReady()
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		_, err := c.cli.Submit(ctx, client.Request{ID: "leaver", Participants: []client.Participant{{URL: f.url()}}})
		errc <- err
	}()
	eventually(t, "the prepare arrives", func() bool { return f.prepareCount() == 1 })
	cancel()
	if err := <-errc; err == nil {
		t.Fatal("the cancelled submit succeeded")
	}
	close(f.holdPrepare)
	c.waitView("leaver", "committed and ended", func(v client.View) bool {
		return v.State == client.StateCommitted && v.PhaseTwoDone
	})
}

// A full disk refuses begin records: the API answers 503 log_unavailable, and works
// again once there is room. A failed fsync is fatal: OnFatal is told.
func TestDiskFullAnswers503AndFailedSyncIsFatal(t *testing.T) {
	f := newFakeParticipant(t)
	fs := wal.NewMemFS()
	var (
		mu                 sync.Mutex
		diskFull, syncFail bool
		fatal              []error
	)
	fs.SetFaults(wal.MemFSFaults{
		WriteErr: func(name string, off int64, n int) error {
			mu.Lock()
			defer mu.Unlock()
			if diskFull && strings.HasSuffix(name, ".tmp") { // building a new segment
				return syscall.ENOSPC
			}
			return nil
		},
		SyncErr: func(name string) error {
			mu.Lock()
			defer mu.Unlock()
			if syncFail {
				return syscall.EIO
			}
			return nil
		},
	})
	c := startCoord(t, "/data", func(o *httpnet.Options) {
		o.FS = fs
		o.SegmentSizeBytes = 4 << 10
		o.Shards = 1
		o.OnFatal = func(err error) {
			mu.Lock()
			defer mu.Unlock()
			fatal = append(fatal, err)
		}
	})
	c.waitReady()
	body := `{"participants":["` + f.url() + `"]}`
	mu.Lock()
	diskFull = true
	mu.Unlock()
	var st int
	var resp string
	var hdr http.Header
	// Fill the active segment and the spare. Do not wait for decisions: one whose record
	// does not fit waits (its participants stay prepared) until there is room.
	var begun []string
	for i := 0; i < 200; i++ {
		if st, resp, hdr = c.post("?wait=false", body); st != http.StatusAccepted {
			break
		}
		var v client.View
		_ = json.Unmarshal([]byte(resp), &v)
		begun = append(begun, v.ID)
	}
	if st != http.StatusServiceUnavailable || !strings.Contains(resp, apiserver.CodeLogUnavailable) || hdr.Get("Retry-After") == "" {
		t.Fatalf("disk full: %d %s, want 503 log_unavailable with Retry-After", st, resp)
	}
	mu.Lock()
	diskFull = false
	mu.Unlock()
	if st, resp, _ = c.post("", body); st != 200 {
		t.Fatalf("after space was freed: %d %s", st, resp)
	}
	for _, id := range begun {
		c.waitView(id, "committed once there is room", func(v client.View) bool { return v.State == client.StateCommitted })
	}

	mu.Lock()
	syncFail = true
	mu.Unlock()
	// Its decision can never be made durable: the waiting request is answered 503.
	if st, resp, _ = c.post("", body); st != http.StatusServiceUnavailable || !strings.Contains(resp, apiserver.CodeLogUnavailable) {
		t.Errorf("when the sync fails: %d %s, want 503 log_unavailable", st, resp)
	}
	if c.rt.Ready() {
		t.Error("ready after the log failed")
	}
	eventually(t, "OnFatal is called", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(fatal) > 0
	})
	mu.Lock()
	if len(fatal) != 1 || !errors.Is(fatal[0], wal.ErrSyncFailed) {
		t.Errorf("OnFatal got %v, want one ErrSyncFailed", fatal)
	}
	mu.Unlock()
	if st, resp, _ = c.post("", body); st != http.StatusServiceUnavailable || !strings.Contains(resp, apiserver.CodeLogUnavailable) {
		t.Errorf("after the log failed: %d %s, want 503 log_unavailable", st, resp)
	}
	if err := c.rt.Close(); !errors.Is(err, wal.ErrSyncFailed) {
		t.Errorf("Close after the failure: %v, want the sync failure", err)
	}
	c.srv.Close()
	c.rt, c.srv = nil, nil // closed: nothing left for the cleanup
}
