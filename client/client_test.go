package client_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dtc-project/dtc/client"
	"github.com/dtc-project/dtc/coordinator"
	"github.com/dtc-project/dtc/httpnet"
	"github.com/dtc-project/dtc/httpnet/apiserver"
)

// ackParticipant votes ACK and acknowledges phase 2, from memory.
func ackParticipant(t *testing.T) string {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch path.Base(r.URL.Path) {
		case "prepare":
			fmt.Fprint(w, `{"vote":"ACK"}`)
		case "commit":
			fmt.Fprint(w, `{"state":"committed"}`)
		case "rollback":
			fmt.Fprint(w, `{"state":"aborted"}`)
		default:
			fmt.Fprint(w, `{"state":"unknown"}`)
		}
	}))
	t.Cleanup(srv.Close)
	return srv.URL + "/prepare"
}

func nackParticipant(t *testing.T) string {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch path.Base(r.URL.Path) {
		case "prepare":
			fmt.Fprint(w, `{"vote":"NACK","reason":"out of stock"}`)
		default:
			fmt.Fprint(w, `{"state":"aborted"}`)
		}
	}))
	t.Cleanup(srv.Close)
	return srv.URL + "/prepare"
}

// coordinatorURL runs a real coordinator (runtime and API) on loopback.
func coordinatorURL(t *testing.T) string {
	t.Helper()
	rt, err := httpnet.Open(httpnet.Options{
		DataDir: t.TempDir(), Shards: 2, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		OnFatal: func(err error) { t.Errorf("fatal: %v", err) },
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(apiserver.NewServer(rt, apiserver.ServerOptions{}))
	t.Cleanup(func() {
		rt.Close()
		srv.Close()
	})
	deadline := time.Now().Add(30 * time.Second)
	for !rt.Ready() {
		if time.Now().After(deadline) {
			t.Fatal("coordinator not ready")
		}
		time.Sleep(20 * time.Millisecond)
	}
	return srv.URL
}

func TestAgainstTheCoordinator(t *testing.T) {
	ok, no := ackParticipant(t), nackParticipant(t)
	c, err := client.New(coordinatorURL(t)+"/", client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()

	v, err := c.Submit(ctx, client.Request{ID: "c-1", Participants: []client.Participant{{URL: ok, Payload: json.RawMessage(`{"n":1}`)}}, PrepareTimeout: 2 * time.Second})
	if err != nil || v.State != client.StateCommitted || v.ID != "c-1" {
		t.Fatalf("submit: %+v %v", v, err)
	}
	v, err = c.Submit(ctx, client.Request{Participants: []client.Participant{{URL: ok}, {URL: no}}})
	if err != nil || v.State != client.StateAborted || v.Participants[1].Reason != "out of stock" {
		t.Fatalf("submit with a NACK: %+v %v", v, err)
	}
	a, err := c.SubmitAsync(ctx, client.Request{ID: "c-async", Participants: []client.Participant{{URL: ok}}})
	if err != nil || a.ID != "c-async" {
		t.Fatalf("async: %+v %v", a, err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		g, err := c.Get(ctx, "c-async")
		if err != nil {
			t.Fatal(err)
		}
		if g.State == client.StateCommitted {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("c-async still %s", g.State)
		}
		time.Sleep(20 * time.Millisecond)
	}
	p, err := c.List(ctx, client.ListOptions{State: client.StateCommitted, Limit: 1})
	if err != nil || len(p.Transactions) != 1 || p.Transactions[0].ID != "c-1" || p.Next != "c-1" {
		t.Fatalf("list page 1: %+v %v", p, err)
	}
	p, err = c.List(ctx, client.ListOptions{State: client.StateCommitted, After: p.Next})
	if err != nil || len(p.Transactions) != 1 || p.Transactions[0].ID != "c-async" || p.Next != "" {
		t.Fatalf("list page 2: %+v %v", p, err)
	}
	if err := c.Ready(ctx); err != nil {
		t.Errorf("ready: %v", err)
	}

	// Typed errors.
	_, err = c.Get(ctx, "never-seen")
	var apiErr *client.Error
	if !errors.As(err, &apiErr) || apiErr.StatusCode != 404 || !client.IsNotFound(err) {
		t.Errorf("get unknown: %v", err)
	}
	_, err = c.Submit(ctx, client.Request{ID: "c-1", Participants: []client.Participant{{URL: no}}})
	if !client.IsConflict(err) {
		t.Errorf("reused id: %v, want a conflict", err)
	}
	_, err = c.Submit(ctx, client.Request{Participants: []client.Participant{{URL: "ftp://nowhere/prepare"}}})
	if !client.IsInvalid(err) || !errors.As(err, &apiErr) || apiErr.Code != client.CodeInvalid ||
		!strings.Contains(apiErr.Message, "participants[0].url") {
		t.Errorf("invalid URL: %v", err)
	}
	_, err = c.List(ctx, client.ListOptions{State: "sideways"})
	if !client.IsInvalid(err) {
		t.Errorf("bad filter: %v", err)
	}
}

// fakeAPI answers with the statuses in script, in turn (the last one repeats), and
// counts the calls.
type fakeAPI struct {
	mu     sync.Mutex
	calls  int
	script []func(w http.ResponseWriter)
}

func (f *fakeAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	_, _ = io.ReadAll(r.Body)
	f.mu.Lock()
	step := f.script[min(f.calls, len(f.script)-1)]
	f.calls++
	f.mu.Unlock()
	step(w)
}

func (f *fakeAPI) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls
}

func busy(status int, retryAfter string) func(http.ResponseWriter) {
	return func(w http.ResponseWriter) {
		if retryAfter != "" {
			w.Header().Set("Retry-After", retryAfter)
		}
		w.WriteHeader(status)
		fmt.Fprint(w, `{"error":{"code":"busy","message":"later"}}`)
	}
}

func committed(w http.ResponseWriter) {
	fmt.Fprint(w, `{"id":"x","state":"committed","participants":[]}`)
}

func TestRetriesOnlyWhereSafe(t *testing.T) {
	req := client.Request{Participants: []client.Participant{{URL: "http://127.0.0.1:1/prepare"}}}
	withID := req
	withID.ID = "x"
	for _, tc := range []struct {
		name   string
		script []func(http.ResponseWriter)
		call   func(*client.Client) error
		calls  int
		ok     bool
	}{
		{"submit with id retries 503", []func(http.ResponseWriter){busy(503, "0"), busy(429, "0"), committed},
			func(c *client.Client) error { _, err := c.Submit(context.Background(), withID); return err }, 3, true},
		{"submit without id never retries", []func(http.ResponseWriter){busy(503, "0"), committed},
			func(c *client.Client) error { _, err := c.Submit(context.Background(), req); return err }, 1, false},
		{"no Retry-After, no retry", []func(http.ResponseWriter){busy(503, ""), committed},
			func(c *client.Client) error { _, err := c.Submit(context.Background(), withID); return err }, 1, false},
		{"400 is not retried", []func(http.ResponseWriter){busy(400, "0"), committed},
			func(c *client.Client) error { _, err := c.Get(context.Background(), "x"); return err }, 1, false},
		{"get retries, bounded", []func(http.ResponseWriter){busy(503, "0")},
			func(c *client.Client) error { _, err := c.Get(context.Background(), "x"); return err }, 3, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := &fakeAPI{script: tc.script}
			srv := httptest.NewServer(f)
			defer srv.Close()
			c, err := client.New(srv.URL, client.Options{MaxRetries: 2})
			if err != nil {
				t.Fatal(err)
			}
			err = tc.call(c)
			if (err == nil) != tc.ok || f.count() != tc.calls {
				t.Errorf("err %v after %d calls, want ok=%v after %d", err, f.count(), tc.ok, tc.calls)
			}
			var apiErr *client.Error
			if err != nil && !errors.As(err, &apiErr) {
				t.Errorf("error %T is not a *client.Error", err)
			}
		})
	}

	// A retry never waits past the context. The context is cancelled once the 503 is in
	// the client's hands (its body read in full), never while the request is on its way:
	// then the only wait left to cut short is the retry's.
	f := &fakeAPI{script: []func(http.ResponseWriter){busy(503, "3600")}}
	srv := httptest.NewServer(f)
	defer srv.Close()
	ctx, cancel := context.WithCancel(context.Background())
	hc := &http.Client{Transport: cancelAfterAnswer{cancel: cancel}}
	c, _ := client.New(srv.URL, client.Options{RetryWaitMax: time.Hour, HTTPClient: hc})
	_, err := c.Get(ctx, "x")
	var apiErr *client.Error
	if !errors.As(err, &apiErr) || apiErr.RetryAfter != time.Hour || f.count() != 1 {
		t.Errorf("cancelled wait: %v after %d calls", err, f.count())
	}
}

// cancelAfterAnswer is a RoundTripper that reads each answer whole, then calls cancel.
type cancelAfterAnswer struct{ cancel context.CancelFunc }

func (c cancelAfterAnswer) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	resp.Body = io.NopCloser(bytes.NewReader(body))
	c.cancel()
	return resp, nil
}

func TestRequestWireFormat(t *testing.T) {
	b, err := json.Marshal(client.Request{
		ID: "w",
		Participants: []client.Participant{
			{URL: "http://a/prepare"},
			{URL: "http://b/prepare", Payload: json.RawMessage(`{"k":[1,2]}`)},
		},
		PrepareTimeout: 1500 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	want := `{"id":"w","participants":["http://a/prepare",{"url":"http://b/prepare","payload":{"k":[1,2]}}],"prepare_timeout_ms":1500}`
	if string(b) != want {
		t.Errorf("got  %s\nwant %s", b, want)
	}
	var v client.View
	if err := json.Unmarshal([]byte(`{"id":"x","state":"aborted","participants":[{"url":"u","vote":"NACK","reason":"r","acked":true}],"phase2_done":true}`), &v); err != nil ||
		v.Participants[0].Vote != coordinator.VoteNACK || !v.PhaseTwoDone || !v.Final() {
		t.Errorf("view: %+v %v", v, err)
	}
}

func TestNewRefusesBadURLs(t *testing.T) {
	for _, u := range []string{"", "127.0.0.1:7070", "ftp://h", "http://h/?q=1", "::"} {
		if _, err := client.New(u, client.Options{}); err == nil {
			t.Errorf("New(%q) accepted", u)
		}
	}
}

// With several endpoints, a call moves to the next node when one cannot be reached:
// any call when the connection is refused; after a connection broken mid-call, only a
// call that is safe to repeat.
func TestEndpointsFailOver(t *testing.T) {
	var hits atomic.Int64
	live := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.Header().Set("Content-Type", "application/json")
		if r.Method == http.MethodPost {
			_, _ = io.WriteString(w, `{"id":"x","state":"committed","participants":[]}`)
			return
		}
		_, _ = io.WriteString(w, `{"id":"t1","state":"committed","participants":[]}`)
	}))
	defer live.Close()
	broken := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, _, err := w.(http.Hijacker).Hijack()
		if err == nil {
			c.Close() // the connection breaks before any answer
		}
	}))
	defer broken.Close()
	refused := httptest.NewServer(http.NotFoundHandler())
	refusedURL := refused.URL
	refused.Close()

	ctx := context.Background()
	c, err := client.New(refusedURL, client.Options{Endpoints: []string{live.URL}})
	if err != nil {
		t.Fatal(err)
	}
	if v, err := c.Get(ctx, "t1"); err != nil || v.ID != "t1" {
		t.Fatalf("Get with the first node down: %+v %v", v, err)
	}
	req := client.Request{Participants: []client.Participant{{URL: "http://p.test/prepare"}}}
	c, _ = client.New(refusedURL, client.Options{Endpoints: []string{live.URL}})
	if _, err := c.Submit(ctx, req); err != nil {
		t.Fatalf("Submit without an id, first node refusing: %v", err)
	}

	before := hits.Load()
	c, _ = client.New(broken.URL, client.Options{Endpoints: []string{live.URL}})
	if _, err := c.Submit(ctx, req); err == nil {
		t.Fatal("a Submit without an id was sent again after a broken connection: it may run twice")
	}
	if hits.Load() != before {
		t.Fatal("the Submit without an id reached the second node")
	}
	req.ID = "x"
	if _, err := c.Submit(ctx, req); err != nil {
		t.Fatalf("Submit with an id after a broken connection: %v", err)
	}

	if _, err := client.New(live.URL, client.Options{Endpoints: []string{"ftp://x"}}); err == nil {
		t.Fatal("a bad endpoint was accepted")
	}
}
