package httpnet_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/dtc-project/dtc/client"
	"github.com/dtc-project/dtc/httpnet/apiserver"
)

// ackParticipant is a participant that votes ACK and acknowledges phase 2, counting the
// requests it gets.
func ackParticipant(t *testing.T) (prepareURL string, calls *atomic.Int64) {
	t.Helper()
	calls = new(atomic.Int64)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		switch {
		case strings.HasSuffix(r.URL.Path, "/prepare"):
			_, _ = io.WriteString(w, `{"vote":"ACK"}`)
		case strings.HasSuffix(r.URL.Path, "/commit"):
			_, _ = io.WriteString(w, `{"state":"committed"}`)
		case strings.HasSuffix(r.URL.Path, "/rollback"):
			_, _ = io.WriteString(w, `{"state":"aborted"}`)
		default:
			_, _ = io.WriteString(w, `{"state":"unknown"}`)
		}
	}))
	t.Cleanup(srv.Close)
	return srv.URL + "/p/prepare", calls
}

// testCreds makes a tokens file's worth of clients and returns it with their tokens.
func testCreds(t *testing.T, clients ...string) (*apiserver.Credentials, map[string]string) {
	t.Helper()
	var file strings.Builder
	tokens := map[string]string{}
	for _, c := range clients { // "role name"
		role, name, _ := strings.Cut(c, " ")
		tok, cred := apiserver.NewToken()
		tokens[name] = tok
		file.WriteString(role + " " + name + " " + cred + "  # a comment\n\n")
	}
	creds, err := apiserver.ParseCredentials("test", strings.NewReader(file.String()))
	if err != nil {
		t.Fatal(err)
	}
	return creds, tokens
}

// call makes one API request with token and returns the status, the error code (if
// any) and the body.
func call(t *testing.T, method, url, token, body string) (int, string, string, http.Header) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var e apiserver.ErrorBody
	_ = json.Unmarshal(b, &e)
	return resp.StatusCode, e.Error.Code, string(b), resp.Header
}

// Each role can do what it is for and nothing else; a transaction belongs to the
// client that began it.
func TestAPIAuthorizesByRole(t *testing.T) {
	creds, tok := testCreds(t, "submit alice", "submit bob", "read audit", "admin ops")
	auth := apiserver.NewAuth(creds)
	c := startCoordAPI(t, "", nil, apiserver.ServerOptions{Auth: auth}, tok["alice"])
	c.waitReady()
	part, _ := ackParticipant(t)
	body := `{"id":"a1","participants":["` + part + `"]}`
	txns := c.url + "/v1/transactions"

	// No credentials, unknown ones, a malformed header: 401 with WWW-Authenticate.
	for _, token := range []string{"", "dtc_not-a-token"} {
		st, code, _, h := call(t, "POST", txns, token, body)
		if st != 401 || code != apiserver.CodeUnauthorized || !strings.HasPrefix(h.Get("WWW-Authenticate"), `Bearer realm="dtc"`) {
			t.Fatalf("token %q: %d %s %q", token, st, code, h.Get("WWW-Authenticate"))
		}
	}
	req, _ := http.NewRequest("GET", txns, nil)
	req.Header.Set("Authorization", "Basic "+tok["ops"])
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 401 {
		t.Fatalf("Basic instead of Bearer: %v %v", resp.StatusCode, err)
	}
	// read may not begin.
	if st, code, _, _ := call(t, "POST", txns, tok["audit"], body); st != 403 || code != apiserver.CodeForbidden {
		t.Fatalf("read client begins: %d %s", st, code)
	}
	v, err := c.cli.Submit(context.Background(), client.Request{ID: "a1", Participants: []client.Participant{{URL: part}}})
	if err != nil || v.State != client.StateCommitted || v.Owner != "alice" {
		t.Fatalf("alice submits: %v %+v", err, v)
	}
	// The owner, read and admin read it; another submit client does not.
	for name, want := range map[string]int{"alice": 200, "audit": 200, "ops": 200, "bob": 403} {
		if st, _, _, _ := call(t, "GET", txns+"/a1", tok[name], ""); st != want {
			t.Errorf("GET a1 as %s: %d, want %d", name, st, want)
		}
	}
	// Nor may bob resubmit alice's id.
	if st, code, _, _ := call(t, "POST", txns, tok["bob"], body); st != 409 {
		t.Fatalf("bob resubmits alice's id: %d %s", st, code)
	}
	// Lists: bob's own only, everything for read.
	for name, want := range map[string]bool{"bob": false, "audit": true, "alice": true} {
		st, _, b, _ := call(t, "GET", txns, tok[name], "")
		var page apiserver.ListResponse
		if err := json.Unmarshal([]byte(b), &page); st != 200 || err != nil {
			t.Fatalf("list as %s: %d %v", name, st, err)
		}
		has := slices.ContainsFunc(page.Transactions, func(v client.View) bool { return v.ID == "a1" })
		if has != want {
			t.Errorf("list as %s shows a1: %v, want %v", name, has, want)
		}
	}
	// A participant's query by the id it was told needs no token, and gets the state
	// and the priority (it was told that with the prepare; a cluster's deadlock detector
	// reads it) only; a wrong nonce is an unknown transaction.
	st, _, b, _ := call(t, "GET", txns+"/"+v.TxnID, "", "")
	var got map[string]any
	if err := json.Unmarshal([]byte(b), &got); st != 200 || err != nil || len(got) != 4 || got["state"] != "committed" || got["txn_id"] != v.TxnID ||
		got["priority"] != float64(v.Priority) {
		t.Fatalf("participant's query: %d %s", st, b)
	}
	if st, code, _, _ := call(t, "GET", txns+"/a1@0000000000000000", "", ""); st != 404 || code != apiserver.CodeNotFound {
		t.Fatalf("wrong nonce: %d %s", st, code)
	}
	if st, _, _, _ := call(t, "GET", txns+"/a1", "", ""); st != 401 {
		t.Fatalf("the client's id without a token: %d", st)
	}
	// Health and readiness are open; so are metrics unless MetricsAuth.
	for _, p := range []string{"/healthz", "/readyz", "/metrics"} {
		if st, _, _, _ := call(t, "GET", c.url+p, "", ""); st != 200 {
			t.Errorf("%s without a token: %d", p, st)
		}
	}
	strict := apiserver.NewServer(c.rt, apiserver.ServerOptions{Auth: auth, MetricsAuth: true})
	for token, want := range map[string]int{"": 401, tok["alice"]: 403, tok["audit"]: 200} {
		rec := httptest.NewRecorder()
		r := httptest.NewRequest("GET", "/metrics", nil)
		if token != "" {
			r.Header.Set("Authorization", "Bearer "+token)
		}
		strict.ServeHTTP(rec, r)
		if rec.Code != want {
			t.Errorf("MetricsAuth, token %.8q: %d, want %d", token, rec.Code, want)
		}
	}
	// A reload takes effect at once: alice's token is gone.
	creds2, tok2 := testCreds(t, "admin ops2")
	auth.Replace(creds2)
	if st, _, _, _ := call(t, "GET", txns+"/a1", tok["alice"], ""); st != 401 {
		t.Fatalf("a token removed by a reload: %d", st)
	}
	if st, _, _, _ := call(t, "GET", txns+"/a1", tok2["ops2"], ""); st != 200 {
		t.Fatalf("a token added by a reload: %d", st)
	}
}
