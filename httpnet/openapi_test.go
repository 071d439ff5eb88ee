package httpnet_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"

	"github.com/dtc-project/dtc/api"
)

// Every API test serves its coordinator through validated (helpers_test.go, coord.start):
// each request the tests make and each answer they get is checked against
// api/openapi.yaml, so the description cannot drift from the server.

var openAPI = sync.OnceValues(func() (routers.Router, error) {
	doc, err := openapi3.NewLoader().LoadFromData(api.OpenAPIJSON)
	if err != nil {
		return nil, err
	}
	if err := doc.Validate(context.Background()); err != nil {
		return nil, err
	}
	doc.Servers = nil // the tests' servers listen on ports of their own
	return gorillamux.NewRouter(doc)
})

// responseCopy passes an answer on and keeps a copy of it.
type responseCopy struct {
	http.ResponseWriter
	status int
	body   bytes.Buffer
}

func (w *responseCopy) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *responseCopy) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	w.body.Write(b)
	return w.ResponseWriter.Write(b)
}

// validated checks every request to next and its answer against the OpenAPI description,
// failing t for each that does not match. The request is judged only when it was
// accepted (2xx): a refused one is expected not to match.
func validated(t testing.TB, next http.Handler) http.Handler {
	router, err := openAPI()
	if err != nil {
		t.Fatalf("api/openapi.json: %v", err)
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		reqBody, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(reqBody))
		rc := &responseCopy{ResponseWriter: w}
		next.ServeHTTP(rc, r)
		if rc.status == 0 {
			return // the client went away: no answer to judge
		}
		// The request as it arrived, for the validator to read again.
		vr := r.Clone(context.Background())
		vr.Body = io.NopCloser(bytes.NewReader(reqBody))
		what := r.Method + " " + r.URL.RequestURI()
		route, params, err := router.FindRoute(vr)
		if err != nil {
			// Not in the description: it must be the API's 404 no_route or 405.
			var e struct {
				Error struct{ Code, Message string }
			}
			if jerr := json.Unmarshal(rc.body.Bytes(), &e); r.Method != http.MethodHead &&
				(jerr != nil || !(rc.status == 404 && e.Error.Code == "no_route" || rc.status == 405 && e.Error.Code == "method_not_allowed")) {
				t.Errorf("openapi: %s is not described (%v), but was answered %d %s", what, err, rc.status, rc.body.String())
			}
			return
		}
		in := &openapi3filter.RequestValidationInput{Request: vr, PathParams: params, Route: route,
			Options: &openapi3filter.Options{IncludeResponseStatus: true, MultiError: true,
				AuthenticationFunc: openapi3filter.NoopAuthenticationFunc}}
		if rc.status/100 == 2 {
			if err := openapi3filter.ValidateRequest(context.Background(), in); err != nil {
				t.Errorf("openapi: %s was accepted (%d) but does not match the description: %v\nbody: %.300s", what, rc.status, err, reqBody)
			}
		}
		out := &openapi3filter.ResponseValidationInput{RequestValidationInput: in, Status: rc.status,
			Header: rc.Header(), Body: io.NopCloser(bytes.NewReader(rc.body.Bytes())), Options: in.Options}
		if ct := rc.Header().Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
			out.Options = &openapi3filter.Options{IncludeResponseStatus: true, ExcludeResponseBody: true}
		}
		if err := openapi3filter.ValidateResponse(context.Background(), out); err != nil {
			t.Errorf("openapi: the answer to %s does not match the description: %v\n%d %.500s", what, err, rc.status, rc.body.String())
		}
	})
}

// errorsOf is a testing.TB that keeps the errors reported to it.
type errorsOf struct {
	testing.TB
	mu   sync.Mutex
	errs []string
}

func (e *errorsOf) Errorf(format string, args ...any) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.errs = append(e.errs, fmt.Sprintf(format, args...))
}

// The validator is not a rubber stamp: answers and accepted requests that stray from
// the description are reported.
func TestOpenAPIValidatorCatchesDrift(t *testing.T) {
	view := `{"id":"a","txn_id":"a@1","state":"committed","participants":[{"url":"http://p/prepare","acked":true}],"phase2_done":true,"began_at":"2026-01-02T03:04:05Z"}`
	cases := []struct {
		name, method, path, body string
		status                   int
		answer                   string
		wantErr                  string // "" when it must pass
	}{
		{"good view", "GET", "/v1/transactions/a", "", 200, view, ""},
		{"unknown state", "GET", "/v1/transactions/a", "", 200, strings.Replace(view, "committed", "done", 1), "state"},
		{"field not described", "GET", "/v1/transactions/a", "", 200, strings.Replace(view, `"id":"a"`, `"id":"a","extra":1`, 1), "extra"},
		{"undocumented status", "GET", "/v1/transactions/a", "", 418, `{"error":{"code":"internal","message":"x"}}`, "418"},
		{"unknown error code", "GET", "/v1/transactions/a", "", 404, `{"error":{"code":"gone","message":"x"}}`, "code"},
		{"accepted bad request", "POST", "/v1/transactions", `{"participants":[],"nope":1}`, 200, view, "request"},
		{"refused bad request", "POST", "/v1/transactions", `{"participants":[],"nope":1}`, 400, `{"error":{"code":"unknown_field","message":"x"}}`, ""},
		{"path not described", "GET", "/v2/x", "", 200, `{}`, "not described"},
		{"no_route", "GET", "/v2/x", "", 404, `{"error":{"code":"no_route","message":"x"}}`, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rec := &errorsOf{TB: t}
			h := validated(rec, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(tc.status)
				io.WriteString(w, tc.answer)
			}))
			req := httptest.NewRequest(tc.method, "http://127.0.0.1:1"+tc.path, strings.NewReader(tc.body))
			req.Header.Set("Content-Type", "application/json")
			h.ServeHTTP(httptest.NewRecorder(), req)
			got := strings.Join(rec.errs, "\n")
			switch {
			case tc.wantErr == "" && got != "":
				t.Fatalf("want no error, got %s", got)
			case tc.wantErr != "" && !strings.Contains(got, tc.wantErr):
				t.Fatalf("want an error mentioning %q, got %q", tc.wantErr, got)
			}
		})
	}
}

// The operator's endpoints answer as described (validated checks every answer).
func TestOperatorEndpoints(t *testing.T) {
	c := startCoord(t, "", nil)
	c.waitReady()
	for _, p := range []string{"/v1/stats", "/v1/openapi.json", "/ui/", "/ui/app.js", "/ui/style.css", "/healthz", "/readyz", "/metrics"} {
		if st, body := get(t, c.url+p); st != 200 {
			t.Errorf("GET %s: %d %.200s", p, st, body)
		}
	}
	st, body := get(t, c.url+"/v1/openapi.json")
	if st != 200 || body != string(api.OpenAPIJSON) {
		t.Errorf("GET /v1/openapi.json does not serve api/openapi.json: %d", st)
	}
	for _, p := range []string{"/ui/nope.js", "/ui/../server.go"} {
		if st, _ := get(t, c.url+p); st != 404 {
			t.Errorf("GET %s: %d, want 404", p, st)
		}
	}
	if st, _ := get(t, c.url+"/v1/stats?x=1"); st != 400 {
		t.Errorf("GET /v1/stats?x=1: %d, want 400", st)
	}
}
