package participant

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"
)

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

func TestHandler(t *testing.T) {
	m := newMemLog(testConfig())
	p, _ := m.open(t)
	defer p.Close()
	srv := httptest.NewServer(NewHandler(p, HandlerOptions{BodyMaxBytes: 400, Logger: discardLogger()}))
	defer srv.Close()

	tests := []struct {
		name, method, path, body string
		wantCode                 int
		wantBody                 string // a substring of the answer
	}{
		{"prepare", "POST", "/prepare", `{"txn_id":"t1","payload":{"a":1},"coordinator":"http://127.0.0.1:7070"}`, 200, `{"vote":"ACK"}`},
		{"prepare again", "POST", "/prepare", `{"txn_id":"t1","payload":{"a":1}}`, 200, `{"vote":"ACK"}`},
		{"prepare NACK", "POST", "/prepare", `{"txn_id":"t2","payload":{"nack":"no money"}}`, 200, `{"vote":"NACK","reason":"no money"}`},
		{"prepare without payload", "POST", "/prepare", `{"txn_id":"t3"}`, 200, `{"vote":"ACK"}`},
		{"status prepared", "GET", "/status?txn_id=t1", ``, 200, `{"state":"prepared"}`},
		{"commit", "POST", "/commit", `{"txn_id":"t1"}`, 200, `{"state":"committed"}`},
		{"commit again", "POST", "/commit", `{"txn_id":"t1"}`, 200, `{"state":"committed"}`},
		{"rollback after commit", "POST", "/rollback", `{"txn_id":"t1"}`, 409, `{"state":"committed"}`},
		{"commit unknown", "POST", "/commit", `{"txn_id":"nope"}`, 409, `{"state":"unknown"}`},
		{"rollback unknown fences", "POST", "/rollback", `{"txn_id":"t4"}`, 200, `{"state":"aborted"}`},
		{"late prepare", "POST", "/prepare", `{"txn_id":"t4","payload":{}}`, 200, `{"vote":"NACK","reason":"fenced: rolled back before prepare"}`},
		{"commit after abort", "POST", "/commit", `{"txn_id":"t4"}`, 409, `{"state":"aborted"}`},
		{"status unknown", "GET", "/status?txn_id=zzz", ``, 200, `{"state":"unknown"}`},

		{"malformed JSON", "POST", "/prepare", `{"txn_id":`, 400, `"code":"malformed_json"`},
		{"not an object", "POST", "/commit", `[1,2]`, 400, `"code":"invalid_field"`},
		{"wrong type", "POST", "/commit", `{"txn_id":7}`, 400, `"message":"txn_id: expected string`},
		{"empty body", "POST", "/rollback", ``, 400, `empty body`},
		{"trailing data", "POST", "/commit", `{"txn_id":"t1"} {}`, 400, `unexpected data after the JSON object`},
		{"missing txn_id", "POST", "/prepare", `{"payload":{}}`, 400, `"code":"missing_field","message":"txn_id is required"`},
		{"empty txn_id", "POST", "/commit", `{"txn_id":""}`, 400, `"code":"missing_field"`},
		{"control character in txn_id", "POST", "/commit", `{"txn_id":"a\u0001b"}`, 400, `"code":"invalid_field","message":"txn_id: invalid transaction id: contains control character`},
		{"txn_id too long", "POST", "/commit", `{"txn_id":"` + strings.Repeat("x", 257) + `"}`, 400, `"message":"txn_id: invalid transaction id: 257 bytes, at most 256"`},
		{"unknown field", "POST", "/commit", `{"txn_id":"t5","paylod":{}}`, 400, `"code":"unknown_field","message":"unknown field \"paylod\""`},
		{"bad coordinator", "POST", "/prepare", `{"txn_id":"t5","coordinator":"ftp://x"}`, 400, `"code":"invalid_field","message":"coordinator:`},
		{"oversized body", "POST", "/prepare", `{"txn_id":"t6","payload":"` + strings.Repeat("x", 500) + `"}`, 413, `"code":"body_too_large"`},
		{"status without txn_id", "GET", "/status", ``, 400, `"code":"missing_field"`},
		{"wrong method", "GET", "/prepare", ``, 405, `"code":"method_not_allowed"`},
		{"POST status", "POST", "/status?txn_id=t1", ``, 405, `"code":"method_not_allowed"`},
		{"unknown endpoint", "POST", "/frobnicate", `{}`, 404, `"code":"not_found"`},
		{"nested path", "POST", "/x/prepare", `{}`, 404, `"code":"not_found"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := http.NewRequest(tt.method, srv.URL+tt.path, strings.NewReader(tt.body))
			if err != nil {
				t.Fatal(err)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tt.wantCode || !strings.Contains(string(body), tt.wantBody) {
				t.Fatalf("%s %s %s\n got %d %s\nwant %d …%s…", tt.method, tt.path, tt.body, resp.StatusCode, body, tt.wantCode, tt.wantBody)
			}
			if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
				t.Fatalf("Content-Type %q", ct)
			}
		})
	}
}

func TestHandlerBasePath(t *testing.T) {
	m := newMemLog(testConfig())
	p, _ := m.open(t)
	defer p.Close()
	srv := httptest.NewServer(NewHandler(p, HandlerOptions{BasePath: "/bank", Logger: discardLogger()}))
	defer srv.Close()
	prepareURL := srv.URL + "/bank/prepare"
	statusURL, err := Endpoint(prepareURL, EndpointStatus)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Post(prepareURL, "application/json", strings.NewReader(`{"txn_id":"t1"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	resp, err = http.Get(statusURL + "?txn_id=t1")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != `{"state":"prepared"}`+"\n" {
		t.Fatalf("status: %s", body)
	}
}

func TestEndpoint(t *testing.T) {
	for _, tt := range []struct{ in, name, want string }{
		{"http://h:9001/prepare", "commit", "http://h:9001/commit"},
		{"http://h:9001/bank/prepare", "status", "http://h:9001/bank/status"},
		{"http://h:9001", "rollback", "http://h:9001/rollback"},
		{"http://h:9001/a/prepare?x=1#f", "commit", "http://h:9001/a/commit"},
		{"/prepare", "commit", "error"},
		{"http://h:9001/%zz", "commit", "error"},
	} {
		got, err := Endpoint(tt.in, tt.name)
		if err != nil {
			got = "error"
		}
		if got != tt.want {
			t.Errorf("Endpoint(%q, %q) = %q, want %q", tt.in, tt.name, got, tt.want)
		}
	}
}

// The handler checks a coordinator URL once and shares its string; every prepare must
// still get its own coordinator, and a bad one its 400.
func TestHandlerCoordinators(t *testing.T) {
	m := newMemLog(testConfig())
	p, _ := m.open(t)
	defer p.Close()
	h := NewHandler(p, HandlerOptions{Logger: discardLogger()})
	const a, b = "http://127.0.0.1:7070", "https://coord.example:7071/base"
	for _, tt := range []struct {
		id, coordinator string
		wantCode        int
	}{
		{"t1", a, 200}, {"t2", b, 200}, {"t3", "http://127.0.0.1:7070?x=1", 400}, {"t4", a, 200},
		{"t5", "", 200}, {"t6", "ftp://" + a[len("http://"):], 400}, {"t7", b, 200}, {"t8", a + "#f", 400},
	} {
		body := `{"txn_id":"` + tt.id + `"}`
		if tt.coordinator != "" {
			body = `{"txn_id":"` + tt.id + `","coordinator":"` + tt.coordinator + `"}`
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest(http.MethodPost, "/prepare", strings.NewReader(body)))
		if w.Code != tt.wantCode {
			t.Fatalf("%s: %d %s, want %d", body, w.Code, w.Body, tt.wantCode)
		}
	}
	m.clock.Advance(time.Hour)
	var got []string
	for _, d := range p.InDoubt(m.clock.Now()) {
		got = append(got, d.ID+" "+d.Coordinator)
	}
	want := []string{"t1 " + a, "t2 " + b, "t4 " + a, "t5 ", "t7 " + b}
	if !slices.Equal(got, want) {
		t.Fatalf("in doubt:\n got %q\nwant %q", got, want)
	}
}

// A request that goes away before its answer leaves its waiter behind: the late answer
// must not reach a later request.
func TestHandlerAbandonedWait(t *testing.T) {
	p, st, _ := newManual(t, testConfig())
	h := NewHandler(p, HandlerOptions{Logger: discardLogger()})
	serve := func(ctx context.Context, path, body string) *httptest.ResponseRecorder {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest(http.MethodPost, path, strings.NewReader(body)).WithContext(ctx))
		return w
	}
	gone, cancel := context.WithCancel(context.Background())
	cancel()
	for range 3 {
		serve(gone, "/prepare", `{"txn_id":"t1"}`) // waits for the prepare record
		serve(gone, "/commit", `{"txn_id":"t0"}`)  // a conflict, answered at once
	}
	st.persist(t, 1) // the prepare's ACK goes to the abandoned waiters
	for _, tt := range []struct{ path, body, want string }{
		{"/prepare", `{"txn_id":"t2","payload":{"nack":"no"}}`, `{"vote":"NACK","reason":"no"}`},
		{"/prepare", `{"txn_id":"t1"}`, `{"vote":"ACK"}`},
		{"/commit", `{"txn_id":"t3"}`, `{"state":"unknown"}`},
		{"/rollback", `{"txn_id":"t2"}`, `{"state":"aborted"}`}, // waits for its fence
	} {
		if tt.path == "/rollback" {
			go func() {
				for st.npending() == 0 {
					runtime.Gosched()
				}
				st.persist(t, 1)
			}()
		}
		w := serve(context.Background(), tt.path, tt.body)
		if got := strings.TrimSuffix(w.Body.String(), "\n"); got != tt.want {
			t.Fatalf("%s %s: %d %s, want %s", tt.path, tt.body, w.Code, got, tt.want)
		}
	}
}
