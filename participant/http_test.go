package participant

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
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
		{"unknown field", "POST", "/prepare", `{"txn_id":"t5","paylod":{}}`, 400, `"code":"unknown_field","message":"unknown field \"paylod\""`},
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
