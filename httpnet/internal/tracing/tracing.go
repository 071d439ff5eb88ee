// Package tracing makes dtc's OpenTelemetry spans and keeps, by client id, the trace
// context of each transaction begun through the API until the transaction ends. It is
// shared by the three parts of the daemon: the API server (package apiserver) starts a
// transaction's span, the transport (package transport) a span per request to a
// participant, and the runtime (package httpnet) the decision's sync span, through a
// decorator of each engine's Log and its Observer. It starts no goroutine: its methods
// run on their callers' (API handlers, senders, shards), and a mutex guards the map.
// It is internal to httpnet: its spans and their names are described below.
package tracing

import (
	"context"
	"encoding/hex"
	"errors"
	"net/http"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/dtc-project/dtc/coordinator"
)

// OpenTelemetry traces, made here in the adapters (the coordinator core knows nothing of
// them). Off unless httpnet.Options.TracerProvider is set (dtc serve --otlp-endpoint);
// then:
//
//	dtc.transaction            the API request that begins it (POST /v1/transactions),
//	│                          child of the client's W3C traceparent when it sent one
//	├─ dtc.prepare             one per participant: the HTTP request, which carries
//	│                          traceparent so that the participant continues the trace
//	├─ dtc.decision.sync       from appending the decision record until it is durable
//	├─ dtc.commit / rollback   one per phase-2 request (retries too), traceparent sent
//	│                          on a request of its own (one in a batch is linked
//	│                          from the batch's dtc.batch span)
//	└─ dtc.status              recovery's status queries (only for a transaction this
//	                           process began: the trace does not survive a restart)
//
//	dtc.batch                  a POST …/batch request: the root of a trace of its own
//	                           (it serves many transactions), linked to the dtc.commit /
//	                           dtc.rollback span of each sampled op in it; its
//	                           traceparent goes with the request, so that the
//	                           participant continues that trace
//
// Attributes are bounded: ids, URLs, votes, counts, the state of a participant that
// contradicts the decision, and error messages cut to traceTextMaxBytes; never a
// payload. Phase-2 spans may end after dtc.transaction,
// which ends with the client's answer.

// tracedTxnsMax bounds the transactions whose trace context is remembered for their
// child spans, from the API request until they end. Beyond it a transaction gets its
// dtc.transaction span but no children.
const tracedTxnsMax = 65536

// traceTextMaxBytes bounds the text attributes that come from elsewhere (reasons, error
// messages).
const traceTextMaxBytes = 256

// The span kinds as start options, made once, in slices: made per span, or passed one
// by one (a variadic slice that escapes), each is an allocation.
var (
	serverKind = []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindServer)}
	clientKind = []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindClient)}
)

// Attributes that are always the same, made once. A span's attributes are set after it
// starts (span.SetAttributes), never as start options: the SDK copies those into the
// start configuration and then again into the span, an allocation more per span.
var (
	decisionCommit = []attribute.KeyValue{attribute.String("dtc.decision", "commit")}
	decisionAbort  = []attribute.KeyValue{attribute.String("dtc.decision", "abort")}
)

// tracerName is the instrumentation scope of dtc's spans.
const tracerName = "github.com/dtc-project/dtc/httpnet"

// Tracing holds the tracer and, by client id, the trace of each transaction begun
// through the API, until it ends. A nil *Tracing means tracing is off; its callers
// check for nil before calling.
type Tracing struct {
	tracer trace.Tracer
	prop   propagation.TraceContext

	mu   sync.Mutex
	txns map[string]*txnTrace
	// sendAttrs holds, by participant URL, a request span's attributes, made once:
	// made per request, they were an allocation or two each. At most sendAttrsMax URLs
	// are kept; others get theirs made each time.
	sendAttrs map[string]*sendAttrs
}

// sendAttrsMax bounds Tracing.sendAttrs.
const sendAttrsMax = 4096

// sendAttrs are the attributes of a request span to one participant, made once: all
// of a span's are set in one call when it ends (EndSend), so that the span's slice of
// them is allocated once.
type sendAttrs struct {
	plain []attribute.KeyValue // dtc.participant
	ack   []attribute.KeyValue // dtc.participant and dtc.vote ACK, the usual prepare's
}

func newSendAttrs(url string) *sendAttrs {
	p := attribute.String("dtc.participant", bounded(url))
	return &sendAttrs{plain: []attribute.KeyValue{p}, ack: []attribute.KeyValue{p, attribute.String("dtc.vote", string(coordinator.VoteACK))}}
}

// Send is a participant request's span, from StartSend to EndSend; its zero value is
// no span.
type Send struct {
	Span  trace.Span // nil when no span is made
	attrs *sendAttrs
}

type txnTrace struct {
	ctx         context.Context // holds the dtc.transaction span's context
	sampled     bool            // the sampler chose to record it: else no child spans are made
	decisionAt  time.Time       // when the decision record was appended; zero before
	decisionSet bool
}

// New returns the tracing of tp's spans, or nil (tracing off) when tp is nil.
func New(tp trace.TracerProvider) *Tracing {
	if tp == nil {
		return nil
	}
	return &Tracing{tracer: tp.Tracer(tracerName), txns: make(map[string]*txnTrace), sendAttrs: make(map[string]*sendAttrs)}
}

// StartTxn starts the dtc.transaction span of a POST /v1/transactions, under the
// client's traceparent if it sent one, and remembers its context for id's child spans.
// remembered is true when it was remembered (and must be forgotten if the transaction
// never begins). Its attributes are set when it ends (EndTxn), all at once.
func (tr *Tracing) StartTxn(r *http.Request, id string) (ctx context.Context, span trace.Span, remembered bool) {
	ctx = tr.prop.Extract(r.Context(), propagation.HeaderCarrier(r.Header))
	ctx, span = tr.tracer.Start(ctx, "dtc.transaction", serverKind...)
	tr.mu.Lock()
	defer tr.mu.Unlock()
	if _, dup := tr.txns[id]; !dup && len(tr.txns) < tracedTxnsMax {
		sc := span.SpanContext()
		tr.txns[id] = &txnTrace{ctx: trace.ContextWithSpanContext(context.Background(), sc), sampled: sc.IsSampled()}
		remembered = true
	}
	return ctx, span, remembered
}

// EndTxn ends the dtc.transaction span of transaction id (the client's) with the
// answer the client got. The participants are its dtc.prepare children: their count is
// not repeated here.
func (tr *Tracing) EndTxn(span trace.Span, id string, v *coordinator.View, err error) {
	switch {
	case !span.IsRecording():
	case err != nil:
		span.SetAttributes(attribute.String("dtc.txn.id", bounded(id)))
		span.RecordError(err)
		span.SetStatus(codes.Error, bounded(err.Error()))
	default:
		attrs := []attribute.KeyValue{attribute.String("dtc.txn.id", bounded(id)),
			attribute.String("dtc.txn.wire_id", bounded(v.TxnID)), attribute.String("dtc.state", v.State)}
		if v.Reason != "" {
			attrs = append(attrs, attribute.String("dtc.reason", bounded(v.Reason)))
		}
		span.SetAttributes(attrs...)
	}
	span.End()
}

// forget drops id's trace context.
func (tr *Tracing) Forget(id string) {
	tr.mu.Lock()
	delete(tr.txns, id)
	tr.mu.Unlock()
}

// lookup returns the trace of the transaction that wire id (as participants know it)
// names, or nil, and the attributes of a request span to participant url.
func (tr *Tracing) lookup(wire, url string) (*txnTrace, *sendAttrs) {
	client, _, _ := coordinator.SplitTxnID(wire)
	tr.mu.Lock()
	defer tr.mu.Unlock()
	tt := tr.txns[client]
	if tt == nil || !tt.sampled {
		return tt, nil
	}
	attrs := tr.sendAttrs[url]
	if attrs == nil {
		attrs = newSendAttrs(url)
		if len(tr.sendAttrs) < sendAttrsMax {
			tr.sendAttrs[url] = attrs
		}
	}
	return tt, attrs
}

// StartSend starts the span of a request to a participant and returns the span context
// to send with it (Inject puts it in the request's headers): the span's, or for a
// transaction that is traced but not sampled, its trace's (marked not sampled). s.Span
// is nil when no span is made, and sc invalid when the transaction is not traced.
func (tr *Tracing) StartSend(m *coordinator.Message) (sc trace.SpanContext, s Send) {
	tt, attrs := tr.lookup(m.Txn, m.URL)
	if tt == nil {
		return trace.SpanContext{}, Send{}
	}
	if !tt.sampled {
		// Not recorded: no span, but the participant still learns the trace (and that
		// it is not sampled), as W3C trace context asks.
		return trace.SpanContextFromContext(tt.ctx), Send{}
	}
	// The transaction's ids are on its dtc.transaction span; a child names the
	// participant only (by URL: its index in the transaction would say it again; that
	// it went in a batch, the batch's dtc.batch span says, with a link to it). Every
	// attribute costs a few allocations when the span is made and more when it is
	// exported, on every request: measured, they were a good part of tracing's cost.
	_, span := tr.tracer.Start(tt.ctx, spanName(m.Kind), clientKind...)
	return span.SpanContext(), Send{Span: span, attrs: attrs}
}

// spanName is the name of a participant request's span, without building it each time.
func spanName(k coordinator.MsgKind) string {
	switch k {
	case coordinator.MsgPrepare:
		return "dtc.prepare"
	case coordinator.MsgCommit:
		return "dtc.commit"
	case coordinator.MsgRollback:
		return "dtc.rollback"
	case coordinator.MsgStatus:
		return "dtc.status"
	}
	return "dtc." + k.String()
}

// Inject writes sc (if valid) into req's headers as traceparent, on a copy of them:
// the transport's requests share their headers (its httpRequest). The copy shares the
// values, which nobody changes; traceparent is formatted here, without the
// propagator's generic carrier, unless there is a tracestate to send too.
func (tr *Tracing) Inject(sc trace.SpanContext, req *http.Request) {
	if !sc.IsValid() {
		return
	}
	h := make(http.Header, len(req.Header)+1)
	for k, v := range req.Header {
		h[k] = v
	}
	req.Header = h
	if sc.TraceState().Len() > 0 {
		tr.prop.Inject(trace.ContextWithSpanContext(context.Background(), sc), propagation.HeaderCarrier(h))
		return
	}
	h[traceparentHeader] = []string{traceparent(sc)}
}

// traceparentHeader is the W3C header, in canonical form.
const traceparentHeader = "Traceparent"

// traceparent formats sc as a W3C traceparent (version 00).
func traceparent(sc trace.SpanContext) string {
	var b [55]byte // 00-<32 hex>-<16 hex>-<2 hex>
	tid, sid := sc.TraceID(), sc.SpanID()
	b[0], b[1], b[2] = '0', '0', '-'
	hex.Encode(b[3:35], tid[:])
	b[35] = '-'
	hex.Encode(b[36:52], sid[:])
	b[52] = '-'
	hex.Encode(b[53:55], []byte{byte(sc.TraceFlags())})
	return string(b[:])
}

// StartBatch starts the dtc.batch span of a batch request to participant, a new root
// linked to the phase-2 span of each traced op (sends, without a span where an op is
// not traced).
func (tr *Tracing) StartBatch(ctx context.Context, participant string, sends []Send) trace.Span {
	links := make([]trace.Link, 0, len(sends))
	for _, s := range sends {
		if s.Span != nil {
			links = append(links, trace.Link{SpanContext: s.Span.SpanContext()})
		}
	}
	_, span := tr.tracer.Start(ctx, "dtc.batch", trace.WithNewRoot(), clientKind[0],
		trace.WithLinks(links...),
		trace.WithAttributes(attribute.String("dtc.participant", bounded(participant)), attribute.Int("dtc.batch.ops", len(sends))))
	return span
}

// EndBatch ends a batch request's span; err is what failed the whole request.
func EndBatch(span trace.Span, err error) {
	if err != nil {
		span.SetStatus(codes.Error, bounded(err.Error()))
	}
	span.End()
}

// EndSend ends a participant request's span with its reply, and sets its attributes,
// all in one call.
func EndSend(s Send, r *coordinator.Reply) {
	span, a := s.Span, s.attrs
	if span == nil {
		return
	}
	switch {
	case r.Err != nil:
		span.SetAttributes(a.plain...)
		span.SetStatus(codes.Error, bounded(r.Err.Error()))
	case r.Kind == coordinator.MsgPrepare:
		vote := attribute.String("dtc.vote", string(r.Vote))
		switch {
		case r.Reason != "":
			span.SetAttributes(a.plain[0], vote, attribute.String("dtc.reason", bounded(r.Reason)))
		case r.Vote == coordinator.VoteACK:
			span.SetAttributes(a.ack...) // a slice made once: no allocation for the call
		default:
			span.SetAttributes(a.plain[0], vote)
		}
	case r.Conflict:
		// The state a participant answers phase 2 with is the expected one but for a
		// conflict (a heuristic hazard): only then is it worth an attribute.
		span.SetAttributes(a.plain[0], attribute.String("dtc.participant.state", string(r.State)), attribute.Bool("dtc.conflict", true))
	default:
		span.SetAttributes(a.plain...)
	}
	span.End()
}

// Log is an engine's Log that notes when a traced transaction's decision record
// is appended, for its dtc.decision.sync span.
type Log struct {
	coordinator.Log
	Tr *Tracing // not nil
}

// Append appends rec to the Log it decorates, and notes the time of a traced decision.
func (l Log) Append(rec *coordinator.Record, sync bool) error {
	err := l.Log.Append(rec, sync)
	if err == nil && rec.Type == coordinator.RecDecision {
		l.Tr.mu.Lock()
		if tt := l.Tr.txns[rec.Txn]; tt != nil && tt.sampled && !tt.decisionSet {
			tt.decisionAt, tt.decisionSet = time.Now(), true
		}
		l.Tr.mu.Unlock()
	}
	return err
}

// Observe makes the dtc.decision.sync span when a traced decision is durable, and
// forgets a transaction when it ends. It runs on the shard's goroutine.
func (tr *Tracing) Observe(n *coordinator.Note) {
	switch n.Kind {
	case coordinator.NoteDecided:
		tr.mu.Lock()
		tt := tr.txns[n.Txn]
		var (
			ctx context.Context
			at  time.Time
		)
		if tt != nil && tt.decisionSet {
			ctx, at = tt.ctx, tt.decisionAt
		}
		tr.mu.Unlock()
		if ctx == nil {
			return
		}
		decision := decisionAbort
		if n.Commit {
			decision = decisionCommit
		}
		_, span := tr.tracer.Start(ctx, "dtc.decision.sync", trace.WithTimestamp(at))
		if !n.Commit && n.Cause != coordinator.CauseNone {
			span.SetAttributes(decision[0], attribute.String("dtc.abort.cause", string(n.Cause)))
		} else {
			span.SetAttributes(decision...)
		}
		span.End()
	case coordinator.NoteEnded:
		tr.Forget(n.Txn)
	}
}

// BeganNot reports whether err from Runtime.Submit means the transaction did not begin,
// so that nothing will end it: its trace context is to be forgotten at once.
func BeganNot(err error) bool {
	var reqErr *coordinator.RequestError
	return errors.As(err, &reqErr) || errors.Is(err, coordinator.ErrInvalidRequest) ||
		errors.Is(err, coordinator.ErrConflict) || errors.Is(err, coordinator.ErrBusy) ||
		errors.Is(err, coordinator.ErrRecovering) || errors.Is(err, coordinator.ErrLogUnavailable)
}

// bounded cuts s to traceTextMaxBytes (at a byte boundary; the SDK makes it valid UTF-8).
func bounded(s string) string {
	if len(s) <= traceTextMaxBytes {
		return s
	}
	return s[:traceTextMaxBytes-len("…")] + "…"
}
