package participant

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/dtc-project/dtc/protocol"
	"github.com/dtc-project/dtc/wal"
)

// post sends body to url and returns the status, the body without its final newline,
// and the HeaderBatchMax header.
func post(t *testing.T, url, body string) (int, string, string) {
	t.Helper()
	resp, err := http.Post(url, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("POST %s %s: Content-Type %q", url, body, ct)
	}
	return resp.StatusCode, strings.TrimSuffix(string(b), "\n"), resp.Header.Get(HeaderBatchMax)
}

// batchBody writes a BatchRequest from "op:id" words.
func batchBody(ops ...string) string {
	req := BatchRequest{Ops: []BatchOp{}}
	for _, o := range ops {
		op, id, _ := strings.Cut(o, ":")
		req.Ops = append(req.Ops, BatchOp{Op: op, TxnID: id})
	}
	b, err := json.Marshal(req)
	if err != nil {
		panic(err)
	}
	return string(b)
}

func TestEndpointBatch(t *testing.T) {
	got, err := Endpoint("http://127.0.0.1:9001/bank/prepare", EndpointBatch)
	if err != nil || got != "http://127.0.0.1:9001/bank/batch" {
		t.Fatalf("Endpoint = %q, %v", got, err)
	}
}

// One batch commits, rolls back and fences, each op answered as its single endpoint
// would answer it; the same batch again answers the same; a fenced id refuses its late
// prepare; a conflict is that op's alone.
func TestBatchRoundTrip(t *testing.T) {
	m := newMemLog(testConfig())
	p, svc := m.open(t)
	defer p.Close()
	srv := httptest.NewServer(NewHandler(p, HandlerOptions{Logger: discardLogger()}))
	defer srv.Close()
	for _, id := range []string{"t1", "t2", "t3", "t4"} {
		if code, got, _ := post(t, srv.URL+"/prepare", `{"txn_id":"`+id+`","payload":{}}`); code != 200 || got != `{"vote":"ACK"}` {
			t.Fatalf("prepare %s: %d %s", id, code, got)
		}
	}
	if code, got, _ := post(t, srv.URL+"/rollback", `{"txn_id":"t4"}`); code != 200 {
		t.Fatalf("rollback t4: %d %s", code, got)
	}
	body := batchBody("commit:t1", "rollback:t2", "commit:t3", "rollback:f1", "commit:t4", "commit:nope", "rollback:t1")
	want := `{"results":[{"state":"committed"},{"state":"aborted"},{"state":"committed"},{"state":"aborted"},` +
		`{"state":"aborted","conflict":true},{"state":"unknown","conflict":true},{"state":"committed","conflict":true}]}`
	for _, round := range []string{"first", "repeated"} {
		code, got, _ := post(t, srv.URL+"/batch", body)
		if code != 200 || got != want {
			t.Fatalf("%s batch:\n got %d %s\nwant 200 %s", round, code, got, want)
		}
	}
	for id, want := range map[string]State{"t1": StateCommitted, "t2": StateAborted, "t3": StateCommitted, "t4": StateAborted, "f1": StateAborted, "nope": StateUnknown} {
		expectStatus(t, p, id, want)
	}
	if got := svc.String(); got != "t1=applied t2=released t3=applied t4=released committed=2 notes=[]" {
		t.Fatalf("service: %s", got)
	}
	code, got, _ := post(t, srv.URL+"/prepare", `{"txn_id":"f1","payload":{}}`)
	if code != 200 || got != `{"vote":"NACK","reason":"fenced: rolled back before prepare"}` {
		t.Fatalf("late prepare of a fenced id: %d %s", code, got)
	}
}

// An op with a bad txn id gets that id's 400 as its result; the others are applied.
func TestBatchInvalidTxnIDIsThatOpsError(t *testing.T) {
	m := newMemLog(testConfig())
	p, _ := m.open(t)
	defer p.Close()
	srv := httptest.NewServer(NewHandler(p, HandlerOptions{Logger: discardLogger()}))
	defer srv.Close()
	a := &answer{}
	if got := sync1(t, a, func() { prepare(p, a, "t1", `{}`) }); got != "prepare t1: ACK" {
		t.Fatal(got)
	}
	body := `{"ops":[{"op":"commit","txn_id":""},{"op":"commit","txn_id":"t1"},{"op":"rollback","txn_id":"a\u0001b"},` +
		`{"op":"rollback","txn_id":"` + strings.Repeat("x", 257) + `"},{"op":"rollback","txn_id":"f1"}]}`
	want := `{"results":[{"error":{"code":"missing_field","message":"txn_id is required"}},{"state":"committed"},` +
		`{"error":{"code":"invalid_field","message":"txn_id: invalid transaction id: contains control character U+0001"}},` +
		`{"error":{"code":"invalid_field","message":"txn_id: invalid transaction id: 257 bytes, at most 256"}},{"state":"aborted"}]}`
	code, got, _ := post(t, srv.URL+"/batch", body)
	if code != 200 || got != want {
		t.Fatalf("batch:\n got %d %s\nwant 200 %s", code, got, want)
	}
	expectStatus(t, p, "t1", StateCommitted)
	expectStatus(t, p, "f1", StateAborted)
	expectStatus(t, p, "a\x01b", StateUnknown)
}

// A participant that cannot answer (here: closed) gives every op the 503's error.
func TestBatchUnavailable(t *testing.T) {
	m := newMemLog(testConfig())
	p, _ := m.open(t)
	h := NewHandler(p, HandlerOptions{Logger: discardLogger()})
	p.Close()
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest(http.MethodPost, "/batch", strings.NewReader(batchBody("commit:t1", "rollback:t2"))))
	want := `{"results":[{"error":{"code":"unavailable","message":"participant: closed"}},{"error":{"code":"unavailable","message":"participant: closed"}}]}` + "\n"
	if w.Code != 200 || w.Body.String() != want {
		t.Fatalf("got %d %s, want 200 %s", w.Code, w.Body, want)
	}
}

// A request that is wrong as a whole is refused, and none of its ops is applied.
func TestBatchRefusedWhole(t *testing.T) {
	m := newMemLog(testConfig())
	p, _ := m.open(t)
	defer p.Close()
	srv := httptest.NewServer(NewHandler(p, HandlerOptions{BatchMaxOps: 3, Logger: discardLogger()}))
	defer srv.Close()
	a := &answer{}
	if got := sync1(t, a, func() { prepare(p, a, "p1", `{}`) }); got != "prepare p1: ACK" {
		t.Fatal(got)
	}
	// Every body commits p1 and rolls back (fences) f1 first, if it gets that far.
	const good = `{"op":"commit","txn_id":"p1"},{"op":"rollback","txn_id":"f1"}`
	limit := protocol.BatchBodyMaxBytes(3, testConfig().TxnIDMaxBytes)
	for _, tt := range []struct {
		name, body string
		wantCode   int
		wantBody   string
	}{
		{"malformed JSON", `{"ops":[` + good, 400, `{"error":{"code":"malformed_json","message":"body ends in the middle of the JSON object"}}`},
		{"not JSON", `{"ops":[` + good + `,}]}`, 400, `"code":"malformed_json","message":"invalid JSON at byte`},
		{"empty body", ``, 400, `{"error":{"code":"malformed_json","message":"empty body: expected a JSON object"}}`},
		{"trailing data", `{"ops":[` + good + `]}{}`, 400, `"message":"unexpected data after the JSON object"`},
		{"unknown op", `{"ops":[` + good + `,{"op":"frob","txn_id":"x"}]}`, 400, `{"error":{"code":"invalid_field","message":"ops[2].op: unknown op \"frob\", want \"commit\" or \"rollback\""}}`},
		{"op in capitals", `{"ops":[` + good + `,{"op":"COMMIT","txn_id":"x"}]}`, 400, `"message":"ops[2].op: unknown op \"COMMIT\"`},
		{"op missing", `{"ops":[` + good + `,{"txn_id":"x"}]}`, 400, `{"error":{"code":"missing_field","message":"ops[2].op is required"}}`},
		{"op not a string", `{"ops":[` + good + `,{"op":1,"txn_id":"x"}]}`, 400, `"code":"invalid_field","message":"ops.op: expected string, got JSON number"`},
		{"ops empty", `{"ops":[]}`, 400, `{"error":{"code":"invalid_field","message":"ops is empty: a batch needs at least one op"}}`},
		{"ops missing", `{}`, 400, `{"error":{"code":"missing_field","message":"ops is required"}}`},
		{"ops null", `{"ops":null}`, 400, `{"error":{"code":"missing_field","message":"ops is required"}}`},
		{"ops not a list", `{"ops":{}}`, 400, `"code":"invalid_field"`},
		{"too many ops", `{"ops":[` + good + `,{"op":"commit","txn_id":"x"},{"op":"commit","txn_id":"y"}]}`, 400,
			`{"error":{"code":"invalid_field","message":"ops: 4 ops, at most 3 (Dtc-Batch-Max)"}}`},
		{"unknown field", `{"ops":[` + good + `],"mode":"fast"}`, 400, `{"error":{"code":"unknown_field","message":"unknown field \"mode\""}}`},
		{"unknown field in an op", `{"ops":[` + good + `,{"op":"commit","txn_id":"x","payload":{}}]}`, 400, `{"error":{"code":"unknown_field","message":"unknown field \"payload\""}}`},
		{"body too large", `{"ops":[` + good + strings.Repeat(" ", int(limit)) + `]}`, 413,
			fmt.Sprintf(`{"error":{"code":"body_too_large","message":"request body larger than %d bytes (3 ops at most)"}}`, limit)},
	} {
		t.Run(tt.name, func(t *testing.T) {
			code, got, header := post(t, srv.URL+"/batch", tt.body)
			if code != tt.wantCode || !strings.Contains(got, tt.wantBody) {
				t.Fatalf("%s\n got %d %s\nwant %d …%s…", tt.body, code, got, tt.wantCode, tt.wantBody)
			}
			if header != "3" {
				t.Fatalf("%s: %q", HeaderBatchMax, header)
			}
			expectStatus(t, p, "p1", StatePrepared)
			expectStatus(t, p, "f1", StateUnknown)
			if st := p.Stats(); st.Prepared != 1 || st.Decided != 0 || st.Inflight != 0 {
				t.Fatalf("stats %+v", st)
			}
		})
	}
	// The same ops, well formed, and exactly as many as allowed, go through.
	code, got, _ := post(t, srv.URL+"/batch", `{"ops":[`+good+`,{"op":"commit","txn_id":"p1"}]}`)
	if want := `{"results":[{"state":"committed"},{"state":"aborted"},{"state":"committed"}]}`; code != 200 || got != want {
		t.Fatalf("got %d %s, want 200 %s", code, got, want)
	}
}

func TestBatchMethodNotAllowed(t *testing.T) {
	m := newMemLog(testConfig())
	p, _ := m.open(t)
	defer p.Close()
	srv := httptest.NewServer(NewHandler(p, HandlerOptions{BasePath: "/bank", Logger: discardLogger()}))
	defer srv.Close()
	for _, method := range []string{http.MethodGet, http.MethodPut, http.MethodHead} {
		req, err := http.NewRequest(method, srv.URL+"/bank/batch", nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 405 || resp.Header.Get("Allow") != "POST" || resp.Header.Get(HeaderBatchMax) != "1024" {
			t.Fatalf("%s /bank/batch: %d %v %s", method, resp.StatusCode, resp.Header, body)
		}
		if method != http.MethodHead && !strings.Contains(string(body), `"code":"method_not_allowed"`) {
			t.Fatalf("%s /bank/batch: %s", method, body)
		}
	}
}

// Every answer carries HeaderBatchMax: the fast paths' (a prepare's ACK, a commit's 200),
// the others' (a NACK, a 409, status, a 400, a batch).
func TestBatchMaxHeaderOnEveryAnswer(t *testing.T) {
	m := newMemLog(testConfig())
	p, _ := m.open(t)
	defer p.Close()
	for _, tt := range []struct {
		maxOps int
		want   string
	}{{0, "1024"}, {1, "1"}, {50, "50"}} {
		srv := httptest.NewServer(NewHandler(p, HandlerOptions{BatchMaxOps: tt.maxOps, Logger: discardLogger()}))
		id := fmt.Sprintf("h%d", tt.maxOps)
		for _, c := range []struct{ method, path, body, wantBody string }{
			{"POST", "/prepare", `{"txn_id":"` + id + `"}`, `{"vote":"ACK"}`},
			{"POST", "/prepare", `{"txn_id":"` + id + `n","payload":{"nack":"no"}}`, `{"vote":"NACK","reason":"no"}`},
			{"GET", "/status?txn_id=" + id, ``, `{"state":"prepared"}`},
			{"POST", "/commit", `{"txn_id":"` + id + `"}`, `{"state":"committed"}`},
			{"POST", "/commit", `{ "txn_id": "` + id + `" }`, `{"state":"committed"}`}, // not the fast path
			{"POST", "/rollback", `{"txn_id":"` + id + `"}`, `{"state":"committed"}`},  // 409
			{"POST", "/rollback", `{"txn_id":"` + id + `r"}`, `{"state":"aborted"}`},
			{"POST", "/batch", batchBody("commit:" + id), `{"results":[{"state":"committed"}]}`},
			{"POST", "/commit", `{"txn_id":""}`, `"code":"missing_field"`},
			{"GET", "/commit", ``, `"code":"method_not_allowed"`},
		} {
			req, err := http.NewRequest(c.method, srv.URL+c.path, strings.NewReader(c.body))
			if err != nil {
				t.Fatal(err)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if !strings.Contains(string(body), c.wantBody) {
				t.Fatalf("%s %s %s: %d %s, want …%s…", c.method, c.path, c.body, resp.StatusCode, body, c.wantBody)
			}
			if got := resp.Header.Values(HeaderBatchMax); !slices.Equal(got, []string{tt.want}) {
				t.Fatalf("%s %s %s: %s %q, want %q", c.method, c.path, c.body, HeaderBatchMax, got, tt.want)
			}
		}
		srv.Close()
	}
}

// serveAsync runs one request through h on its own goroutine; the recorder is on the
// channel once the handler has returned.
func serveAsync(ctx context.Context, h http.Handler, path, body string) <-chan *httptest.ResponseRecorder {
	done := make(chan *httptest.ResponseRecorder, 1)
	go func() {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest(http.MethodPost, path, strings.NewReader(body)).WithContext(ctx))
		done <- w
	}()
	return done
}

// A batch is answered only when every op's record is durable; its records are not
// urgent, as the single endpoints' are not.
func TestBatchAnsweredWhenDurable(t *testing.T) {
	p, st, _ := newManual(t, testConfig())
	h := NewHandler(p, HandlerOptions{Logger: discardLogger()})
	a := &answer{}
	prepare(p, a, "t1", `{}`)
	prepare(p, a, "t2", `{}`)
	st.persist(t, 2)
	expectAnswers(t, a, "prepare t1: ACK", "prepare t2: ACK")

	done := serveAsync(context.Background(), h, "/batch", batchBody("commit:t1", "rollback:t2", "rollback:t3", "commit:t1"))
	for st.npending() < 3 {
		runtime.Gosched()
	}
	if got := st.urgency(); !slices.Equal(got, []string{"commit:lazy", "rollback:lazy", "fence:lazy"}) {
		t.Fatalf("records: %q", got)
	}
	for _, persist := range []int{0, 1, 1} {
		st.persist(t, persist)
		select {
		case w := <-done:
			t.Fatalf("answered before every record was durable: %d %s", w.Code, w.Body)
		default:
		}
	}
	expectStatus(t, p, "t1", StateCommitted)
	expectStatus(t, p, "t2", StateAborted)
	expectStatus(t, p, "t3", StateUnknown) // its fence is still on its way
	st.persist(t, 1)
	w := <-done
	want := `{"results":[{"state":"committed"},{"state":"aborted"},{"state":"aborted"},{"state":"committed"}]}` + "\n"
	if w.Code != 200 || w.Body.String() != want {
		t.Fatalf("got %d %s, want 200 %s", w.Code, w.Body, want)
	}
}

// A batch whose client goes away leaves its waiters behind: their late answers must not
// reach later requests.
func TestBatchAbandonedWait(t *testing.T) {
	p, st, _ := newManual(t, testConfig())
	h := NewHandler(p, HandlerOptions{Logger: discardLogger()})
	a := &answer{}
	prepare(p, a, "t1", `{}`)
	st.persist(t, 1)
	ctx, cancel := context.WithCancel(context.Background())
	done := serveAsync(ctx, h, "/batch", batchBody("commit:t1", "rollback:t2"))
	for st.npending() < 2 {
		runtime.Gosched()
	}
	cancel()
	if w := <-done; w.Body.Len() != 0 {
		t.Fatalf("answered a request that went away: %d %s", w.Code, w.Body)
	}
	st.persist(t, 2) // the answers go to the abandoned waiters
	for range 3 {
		w := <-serveAsync(context.Background(), h, "/batch", batchBody("commit:t9", "rollback:t1", "commit:t1"))
		want := `{"results":[{"state":"unknown","conflict":true},{"state":"committed","conflict":true},{"state":"committed"}]}` + "\n"
		if w.Code != 200 || w.Body.String() != want {
			t.Fatalf("got %d %s, want 200 %s", w.Code, w.Body, want)
		}
	}
}

// Ops answered before a crash are durable after it; ops of a batch whose records were
// lost were never answered.
func TestBatchCrash(t *testing.T) {
	cfg := testConfig()
	fs := wal.NewMemFS()
	opts := wal.Options{FS: fs, Dir: "p", SegmentSizeBytes: 4096}
	p, err := New(cfg, newTestService(), newFakeClock())
	if err != nil {
		t.Fatal(err)
	}
	l, err := wal.Open(opts, p.Replay)
	if err != nil {
		t.Fatal(err)
	}
	st := &steppedStore{log: l}
	startSync(t, p, st)
	a := &answer{}
	for _, id := range []string{"t1", "t2", "t3", "t4"} {
		prepare(p, a, id, `{}`)
	}
	st.sync()
	expectAnswers(t, a, "prepare t1: ACK", "prepare t2: ACK", "prepare t3: ACK", "prepare t4: ACK")
	h := NewHandler(p, HandlerOptions{Logger: discardLogger()})

	first := serveAsync(context.Background(), h, "/batch", batchBody("commit:t1", "rollback:t2", "rollback:f1"))
	for st.nwaiting() < 3 {
		runtime.Gosched()
	}
	st.sync()
	w := <-first
	if want := `{"results":[{"state":"committed"},{"state":"aborted"},{"state":"aborted"}]}` + "\n"; w.Code != 200 || w.Body.String() != want {
		t.Fatalf("first batch: %d %s, want 200 %s", w.Code, w.Body, want)
	}
	ctx, cancel := context.WithCancel(context.Background())
	second := serveAsync(ctx, h, "/batch", batchBody("commit:t3", "rollback:t4", "rollback:f2"))
	for st.nwaiting() < 3 {
		runtime.Gosched()
	}
	fs.Crash() // before the second batch's records are synced
	cancel()
	if w := <-second; w.Body.Len() != 0 {
		t.Fatalf("second batch answered before its records were durable: %d %s", w.Code, w.Body)
	}

	svc2 := newTestService()
	p2, err := OpenSync(cfg, svc2, newFakeClock(), opts)
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	defer p2.Close()
	for id, want := range map[string]State{"t1": StateCommitted, "t2": StateAborted, "f1": StateAborted, "t3": StatePrepared, "t4": StatePrepared, "f2": StateUnknown} {
		expectStatus(t, p2, id, want)
	}
	checkServiceMatches(t, p2, svc2)
	if got := sync1(t, a, func() { prepare(p2, a, "f1", `{}`) }); got != "prepare f1: NACK fenced: rolled back before prepare" {
		t.Fatalf("late prepare after restart: %s", got)
	}
}

func (s *steppedStore) nwaiting() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.waiting)
}

// parseBatchRequest, where it answers, must read the same ops as the strict decoder.
func TestParseBatchRequestAgreesWithDecoder(t *testing.T) {
	for _, body := range []string{
		`{"ops":[{"op":"commit","txn_id":"a@1"}]}`,
		`{"ops":[{"op":"commit","txn_id":"a@1"},{"op":"rollback","txn_id":"é€😀"}]}` + "\n",
		`{"ops":[{"op":"commit","txn_id":""}]}`,
		`{"ops":[{"op":"commit","txn_id":"a\"b"}]}`,
		`{"ops":[{"op":"commit","txn_id":"a\\b"}]}`,
		`{"ops":[{"op":"commit","txn_id":"a\u0041"}]}`,
		"{\"ops\":[{\"op\":\"commit\",\"txn_id\":\"a\tb\"}]}",
		"{\"ops\":[{\"op\":\"commit\",\"txn_id\":\"a\xffb\"}]}",
		`{"ops":[{"op":"frob","txn_id":"a"}]}`,
		`{"ops":[{"op":"commit","txn_id":"a","x":1}]}`,
		`{"ops":[{"txn_id":"a","op":"commit"}]}`,
		`{"ops":[{"op":"commit","txn_id":"a"},]}`,
		`{"ops":[{"op":"commit","txn_id":"a"}]`,
		`{"ops":[{"op":"commit","txn_id":"a"}]} `,
		`{"ops":[{"op":"commit","txn_id":"a"}]}{}`,
		`{"ops":[{"op":"commit","txn_id":"a"}],"x":1}`,
		`{"ops":[{"op":"commit","txn_id":"a"}{"op":"commit","txn_id":"b"}]}`,
		`{"ops":[{"op":"commit","txn_id":"a"} ]}`,
		`{"ops":[]}`,
		`{"ops":[`,
		`{"ops":[{"op":"commit","txn_id":"}]}`,
		``,
	} {
		ops, ok := parseBatchRequest([]byte(body), nil, 4)
		if !ok {
			continue
		}
		var req BatchRequest
		dec := json.NewDecoder(strings.NewReader(body))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&req); err != nil {
			t.Errorf("%q: fast path read %v, decoder refuses it: %v", body, ops, err)
			continue
		}
		if dec.More() {
			t.Errorf("%q: fast path read %v, decoder finds trailing data", body, ops)
		}
		if !reflect.DeepEqual(req.Ops, ops) {
			t.Errorf("%q: fast path read %v, decoder %v", body, ops, req.Ops)
		}
	}
	full := batchBody("commit:a", "rollback:b", "commit:c", "rollback:d")
	if ops, ok := parseBatchRequest([]byte(full), nil, 4); !ok || len(ops) != 4 {
		t.Errorf("%s: fast path refused (%v)", full, ops)
	}
	over := batchBody("commit:a", "rollback:b", "commit:c", "rollback:d", "commit:e")
	if ops, ok := parseBatchRequest([]byte(over), nil, 4); ok {
		t.Errorf("%s: fast path read %d ops, more than its maximum", over, len(ops))
	}
}

// appendBatchResponse writes what json.Marshal writes.
func TestAppendBatchResponseAgreesWithMarshal(t *testing.T) {
	results := []BatchResult{
		{State: StateCommitted},
		{State: StateAborted},
		{State: StateUnknown, Conflict: true},
		{State: StatePrepared},
		{Error: &ErrorBody{Code: CodeUnavailable, Message: `participant: log failed: <disk> "full" & \ é` + "\n\u2028"}},
		{Error: &ErrorBody{}},
	}
	for n := range len(results) + 1 {
		want, err := json.Marshal(BatchResponse{Results: results[:n]})
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			want = []byte(`{"results":[]}`) // a nil slice would be null; the handler never writes none
		}
		got := appendBatchResponse(nil, results[:n])
		if !bytes.Equal(got, append(want, '\n')) {
			t.Errorf("%d results:\n got %s\nwant %s", n, got, want)
		}
	}
}
