package httpnet_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/dtc-project/dtc/client"
	"github.com/dtc-project/dtc/coordinator"
	"github.com/dtc-project/dtc/httpnet"
	"github.com/dtc-project/dtc/httpnet/apiserver"
)

// Who may abort and report waits with authentication on: the owner (submit) and admin
// by token; a participant without a token when it names transactions by the id it was
// told (id@nonce), as for its status queries; nobody else.
func TestAbortAndWaitsAuthorization(t *testing.T) {
	creds, tok := testCreds(t, "submit alice", "submit bob", "read audit", "admin ops")
	c := startCoordAPI(t, "", nil, apiserver.ServerOptions{Auth: apiserver.NewAuth(creds)}, tok["alice"])
	c.waitReady()
	held := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/prepare") {
			select {
			case <-held:
			case <-r.Context().Done():
			}
			_, _ = w.Write([]byte(`{"vote":"ACK"}`))
			return
		}
		_, _ = w.Write([]byte(`{"state":"aborted"}`))
	}))
	t.Cleanup(func() { close(held); slow.Close() })
	ctx := context.Background()
	begin := func(id string) client.View {
		v, err := c.cli.SubmitAsync(ctx, client.Request{ID: id, Participants: []client.Participant{{URL: slow.URL + "/prepare"}}})
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	txns := c.url + "/v1/transactions/"
	w1 := begin("w1")
	// Not bob's, not read's, not anonymous by the client id.
	for token, want := range map[string]int{tok["bob"]: 403, tok["audit"]: 403, "": 401} {
		if st, _, b, _ := call(t, "POST", txns+"w1/abort", token, ""); st != want {
			t.Errorf("abort w1 with token %.8q: %d, want %d: %s", token, st, want, b)
		}
	}
	// A wrong nonce is an unknown transaction.
	if st, code, _, _ := call(t, "POST", txns+"w1@0000000000000000/abort", "", ""); st != 404 || code != apiserver.CodeNotFound {
		t.Errorf("wrong nonce: %d %s", st, code)
	}
	// A participant wounds it by the id it was told: cause wound.
	req, _ := http.NewRequest("POST", txns+w1.TxnID+"/abort", strings.NewReader(`{"reason":"older t0 wants key x"}`))
	req.Header.Set(apiserver.HeaderAbortCause, "wound")
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var v client.View
	_ = json.NewDecoder(resp.Body).Decode(&v)
	resp.Body.Close()
	if resp.StatusCode != 200 || v.State != client.StateAborted || v.AbortCause != coordinator.CauseWound || !strings.Contains(v.Reason, "older t0") {
		t.Fatalf("wound: %d %+v", resp.StatusCode, v)
	}
	// The owner's abort of it now changes nothing.
	if v, err := c.cli.Abort(ctx, "w1", "mine"); err != nil || v.AbortCause != coordinator.CauseWound {
		t.Fatalf("owner's abort after the wound: %v %+v", err, v)
	}
	// An unknown cause is refused.
	req, _ = http.NewRequest("POST", txns+"w1/abort", nil)
	req.Header.Set("Authorization", "Bearer "+tok["ops"])
	req.Header.Set(apiserver.HeaderAbortCause, "deadlock")
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 400 {
		t.Fatalf("cause deadlock from outside: %v %v", resp.StatusCode, err)
	}

	// Wait reports: by txn ids without a token; by client ids only with submit or admin.
	a, b := begin("a"), begin("b")
	report := func(token, waiter, holder string) (int, string) {
		body, _ := json.Marshal(httpnet.WaitReport{Participant: "http://p/prepare", Waiter: waiter, Holders: []string{holder}, Key: "k"})
		return postJSON(t, c.url+"/v1/waits", token, string(body))
	}
	if st, _ := report("", "a", "b"); st != 401 {
		t.Errorf("anonymous report by client ids: %d", st)
	}
	if st, _ := report(tok["audit"], "a", "b"); st != 403 {
		t.Errorf("read client reports: %d", st)
	}
	if st, ans := report("", a.TxnID, b.TxnID); st != 202 || !strings.Contains(ans, `"detection":"on"`) || strings.Contains(ans, "deadlocks") {
		t.Errorf("participant's report: %d %s", st, ans)
	}
	st, ans := report(tok["ops"], "b", "a")
	if st != 202 || !strings.Contains(ans, `"victim":"b"`) {
		t.Fatalf("closing report: %d %s", st, ans)
	}
	vb := c.waitView("b", "aborted", client.View.Final)
	if vb.AbortCause != coordinator.CauseDeadlock || !strings.Contains(vb.Reason, "b -> a -> b") {
		t.Fatalf("victim: %+v", vb)
	}
	// Malformed reports name the field.
	for body, want := range map[string]string{
		`{"waiter":"a","holders":[]}`:                                              "holders",
		`{"holders":["a"]}`:                                                        "waiter",
		`{"waiter":"a","holders":["b"],"extra":1}`:                                 "unknown field",
		`{"waiter":"a","holders":[""],"participant":"x"}`:                          "holders[0]",
		`{"waiter":"a","holders":["b"],"key":"` + strings.Repeat("k", 2000) + `"}`: "key",
	} {
		st, _, b, _ := call(t, "POST", c.url+"/v1/waits", tok["ops"], body)
		if st != 400 || !strings.Contains(b, want) {
			t.Errorf("report %.60s: %d %s, want 400 naming %s", body, st, b, want)
		}
	}
}

// postJSON posts body as application/json with token (if any): the status and the answer.
func postJSON(t *testing.T, url, token, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest("POST", url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}
