package chaosreal

import (
	"cmp"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// participantStub answers the participant protocol the way a bank does.
func participantStub(t *testing.T) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		switch r.URL.Path {
		case "/batch":
			if strings.Contains(string(body), "refused") {
				w.WriteHeader(http.StatusServiceUnavailable)
				io.WriteString(w, `{"error":{"code":"unavailable","message":"closing"}}`)
				return
			}
			io.WriteString(w, `{"results":[{"state":"committed"},{"state":"committed","conflict":true},`+
				`{"error":{"code":"unavailable","message":"log failed"}}]}`)
		case "/prepare":
			io.WriteString(w, `{"vote":"ACK"}`)
		case "/commit":
			io.WriteString(w, `{"state":"committed"}`)
		case "/rollback":
			w.WriteHeader(http.StatusConflict)
			io.WriteString(w, `{"state":"committed"}`)
		case "/status":
			io.WriteString(w, `{"state":"prepared"}`)
		}
	}))
	t.Cleanup(srv.Close)
	return srv
}

type events struct {
	mu sync.Mutex
	ev []TapEvent
}

func (e *events) add(ev TapEvent) { e.mu.Lock(); e.ev = append(e.ev, ev); e.mu.Unlock() }
func (e *events) list() []TapEvent {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]TapEvent(nil), e.ev...)
}

func newTestProxy(t *testing.T) (*Proxy, *events, *http.Client) {
	t.Helper()
	srv := participantStub(t)
	ev := &events{}
	px, err := NewProxy("p1", strings.TrimPrefix(srv.URL, "http://"), func() *tapConn { return newTapConn("p1", ev.add) })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(px.Close)
	hc := &http.Client{Transport: &http.Transport{}, Timeout: 2 * time.Second}
	t.Cleanup(hc.CloseIdleConnections)
	return px, ev, hc
}

func post(hc *http.Client, url, body string) (int, string, error) {
	resp, err := hc.Post(url, "application/json", strings.NewReader(body))
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

func TestTheProxyForwardsAndItsTapSeesVotesAndPhase2(t *testing.T) {
	px, ev, hc := newTestProxy(t)
	base := "http://" + px.Addr()
	for _, c := range []struct{ path, body, want string }{
		{"/prepare", `{"txn_id":"t1@n1","payload":{}}`, `{"vote":"ACK"}`},
		{"/commit", `{"txn_id":"t1@n1"}`, `{"state":"committed"}`},
		{"/rollback", `{"txn_id":"t2@n2"}`, `{"state":"committed"}`},
	} {
		_, got, err := post(hc, base+c.path, c.body)
		if err != nil || got != c.want {
			t.Fatalf("POST %s through the proxy: %q, %v; want %q", c.path, got, err, c.want)
		}
	}
	resp, err := hc.Get(base + "/status?txn_id=t3%40n3")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	hc.CloseIdleConnections()
	px.Close() // waits for the taps
	got := ev.list()
	// Requests and answers are parsed on goroutines of their own: they reach the sink
	// in any order, each with the time it passed the proxy.
	slices.SortStableFunc(got, func(a, b TapEvent) int { return cmp.Compare(a.At, b.At) })
	want := []TapEvent{
		{Participant: "p1", Call: "prepare", TxnID: "t1@n1"},
		{Participant: "p1", Call: "prepare", TxnID: "t1@n1", Answer: true, Status: 200, Vote: "ACK"},
		{Participant: "p1", Call: "commit", TxnID: "t1@n1"},
		{Participant: "p1", Call: "commit", TxnID: "t1@n1", Answer: true, Status: 200, State: "committed"},
		{Participant: "p1", Call: "rollback", TxnID: "t2@n2"},
		{Participant: "p1", Call: "rollback", TxnID: "t2@n2", Answer: true, Status: 409, State: "committed"},
		{Participant: "p1", Call: "status", TxnID: "t3@n3"},
		{Participant: "p1", Call: "status", TxnID: "t3@n3", Answer: true, Status: 200, State: "prepared"},
	}
	if len(got) != len(want) {
		t.Fatalf("tap saw %d events, want %d: %+v", len(got), len(want), got)
	}
	for i := range want {
		if got[i].At == 0 {
			t.Errorf("event %d has no time", i)
		}
		got[i].At = 0
		if got[i] != want[i] {
			t.Errorf("event %d: %+v, want %+v", i, got[i], want[i])
		}
	}
}

func TestTheTapSeesEachOpOfABatchAsItsOwnRequest(t *testing.T) {
	px, ev, hc := newTestProxy(t)
	base := "http://" + px.Addr()
	for _, body := range []string{
		`{"ops":[{"op":"commit","txn_id":"a@1"},{"op":"rollback","txn_id":"b@2"},{"op":"commit","txn_id":"c@3"}]}`,
		`{"ops":[{"op":"rollback","txn_id":"refused@4"}]}`,
	} {
		if _, _, err := post(hc, base+"/batch", body); err != nil {
			t.Fatal(err)
		}
	}
	hc.CloseIdleConnections()
	px.Close()
	got := ev.list()
	slices.SortStableFunc(got, func(a, b TapEvent) int {
		return cmp.Or(cmp.Compare(a.At, b.At), cmp.Compare(a.TxnID, b.TxnID))
	})
	want := []TapEvent{
		{Participant: "p1", Call: "commit", TxnID: "a@1"},
		{Participant: "p1", Call: "rollback", TxnID: "b@2"},
		{Participant: "p1", Call: "commit", TxnID: "c@3"},
		// Each op is answered as its single request would have been.
		{Participant: "p1", Call: "commit", TxnID: "a@1", Answer: true, Status: 200, State: "committed"},
		{Participant: "p1", Call: "rollback", TxnID: "b@2", Answer: true, Status: 409, State: "committed"},
		{Participant: "p1", Call: "commit", TxnID: "c@3", Answer: true, Status: 500},
		// A batch refused as a whole answers every op with its status and no state.
		{Participant: "p1", Call: "rollback", TxnID: "refused@4"},
		{Participant: "p1", Call: "rollback", TxnID: "refused@4", Answer: true, Status: 503},
	}
	if len(got) != len(want) {
		t.Fatalf("tap saw %d events, want %d: %+v", len(got), len(want), got)
	}
	for i := range want {
		got[i].At = 0
		if got[i] != want[i] {
			t.Errorf("event %d: %+v, want %+v", i, got[i], want[i])
		}
	}
}

func TestDropResetsConnectionsAndRefusesNewOnes(t *testing.T) {
	px, _, hc := newTestProxy(t)
	base := "http://" + px.Addr()
	if _, _, err := post(hc, base+"/prepare", `{"txn_id":"a"}`); err != nil {
		t.Fatal(err)
	}
	px.Set(Drop, 0)
	if _, _, err := post(hc, base+"/prepare", `{"txn_id":"b"}`); err == nil {
		t.Fatal("a request through a dropping proxy got an answer")
	}
	px.Set(Pass, 0)
	if _, _, err := post(hc, base+"/prepare", `{"txn_id":"c"}`); err != nil {
		t.Fatalf("after the drop ended: %v", err)
	}
	if px.Resets() == 0 {
		t.Fatal("no connection was reset")
	}
}

func TestABlackholeAnswersNothingAndItsConnectionsAreResetAtTheHeal(t *testing.T) {
	px, _, _ := newTestProxy(t)
	px.Set(Blackhole, 0)
	conn, err := net.Dial("tcp", px.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := io.WriteString(conn, "POST /prepare HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}"); err != nil {
		t.Fatal(err)
	}
	// Nothing comes back while the blackhole lasts; when it ends, the connection that
	// lost bytes to it is reset.
	for deadline := time.Now().Add(10 * time.Second); px.Lost() == 0; {
		if time.Now().After(deadline) {
			t.Fatal("the proxy never read the request")
		}
		time.Sleep(time.Millisecond) // until the proxy has read (and swallowed) the request
	}
	done := make(chan error, 1)
	go func() {
		_, err := conn.Read(make([]byte, 1))
		done <- err
	}()
	select {
	case err := <-done:
		t.Fatalf("read returned during the blackhole: %v", err)
	default:
	}
	px.Set(Pass, 0)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	select {
	case err := <-done:
		if err == nil || errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("the blackholed connection was not reset: %v", err)
		}
	case <-ctx.Done():
		t.Fatal("the blackholed connection was neither answered nor reset after the heal")
	}
}

func TestDelayHoldsEveryChunk(t *testing.T) {
	px, _, hc := newTestProxy(t)
	px.Set(Delay, 60*time.Millisecond)
	start := time.Now()
	if _, _, err := post(hc, "http://"+px.Addr()+"/prepare", `{"txn_id":"a"}`); err != nil {
		t.Fatal(err)
	}
	// A lower bound only: the request and the answer are each held at least once.
	if d := time.Since(start); d < 120*time.Millisecond {
		t.Fatalf("the exchange took %v through a 60ms delay each way", d)
	}
}
