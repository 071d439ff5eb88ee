package main

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dtc-project/dtc/participant"
	"github.com/dtc-project/dtc/wal"
)

type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

type client struct {
	t    *testing.T
	base string
}

func (c client) do(method, path, body string) (int, string) {
	c.t.Helper()
	req, err := http.NewRequest(method, c.base+path, strings.NewReader(body))
	if err != nil {
		c.t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, strings.TrimSpace(string(data))
}

func (c client) expect(method, path, body string, wantCode int, wantBody string) {
	c.t.Helper()
	code, got := c.do(method, path, body)
	if code != wantCode || !strings.Contains(got, wantBody) {
		c.t.Fatalf("%s %s %s\n got %d %s\nwant %d …%s…", method, path, body, code, got, wantCode, wantBody)
	}
}

// The bank binary's handler end to end: the participant protocol, accounts, locks,
// hold_ms, in-doubt resolution and a restart on the same data.
func TestBankEndToEnd(t *testing.T) {
	fs := wal.NewMemFS()
	clock := &fakeClock{now: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)}
	var holds []time.Duration
	var holdErr error
	cfg := config{
		FS:           fs,
		DataDir:      "data/bank",
		Accounts:     map[string]int64{"alice": 100000, "bob": 100000},
		InDoubtAfter: time.Minute,
		Clock:        clock,
		Logger:       slog.New(slog.DiscardHandler),
		Wait: func(ctx context.Context, d time.Duration) error {
			holds = append(holds, d)
			return holdErr
		},
	}
	a, err := newApp(cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(a.handler)
	c := client{t, srv.URL}

	c.expect("GET", "/healthz", "", 200, `{"status":"ok"}`)
	c.expect("GET", "/accounts", "", 200,
		`{"accounts":[{"name":"alice","balance":100000,"reserved":0,"incoming":0,"available":100000,"locked":false,"version":0},`+
			`{"name":"bob","balance":100000,"reserved":0,"incoming":0,"available":100000,"locked":false,"version":0}],"total":200000}`)

	transfer := `{"ops":[{"account":"alice","amount":-100},{"account":"bob","amount":100}]}`
	c.expect("POST", "/prepare", `{"txn_id":"t1","payload":`+transfer+`}`, 200, `{"vote":"ACK"}`)
	c.expect("GET", "/status?txn_id=t1", "", 200, `{"state":"prepared"}`)
	c.expect("GET", "/accounts", "", 200, `{"name":"alice","balance":100000,"reserved":100,"incoming":0,"available":99900`)
	c.expect("POST", "/commit", `{"txn_id":"t1"}`, 200, `{"state":"committed"}`)
	c.expect("POST", "/commit", `{"txn_id":"t1"}`, 200, `{"state":"committed"}`)
	c.expect("GET", "/accounts", "", 200, `{"name":"alice","balance":99900,"reserved":0`)
	c.expect("GET", "/accounts", "", 200, `"total":200000`)

	c.expect("POST", "/prepare", `{"txn_id":"t2","payload":{"ops":[{"account":"alice","amount":-100000}]}}`, 200,
		`{"vote":"NACK","reason":"insufficient funds in \"alice\": available 99900, debit 100000"}`)
	c.expect("POST", "/prepare", `{"txn_id":"t2","payload":{"ops":[{"account":"zed","amount":1}]}}`, 200, `unknown account \"zed\"`)
	c.expect("POST", "/prepare", `{"txn_id":"t2","payload":{"ops":"all"}}`, 200, `"reason":"malformed payload`)

	c.expect("POST", "/accounts/bob/lock", "", 200, `{"name":"bob","balance":100100,"reserved":0,"incoming":0,"available":100100,"locked":true,"version":1}`)
	c.expect("POST", "/prepare", `{"txn_id":"t3","payload":`+transfer+`}`, 200, `account \"bob\" is locked`)
	c.expect("POST", "/accounts/bob/unlock", "", 200, `"locked":false`)
	c.expect("POST", "/accounts/zed/lock", "", 404, `"code":"not_found"`)
	c.expect("POST", "/prepare", `{"txn_id":"t3","payload":`+transfer+`}`, 200, `{"vote":"ACK"}`)
	c.expect("POST", "/rollback", `{"txn_id":"t3"}`, 200, `{"state":"aborted"}`)
	c.expect("POST", "/commit", `{"txn_id":"t3"}`, 409, `{"state":"aborted"}`)

	// Rollback before prepare fences the id.
	c.expect("POST", "/rollback", `{"txn_id":"t4"}`, 200, `{"state":"aborted"}`)
	c.expect("POST", "/prepare", `{"txn_id":"t4","payload":`+transfer+`}`, 200, `fenced: rolled back before prepare`)

	// hold_ms waits before the vote; a wait that is given up votes nothing.
	hold := `{"ops":[{"account":"alice","amount":-1},{"account":"bob","amount":1}],"hold_ms":250}`
	c.expect("POST", "/prepare", `{"txn_id":"t5","payload":`+hold+`}`, 200, `{"vote":"ACK"}`)
	holdErr = context.Canceled
	c.expect("POST", "/prepare", `{"txn_id":"t6","payload":`+hold+`}`, 503, `gave up holding the prepare`)
	c.expect("GET", "/status?txn_id=t6", "", 200, `{"state":"unknown"}`)
	if len(holds) != 2 || holds[0] != 250*time.Millisecond {
		t.Fatalf("holds %v", holds)
	}
	c.expect("POST", "/rollback", `{"txn_id":"t5"}`, 200, `{"state":"aborted"}`)

	// Malformed requests.
	// Unknown prepare fields are ignored (issue 16: a newer coordinator may send more).
	c.expect("POST", "/prepare", `{"txn_id":"t7","bogus":1}`, 200, `"reason":"malformed payload: empty`)
	c.expect("POST", "/commit", `{}`, 400, `"code":"missing_field"`)
	c.expect("POST", "/prepare", `{"txn_id":"t7","payload":"`+strings.Repeat("x", bodyMaxBytes)+`"}`, 413, `"code":"body_too_large"`)
	c.expect("GET", "/nope", "", 404, `"code":"not_found"`)

	// Left in doubt: the coordinator does not know t8 (presumed abort).
	coord := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusNotFound)
		json.NewEncoder(w).Encode(participant.ErrorResponse{Error: participant.ErrorBody{Code: "not_found", Message: "no such transaction"}})
	}))
	defer coord.Close()
	c.expect("POST", "/prepare", `{"txn_id":"t8","coordinator":"`+coord.URL+`","payload":`+transfer+`}`, 200, `{"vote":"ACK"}`)
	clock.advance(2 * time.Minute)
	res := a.resolver.ResolveOnce(context.Background())
	if len(res) != 1 || res[0].TxnID != "t8" || res[0].Outcome != participant.ResolvedRolledBack {
		t.Fatalf("resolver: %+v", res)
	}
	c.expect("GET", "/status?txn_id=t8", "", 200, `{"state":"aborted"}`)

	// Restart on the same data dir: state kept, --accounts ignored.
	c.expect("POST", "/accounts/alice/lock", "", 200, `"locked":true`)
	srv.Close()
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	cfg.Accounts = map[string]int64{"mallory": 1}
	a, err = newApp(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	srv = httptest.NewServer(a.handler)
	defer srv.Close()
	c = client{t, srv.URL}
	c.expect("GET", "/accounts", "", 200,
		`{"accounts":[{"name":"alice","balance":99900,"reserved":0,"incoming":0,"available":99900,"locked":true,"version":1},`+
			`{"name":"bob","balance":100100,"reserved":0,"incoming":0,"available":100100,"locked":false,"version":1}],"total":200000}`)
	c.expect("GET", "/status?txn_id=t1", "", 200, `{"state":"committed"}`)
	c.expect("POST", "/prepare", `{"txn_id":"t4","payload":`+transfer+`}`, 200, `fenced`)
}

func TestRunFlags(t *testing.T) {
	var out strings.Builder
	if err := run([]string{"--accounts", "alice"}, &out); err == nil || !strings.Contains(err.Error(), "--accounts") {
		t.Fatalf("run with bad --accounts: %v", err)
	}
	if err := run([]string{"--no-such-flag"}, &out); err == nil {
		t.Fatal("run accepted an unknown flag")
	}
	if err := run([]string{"--log-level", "loud"}, &out); err == nil {
		t.Fatal("run accepted a bad log level")
	}
	if err := run([]string{"extra"}, &out); err == nil {
		t.Fatal("run accepted an argument")
	}
}
