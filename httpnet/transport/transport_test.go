package transport_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dtc-project/dtc/coordinator"
	"github.com/dtc-project/dtc/httpnet/transport"
	"github.com/dtc-project/dtc/participant"
)

// TestTransportMapsAnswers checks how every kind of answer of a participant becomes a
// Reply: votes and states when the answer is one, Conflict for a 409 with a state, and
// an error naming the problem for everything else.
func TestTransportMapsAnswers(t *testing.T) {
	type seen struct {
		method, path, query string
		body                map[string]any
	}
	var (
		mu   sync.Mutex
		last seen
	)
	answer := func(status int, body string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			s := seen{method: r.Method, path: r.URL.Path, query: r.URL.RawQuery}
			if b, _ := io.ReadAll(r.Body); len(b) > 0 {
				_ = json.Unmarshal(b, &s.body)
			}
			mu.Lock()
			last = s
			mu.Unlock()
			w.WriteHeader(status)
			fmt.Fprint(w, body)
		}
	}
	asking := func(h http.HandlerFunc) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set(participant.HeaderInDoubt, participant.InDoubtAsk)
			h(w, r)
		}
	}
	release := make(chan struct{})
	defer close(release)
	hang := func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.ReadAll(r.Body) // the server notices a client that left only after the body is read
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}

	tr := transport.New(transport.Options{
		AdvertiseURL: "http://coordinator.test:7070", RequestTimeout: 200 * time.Millisecond, ResponseMaxBytes: 1024,
	})
	defer tr.Close()
	replies := make(chan coordinator.Reply, 1)
	send := tr.For(func(r coordinator.Reply) { replies <- r })

	cases := []struct {
		name     string
		kind     coordinator.MsgKind
		handler  http.HandlerFunc
		timeout  time.Duration
		want     coordinator.Reply // Txn/Participant/Seq/Kind are checked separately
		errHas   string            // "" means no error expected
		wantPath string
	}{
		{"prepare ACK", coordinator.MsgPrepare, answer(200, `{"vote":"ACK"}`), 0, coordinator.Reply{Vote: coordinator.VoteACK}, "", "/p/prepare"},
		{"prepare NACK", coordinator.MsgPrepare, answer(200, `{"vote":"NACK","reason":"no funds"}`), 0, coordinator.Reply{Vote: coordinator.VoteNACK, Reason: "no funds"}, "", "/p/prepare"},
		{"prepare unknown vote", coordinator.MsgPrepare, answer(200, `{"vote":"MAYBE"}`), 0, coordinator.Reply{}, `unknown vote "MAYBE"`, "/p/prepare"},
		{"prepare garbage", coordinator.MsgPrepare, answer(200, `<html>`), 0, coordinator.Reply{}, "vote does not parse", "/p/prepare"},
		{"prepare 500", coordinator.MsgPrepare, answer(500, `{"error":{"code":"x","message":"boom"}}`), 0, coordinator.Reply{}, "HTTP 500", "/p/prepare"},
		{"prepare 400", coordinator.MsgPrepare, answer(400, `bad`), 0, coordinator.Reply{}, "HTTP 400", "/p/prepare"},
		{"prepare oversized", coordinator.MsgPrepare, answer(200, `{"vote":"ACK","reason":"`+strings.Repeat("x", 2000)+`"}`), 0, coordinator.Reply{}, "larger than 1024 bytes", "/p/prepare"},
		{"prepare timeout", coordinator.MsgPrepare, hang, 50 * time.Millisecond, coordinator.Reply{}, "no answer within", "/p/prepare"},
		{"commit", coordinator.MsgCommit, answer(200, `{"state":"committed"}`), 0, coordinator.Reply{State: coordinator.PCommitted}, "", "/p/commit"},
		{"commit conflict", coordinator.MsgCommit, answer(409, `{"state":"aborted"}`), 0, coordinator.Reply{State: coordinator.PAborted, Conflict: true}, "", "/p/commit"},
		{"commit 409 without state", coordinator.MsgCommit, answer(409, `{}`), 0, coordinator.Reply{}, "409 without a state", "/p/commit"},
		{"commit 503", coordinator.MsgCommit, answer(503, ``), 0, coordinator.Reply{}, "HTTP 503", "/p/commit"},
		{"commit timeout", coordinator.MsgCommit, hang, 0, coordinator.Reply{}, "no answer within 200ms", "/p/commit"},
		{"rollback", coordinator.MsgRollback, answer(200, `{"state":"aborted"}`), 0, coordinator.Reply{State: coordinator.PAborted}, "", "/p/rollback"},
		{"status prepared", coordinator.MsgStatus, answer(200, `{"state":"prepared"}`), 0, coordinator.Reply{State: coordinator.PPrepared}, "", "/p/status"},
		{"status unknown state", coordinator.MsgStatus, answer(200, `{"state":"sleepy"}`), 0, coordinator.Reply{State: coordinator.PUnknown, Reason: "cannot tell: status answer does not parse"}, "", "/p/status"},
		{"status 404", coordinator.MsgStatus, answer(404, `not here`), 0, coordinator.Reply{State: coordinator.PUnknown, Reason: "cannot tell: status answered HTTP 404"}, "", "/p/status"},
		{"status 405", coordinator.MsgStatus, answer(405, ``), 0, coordinator.Reply{State: coordinator.PUnknown, Reason: "cannot tell: status answered HTTP 405"}, "", "/p/status"},
		{"status 503", coordinator.MsgStatus, answer(503, ``), 0, coordinator.Reply{}, "HTTP 503", "/p/status"},
		{"rollback unknown state", coordinator.MsgRollback, answer(200, `{"state":"sleepy"}`), 0, coordinator.Reply{}, "no known state", "/p/rollback"},
		{"asks", coordinator.MsgCommit, asking(answer(200, `{"state":"committed"}`)), 0, coordinator.Reply{State: coordinator.PCommitted, Asks: true}, "", "/p/commit"},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(tc.handler)
			defer srv.Close()
			m := coordinator.Message{Kind: tc.kind, Txn: "tx/1", Participant: 2, URL: srv.URL + "/p/prepare",
				Payload: json.RawMessage(`{"a":1}`), Seq: uint64(100 + i), Timeout: tc.timeout}
			send.Send(m)
			var r coordinator.Reply
			select {
			case r = <-replies:
			case <-time.After(waitDeadline):
				t.Fatal("no reply")
			}
			if r.Txn != m.Txn || r.Participant != 2 || r.Seq != m.Seq || r.Kind != m.Kind {
				t.Errorf("reply not matched to its message: %+v", r)
			}
			if tc.errHas == "" {
				if r.Err != nil {
					t.Fatalf("unexpected error %v", r.Err)
				}
			} else if r.Err == nil || !strings.Contains(transport.ReplyErrorDetail(r.Err), tc.errHas) {
				t.Fatalf("error %v, want one mentioning %q", r.Err, tc.errHas)
			}
			if r.Vote != tc.want.Vote || r.Reason != tc.want.Reason || r.State != tc.want.State || r.Conflict != tc.want.Conflict || r.Asks != tc.want.Asks {
				t.Errorf("got %+v, want %+v", r, tc.want)
			}
			if !strings.HasPrefix(tc.errHas, "no answer") { // a hanging handler records nothing
				mu.Lock()
				s := last
				mu.Unlock()
				if s.path != tc.wantPath {
					t.Errorf("request went to %s, want %s", s.path, tc.wantPath)
				}
				switch tc.kind {
				case coordinator.MsgPrepare:
					if s.method != "POST" || s.body["txn_id"] != "tx/1" || s.body["coordinator"] != "http://coordinator.test:7070" {
						t.Errorf("prepare request %+v", s)
					}
					if p, _ := s.body["payload"].(map[string]any); p["a"] != 1.0 {
						t.Errorf("payload not passed: %+v", s.body)
					}
				case coordinator.MsgStatus:
					if s.method != "GET" || s.query != "txn_id=tx%2F1" {
						t.Errorf("status request %+v", s)
					}
				default:
					if s.method != "POST" || s.body["txn_id"] != "tx/1" || len(s.body) != 1 {
						t.Errorf("%s request %+v", tc.kind, s)
					}
				}
			}
		})
	}

	// Nobody listening: connection refused.
	m := coordinator.Message{Kind: coordinator.MsgCommit, Txn: "t", URL: "http://" + freeAddr(t) + "/prepare", Seq: 1}
	send.Send(m)
	if r := <-replies; r.Err == nil || !strings.Contains(transport.ReplyErrorDetail(r.Err), "refused") {
		t.Errorf("connection refused: %+v", r)
	}
}

// After Close, requests in flight are cancelled and no reply is delivered; later sends
// are dropped.
func TestTransportCloseCancelsRequests(t *testing.T) {
	started := make(chan struct{}, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.ReadAll(r.Body)
		started <- struct{}{}
		<-r.Context().Done()
	}))
	defer srv.Close()
	tr := transport.New(transport.Options{RequestTimeout: time.Hour})
	count := 0
	send := tr.For(func(coordinator.Reply) { count++ })
	send.Send(coordinator.Message{Kind: coordinator.MsgCommit, Txn: "t", URL: srv.URL + "/prepare", Seq: 1})
	<-started
	tr.Close() // returns once the request's goroutine has
	send.Send(coordinator.Message{Kind: coordinator.MsgCommit, Txn: "t", URL: srv.URL + "/prepare", Seq: 2})
	if count != 0 {
		t.Errorf("%d replies delivered after Close, want 0", count)
	}
}

// Many Sends at once, from several goroutines, each get exactly one reply, whether a
// sender was idle for them or one was started; Close then waits for the senders.
func TestTransportRepliesOncePerSend(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.ReadAll(r.Body)
		fmt.Fprint(w, `{"vote":"ACK"}`)
	}))
	defer srv.Close()
	tr := transport.New(transport.Options{})
	const (
		shards = 4
		rounds = 50
		burst  = 20
	)
	var (
		mu   sync.Mutex
		seen = map[uint64]int{}
		wg   sync.WaitGroup
	)
	for sh := range shards {
		replies := make(chan coordinator.Reply, burst)
		send := tr.For(func(r coordinator.Reply) {
			mu.Lock()
			seen[r.Seq]++
			mu.Unlock()
			replies <- r
		})
		wg.Go(func() {
			for round := range rounds {
				for i := range burst {
					send.Send(coordinator.Message{Kind: coordinator.MsgPrepare, Txn: "t", URL: srv.URL + "/prepare",
						Seq: uint64(sh*rounds*burst + round*burst + i + 1)})
				}
				for range burst {
					if r := <-replies; r.Err != nil || r.Vote != coordinator.VoteACK {
						t.Errorf("reply %+v", r)
					}
				}
			}
		})
	}
	wg.Wait()
	tr.Close()
	if len(seen) != shards*rounds*burst {
		t.Errorf("%d messages got a reply, want %d", len(seen), shards*rounds*burst)
	}
	for seq, n := range seen {
		if n != 1 {
			t.Errorf("message %d got %d replies", seq, n)
		}
	}
}

// What goes on the wire does not depend on whether requests go through an
// http.Client (one from the options) or straight to NewTransport's own pool: method,
// path, query, headers and body; user information in a participant's URL becomes
// basic authentication; a redirect is not followed, and one whose Location does not
// parse is an error, as the Client has it.
func TestTransportRequestsOnTheWire(t *testing.T) {
	type seen struct {
		method, path, query, body string
		header                    http.Header
	}
	var (
		mu   sync.Mutex
		last seen
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		h := r.Header.Clone()
		h.Del("Accept-Encoding") // the transport's own
		mu.Lock()
		last = seen{method: r.Method, path: r.URL.Path, query: r.URL.RawQuery, body: string(b), header: h}
		mu.Unlock()
		switch r.URL.Query().Get("txn_id") + path.Base(r.URL.Path) {
		case "moved" + "status":
			w.Header().Set("Location", "http://[::1%zz]/x")
			w.WriteHeader(http.StatusFound)
		case "elsewhere" + "status":
			w.Header().Set("Location", "/somewhere")
			w.WriteHeader(http.StatusFound)
		case "prepare":
			fmt.Fprint(w, `{"vote":"ACK"}`)
		default:
			fmt.Fprint(w, `{"state":"committed"}`)
		}
	}))
	defer srv.Close()
	withUser := strings.Replace(srv.URL, "http://", "http://alice:secret@", 1)

	exchange := func(tr *transport.Transport, m coordinator.Message) (coordinator.Reply, seen) {
		replies := make(chan coordinator.Reply, 1)
		tr.For(func(r coordinator.Reply) { replies <- r }).Send(m)
		r := <-replies
		mu.Lock()
		defer mu.Unlock()
		s := last
		last = seen{}
		return r, s
	}
	direct := transport.New(transport.Options{AdvertiseURL: "http://coordinator.test:7070"})
	defer direct.Close()
	viaClient := transport.New(transport.Options{AdvertiseURL: "http://coordinator.test:7070",
		Client: &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}})
	defer viaClient.Close()

	for _, m := range []coordinator.Message{
		{Kind: coordinator.MsgPrepare, Txn: "tx/1", URL: srv.URL + "/p/prepare", Payload: json.RawMessage(`{"a": 1}`)},
		{Kind: coordinator.MsgCommit, Txn: "tx/1", URL: srv.URL + "/p/prepare"},
		{Kind: coordinator.MsgRollback, Txn: "tx/1", URL: srv.URL + "/p/prepare"},
		{Kind: coordinator.MsgStatus, Txn: "tx/1", URL: srv.URL + "/p/prepare"},
		{Kind: coordinator.MsgCommit, Txn: "tx/2", URL: withUser + "/p/prepare"},
		{Kind: coordinator.MsgStatus, Txn: "moved", URL: srv.URL + "/p/prepare"},
		{Kind: coordinator.MsgStatus, Txn: "elsewhere", URL: srv.URL + "/p/prepare"},
	} {
		r1, s1 := exchange(direct, m)
		r2, s2 := exchange(viaClient, m)
		if fmt.Sprint(s1) != fmt.Sprint(s2) || fmt.Sprint(r1) != fmt.Sprint(r2) {
			t.Errorf("%s %s %s:\nstraight:     %+v\n              %+v\nthrough a Client: %+v\n              %+v",
				m.Kind, m.Txn, m.URL, s1, r1, s2, r2)
		}
		switch {
		case m.Txn == "moved":
			if r1.Err == nil || !strings.Contains(transport.ReplyErrorDetail(r1.Err), "failed to parse Location header") {
				t.Errorf("a redirect to a Location that does not parse: %v", r1.Err)
			}
		case m.Txn == "elsewhere":
			if r1.Err == nil || !strings.Contains(transport.ReplyErrorDetail(r1.Err), "HTTP 302") {
				t.Errorf("a redirect: %v, want it not followed", r1.Err)
			}
		case strings.Contains(m.URL, "alice"):
			if u, p, ok := (&http.Request{Header: s1.header}).BasicAuth(); !ok || u != "alice" || p != "secret" {
				t.Errorf("user information in the URL: headers %v, want basic authentication", s1.header)
			}
		case m.Kind == coordinator.MsgStatus:
			if s1.method != "GET" || s1.query != "txn_id=tx%2F1" || s1.body != "" || s1.header.Get("Content-Type") != "" ||
				s1.header.Get("Accept") != "application/json" || s1.header.Get("User-Agent") != "dtc-coordinator" {
				t.Errorf("status request %+v", s1)
			}
		default:
			if s1.method != "POST" || s1.header.Get("Content-Type") != "application/json" ||
				s1.header.Get("Accept") != "application/json" || s1.header.Get("User-Agent") != "dtc-coordinator" ||
				s1.header.Get("Content-Length") != fmt.Sprint(len(s1.body)) {
				t.Errorf("%s request %+v", m.Kind, s1)
			}
		}
	}
}
