package httpnet_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"path"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/dtc-project/dtc/client"
	"github.com/dtc-project/dtc/coordinator"
	"github.com/dtc-project/dtc/examples/bank"
	"github.com/dtc-project/dtc/httpnet"
	"github.com/dtc-project/dtc/httpnet/apiserver"
	"github.com/dtc-project/dtc/participant"
	"github.com/dtc-project/dtc/wal"
)

// Waits in these tests are bounded polls: they never decide correctness by how long
// something took, only give up after a generous deadline.
const (
	waitDeadline = 30 * time.Second
	pollEvery    = 20 * time.Millisecond
)

// eventually polls cond until it holds, failing the test after waitDeadline.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitDeadline)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up after %v waiting for: %s", waitDeadline, what)
		}
		time.Sleep(pollEvery)
	}
}

func testLogger(t *testing.T) *slog.Logger {
	if testing.Verbose() && t != nil {
		return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(b), "\n"))
	return len(b), nil
}

// freeAddr returns a loopback address with a port that was free a moment ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// listen binds addr, retrying for a while: a port just released may linger.
func listen(t *testing.T, addr string) net.Listener {
	t.Helper()
	var ln net.Listener
	eventually(t, "listening on "+addr, func() bool {
		var err error
		ln, err = net.Listen("tcp", addr)
		return err == nil
	})
	return ln
}

// ---------------------------------------------------------------------------------
// gate: a participant's network, under the test's control.

// Gate modes for one endpoint (prepare, commit, rollback, status). A batch (POST
// …/batch, phase 2 of many transactions) passes the gate as a commit when it carries
// one, else as a rollback: the tests hold and refuse phase 2, whichever way it travels.
const (
	pass      = ""          // forward at once
	hold      = "hold"      // keep the request, forward it when released (even if its client left)
	holdReply = "holdReply" // forward at once, keep the answer until released
	down      = "down"      // answer 503, as a participant that is not there
)

// gate sits in front of a participant's handler.
type gate struct {
	next http.Handler

	mu        sync.Mutex
	mode      map[string]string
	open      map[string]chan struct{} // closed by release
	held      map[string]int           // requests that reached a hold, ever
	forwarded map[string][]string      // answers to requests forwarded after a hold
	calls     map[string]int
	shut      chan struct{}
}

func newGate(next http.Handler) *gate {
	return &gate{next: next, mode: map[string]string{}, open: map[string]chan struct{}{},
		held: map[string]int{}, forwarded: map[string][]string{}, calls: map[string]int{}, shut: make(chan struct{})}
}

func (g *gate) set(endpoint, mode string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if old, ok := g.open[endpoint]; ok && (mode == hold || mode == holdReply) {
		select {
		case <-old:
			delete(g.open, endpoint) // released before: hold again from now on
		default:
		}
	}
	if _, ok := g.open[endpoint]; !ok {
		g.open[endpoint] = make(chan struct{})
	}
	g.mode[endpoint] = mode
}

// release lets the held requests of endpoint go on, and later ones pass.
func (g *gate) release(endpoint string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.mode[endpoint] = pass
	if ch, ok := g.open[endpoint]; ok {
		select {
		case <-ch:
		default:
			close(ch)
		}
	}
}

func (g *gate) heldCount(endpoint string) int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.held[endpoint]
}

func (g *gate) callCount(endpoint string) int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.calls[endpoint]
}

func (g *gate) forwardedAnswers(endpoint string) []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]string(nil), g.forwarded[endpoint]...)
}

// close releases everything for good (before the server closes, which waits for its
// handlers).
func (g *gate) close() {
	g.mu.Lock()
	defer g.mu.Unlock()
	select {
	case <-g.shut:
	default:
		close(g.shut)
	}
}

func (g *gate) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	name := path.Base(r.URL.Path)
	if name == "batch" {
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		name = "rollback"
		if bytes.Contains(body, []byte(`"op":"commit"`)) {
			name = "commit"
		}
	}
	g.mu.Lock()
	mode, open, shut := g.mode[name], g.open[name], g.shut
	g.calls[name]++
	g.mu.Unlock()
	switch mode {
	case down:
		http.Error(w, "participant down (test gate)", http.StatusServiceUnavailable)
	case hold:
		body, _ := io.ReadAll(r.Body)
		g.mu.Lock()
		g.held[name]++
		g.mu.Unlock()
		select {
		case <-open:
		case <-shut:
			return
		}
		// Forward what the network kept, whether or not its sender still waits: the
		// participant must cope with a message that arrives late.
		fwd := r.Clone(context.Background())
		fwd.Body = io.NopCloser(bytes.NewReader(body))
		rec := httptest.NewRecorder()
		g.next.ServeHTTP(rec, fwd)
		g.mu.Lock()
		g.forwarded[name] = append(g.forwarded[name], strings.TrimSpace(rec.Body.String()))
		g.mu.Unlock()
		copyResponse(w, rec)
	case holdReply:
		rec := httptest.NewRecorder()
		g.next.ServeHTTP(rec, r.Clone(context.Background()))
		g.mu.Lock()
		g.held[name]++
		g.mu.Unlock()
		select {
		case <-open:
		case <-shut:
			return
		case <-r.Context().Done():
			return
		}
		copyResponse(w, rec)
	default:
		g.next.ServeHTTP(w, r)
	}
}

func copyResponse(w http.ResponseWriter, rec *httptest.ResponseRecorder) {
	for k, v := range rec.Header() {
		w.Header()[k] = v
	}
	w.WriteHeader(rec.Code)
	_, _ = w.Write(rec.Body.Bytes())
}

// ---------------------------------------------------------------------------------
// bankNode: a bank participant (participant + examples/bank) on its own port and data
// directory, behind a gate; it can be stopped and started again on the same address.

type bankNode struct {
	t        *testing.T
	dir      string
	addr     string
	accounts map[string]int64
	gate     *gate
	cfg      participant.Config

	mu   sync.Mutex
	bank *bank.Bank
	p    *participant.Participant
	srv  *httptest.Server

	// tracing: the participant's spans go to tp (when set); traceparents keeps the
	// traceparent header of every request, by endpoint.
	tp           trace.TracerProvider
	traceparents map[string][]string
}

func newBankNode(t *testing.T, accounts map[string]int64) *bankNode {
	t.Helper()
	return newBankNodeConfig(t, accounts, participant.DefaultConfig())
}

// newBankNodeConfig is newBankNode with the participant's configuration.
func newBankNodeConfig(t *testing.T, accounts map[string]int64, cfg participant.Config) *bankNode {
	t.Helper()
	n := &bankNode{t: t, dir: t.TempDir(), addr: freeAddr(t), accounts: accounts, cfg: cfg}
	n.gate = newGate(http.HandlerFunc(n.serve))
	n.start()
	t.Cleanup(n.stop)
	return n
}

// prepareURL is the participant's name in transactions.
func (n *bankNode) prepareURL() string { return "http://" + n.addr + "/prepare" }

func (n *bankNode) serve(w http.ResponseWriter, r *http.Request) {
	n.mu.Lock()
	p, tp := n.p, n.tp
	if n.traceparents == nil {
		n.traceparents = map[string][]string{}
	}
	n.traceparents[path.Base(r.URL.Path)] = append(n.traceparents[path.Base(r.URL.Path)], r.Header.Get("traceparent"))
	n.mu.Unlock()
	if p == nil {
		http.Error(w, "stopped", http.StatusServiceUnavailable)
		return
	}
	participant.NewHandler(p, participant.HandlerOptions{Logger: testLogger(n.t), TracerProvider: tp}).ServeHTTP(w, r)
}

func (n *bankNode) start() {
	n.t.Helper()
	b, err := bank.New(n.accounts)
	if err != nil {
		n.t.Fatal(err)
	}
	p, err := participant.OpenGroupSync(n.cfg, b, participant.SystemClock{},
		wal.Options{FS: wal.OSFS(), Dir: n.dir, SegmentSizeBytes: 1 << 20},
		wal.GroupSyncerOptions{LazyFlushInterval: 5 * time.Millisecond, OnFatal: func(err error) {
			n.t.Errorf("participant log failed: %v", err)
		}})
	if err != nil {
		n.t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(n.gate)
	srv.Listener.Close()
	srv.Listener = listen(n.t, n.addr)
	srv.Start()
	n.mu.Lock()
	n.bank, n.p, n.srv = b, p, srv
	n.mu.Unlock()
}

// stop takes the participant off the network and closes it (its log keeps what it
// made durable). Held requests are let go first so the server can close.
func (n *bankNode) stop() {
	n.mu.Lock()
	srv, p := n.srv, n.p
	n.srv, n.p = nil, nil
	n.mu.Unlock()
	if srv == nil {
		return
	}
	n.gate.close()
	srv.CloseClientConnections()
	srv.Close()
	if err := p.Close(); err != nil {
		n.t.Errorf("closing participant: %v", err)
	}
	n.gate.mu.Lock()
	n.gate.shut = make(chan struct{})
	n.gate.mu.Unlock()
}

func (n *bankNode) restart() {
	n.stop()
	n.start()
}

func (n *bankNode) status(id string) participant.State {
	n.mu.Lock()
	p := n.p
	n.mu.Unlock()
	if p == nil {
		return ""
	}
	return p.Status(id)
}

func (n *bankNode) balance(account string) int64 {
	n.mu.Lock()
	b := n.bank
	n.mu.Unlock()
	a, ok := b.Account(account)
	if !ok {
		n.t.Fatalf("no account %q", account)
	}
	return a.Balance
}

func (n *bankNode) holds() []string {
	n.mu.Lock()
	b := n.bank
	n.mu.Unlock()
	return b.Prepared()
}

func (n *bankNode) waitStatus(id string, want participant.State) {
	n.t.Helper()
	eventually(n.t, fmt.Sprintf("participant %s reports %s for %s", n.addr, want, id), func() bool {
		return n.status(id) == want
	})
}

// op is one bank operation as a prepare payload.
func op(account string, amount int64) json.RawMessage {
	b, _ := json.Marshal(bank.Payload{Ops: []bank.Op{{Account: account, Amount: amount}}})
	return b
}

// ---------------------------------------------------------------------------------
// coord: a Runtime and its API on loopback.

type coord struct {
	so    apiserver.ServerOptions // the API's; its Logger is set by start
	t     *testing.T
	dir   string
	o     httpnet.Options
	rt    *httpnet.Runtime
	srv   *httptest.Server
	url   string
	cli   *client.Client
	addr  string
	token string
}

// testEngineConfig is fast: short backoff so retries happen within a test's patience.
func testEngineConfig() coordinator.Config {
	cfg := coordinator.DefaultConfig()
	cfg.PrepareTimeout = 5 * time.Second
	cfg.RecoveryTimeout = 5 * time.Second
	cfg.RequestTimeout = 2 * time.Second
	cfg.RetryBackoffMin = 10 * time.Millisecond
	cfg.RetryBackoffMax = 100 * time.Millisecond
	return cfg
}

// startCoord opens a runtime over dir (a fresh one if dir is empty) and serves its API
// on a loopback port (the same one on a restart).
func startCoord(t *testing.T, dir string, mod func(*httpnet.Options)) *coord {
	t.Helper()
	return startCoordAPI(t, dir, mod, apiserver.ServerOptions{}, "")
}

// startCoordAPI is startCoord with the API's options, and the token its client sends.
func startCoordAPI(t *testing.T, dir string, mod func(*httpnet.Options), so apiserver.ServerOptions, token string) *coord {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	c := &coord{t: t, dir: dir, addr: freeAddr(t), so: so, token: token}
	c.o = httpnet.Options{
		DataDir:           dir,
		Shards:            3,
		Engine:            testEngineConfig(),
		LazyFlushInterval: 5 * time.Millisecond,
		CompactInterval:   50 * time.Millisecond,
		Logger:            testLogger(t),
		OnFatal:           func(err error) { t.Errorf("fatal: %v", err) },
	}
	if mod != nil {
		mod(&c.o)
	}
	c.start()
	t.Cleanup(c.crash)
	return c
}

func (c *coord) start() {
	c.t.Helper()
	c.url = "http://" + c.addr
	o := c.o
	o.Transport.AdvertiseURL = c.url
	rt, err := httpnet.Open(o)
	if err != nil {
		c.t.Fatalf("Open: %v", err)
	}
	so := c.so
	so.Logger = c.o.Logger
	srv := httptest.NewUnstartedServer(validated(c.t, apiserver.NewServer(rt, so)))
	srv.Listener.Close()
	srv.Listener = listen(c.t, c.addr)
	srv.Start()
	cli, err := client.New(c.url, client.Options{Token: c.token})
	if err != nil {
		c.t.Fatal(err)
	}
	c.rt, c.srv, c.cli = rt, srv, cli
}

// crash stops the coordinator the hard way: no graceful shutdown of the API, requests
// in flight are cut off, the shards stop wherever they are.
func (c *coord) crash() {
	if c.rt == nil {
		return
	}
	if err := c.rt.Close(); err != nil {
		c.t.Errorf("closing runtime: %v", err)
	}
	c.srv.CloseClientConnections()
	c.srv.Close()
	c.rt, c.srv = nil, nil
}

// restart crashes the coordinator and opens its data directory again on the same
// address, with the same options unless mod changes them.
func (c *coord) restart(mod func(*httpnet.Options)) {
	c.t.Helper()
	c.crash()
	if mod != nil {
		mod(&c.o)
	}
	c.start()
}

func (c *coord) waitReady() {
	c.t.Helper()
	eventually(c.t, "the coordinator is ready", c.rt.Ready)
}

// waitView polls GET /v1/transactions/{id} until cond holds.
func (c *coord) waitView(id, what string, cond func(client.View) bool) client.View {
	c.t.Helper()
	var v client.View
	eventually(c.t, fmt.Sprintf("txn %s: %s", id, what), func() bool {
		var err error
		v, err = c.cli.Get(context.Background(), id)
		return err == nil && cond(v)
	})
	return v
}

// post sends a raw body to POST /v1/transactions and returns the status, the body and
// the headers.
func (c *coord) post(query, body string) (int, string, http.Header) {
	c.t.Helper()
	resp, err := http.Post(c.url+"/v1/transactions"+query, "application/json", strings.NewReader(body))
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Header
}

// logRecords reads the coordinator's log (read-only, as dtc log dump does).
func logRecords(t *testing.T, dir string) []*coordinator.Record {
	t.Helper()
	var recs []*coordinator.Record
	l, err := wal.Open(wal.Options{FS: wal.OSFS(), Dir: dir, ReadOnly: true}, func(_ wal.Pos, b []byte) error {
		rec, err := coordinator.DecodeRecord(b)
		if err != nil {
			return err
		}
		recs = append(recs, rec)
		return nil
	})
	if err != nil {
		t.Fatalf("reading the log: %v", err)
	}
	l.Close()
	return recs
}

func countRecords(recs []*coordinator.Record, typ coordinator.RecordType) int {
	n := 0
	for _, r := range recs {
		if r.Type == typ {
			n++
		}
	}
	return n
}
