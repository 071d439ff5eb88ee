package participant

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

const (
	testSecret  = "0123456789abcdef0123456789abcdef-test-secret"
	testSecret2 = "fedcba9876543210fedcba9876543210-next-secret"
)

func TestParseKeys(t *testing.T) {
	for _, tt := range []struct {
		name, file string
		want       []Key
		wantErr    string
	}{
		{"one bare secret", testSecret + "\n", []Key{{Secret: []byte(testSecret)}}, ""},
		{"ids, comments, blank lines", "# rotation\n\nk2 " + testSecret2 + "\n  k1\t" + testSecret + "  \n",
			[]Key{{ID: "k2", Secret: []byte(testSecret2)}, {ID: "k1", Secret: []byte(testSecret)}}, ""},
		{"empty", "\n# nothing\n", nil, "holds no key"},
		{"short secret", "tooshort\n", nil, "line 1: secret of 8 bytes, at least 32"},
		{"three fields", "a b c\n", nil, "line 1: 3 fields"},
		{"bad id", "k/1 " + testSecret + "\n", nil, "line 1: key id \"k/1\""},
		{"duplicate id", "k " + testSecret + "\nk " + testSecret2 + "\n", nil, "line 2: key id \"k\" given twice"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseKeys([]byte(tt.file))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want …%s…", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("got %d keys, want %d", len(got), len(tt.want))
			}
			for i := range got {
				if got[i].ID != tt.want[i].ID || !bytes.Equal(got[i].Secret, tt.want[i].Secret) {
					t.Fatalf("key %d: %q %q", i, got[i].ID, got[i].Secret)
				}
			}
		})
	}
}

// TestSignatureKnownAnswer pins the exact computation the package doc describes, so
// that a participant written in another language can check its implementation against
// it: the message and its MAC are spelled out here independently of writeSigned.
func TestSignatureKnownAnswer(t *testing.T) {
	s, err := NewSigner(Key{ID: "k1", Secret: []byte(testSecret)})
	if err != nil {
		t.Fatal(err)
	}
	s.now = func() time.Time { return time.Unix(1767225600, 0) }
	h := http.Header{}
	body := []byte(`{"txn_id":"t-1"}`)
	s.Sign(h, "POST", "Bank1.Example:9001", "/bank/commit", body)
	// printf 'v1\n1767225600\nPOST\nbank1.example:9001\n/bank/commit\n{"txn_id":"t-1"}' |
	//   openssl dgst -sha256 -hmac '0123456789abcdef0123456789abcdef-test-secret'
	const want = "v1=3a4956e8aa595d4f8ac3ee08d307a875fccb43c670011c312be04d3740f6b34f"
	if h.Get(HeaderTimestamp) != "1767225600" || h.Get(HeaderKeyID) != "k1" {
		t.Fatalf("headers %v", h)
	}
	if got := h.Get(HeaderSignature); got != want {
		t.Fatalf("%s: %s, want %s", HeaderSignature, got, want)
	}
}

// signedRequest is a request to url signed by s (nil: not signed).
func signedRequest(t testing.TB, s *Signer, method, url, body string) *http.Request {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	if s != nil {
		s.SignRequest(req, []byte(body))
	}
	return req
}

func do(t testing.TB, req *http.Request) (int, string) {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

// signedHandler serves a participant whose Auth takes keys, and the coordinator
// http://coord.test:7070 only.
func signedHandler(t *testing.T, keys []Key) (*Participant, *testService, *Auth, *httptest.Server) {
	m := newMemLog(testConfig())
	p, svc := m.open(t)
	t.Cleanup(func() { p.Close() })
	auth, err := NewAuth(AuthOptions{Keys: keys, Coordinators: []string{"http://coord.test:7070"}})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(NewHandler(p, HandlerOptions{BodyMaxBytes: 8 << 10, Logger: discardLogger(), Auth: auth}))
	t.Cleanup(srv.Close)
	return p, svc, auth, srv
}

// Only requests signed with a key the participant holds, within the window, act; every
// other one is answered 401 with a JSON error that says what was wrong, changes
// nothing, and is counted.
func TestAuthRefusesUnsignedAndForged(t *testing.T) {
	p, svc, auth, srv := signedHandler(t, []Key{{ID: "k1", Secret: []byte(testSecret)}})
	good, _ := NewSigner(Key{ID: "k1", Secret: []byte(testSecret)})
	forger, _ := NewSigner(Key{ID: "k1", Secret: []byte(testSecret2)})
	otherKey, _ := NewSigner(Key{ID: "k9", Secret: []byte(testSecret)})
	noID, _ := NewSigner(Key{Secret: []byte(testSecret)})
	old, _ := NewSigner(Key{ID: "k1", Secret: []byte(testSecret)})
	old.now = func() time.Time { return time.Now().Add(-31 * time.Second) }
	future, _ := NewSigner(Key{ID: "k1", Secret: []byte(testSecret)})
	future.now = func() time.Time { return time.Now().Add(31 * time.Second) }

	const prep = `{"txn_id":"t1","payload":{"a":1},"coordinator":"http://coord.test:7070"}`
	if code, body := do(t, signedRequest(t, good, "POST", srv.URL+"/prepare", prep)); code != 200 || !strings.Contains(body, `"ACK"`) {
		t.Fatalf("signed prepare: %d %s", code, body)
	}
	refused := []struct {
		name string
		req  *http.Request
		want string
	}{
		{"unsigned rollback", signedRequest(t, nil, "POST", srv.URL+"/rollback", `{"txn_id":"t1"}`), "headers Dtc-Timestamp and Dtc-Signature are required"},
		{"forged rollback", signedRequest(t, forger, "POST", srv.URL+"/rollback", `{"txn_id":"t1"}`), "signature does not match"},
		{"unknown key", signedRequest(t, otherKey, "POST", srv.URL+"/rollback", `{"txn_id":"t1"}`), `unknown key: Dtc-Key-Id "k9"`},
		{"no key id", signedRequest(t, noID, "POST", srv.URL+"/rollback", `{"txn_id":"t1"}`), `unknown key: Dtc-Key-Id ""`},
		{"replayed 31s later", signedRequest(t, old, "POST", srv.URL+"/rollback", `{"txn_id":"t1"}`), "outside the window"},
		{"from the future", signedRequest(t, future, "POST", srv.URL+"/rollback", `{"txn_id":"t1"}`), "outside the window"},
		{"unsigned batch", signedRequest(t, nil, "POST", srv.URL+"/batch", `{"ops":[{"op":"rollback","txn_id":"t1"}]}`), "are required"},
		{"unsigned commit", signedRequest(t, nil, "POST", srv.URL+"/commit", `{"txn_id":"t1"}`), "are required"},
		{"unsigned prepare", signedRequest(t, nil, "POST", srv.URL+"/prepare", `{"txn_id":"t2","coordinator":"http://coord.test:7070"}`), "are required"},
	}
	// A good signature that does not cover what is sent: another body, path, method,
	// host or query.
	tamper := func(name, method, path, signedBody, sentBody string, edit func(*http.Request)) {
		req := signedRequest(t, good, method, srv.URL+path, signedBody)
		req.Body = io.NopCloser(strings.NewReader(sentBody))
		req.ContentLength = int64(len(sentBody))
		if edit != nil {
			edit(req)
		}
		refused = append(refused, struct {
			name string
			req  *http.Request
			want string
		}{name, req, "signature does not match"})
	}
	tamper("body changed", "POST", "/rollback", `{"txn_id":"t9"}`, `{"txn_id":"t1"}`, nil)
	tamper("path changed", "POST", "/commit", `{"txn_id":"t1"}`, `{"txn_id":"t1"}`, func(r *http.Request) { r.URL.Path = "/rollback" })
	tamper("host changed", "POST", "/rollback", `{"txn_id":"t1"}`, `{"txn_id":"t1"}`, func(r *http.Request) { r.Host = "bank2.test" })
	tamper("query added", "POST", "/rollback", `{"txn_id":"t1"}`, `{"txn_id":"t1"}`, func(r *http.Request) { r.URL.RawQuery = "x=1" })
	timestamp := signedRequest(t, good, "POST", srv.URL+"/rollback", `{"txn_id":"t1"}`)
	timestamp.Header.Set(HeaderTimestamp, "+"+timestamp.Header.Get(HeaderTimestamp))
	refused = append(refused, struct {
		name string
		req  *http.Request
		want string
	}{"timestamp with a sign", timestamp, "decimal Unix seconds"})

	for _, tt := range refused {
		code, body := do(t, tt.req)
		var e ErrorResponse
		if code != http.StatusUnauthorized || json.Unmarshal([]byte(body), &e) != nil || e.Error.Code != CodeUnauthorized || !strings.Contains(e.Error.Message, tt.want) {
			t.Fatalf("%s: %d %s, want 401 %s …%s…", tt.name, code, body, CodeUnauthorized, tt.want)
		}
	}
	if st := p.Status("t1"); st != StatePrepared {
		t.Fatalf("after the refused calls t1 is %s, want still prepared", st)
	}
	if st := p.Status("t2"); st != StateUnknown {
		t.Fatalf("unsigned prepare left t2 %s", st)
	}
	st := auth.Stats()
	if st.Verified != 1 || st.Unsigned != 4 || st.BadSignature != 5 || st.UnknownKey != 2 || st.Expired != 2 || st.Malformed != 1 || st.Refused() != uint64(len(refused)) {
		t.Fatalf("stats %+v, %d refused", st, len(refused))
	}
	// Status is open; the signed commit works.
	if code, body := do(t, signedRequest(t, nil, "GET", srv.URL+"/status?txn_id=t1", "")); code != 200 || !strings.Contains(body, `"prepared"`) {
		t.Fatalf("status: %d %s", code, body)
	}
	if code, body := do(t, signedRequest(t, good, "POST", srv.URL+"/commit", `{"txn_id":"t1"}`)); code != 200 || !strings.Contains(body, `"committed"`) {
		t.Fatalf("signed commit: %d %s", code, body)
	}
	if svc.Txns["t1"] != "applied" {
		t.Fatalf("service: %v", svc.Txns)
	}
}

// Every path that reads a body verifies it: a batch, and a prepare too large for the
// fast path's buffer. A key rotation: both keys are accepted.
func TestAuthSignedPaths(t *testing.T) {
	p, _, auth, srv := signedHandler(t, []Key{{ID: "new", Secret: []byte(testSecret2)}, {ID: "old", Secret: []byte(testSecret)}})
	oldKey, _ := NewSigner(Key{ID: "old", Secret: []byte(testSecret)})
	newKey, _ := NewSigner(Key{ID: "new", Secret: []byte(testSecret2)})
	big := `{"txn_id":"big","payload":{"pad":"` + strings.Repeat("x", 6000) + `"},"coordinator":"http://coord.test:7070"}`
	for _, tt := range []struct {
		s          *Signer
		path, body string
		want       string
	}{
		{oldKey, "/prepare", `{"txn_id":"a","coordinator":"http://coord.test:7070"}`, `{"vote":"ACK"}`},
		{newKey, "/prepare", `{"txn_id":"b","coordinator":"http://coord.test:7070"}`, `{"vote":"ACK"}`},
		{newKey, "/prepare", big, `{"vote":"ACK"}`},
		{oldKey, "/prepare", "{\"txn_id\": \"c\", \"coordinator\": \"http://coord.test:7070\"}", `{"vote":"ACK"}`}, // the strict decoder's path
		{newKey, "/batch", `{"ops":[{"op":"commit","txn_id":"a"},{"op":"rollback","txn_id":"b"}]}`, `{"results":[{"state":"committed"},{"state":"aborted"}]}`},
		{oldKey, "/rollback", ` {"txn_id":"big"}`, `{"state":"aborted"}`},
	} {
		code, body := do(t, signedRequest(t, tt.s, "POST", srv.URL+tt.path, tt.body))
		if code != 200 || strings.TrimSpace(body) != tt.want {
			t.Fatalf("%s %.60s: %d %s, want %s", tt.path, tt.body, code, body, tt.want)
		}
	}
	// The big prepare, its signature computed over another body of the same length.
	req := signedRequest(t, newKey, "POST", srv.URL+"/prepare", strings.Replace(big, `"big"`, `"bug"`, 1))
	req.Body = io.NopCloser(strings.NewReader(big))
	if code, body := do(t, req); code != 401 {
		t.Fatalf("tampered big prepare: %d %s", code, body)
	}
	// Too large a signed body is 413, as without signatures.
	huge := `{"txn_id":"h","payload":"` + strings.Repeat("x", 9000) + `"}`
	if code, body := do(t, signedRequest(t, newKey, "POST", srv.URL+"/prepare", huge)); code != 413 || !strings.Contains(body, CodeBodyTooLarge) {
		t.Fatalf("huge prepare: %d %s", code, body)
	}
	if st := auth.Stats(); st.Verified != 6 || st.BadSignature != 1 {
		t.Fatalf("stats %+v", st)
	}
	for id, want := range map[string]State{"a": StateCommitted, "b": StateAborted, "c": StatePrepared, "big": StateAborted} {
		if st := p.Status(id); st != want {
			t.Fatalf("%s is %s, want %s", id, st, want)
		}
	}
}

// A prepare that names a coordinator the participant does not trust, or none, is NACKed
// with the reason and freezes nothing; the trusted one is recognised however its
// scheme, host, default port and trailing slash are written.
func TestAuthUntrustedCoordinator(t *testing.T) {
	m := newMemLog(testConfig())
	p, svc := m.open(t)
	defer p.Close()
	auth, err := NewAuth(AuthOptions{Coordinators: []string{"http://coord.test", "https://Other.Test:8443/base/"}})
	if err != nil {
		t.Fatal(err)
	}
	h := NewHandler(p, HandlerOptions{Logger: discardLogger(), Auth: auth})
	for _, tt := range []struct {
		id, coordinator, want string
	}{
		{"t1", "http://attacker.test:7070", `{"vote":"NACK","reason":"coordinator \"http://attacker.test:7070\" is not one this participant trusts"}`},
		{"t2", "", `{"vote":"NACK","reason":"` + reasonNoCoordinator + `"}`},
		{"t3", "https://coord.test", `"NACK"`},
		{"t4", "http://coord.test:8080", `"NACK"`},
		{"t5", "HTTP://COORD.test:80/", `{"vote":"ACK"}`},
		{"t6", "https://other.test:8443/base", `{"vote":"ACK"}`},
		{"t7", "not a url", `"NACK"`},
	} {
		body := `{"txn_id":"` + tt.id + `","payload":{"x":1}}`
		if tt.coordinator != "" {
			body = `{"txn_id":"` + tt.id + `","payload":{"x":1},"coordinator":"` + tt.coordinator + `"}`
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest(http.MethodPost, "/prepare", strings.NewReader(body)))
		if w.Code != 200 || strings.TrimSpace(w.Body.String()) != tt.want && !strings.Contains(w.Body.String(), tt.want) {
			t.Fatalf("%s: %d %s, want %s", body, w.Code, w.Body, tt.want)
		}
	}
	if st := p.Stats(); st.Prepared != 2 {
		t.Fatalf("prepared %d, want 2", st.Prepared)
	}
	for _, id := range []string{"t1", "t2", "t3", "t4", "t7"} {
		if _, held := svc.Txns[id]; held || p.Status(id) != StateUnknown {
			t.Fatalf("%s reached the service or the log: %v %s", id, svc.Txns, p.Status(id))
		}
	}
	if got := auth.Stats().UntrustedCoordinator; got != 5 {
		t.Fatalf("UntrustedCoordinator %d, want 5", got)
	}
	if _, err := NewAuth(AuthOptions{Coordinators: []string{"ftp://x"}}); err == nil {
		t.Fatal("ftp coordinator accepted")
	}
	if _, err := NewAuth(AuthOptions{Keys: []Key{{Secret: []byte("short")}}}); err == nil {
		t.Fatal("short secret accepted")
	}
}

// A transaction in doubt whose coordinator cannot be reached is never silent: each
// attempt is counted, the resolver reports it, and the status endpoint says so. The
// resolver's queries carry the bearer token.
func TestResolverReportsUnreachableCoordinator(t *testing.T) {
	m := newMemLog(testConfig())
	p, _ := m.open(t)
	defer p.Close()
	var gotAuth []string
	up := false
	coord := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotAuth = append(gotAuth, r.Header.Get("Authorization"))
		if !up {
			http.Error(w, "down for maintenance", http.StatusBadGateway)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"id":"t1","state":"committed"}`)
	}))
	defer coord.Close()
	a := &answer{}
	p.Prepare("t1", nil, coord.URL, func(v Vote) { a.add(voteString(v)) })
	p.Prepare("t2", nil, "", func(v Vote) { a.add(voteString(v)) })
	r, err := NewResolver(p, ResolverOptions{Clock: m.clock, Logger: discardLogger(), BearerToken: "tok-123", ConcurrencyMax: 1})
	if err != nil {
		t.Fatal(err)
	}
	h := NewHandler(p, HandlerOptions{Logger: discardLogger(), Resolver: r})
	statusOf := func(id string) StateResponse {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/status?txn_id="+id, nil))
		var sr StateResponse
		if err := json.Unmarshal(w.Body.Bytes(), &sr); err != nil || w.Code != 200 {
			t.Fatalf("status %s: %d %s", id, w.Code, w.Body)
		}
		return sr
	}
	if sr := statusOf("t1"); sr != (StateResponse{State: StatePrepared}) {
		t.Fatalf("not in doubt yet: %+v", sr)
	}
	m.clock.Advance(time.Minute)
	start := m.clock.Now()
	r.ResolveOnce(context.Background())
	m.clock.Advance(10 * time.Second)
	r.ResolveOnce(context.Background())

	sr := statusOf("t1")
	want := StateResponse{State: StatePrepared, InDoubtSince: start.UTC().Format(time.RFC3339), ResolveAttempts: 2,
		CoordinatorUnreachable: true, UnreachableSince: start.UTC().Format(time.RFC3339), LastResolveError: "coordinator answered 502 Bad Gateway"}
	if sr != want {
		t.Fatalf("status t1\n got %+v\nwant %+v", sr, want)
	}
	if sr := statusOf("t2"); !sr.CoordinatorUnreachable || sr.ResolveAttempts != 2 || sr.LastResolveError != "no coordinator known for it" {
		t.Fatalf("status t2: %+v", sr)
	}
	st := r.Stats()
	if st.Rounds != 2 || st.Attempts != 4 || st.Unreachable != 4 || st.InDoubt != 2 || st.CoordinatorUnreachable != 2 || st.Resolved != 0 {
		t.Fatalf("stats %+v", st)
	}
	up = true
	m.clock.Advance(10 * time.Second)
	r.ResolveOnce(context.Background())
	if p.Status("t1") != StateCommitted {
		t.Fatalf("t1 is %s after the coordinator came back", p.Status("t1"))
	}
	if sr := statusOf("t1"); sr != (StateResponse{State: StateCommitted}) {
		t.Fatalf("status after: %+v", sr)
	}
	r.ResolveOnce(context.Background()) // t1 is forgotten by the resolver
	st = r.Stats()
	if st.Resolved != 1 || st.InDoubt != 1 || st.CoordinatorUnreachable != 1 || st.Attempts != 7 {
		t.Fatalf("stats after %+v", st)
	}
	if _, ok := r.Report("t1"); ok {
		t.Fatal("resolved t1 still tracked")
	}
	for _, a := range gotAuth {
		if a != "Bearer tok-123" {
			t.Fatalf("Authorization %q", a)
		}
	}
	if len(gotAuth) != 3 {
		t.Fatalf("coordinator asked %d times, want 3", len(gotAuth))
	}
}

func TestAuthVerifyNil(t *testing.T) {
	var a *Auth
	if err := a.Verify(httptest.NewRequest("POST", "/prepare", nil), nil); err != nil || !a.TrustsCoordinator("http://x") {
		t.Fatal("a nil Auth checks nothing")
	}
	a, _ = NewAuth(AuthOptions{Keys: []Key{{Secret: []byte(testSecret)}}})
	if err := a.Verify(httptest.NewRequest("POST", "/prepare", nil), nil); !errors.Is(err, ErrUnsigned) {
		t.Fatalf("Verify: %v", err)
	}
}
