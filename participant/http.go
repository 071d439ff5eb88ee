package participant

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/dtc-project/dtc/protocol"
)

// DefaultBatchMaxOps is HandlerOptions.BatchMaxOps when it is not set.
const DefaultBatchMaxOps = 1024

// HandlerOptions configure NewHandler.
type HandlerOptions struct {
	// BasePath is where the endpoints are mounted: "/" (the default) serves /prepare,
	// /commit, /rollback, /status and /batch; "/bank/" serves /bank/prepare, ….
	BasePath string
	// BodyMaxBytes bounds a request body, except a batch's; a larger one is answered
	// 413. Default 1 MiB.
	BodyMaxBytes int64
	// BatchMaxOps bounds the ops of one POST …/batch (BatchRequest): a request with more
	// is answered 400. Every answer of the handler advertises it in the HeaderBatchMax
	// header. A batch body may be 64 bytes long plus, per op, 48 bytes and 6 per byte
	// of Config.TxnIDMaxBytes (room for an id written all in \u escapes): about 1.6 MB
	// with the defaults; a larger one is answered 413. BodyMaxBytes does not apply to
	// it. Default DefaultBatchMaxOps.
	BatchMaxOps int
	// Logger gets one line per failed request. Default: slog.Default().
	Logger *slog.Logger
	// Auth, if set, is checked before the handler acts on a request: the signature of
	// every POST (a request without a good one is answered 401, code CodeUnauthorized,
	// before its body is read when its headers already fail, and changes nothing), and
	// the coordinator a prepare names (one that is not trusted is answered NACK).
	// GET status stays open: it changes nothing. Nil: nothing is checked.
	Auth *Auth
	// Resolver, if set, adds what it knows to the status answer of a transaction in
	// doubt: since when, how many times the coordinator was asked, whether it could be
	// reached (StateResponse).
	Resolver *Resolver
	// TracerProvider, when set, continues the coordinator's traces: each request gets a
	// span (participant.prepare, participant.commit, …) under the W3C traceparent it
	// carries (dtc sends one with every request but batches), in the request's context.
	// Nil: no spans, and no cost.
	TracerProvider trace.TracerProvider
}

// Error codes in ErrorBody.Code.
const (
	CodeMalformedJSON    = protocol.CodeMalformedJSON
	CodeUnknownField     = protocol.CodeUnknownField
	CodeMissingField     = protocol.CodeMissingField
	CodeInvalidField     = protocol.CodeInvalidField
	CodeBodyTooLarge     = protocol.CodeBodyTooLarge
	CodeMethodNotAllowed = protocol.CodeMethodNotAllowed
	CodeNotFound         = protocol.CodeNotFound
	CodeUnavailable      = protocol.CodeUnavailable
)

// NACK reasons of a prepare refused by Auth.TrustsCoordinator.
const (
	reasonNoCoordinator        = "prepare names no coordinator; this participant takes prepares only from the coordinators it trusts"
	reasonUntrustedCoordinator = "coordinator %q is not one this participant trusts"
)

type handler struct {
	p       *Participant
	base    string
	bodyMax int64
	log     *slog.Logger

	auth     *Auth     // HandlerOptions.Auth; nil: nothing checked
	resolver *Resolver // HandlerOptions.Resolver; nil: status says only the state

	batchMax    int      // HandlerOptions.BatchMaxOps
	batchHeader []string // the value of HeaderBatchMax, shared by every answer

	tracer trace.Tracer // nil: no tracing

	// coordinator is the last coordinator URL that passed checkCoordinatorURL. The
	// coordinator sends the same one with every prepare: it is checked once, and its
	// transactions share one copy of it.
	coordinator atomic.Pointer[string]
}

// NewHandler serves the participant protocol (DESIGN §3) for p: POST prepare, commit and
// rollback, GET status, and POST batch (many commits and rollbacks in one request,
// BatchRequest), under opts.BasePath. Every answer carries the HeaderBatchMax header. It
// is a thin adapter: it decodes, asks the core, and writes the core's answer once the
// core gives it (after the record is durable). A client that goes away stops the wait,
// not the record.
func NewHandler(p *Participant, opts HandlerOptions) http.Handler {
	base := opts.BasePath
	if base == "" {
		base = "/"
	}
	if !strings.HasPrefix(base, "/") {
		base = "/" + base
	}
	if !strings.HasSuffix(base, "/") {
		base += "/"
	}
	if opts.BodyMaxBytes <= 0 {
		opts.BodyMaxBytes = 1 << 20
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.BatchMaxOps <= 0 {
		opts.BatchMaxOps = DefaultBatchMaxOps
	}
	h := &handler{
		p: p, base: base, bodyMax: opts.BodyMaxBytes, log: opts.Logger,
		auth: opts.Auth, resolver: opts.Resolver,
		batchMax:    opts.BatchMaxOps,
		batchHeader: []string{strconv.Itoa(opts.BatchMaxOps)},
	}
	if opts.TracerProvider != nil {
		h.tracer = opts.TracerProvider.Tracer("github.com/dtc-project/dtc/participant")
	}
	return h
}

// inDoubtAskHeader is HeaderInDoubt's value, shared by every answer (net/http only
// reads it).
var inDoubtAskHeader = []string{InDoubtAsk}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	// Every answer offers the batch endpoint, the fast paths' too, which write their
	// headers by hand. The slice is shared: net/http only reads it. HeaderBatchMax is in
	// canonical form, so the map is indexed directly, without Set's canonicalizing.
	w.Header()[HeaderBatchMax] = h.batchHeader
	if h.p.Asks() {
		w.Header()[HeaderInDoubt] = inDoubtAskHeader
	}
	name, ok := strings.CutPrefix(r.URL.Path, h.base)
	if h.tracer != nil {
		ctx := propagation.TraceContext{}.Extract(r.Context(), propagation.HeaderCarrier(r.Header))
		ctx, span := h.tracer.Start(ctx, "participant."+bounded(name, 32), trace.WithSpanKind(trace.SpanKindServer),
			trace.WithAttributes(attribute.String("http.request.method", r.Method)))
		defer span.End()
		r = r.WithContext(ctx)
	}
	if !ok || strings.Contains(name, "/") {
		h.fail(w, r, http.StatusNotFound, CodeNotFound, fmt.Sprintf("no endpoint %s", r.URL.Path))
		return
	}
	method := http.MethodPost
	if name == EndpointStatus {
		method = http.MethodGet
	}
	switch name {
	case EndpointPrepare, EndpointCommit, EndpointRollback, EndpointStatus, EndpointBatch:
	default:
		h.fail(w, r, http.StatusNotFound, CodeNotFound, fmt.Sprintf("no endpoint %s", r.URL.Path))
		return
	}
	if r.Method != method && !(method == http.MethodGet && r.Method == http.MethodHead) {
		w.Header().Set("Allow", method)
		h.fail(w, r, http.StatusMethodNotAllowed, CodeMethodNotAllowed, fmt.Sprintf("%s takes %s", r.URL.Path, method))
		return
	}
	// Every POST is signed when Auth has keys; the headers are checked here, before
	// the body is read, and the MAC once the body is (authBody).
	var sh *signedHeaders
	if method == http.MethodPost && h.auth.Signed() {
		s, err := h.auth.checkHeaders(r, true)
		if err != nil {
			h.unauthorized(w, r, err)
			return
		}
		sh = &s
	}
	switch name {
	case EndpointPrepare:
		h.prepare(w, r, sh)
	case EndpointCommit:
		h.phase2(w, r, sh, h.p.Commit)
	case EndpointRollback:
		h.phase2(w, r, sh, h.p.Rollback)
	case EndpointStatus:
		h.status(w, r)
	case EndpointBatch:
		h.batch(w, r, sh)
	}
}

// unauthorized answers 401 for a request Auth refused.
func (h *handler) unauthorized(w http.ResponseWriter, r *http.Request, err error) {
	h.log.Warn("participant: unauthorized request refused", "method", r.Method, "path", r.URL.Path, "remote", r.RemoteAddr, "err", err)
	w.Header().Set("WWW-Authenticate", `Dtc-HMAC-SHA256 realm="dtc participant"`)
	writeJSON(w, http.StatusUnauthorized, ErrorResponse{Error: ErrorBody{Code: CodeUnauthorized, Message: strings.TrimPrefix(err.Error(), "participant: ")}})
}

// authBody checks the MAC of r, whose whole body is body, if sh is set (Auth has
// keys); it answers 401 itself when it returns false.
func (h *handler) authBody(w http.ResponseWriter, r *http.Request, sh *signedHeaders, body []byte) bool {
	if sh == nil {
		return true
	}
	if err := h.auth.checkMAC(sh, r, body, true); err != nil {
		h.unauthorized(w, r, err)
		return false
	}
	return true
}

func (h *handler) prepare(w http.ResponseWriter, r *http.Request, sh *signedHeaders) {
	req, ok := h.decodePrepareRequest(w, r, sh)
	if !ok || !h.checkTxnID(w, r, req.TxnID) {
		return
	}
	if !h.auth.TrustsCoordinator(req.Coordinator) {
		h.auth.untrustedCoordinator.Add(1)
		reason := reasonNoCoordinator
		if req.Coordinator != "" {
			reason = fmt.Sprintf(reasonUntrustedCoordinator, req.Coordinator)
		}
		h.log.Warn("participant: prepare refused", "txn_id", req.TxnID, "remote", r.RemoteAddr, "reason", reason)
		writeJSON(w, http.StatusOK, nack(reason).Response())
		return
	}
	if c := h.coordinator.Load(); req.Coordinator != "" && (c == nil || *c != req.Coordinator) {
		if err := checkCoordinatorURL(req.Coordinator, h.p.cfg.CoordinatorMaxBytes); err != nil {
			h.fail(w, r, http.StatusBadRequest, CodeInvalidField, err.Error())
			return
		}
		c := req.Coordinator
		h.coordinator.Store(&c)
	}
	rw := votePool.Get().(*replyWaiter[Vote])
	h.p.prepare(req.TxnID, req.Payload, true, req.Coordinator, req.Priority, rw.reply) // the decoder made req.Payload
	v, ok := rw.await(r.Context())
	switch {
	case !ok:
		// The request ended (its deadline, or the coordinator went away): a prepare
		// still waiting for locks stops waiting.
		h.p.CancelWait(req.TxnID, "lock wait ended: "+context.Cause(r.Context()).Error())
	case v.ACK:
		writeRaw(w, http.StatusOK, protocol.VoteACKAnswer())
	default:
		writeRaw(w, http.StatusOK, protocol.AppendVoteResponse(nil, v.Response()))
	}
}

func (h *handler) phase2(w http.ResponseWriter, r *http.Request, sh *signedHeaders, call func(string, func(Result))) {
	id, ok := h.decodeTxnRequest(w, r, sh)
	if !ok || !h.checkTxnID(w, r, id) {
		return
	}
	rw := resultPool.Get().(*replyWaiter[Result])
	call(id, rw.reply)
	res, ok := rw.await(r.Context())
	switch {
	case !ok:
	case res.Err != nil:
		w.Header().Set("Retry-After", "1")
		h.fail(w, r, http.StatusServiceUnavailable, CodeUnavailable, res.Err.Error())
	case res.Conflict:
		writeState(w, http.StatusConflict, res.State)
	default:
		writeState(w, http.StatusOK, res.State)
	}
}

// replyWaiter carries the core's answer to one call to the handler goroutine waiting
// for it. The core calls reply exactly once, so a waiter whose answer has been received
// is free for another call (votePool, resultPool); one whose request went away before
// its answer is left to the garbage collector, as the answer may still come.
type replyWaiter[T any] struct {
	ch    chan T
	reply func(T)
	pool  *sync.Pool // where it came from
}

func newReplyPool[T any]() *sync.Pool {
	pool := new(sync.Pool)
	pool.New = func() any {
		rw := &replyWaiter[T]{ch: make(chan T, 1), pool: pool}
		rw.reply = func(v T) { rw.ch <- v }
		return rw
	}
	return pool
}

// await returns the core's answer and puts rw back in its pool, or reports false if ctx
// ended first; rw is then not to be used again.
func (rw *replyWaiter[T]) await(ctx context.Context) (v T, ok bool) {
	select {
	case v = <-rw.ch:
		rw.pool.Put(rw)
		return v, true
	case <-ctx.Done():
		return v, false
	}
}

var (
	votePool   = newReplyPool[Vote]()
	resultPool = newReplyPool[Result]()
)

func (h *handler) status(w http.ResponseWriter, r *http.Request) {
	id := protocol.StatusTxnID(r.URL.RawQuery)
	if !h.checkTxnID(w, r, id) {
		return
	}
	st := h.p.Status(id)
	if st == StatePrepared {
		if since, ok := h.p.InDoubtSince(id); ok && !h.p.clock.Now().Before(since) {
			resp := StateResponse{State: st, InDoubtSince: since.UTC().Format(time.RFC3339)}
			if rep, ok := h.resolver.report(id); ok {
				resp.ResolveAttempts = rep.Attempts
				resp.CoordinatorUnreachable = rep.CoordinatorUnreachable
				resp.LastResolveError = rep.LastError
				if rep.CoordinatorUnreachable {
					resp.UnreachableSince = rep.UnreachableSince.UTC().Format(time.RFC3339)
				}
			}
			writeJSON(w, http.StatusOK, resp)
			return
		}
	}
	writeState(w, http.StatusOK, st)
}

func (h *handler) checkTxnID(w http.ResponseWriter, r *http.Request, id string) bool {
	if code, msg := h.txnIDProblem(id); code != "" {
		h.fail(w, r, http.StatusBadRequest, code, msg)
		return false
	}
	return true
}

// txnIDProblem returns the error code and message of the 400 a txn id gets, or "" if
// the id is good.
func (h *handler) txnIDProblem(id string) (code, msg string) {
	if id == "" {
		return CodeMissingField, "txn_id is required"
	}
	if err := ValidateTxnID(id, h.p.cfg.TxnIDMaxBytes); err != nil {
		return CodeInvalidField, "txn_id: " + strings.TrimPrefix(err.Error(), "participant: ")
	}
	return "", ""
}

// txnRequestPrefixMaxBytes is how much of a commit or rollback body decodeTxnRequest
// reads before it decides between its fast path and the strict decoder.
const txnRequestPrefixMaxBytes = 512

// prepareRequestPrefixMaxBytes is how much of a prepare body decodePrepareRequest reads
// before it decides between its fast path and the strict decoder; it is also the size
// of the buffers in bodyPool.
const prepareRequestPrefixMaxBytes = 4096

// bodyPool holds the buffers the fast paths read bodies into.
var bodyPool = sync.Pool{New: func() any { return new([prepareRequestPrefixMaxBytes]byte) }}

// bodyPrefix is the start of a request body, read into a buffer from bodyPool.
type bodyPrefix struct {
	buf *[prepareRequestPrefixMaxBytes]byte
	n   int   // bytes read into buf
	err error // what stopped the read: nil when buf[:n] is full, io.EOF at the end
	// override is the whole body when it was read beyond buf (signedBody): replay
	// gives it.
	override []byte
}

// readBodyPrefix reads r's body into a buffer from bodyPool: at most maxBytes and never
// more than h.bodyMax, so that the limit is left for decode to meet. Call release once
// done with the buffer.
func (h *handler) readBodyPrefix(r *http.Request, maxBytes int) bodyPrefix {
	b := bodyPrefix{buf: bodyPool.Get().(*[prepareRequestPrefixMaxBytes]byte)}
	// Not io.ReadFull: its io.ErrUnexpectedEOF would hide the body's own (a client
	// that went away in the middle of it).
	buf := b.buf[:min(int64(maxBytes), h.bodyMax)]
	for b.n < len(buf) && b.err == nil {
		var n int
		n, b.err = r.Body.Read(buf[b.n:])
		b.n += n
	}
	return b
}

// whole returns the body if it ended within what was read.
func (b *bodyPrefix) whole() ([]byte, bool) { return b.buf[:b.n], b.err == io.EOF }

// replay returns the body as decode would read it: the bytes read, then the rest of
// the body within h.bodyMax, or what stopped the read.
func (b *bodyPrefix) replay(h *handler, w http.ResponseWriter, r *http.Request) io.Reader {
	if b.override != nil {
		return bytes.NewReader(b.override)
	}
	var rest io.Reader = errReader{b.err}
	if b.err == nil {
		rest = http.MaxBytesReader(w, r.Body, h.bodyMax-int64(b.n))
	}
	return io.MultiReader(bytes.NewReader(b.buf[:b.n]), rest)
}

func (b *bodyPrefix) release() { bodyPool.Put(b.buf) }

// errReader fails every read with err.
type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

// decodeTxnRequest is decode for a TxnRequest, with a fast path for the body every
// coordinator sends: exactly {"txn_id":"…"} (optionally followed by a newline) with an
// id that needs no unescaping and is valid UTF-8. Any other body — other fields,
// whitespace, escapes, a body that does not end within txnRequestPrefixMaxBytes — goes
// to decode unchanged (the bytes read are replayed first), so what is accepted and the
// errors given are decode's.
func (h *handler) decodeTxnRequest(w http.ResponseWriter, r *http.Request, sh *signedHeaders) (id string, ok bool) {
	body := h.readBodyPrefix(r, txnRequestPrefixMaxBytes)
	defer body.release()
	b, whole, ok := h.signedBody(w, r, sh, &body)
	if !ok {
		return "", false
	}
	if whole {
		if id, ok := protocol.ParseTxnRequest(b); ok {
			return id, true
		}
	}
	req := new(TxnRequest)
	ok = h.decodeFrom(w, r, body.replay(h, w, r), req)
	return req.TxnID, ok
}

// signedBody checks the signature of a request whose body starts with body, if sh is
// set: the rest of the body is read first, within h.bodyMax, and body then holds all
// of it. It returns the body as far as read, and whether that is all of it; it
// answers the request itself (401, 413, 400) when ok is false.
func (h *handler) signedBody(w http.ResponseWriter, r *http.Request, sh *signedHeaders, body *bodyPrefix) (b []byte, whole, ok bool) {
	b, whole = body.whole()
	if sh == nil {
		return b, whole, true
	}
	if !whole {
		if body.err != nil {
			h.fail(w, r, http.StatusBadRequest, CodeMalformedJSON, fmt.Sprintf("reading the body: %v", body.err))
			return nil, false, false
		}
		all := bytes.NewBuffer(append([]byte(nil), b...))
		if _, err := all.ReadFrom(http.MaxBytesReader(w, r.Body, h.bodyMax-int64(body.n))); err != nil {
			var tooLarge *http.MaxBytesError
			if errors.As(err, &tooLarge) {
				h.fail(w, r, http.StatusRequestEntityTooLarge, CodeBodyTooLarge, fmt.Sprintf("request body larger than %d bytes", h.bodyMax))
			} else {
				h.fail(w, r, http.StatusBadRequest, CodeMalformedJSON, fmt.Sprintf("reading the body: %v", err))
			}
			return nil, false, false
		}
		b = all.Bytes()
		body.override = b
	}
	if !h.authBody(w, r, sh, b) {
		return nil, false, false
	}
	return b, true, true
}

// decodePrepareRequest is decode for a PrepareRequest, with a fast path for the bodies
// the coordinator sends (parsePrepareRequest). Any other body, or one that does not end
// within prepareRequestPrefixMaxBytes, goes to decode unchanged (the bytes read are
// replayed first), so what is accepted and the errors given are decode's.
func (h *handler) decodePrepareRequest(w http.ResponseWriter, r *http.Request, sh *signedHeaders) (PrepareRequest, bool) {
	body := h.readBodyPrefix(r, prepareRequestPrefixMaxBytes)
	defer body.release()
	b, whole, ok := h.signedBody(w, r, sh, &body)
	if !ok {
		return PrepareRequest{}, false
	}
	if whole {
		if id, payload, coordinator, priority, ok := protocol.ParsePrepareRequest(b); ok {
			req := PrepareRequest{TxnID: string(id), Priority: priority}
			if payload != nil {
				req.Payload = append(json.RawMessage(nil), payload...)
			}
			if c := h.coordinator.Load(); c != nil && *c == string(coordinator) {
				req.Coordinator = *c
			} else if coordinator != nil {
				req.Coordinator = string(coordinator)
			}
			return req, true
		}
	}
	// Unknown top-level fields are ignored (issue 16's contract): a newer coordinator
	// may send more than this participant reads.
	req := new(PrepareRequest)
	if !h.decodeLimited(w, r, body.replay(h, w, r), h.bodyMax, false, req) {
		return PrepareRequest{}, false
	}
	return *req, true
}

// decode reads one JSON object into dst, rejecting unknown fields, trailing data and
// bodies over the limit; it answers the request itself when it returns false. It is
// the strict path that the fast ones (decodeTxnRequest, decodePrepareRequest) must
// agree with.
func (h *handler) decode(w http.ResponseWriter, r *http.Request, dst any) bool {
	return h.decodeFrom(w, r, http.MaxBytesReader(w, r.Body, h.bodyMax), dst)
}

// decodeFrom is decode reading body, r's body already bounded by h.bodyMax.
func (h *handler) decodeFrom(w http.ResponseWriter, r *http.Request, body io.Reader, dst any) bool {
	return h.decodeLimited(w, r, body, h.bodyMax, true, dst)
}

// decodeLimited is decode reading body, r's body already bounded by limit; strict
// refuses unknown fields.
func (h *handler) decodeLimited(w http.ResponseWriter, r *http.Request, body io.Reader, limit int64, strict bool, dst any) bool {
	err := protocol.Decode(body, dst, strict)
	if err == nil {
		return true
	}
	status, code, msg := http.StatusBadRequest, CodeMalformedJSON, err.Error()
	var (
		tooLarge *http.MaxBytesError
		syntax   *json.SyntaxError
		typ      *json.UnmarshalTypeError
	)
	switch {
	case errors.As(err, &tooLarge):
		status, code = http.StatusRequestEntityTooLarge, CodeBodyTooLarge
		msg = fmt.Sprintf("request body larger than %d bytes", limit)
	case errors.Is(err, io.EOF):
		msg = "empty body: expected a JSON object"
	case errors.Is(err, io.ErrUnexpectedEOF):
		msg = "body ends in the middle of the JSON object"
	case errors.Is(err, protocol.ErrTrailing):
		msg = "unexpected data after the JSON object"
	case errors.As(err, &syntax):
		msg = fmt.Sprintf("invalid JSON at byte %d: %v", syntax.Offset, syntax)
	case errors.As(err, &typ):
		code = CodeInvalidField
		if typ.Field != "" {
			msg = fmt.Sprintf("%s: expected %s, got JSON %s", typ.Field, typ.Type, typ.Value)
		} else {
			msg = fmt.Sprintf("expected a JSON object, got JSON %s", typ.Value)
		}
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		code = CodeUnknownField
		msg = "unknown field " + strings.TrimPrefix(err.Error(), "json: unknown field ")
	}
	h.fail(w, r, status, code, msg)
	return false
}

// checkCoordinatorURL accepts an absolute http(s) URL without query or fragment.
func checkCoordinatorURL(s string, maxBytes int) error {
	if len(s) > maxBytes {
		return fmt.Errorf("coordinator: %d bytes, at most %d", len(s), maxBytes)
	}
	u, err := url.Parse(s)
	if err != nil {
		return fmt.Errorf("coordinator: %v", err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return fmt.Errorf("coordinator: %q is not an absolute http(s) base URL", s)
	}
	return nil
}

func (h *handler) fail(w http.ResponseWriter, r *http.Request, status int, code, msg string) {
	h.log.Debug("participant: request refused", "method", r.Method, "path", r.URL.Path, "status", status, "code", code, "message", msg)
	writeRaw(w, status, protocol.AppendErrorResponse(nil, code, msg))
}

// writeState writes StateResponse{State: s}, precomputed for the outcomes.
func writeState(w http.ResponseWriter, status int, s State) {
	writeRaw(w, status, protocol.StateAnswer(s))
}

// writeRaw writes data, a JSON document ending in a newline, as writeJSON does.
func writeRaw(w http.ResponseWriter, status int, data []byte) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(data)
}

// writeJSON writes v, a protocol message, as protocol.AppendJSON encodes it.
func writeJSON(w http.ResponseWriter, status int, v any) {
	writeRaw(w, status, protocol.AppendJSON(nil, v))
}

// bounded cuts s to at most n bytes, for a span's name or attribute.
func bounded(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}
