package transport

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pingcap/failpoint"
	"github.com/prometheus/client_golang/prometheus"

	"go.opentelemetry.io/otel/trace"

	"github.com/dtc-project/dtc/coordinator"
	"github.com/dtc-project/dtc/httpnet/internal/tracing"
	"github.com/dtc-project/dtc/internal/fp"
	"github.com/dtc-project/dtc/participant"
	"github.com/dtc-project/dtc/protocol"
)

// Options configure a Transport. Zero values mean the defaults.
type Options struct {
	// AdvertiseURL is the coordinator's base URL as participants reach it
	// (http://host:port). It goes with every prepare, so that a participant left in
	// doubt knows whom to ask. Empty: participants are not told.
	AdvertiseURL string
	// RequestTimeout bounds a request whose Message carries no timeout. Default 5s.
	RequestTimeout time.Duration
	// ResponseMaxBytes bounds the body read from a participant. Default 64 KiB.
	ResponseMaxBytes int64
	// ResponseHeaderMaxBytes bounds the status line and headers of a participant's
	// answer (net/http's default is 10 MiB each, which a hostile participant could
	// make dtc hold for every request); beyond it the request fails. Default 64 KiB.
	// Not applied to a Client from these options.
	ResponseHeaderMaxBytes int64
	// Logger gets the details of the requests that got no usable answer (which API
	// clients do not see). Default slog.Default().
	Logger *slog.Logger
	// TLS configures https:// participants: the CA their certificates are verified
	// against and dtc's client certificate for mTLS (ClientTLSConfig). Nil: the
	// system's roots, no client certificate. Not applied to a Client from these
	// options.
	TLS *tls.Config
	// MaxIdleConnsPerHost is how many keep-alive connections to one participant are
	// kept. Default 256.
	MaxIdleConnsPerHost int
	// DialTimeout bounds connecting to a participant. Default 5s.
	DialTimeout time.Duration
	// Client replaces the pooled HTTP client (tests). Its own timeouts still apply.
	Client *http.Client
	// BatchInflight is how many POST …/batch requests may be in flight at once to one
	// participant that offers batching (the Dtc-Batch-Max header, see batch.go). The
	// commits and rollbacks that come while that many are in flight wait in the
	// participant's queue and leave together in the next request, up to the
	// participant's maximum: the more in flight, the smaller the batches. Default 1.
	BatchInflight int
	// BatchSlowAfter: when BatchInflight batches are in flight to a participant and
	// the newest of them left at least this long ago, a commit or rollback that comes
	// starts one more sender, up to batchSlowSendersMax more, so that what comes while
	// a participant is slow to answer a batch (a database flushing its log) does not
	// wait for it. Each of them then carries what is queued, as the first does.
	// Default 10ms; negative: never (at most BatchInflight, always).
	BatchSlowAfter time.Duration
	// Signer, if set, signs every request to a participant (prepare, commit, rollback,
	// status, batch) with the secret it shares with them (participant.Auth verifies).
	Signer *participant.Signer
	// HostRetriesMax bounds the phase-2 and status requests (not prepares, not
	// batches) in flight at once to one participant host (host:port). A participant
	// that never answers keeps its transactions' phase 2 retried for ever, as atomicity
	// requires; this bound keeps thousands of such retries from holding as many
	// connections and goroutines. A request over it fails at once, without a
	// connection, and the engine retries it after its backoff. Default 64.
	HostRetriesMax int
	// NoBatch turns phase-2 batching off: never use POST …/batch, even with
	// participants that offer it. Their Dtc-Batch-Max header is ignored (the capability
	// is never recorded), and every commit and rollback is a request of its own.
	NoBatch bool
	// Tracing, if set, makes a span of each request to a participant of a transaction
	// it traces, and sends the span's traceparent with the request (package httpnet
	// sets it from its Options.TracerProvider). Nil: no spans, no traceparent.
	Tracing *tracing.Tracing
}

func (o *Options) setDefaults() {
	if o.RequestTimeout <= 0 {
		o.RequestTimeout = 5 * time.Second
	}
	if o.ResponseMaxBytes <= 0 {
		o.ResponseMaxBytes = 64 << 10
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.ResponseHeaderMaxBytes <= 0 {
		o.ResponseHeaderMaxBytes = 64 << 10
	}
	if o.MaxIdleConnsPerHost <= 0 {
		o.MaxIdleConnsPerHost = 256
	}
	if o.DialTimeout <= 0 {
		o.DialTimeout = 5 * time.Second
	}
	if o.BatchInflight <= 0 {
		o.BatchInflight = 1
	}
	if o.BatchSlowAfter == 0 {
		o.BatchSlowAfter = 10 * time.Millisecond
	}
	if o.HostRetriesMax <= 0 {
		o.HostRetriesMax = 64
	}
}

// Transport delivers the engines' messages to participants over HTTP (DESIGN §3). One
// Transport (one connection pool) serves every shard; For returns the
// coordinator.Transport of one shard, which hands replies to that shard.
//
// Send never blocks: it hands its message to an idle sender goroutine, or starts one.
// Senders are owned by the Transport and stay after their request to take the next
// one, so that a request pays neither for a new goroutine nor for growing its stack.
// A sender exits once it has been idle for senderIdleTimeout; one started while
// sendersMax others run exits after its request. Close cancels the requests still
// running and waits for every sender. A request is always bounded by a timeout, so
// every Send produces exactly one reply unless the Transport is closed first.
//
// The commits and rollbacks for a participant that offers batching are not sent one by
// one: they wait in that participant's queue, and senders carry them in POST …/batch
// requests (batch.go), unless Options.NoBatch is set.
type Transport struct {
	o      Options
	client *http.Client
	direct *http.Transport        // client's, when New made it: requests skip the Client
	errs   *prometheus.CounterVec // dtc_participant_errors_total, by kind and request

	ctx    context.Context
	cancel context.CancelFunc

	jobs chan sendJob // unbuffered: a send succeeds only when an idle sender takes it

	closed  atomic.Bool // set under mu, read without it by Send's fast path
	mu      sync.Mutex
	senders int            // long-lived senders running, at most sendersMax
	wg      sync.WaitGroup // every sender goroutine

	endpointsMu sync.Mutex
	endpoints   map[string]*protocol.Endpoints // by prepare URL; at most endpointCacheMax

	batchMu    sync.Mutex
	batchPeers map[string]*batchPeer // participants that offer batching, by prepare URL; at most batchPeersMax
	batchKnown atomic.Int32          // len(batchPeers), read without batchMu by Send's fast path

	hostMu   sync.Mutex
	hostBusy map[string]int // phase-2 and status requests in flight, by host; no zero entries

	stats transportCounters
	trace *tracing.Tracing // nil when tracing is off (o.Tracing)
}

// sendersMax bounds the senders that stay after their request to take the next one;
// beyond it a Send runs on a goroutine that exits after its request. It bounds the
// goroutines kept idle: busy ones are bounded by the requests in flight (the engines'
// limits), with or without it.
const sendersMax = 1024

// senderIdleTimeout is how long a sender waits for a request before it exits (between
// one and two of it).
const senderIdleTimeout = 10 * time.Second

// sendJob is one Send: the message, and where its reply goes. A job with a peer is
// not a Send but the turn of a sender at that participant's batch queue (runBatches).
type sendJob struct {
	m       coordinator.Message
	deliver func(coordinator.Reply)
	peer    *batchPeer
}

// endpointCacheMax bounds Transport.endpoints: when it is full, it is emptied and
// refilled, so that a stream of distinct participant URLs costs parsing, not memory.
const endpointCacheMax = 1024

// New returns a Transport with a pooled keep-alive HTTP client.
func New(o Options) *Transport {
	o.setDefaults()
	client := o.Client
	var direct *http.Transport
	if client == nil {
		dialer := &net.Dialer{Timeout: o.DialTimeout, KeepAlive: 30 * time.Second}
		direct = &http.Transport{
			Proxy:                 nil, // participants are addressed directly
			DialContext:           dialer.DialContext,
			MaxIdleConns:          4 * o.MaxIdleConnsPerHost,
			MaxIdleConnsPerHost:   o.MaxIdleConnsPerHost,
			IdleConnTimeout:       90 * time.Second,
			TLSHandshakeTimeout:   o.DialTimeout,
			ExpectContinueTimeout: time.Second,
			ForceAttemptHTTP2:     false,
			// A participant's headers are a few hundred bytes; a hostile one must not
			// make dtc hold megabytes for each of its answers.
			MaxResponseHeaderBytes: o.ResponseHeaderMaxBytes,
			TLSClientConfig:        o.TLS,
		}
		client = &http.Client{
			Transport: direct,
			// A participant endpoint never redirects; following one would send a
			// commit somewhere nobody named.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Transport{o: o, client: client, direct: direct, ctx: ctx, cancel: cancel, jobs: make(chan sendJob),
		errs: newErrorsCounter(), trace: o.Tracing,
		endpoints: make(map[string]*protocol.Endpoints), batchPeers: make(map[string]*batchPeer)}
}

// For returns the coordinator.Transport of one engine: each reply is passed to deliver,
// on the sender goroutine of its request. deliver may block (a shard's bounded inbox)
// and must return once its shard stops.
func (t *Transport) For(deliver func(coordinator.Reply)) coordinator.Transport {
	return endpoint{t: t, deliver: deliver}
}

// Close cancels every request still running and waits until every sender goroutine
// has returned. Sends after Close are dropped, and so are the messages still waiting
// in a batch queue: no reply is delivered for them.
func (t *Transport) Close() {
	t.mu.Lock()
	t.closed.Store(true)
	t.mu.Unlock()
	t.cancel()
	t.wg.Wait()
	t.dropBatchQueues()
	t.client.CloseIdleConnections()
}

type endpoint struct {
	t       *Transport
	deliver func(coordinator.Reply)
}

var _ coordinator.Transport = endpoint{}

// Send implements coordinator.Transport: it returns at once; the reply comes through
// deliver.
func (e endpoint) Send(m coordinator.Message) {
	t := e.t
	if t.closed.Load() {
		return
	}
	j := sendJob{m: m, deliver: e.deliver}
	if (m.Kind == coordinator.MsgCommit || m.Kind == coordinator.MsgRollback) && t.enqueueBatch(j) {
		return
	}
	t.dispatch(j)
}

// dispatch hands j to an idle sender, or starts one for it. It reports false when the
// Transport is closed and j was dropped.
func (t *Transport) dispatch(j sendJob) bool {
	select {
	case t.jobs <- j: // an idle sender took it (if Close has begun, it is cancelled)
		return true
	default:
	}
	t.mu.Lock()
	if t.closed.Load() {
		t.mu.Unlock()
		return false
	}
	stay := t.senders < sendersMax
	if stay {
		t.senders++
	}
	t.wg.Add(1)
	t.mu.Unlock()
	go t.sender(j, stay)
	return true
}

// sender is a goroutine that performs j, and then, if it may stay, the requests it is
// handed until it has been idle for a while or the Transport closes.
func (t *Transport) sender(j sendJob, stay bool) {
	defer t.wg.Done()
	var buf []byte // answers are read into it, one request at a time
	if !stay {
		t.send(t.ctx, j, &buf)
		return
	}
	// A context of its own under the Transport's: its requests' contexts register
	// with it, not all with the one the other senders share.
	ctx, cancel := context.WithCancel(t.ctx)
	idle := time.NewTimer(senderIdleTimeout)
	defer func() {
		idle.Stop()
		cancel()
		t.mu.Lock()
		t.senders--
		t.mu.Unlock()
	}()
	t.send(ctx, j, &buf)
	worked := true // since idle last fired
	for {
		select {
		case j = <-t.jobs:
			t.send(ctx, j, &buf)
			worked = true
		case <-idle.C:
			if !worked {
				return // nothing to do for a whole period
			}
			worked = false
			idle.Reset(senderIdleTimeout)
		case <-ctx.Done():
			return
		}
	}
}

// send performs one request and delivers its reply, unless the Transport was closed.
// buf is the sender's buffer for answers.
func (t *Transport) send(ctx context.Context, j sendJob, buf *[]byte) {
	if j.peer != nil {
		t.runBatches(ctx, j.peer, buf)
		return
	}
	m := j.m
	if m.Kind == coordinator.MsgCommit { // a failpoint marker (faults.Failpoints)
		failpoint.Inject("beforeCommitSend", func(v failpoint.Value) {
			if err := fp.Act("httpnet/transport/beforeCommitSend", v); err != nil {
				j.deliver(coordinator.Reply{Txn: m.Txn, Participant: m.Participant, Seq: m.Seq, Kind: m.Kind, Err: err})
				failpoint.Return()
			}
		})
	}
	if m.Kind != coordinator.MsgPrepare {
		host, ok := t.takeHostSlot(m.URL)
		if !ok {
			se := &sendError{kind: errKindBusy, msg: fmt.Sprintf("%s to %s: %d phase-2 and status requests already in flight to that host (HostRetriesMax)", m.Kind, host, t.o.HostRetriesMax),
				public: "too many requests in flight to the participant's host; retried later"}
			t.errs.WithLabelValues(se.kind, m.Kind.String()).Inc()
			j.deliver(coordinator.Reply{Txn: m.Txn, Participant: m.Participant, Seq: m.Seq, Kind: m.Kind, Err: se})
			return
		}
		defer t.releaseHostSlot(host)
	}
	r := t.do(ctx, m, buf)
	if r.Err != nil && t.ctx.Err() != nil {
		return // shutting down: the engine is gone, nobody waits for this reply
	}
	j.deliver(r)
}

// takeHostSlot counts one more phase-2 or status request in flight to the host of
// prepareURL, unless HostRetriesMax are already; it returns the host either way.
func (t *Transport) takeHostSlot(prepareURL string) (string, bool) {
	host := prepareURL
	if eps, err := t.endpointsOf(prepareURL); err == nil {
		host = eps.Prepare.Host
	}
	t.hostMu.Lock()
	defer t.hostMu.Unlock()
	if t.hostBusy[host] >= t.o.HostRetriesMax {
		return host, false
	}
	if t.hostBusy == nil {
		t.hostBusy = make(map[string]int)
	}
	t.hostBusy[host]++
	return host, true
}

func (t *Transport) releaseHostSlot(host string) {
	t.hostMu.Lock()
	defer t.hostMu.Unlock()
	if t.hostBusy[host]--; t.hostBusy[host] <= 0 {
		delete(t.hostBusy, host)
	}
}

// A sendError is a request to a participant that got no usable answer. Kind is one of
// the labels of dtc_participant_errors_total.
//
// Its Error is what the engine records as the participant's reason, and so what API
// clients see: a generic account (public, or the kind's) that never quotes the
// participant's answer nor the connection's error, so that dtc cannot be used to read
// a service's answers or to scan ports (issue 12). msg, with the details, goes only to
// dtc's own log (Transport.logFailure) and to ReplyErrorDetail.
type sendError struct {
	kind   string
	msg    string // the details: URL, the network error, the start of the answer
	public string // what clients may see; empty: the kind's generic words
}

func (e *sendError) Error() string {
	if e.public != "" {
		return e.public
	}
	switch e.kind {
	case errKindTimeout:
		return "no answer in time"
	case errKindConnection:
		return "no connection to the participant (details in the coordinator's log)"
	case errKind5xx:
		return "the participant answered with a server error"
	case errKindStatus:
		return "the participant answered with an unexpected status"
	}
	return "the participant's answer is not one the protocol allows (details in the coordinator's log)"
}

// ReplyErrorDetail is what a Reply's error says in full, for logs and tests: with the
// participant's URL, the network error or the start of its answer. API clients are
// shown err.Error() only.
func ReplyErrorDetail(err error) string {
	var se *sendError
	if errors.As(err, &se) {
		return se.msg
	}
	return err.Error()
}

// logFailure logs the details of a request that got no usable answer: at info level
// for a prepare (once per transaction and participant), at debug level for phase 2
// and status queries, which are retried until they succeed.
func (t *Transport) logFailure(kind coordinator.MsgKind, txn string, se *sendError) {
	level := slog.LevelDebug
	if kind == coordinator.MsgPrepare {
		level = slog.LevelInfo
	}
	if t.o.Logger.Enabled(context.Background(), level) {
		t.o.Logger.Log(context.Background(), level, "participant request failed", "txn", txn, "request", kind.String(),
			"kind", se.kind, "error", se.msg)
	}
}

// noAnswerWithin words a request's timeout in the error a Reply carries.
const noAnswerWithin = "no answer within"

const (
	errKindTimeout    = "timeout"
	errKindConnection = "connection"
	errKind5xx        = "status_5xx"
	errKindStatus     = "status_other"
	errKindMalformed  = "malformed"
	errKindBusy       = "host_busy" // HostRetriesMax requests already in flight to the host
)

// do performs one request and turns the answer into a Reply.
func (t *Transport) do(ctx context.Context, m coordinator.Message, buf *[]byte) coordinator.Reply {
	r := coordinator.Reply{Txn: m.Txn, Participant: m.Participant, Seq: m.Seq, Kind: m.Kind}
	var (
		sc   trace.SpanContext
		send tracing.Send
	)
	if t.trace != nil {
		sc, send = t.trace.StartSend(&m)
		defer tracing.EndSend(send, &r)
	}
	err := t.exchange(ctx, m, &r, buf, sc)
	if err != nil {
		var se *sendError
		if !errors.As(err, &se) {
			se = &sendError{kind: errKindConnection, msg: err.Error()}
		}
		t.errs.WithLabelValues(se.kind, m.Kind.String()).Inc()
		if ctx.Err() == nil {
			t.logFailure(m.Kind, m.Txn, se)
		}
		r.Err = se
		r.Vote, r.Reason, r.State, r.Conflict = "", "", "", false
	}
	return r
}

// exchange performs the request of m and reads the answer into r. The answer's body is
// read into *buf, which is grown as needed and kept for the next exchange when small.
// sc, if valid, goes with the request as its traceparent.
func (t *Transport) exchange(ctx context.Context, m coordinator.Message, r *coordinator.Reply, buf *[]byte, sc trace.SpanContext) error {
	timeout := m.Timeout
	if timeout <= 0 {
		timeout = t.o.RequestTimeout
	}
	limit := timeout
	if m.Kind == coordinator.MsgPrepare {
		// The engine's own deadline ends the prepare phase (vote TIMEOUT); give the
		// request a little longer so that its expiry does not race that deadline and
		// turn a timeout into an error. The engine ignores the late reply.
		limit += prepareSlack(timeout)
	}
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()

	req, err := t.request(ctx, m)
	if err != nil {
		return &sendError{kind: errKindMalformed, msg: err.Error()}
	}
	if t.trace != nil {
		t.trace.Inject(sc, req)
	}
	t.stats.count(m.Kind)
	resp, body, eof, err := t.fetch(req, m.Kind.String(), m.URL, timeout, t.o.ResponseMaxBytes, buf)
	if err != nil {
		return err
	}
	defer finishResponse(resp, eof)
	r.Asks = asksInDoubt(resp.Header)
	rep, err := protocol.Interpret(protocol.Answer{Kind: m.Kind, Status: resp.StatusCode, Body: body, Asks: r.Asks})
	if err != nil {
		return answerError(m.Kind.String(), req.URL, err, body)
	}
	r.Vote, r.Reason, r.Cause, r.State, r.Conflict, r.Asks = rep.Vote, rep.Reason, rep.Cause, rep.State, rep.Conflict, rep.Asks
	return nil
}

// answerError is the sendError of an answer protocol.Interpret found unusable: what
// names the request, u its URL, body the answer (its start goes into the details).
func answerError(what string, u *url.URL, err error, body []byte) error {
	ae, ok := err.(*protocol.AnswerError)
	if !ok {
		return &sendError{kind: errKindMalformed, msg: fmt.Sprintf("%s %s: %v", what, u, err)}
	}
	kind := errKindMalformed
	switch ae.Class {
	case protocol.Class5xx:
		kind = errKind5xx
	case protocol.ClassStatus:
		kind = errKindStatus
	}
	return &sendError{kind: kind, msg: fmt.Sprintf("%s %s: %s: %s", what, u, ae.Detail, snippet(body)),
		public: fmt.Sprintf("%s: %s", what, ae.What)}
}

// asksInDoubt reports whether an answer's header says that its participant asks the
// coordinator about the transactions it holds in doubt (participant.HeaderInDoubt).
func asksInDoubt(h http.Header) bool {
	return protocol.AsksInDoubt(h[protocol.HeaderInDoubt]) // in canonical form, as the keys are
}

// roundTrip sends req and returns the answer, as the Client would: through the
// Client's Transport itself when New made the Client, so that requests skip
// what the Client adds for redirects (a copy of the headers); the Client's only other
// doings for a participant's request are user information in the URL (basic
// authentication: such a request goes through the Client) and refusing a redirect
// whose Location does not parse, which this does as the Client does.
func (t *Transport) roundTrip(req *http.Request) (*http.Response, error) {
	if t.direct == nil || req.URL.User != nil {
		return t.client.Do(req)
	}
	resp, err := t.direct.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	switch resp.StatusCode {
	case http.StatusMovedPermanently, http.StatusFound, http.StatusSeeOther,
		http.StatusTemporaryRedirect, http.StatusPermanentRedirect:
		if loc := resp.Header.Get("Location"); loc != "" {
			if _, err := req.URL.Parse(loc); err != nil {
				_ = resp.Body.Close()
				return nil, fmt.Errorf("failed to parse Location header %q: %v", loc, err)
			}
		}
	}
	return resp, nil
}

// answerBufKeepBytes bounds the answer buffer a sender keeps between requests: a
// larger one (a long answer) is dropped after its request.
const answerBufKeepBytes = 4 << 10

// readResponse reads resp's body, up to limit bytes, into *buf, and keeps the buffer in
// *buf for the next answer unless it grew past answerBufKeepBytes. body aliases *buf.
// Call finishResponse(resp, eof) once done with body.
// fetch makes req (what, to its URL, for the errors) and reads the answer, at most
// limit bytes, into *buf (readResponse), learning from it whether the participant of
// prepareURL offers batches. Without an error the caller must finishResponse(resp, eof)
// once done with body; with one, resp is finished already. timeout is the request's,
// for the error of an answer that did not come.
func (t *Transport) fetch(req *http.Request, what, prepareURL string, timeout time.Duration, limit int64, buf *[]byte) (resp *http.Response, body []byte, eof bool, err error) {
	resp, err = t.roundTrip(req)
	if err != nil {
		return nil, nil, false, classify(what, req.URL.String(), timeout, err)
	}
	t.noteBatchMax(prepareURL, resp.Header)
	body, eof, err = readResponse(resp, buf, limit+1)
	switch {
	case err != nil:
		err = classify(what, req.URL.String(), timeout, err)
	case int64(len(body)) > limit:
		err = &sendError{kind: errKindMalformed, msg: fmt.Sprintf("%s %s: answer larger than %d bytes", what, req.URL, limit),
			public: fmt.Sprintf("%s: answer larger than %d bytes", what, limit)}
	default:
		return resp, body, eof, nil
	}
	finishResponse(resp, eof)
	return nil, nil, false, err
}

// statusError is the error of an answer whose status its caller makes nothing of:
// errKind5xx for a 5xx, errKindStatus for any other.
func statusError(what string, u *url.URL, status int, body []byte) error {
	kind := errKindStatus
	if status >= 500 {
		kind = errKind5xx
	}
	return &sendError{kind: kind, msg: fmt.Sprintf("%s %s: HTTP %d: %s", what, u, status, snippet(body)),
		public: fmt.Sprintf("%s: HTTP %d", what, status)}
}

func readResponse(resp *http.Response, buf *[]byte, limit int64) (body []byte, eof bool, err error) {
	body, eof, err = readAnswer(resp.Body, *buf, limit)
	if cap(body) <= answerBufKeepBytes {
		*buf = body[:0]
	}
	return body, eof, err
}

// finishResponse closes resp's body, first reading a little of what is left unless eof,
// so that the connection can be reused.
func finishResponse(resp *http.Response, eof bool) {
	if !eof {
		_, _ = io.CopyN(io.Discard, resp.Body, 4<<10)
	}
	_ = resp.Body.Close()
}

// readAnswer reads body into buf[:0] (grown as needed) until it ends or limit bytes
// are read, as io.ReadAll(io.LimitReader(body, limit)) would; eof reports whether the
// body ended within limit.
func readAnswer(body io.Reader, buf []byte, limit int64) (data []byte, eof bool, err error) {
	if buf == nil {
		buf = make([]byte, 0, 512)
	}
	buf = buf[:0]
	for int64(len(buf)) < limit {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)] // room for more
		}
		end := cap(buf)
		if int64(end) > limit {
			end = int(limit)
		}
		n, err := body.Read(buf[len(buf):end])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			return buf, true, nil
		}
		if err != nil {
			return buf, false, err
		}
	}
	return buf, false, nil
}

// request builds the HTTP request for m: its endpoint is derived from the prepare URL by
// replacing the last path element.
func (t *Transport) request(ctx context.Context, m coordinator.Message) (*http.Request, error) {
	switch m.Kind {
	case coordinator.MsgPrepare, coordinator.MsgCommit, coordinator.MsgRollback, coordinator.MsgStatus:
	default:
		return nil, fmt.Errorf("httpnet: message of unknown kind %d", m.Kind)
	}
	eps, err := t.endpointsOf(m.URL)
	if err != nil {
		return nil, err
	}
	var (
		u      *url.URL // shared by the requests to the endpoint but a status query's
		method = http.MethodPost
		body   []byte
	)
	switch m.Kind {
	case coordinator.MsgPrepare:
		u = &eps.Prepare
		if body, err = protocol.AppendPrepareRequest(nil, &protocol.PrepareRequest{TxnID: m.Txn, Payload: m.Payload, Coordinator: t.o.AdvertiseURL, Priority: m.Priority}); err != nil {
			return nil, fmt.Errorf("httpnet: encoding %s request: %w", m.Kind, err)
		}
	case coordinator.MsgCommit:
		u, body = &eps.Commit, protocol.AppendTxnRequest(nil, m.Txn)
	case coordinator.MsgRollback:
		u, body = &eps.Rollback, protocol.AppendTxnRequest(nil, m.Txn)
	case coordinator.MsgStatus:
		status := eps.Status
		status.RawQuery = protocol.StatusQuery(m.Txn)
		u, method = &status, http.MethodGet
	}
	return t.httpRequest(ctx, method, u, body), nil
}

// httpRequest is the request to a participant's endpoint u: a GET without a body, or a
// POST of body (JSON).
func (t *Transport) httpRequest(ctx context.Context, method string, u *url.URL, body []byte) *http.Request {
	// As http.NewRequestWithContext makes it, without parsing a URL again, and with the
	// headers set once: requests share them, as neither a RoundTripper (it must not
	// modify its request) nor the Client of New (it copies the headers before
	// it adds basic authentication) modifies them. A Client from the options may have a
	// cookie jar, which adds to the request's headers: it gets a copy.
	req := (&http.Request{
		Method:     method,
		URL:        u,
		Proto:      "HTTP/1.1",
		ProtoMajor: 1,
		ProtoMinor: 1,
		Header:     getHeader,
		Host:       u.Host,
	}).WithContext(ctx)
	if body != nil {
		req.Header = postHeader
		req.Body = io.NopCloser(bytes.NewReader(body))
		req.ContentLength = int64(len(body))
		req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
	}
	if t.direct == nil || t.o.Signer != nil {
		req.Header = req.Header.Clone()
	}
	if t.o.Signer != nil {
		t.o.Signer.Sign(req.Header, method, req.Host, u.RequestURI(), body)
	}
	return req
}

// The headers of every request to a participant; shared, never modified.
var (
	getHeader = http.Header{
		"Accept":     {"application/json"},
		"User-Agent": {"dtc-coordinator"},
	}
	postHeader = http.Header{
		"Content-Type": {"application/json"},
		"Accept":       {"application/json"},
		"User-Agent":   {"dtc-coordinator"},
	}
)

// endpointsOf returns the endpoints of the participant whose prepare URL is prepareURL,
// from the cache or parsed (protocol.ParseEndpoints) and cached. They are never
// modified: requests share them (neither a RoundTripper nor the Client modifies a
// request's URL), a status query gets a copy with its query.
func (t *Transport) endpointsOf(prepareURL string) (*protocol.Endpoints, error) {
	t.endpointsMu.Lock()
	eps := t.endpoints[prepareURL]
	t.endpointsMu.Unlock()
	if eps != nil {
		return eps, nil
	}
	eps, err := protocol.ParseEndpoints(prepareURL)
	if err != nil {
		return nil, err
	}
	t.endpointsMu.Lock()
	if len(t.endpoints) >= endpointCacheMax {
		clear(t.endpoints)
	}
	t.endpoints[prepareURL] = eps
	t.endpointsMu.Unlock()
	return eps, nil
}

// prepareSlack is how much longer than the engine's deadline a prepare request may run.
func prepareSlack(timeout time.Duration) time.Duration {
	return max(time.Second, timeout/4)
}

// classify turns a failed round trip into a sendError with a clear message; what names
// the request (its kind).
func classify(what, u string, timeout time.Duration, err error) error {
	var ne net.Error
	switch {
	case errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()):
		return &sendError{kind: errKindTimeout, msg: fmt.Sprintf("%s %s: %s %v", what, u, noAnswerWithin, timeout),
			public: fmt.Sprintf("%s: %s %v", what, noAnswerWithin, timeout)}
	case errors.Is(err, context.Canceled):
		return &sendError{kind: errKindConnection, msg: fmt.Sprintf("%s %s: cancelled (coordinator shutting down)", what, u),
			public: what + ": cancelled (coordinator shutting down)"}
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err // the URL is already in the message
	}
	return &sendError{kind: errKindConnection, msg: fmt.Sprintf("%s %s: %v", what, u, err),
		public: what + ": no connection to the participant (details in the coordinator's log)"}
}

// snippet is the start of a body, for error messages.
func snippet(b []byte) string {
	const max = 200
	b = bytes.TrimSpace(b)
	if len(b) == 0 {
		return "(empty body)"
	}
	if len(b) > max {
		return fmt.Sprintf("%q…", b[:max])
	}
	return fmt.Sprintf("%q", b)
}

// beforeBatchSend is the commit send's failpoint marker (faults.Failpoints) for a batch
// (batch.go) that carries a commit: it acts once for the batch, and an injected error
// fails the whole batch, as it fails a single commit request.
//
// It lives here, not in batch.go: failpoint-toolexec (v0.0.0-20240528011301) keeps its
// "rewritten" flag from one file to the next when a file has no declarations, and so
// swaps such a file for an empty one if the file before it had markers. With a marker
// in batch.go, doc.go came out empty and the failpoint build failed (chaosreal's
// TestTheFailpointBuildLeavesNoRewrittenSourceBehind).
func beforeBatchSend(ops []sendJob) (err error) {
	for _, j := range ops {
		if j.m.Kind == coordinator.MsgCommit {
			failpoint.Inject("beforeCommitSend", func(v failpoint.Value) {
				err = fp.Act("httpnet/transport/beforeCommitSend", v)
			})
			return err
		}
	}
	return nil
}
