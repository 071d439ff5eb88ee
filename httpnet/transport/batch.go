package transport

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/dtc-project/dtc/coordinator"
	"github.com/dtc-project/dtc/httpnet/internal/tracing"
	"github.com/dtc-project/dtc/participant"
	"github.com/dtc-project/dtc/protocol"
)

// Phase-2 batching, the coordinator's side: a participant that offers it (the
// Dtc-Batch-Max header on any of its answers) gets its commits and rollbacks in
// POST …/batch requests, many transactions to a request, instead of one request each.
//
//	Send(commit|rollback) ──▶ batchPeer.queue ──▶ runBatches (a sender, at most
//	                          (per participant)    BatchInflight per participant)
//	                                                 │ POST …/batch {"ops":[…]}
//	                                                 ▼
//	                          deliver(Reply) ◀── one Reply per op, its own Seq
//
// There is no timer: a message for an idle participant leaves at once, as a batch of
// one; those that come while BatchInflight requests are in flight wait and leave
// together in the next, as records wait for the next fsync in a group commit. But when
// the newest request in flight left BatchSlowAfter ago or more, a message that comes
// starts one more sender (at most batchSlowSendersMax more): a participant slow to
// answer one batch (a SQL participant's database flushing its log) would otherwise
// hold back every later commit, and its prepared transactions would pile up.

// batchOpsMax bounds the ops of one batch request, whatever a participant offers.
const batchOpsMax = protocol.BatchOpsMax

// batchSlowSendersMax bounds the senders that Options.BatchSlowAfter starts for one
// participant beyond Options.BatchInflight.
const batchSlowSendersMax = 3

// batchPeersMax bounds Transport.batchPeers. When it is full, the participants with
// nothing queued and nothing in flight are forgotten, but not those that refused a batch
// lately (forgetting that would cost them another refused batch); if none is, a new
// participant is not remembered and gets its messages one by one.
const batchPeersMax = 1024

// batchResultMaxBytes is what a batch answer may have per op beyond
// Options.ResponseMaxBytes: a result with an error message.
const batchResultMaxBytes = 1 << 10

// batchRefuseFor is how long the header of a participant whose …/batch refused a batch
// (refusesBatches) is ignored: a participant that offers what it does not serve would
// otherwise be learnt again from its next prepare's answer, and its phase 2 would fail
// forever.
const batchRefuseFor = time.Minute

// batchQueueKeepOps bounds the capacity of an empty queue that is kept: a larger one,
// grown by a burst, is dropped.
const batchQueueKeepOps = 2 * batchOpsMax

// A batchPeer is one participant that offers batching. Its fields are guarded by
// Transport.batchMu.
type batchPeer struct {
	url string // the prepare URL, its key in Transport.batchPeers
	// maxOps is the most ops a request may carry: the participant's header, at most
	// batchOpsMax. 0 while batching is refused (a 4xx from …/batch, see refusesBatches), until
	// refusedUntil.
	maxOps       int
	refusedUntil time.Time
	// queue holds the messages waiting for a request, oldest first. Its length is
	// bounded by the engines: each has at most one outstanding message per
	// participant of a transaction it holds.
	queue []sendJob
	// inflight counts the senders running runBatches for this participant, each with
	// at most one request in flight: at most Options.BatchInflight, and
	// batchSlowSendersMax more while it is slow (Options.BatchSlowAfter).
	inflight int
	// lastTaken is when a sender last started for p or took a batch from queue: the
	// newest batch in flight left then, or is about to leave.
	lastTaken time.Time
}

// idle reports whether nothing is queued for p and no sender works for it.
func (p *batchPeer) idle() bool { return p.inflight == 0 && len(p.queue) == 0 }

// take appends the next batch of p's queue (at most maxOps) to ops, and removes it from
// the queue.
func (p *batchPeer) take(ops []sendJob) []sendJob {
	n := min(len(p.queue), p.maxOps)
	ops = append(ops, p.queue[:n]...)
	rest := copy(p.queue, p.queue[n:])
	clear(p.queue[rest:]) // let the replies' closures go
	p.queue = p.queue[:rest]
	if rest == 0 && cap(p.queue) > batchQueueKeepOps {
		p.queue = nil
	}
	return ops
}

// noteBatchMax remembers that the participant of prepareURL offers batching, when h
// (an answer of it) says so with exactly one well-formed Dtc-Batch-Max. With
// Options.NoBatch it remembers nothing: batchPeers stays empty, and every
// commit and rollback goes on its own.
func (t *Transport) noteBatchMax(prepareURL string, h http.Header) {
	if t.o.NoBatch {
		return
	}
	v, ok := h[protocol.HeaderBatchMax] // in canonical form, as the keys are
	if !ok {
		return
	}
	if len(v) != 1 {
		return
	}
	n, ok := protocol.ParseBatchMax(v[0])
	if !ok {
		return
	}
	t.batchMu.Lock()
	defer t.batchMu.Unlock()
	if p := t.batchPeers[prepareURL]; p != nil {
		if p.maxOps == 0 && time.Now().Before(p.refusedUntil) {
			return
		}
		p.maxOps = n
		return
	}
	if t.closed.Load() {
		return
	}
	if len(t.batchPeers) >= batchPeersMax {
		now := time.Now()
		for u, p := range t.batchPeers {
			if p.idle() && !now.Before(p.refusedUntil) {
				delete(t.batchPeers, u)
			}
		}
		if len(t.batchPeers) >= batchPeersMax {
			t.batchKnown.Store(int32(len(t.batchPeers)))
			return
		}
	}
	t.batchPeers[prepareURL] = &batchPeer{url: prepareURL, maxOps: n}
	t.batchKnown.Store(int32(len(t.batchPeers)))
}

// refuseBatch stops batching for p, after its …/batch answered a 4xx (refusesBatches), for
// batchRefuseFor: what is queued for it is sent one by one at once, and so are later
// messages.
func (t *Transport) refuseBatch(p *batchPeer) {
	t.batchMu.Lock()
	p.maxOps = 0
	p.refusedUntil = time.Now().Add(batchRefuseFor)
	queued := p.queue
	p.queue = nil
	t.batchMu.Unlock()
	for _, j := range queued {
		t.dispatch(j)
	}
}

// enqueueBatch queues j, a commit or a rollback, when its participant offers batching,
// and makes sure a sender will carry it: it starts one unless BatchInflight already
// work for that participant. It reports false when j is to be sent on its own.
func (t *Transport) enqueueBatch(j sendJob) bool {
	if t.batchKnown.Load() == 0 {
		return false
	}
	t.batchMu.Lock()
	p := t.batchPeers[j.m.URL]
	if p == nil || p.maxOps == 0 {
		t.batchMu.Unlock()
		return false
	}
	if t.closed.Load() {
		t.batchMu.Unlock()
		return true // dropped, as every Send after Close
	}
	p.queue = append(p.queue, j)
	start := p.inflight < t.o.BatchInflight ||
		t.o.BatchSlowAfter > 0 && p.inflight < t.o.BatchInflight+batchSlowSendersMax && time.Since(p.lastTaken) >= t.o.BatchSlowAfter
	if start {
		p.inflight++
		// Not slow yet: the sender has its batch to take. Without this, the messages of
		// a burst to a participant idle for a while would each start a sender before
		// the first took its batch.
		p.lastTaken = time.Now()
	}
	t.batchMu.Unlock()
	if start && !t.dispatch(sendJob{peer: p}) {
		t.batchMu.Lock()
		p.inflight-- // closed: nobody sends the queue, Close drops it
		t.batchMu.Unlock()
	}
	return true
}

// dropBatchQueues forgets every participant's queue and capability; Close calls it once
// every sender has returned.
func (t *Transport) dropBatchQueues() {
	t.batchMu.Lock()
	clear(t.batchPeers)
	t.batchKnown.Store(0)
	t.batchMu.Unlock()
}

// runBatches is a sender's turn at p's queue: it sends batch after batch until the
// queue is empty (or batching is refused, or the Transport closes), then leaves.
func (t *Transport) runBatches(ctx context.Context, p *batchPeer, buf *[]byte) {
	var (
		ops     []sendJob
		replies []coordinator.Reply
	)
	for {
		t.batchMu.Lock()
		if len(p.queue) == 0 || p.maxOps == 0 || ctx.Err() != nil {
			p.inflight--
			t.batchMu.Unlock()
			return
		}
		ops = p.take(ops[:0])
		p.lastTaken = time.Now()
		t.batchMu.Unlock()
		replies = t.sendBatch(ctx, p, ops, replies[:0], buf)
		clear(ops)
	}
}

// sendBatch sends ops (at least one) in one request and delivers one reply to each,
// unless the Transport was closed. replies is room for the replies, returned for the
// next batch.
func (t *Transport) sendBatch(ctx context.Context, p *batchPeer, ops []sendJob, replies []coordinator.Reply, buf *[]byte) []coordinator.Reply {
	for _, j := range ops {
		m := j.m
		replies = append(replies, coordinator.Reply{Txn: m.Txn, Participant: m.Participant, Seq: m.Seq, Kind: m.Kind})
	}
	var sends []tracing.Send // of the traced ops, by index; nil when none is
	if t.trace != nil {
		for i := range ops {
			if _, s := t.trace.StartSend(&ops[i].m); s.Span != nil {
				if sends == nil {
					sends = make([]tracing.Send, len(ops))
				}
				sends[i] = s
			}
		}
	}
	var batchSpan trace.Span
	var sc trace.SpanContext
	if sends != nil {
		batchSpan = t.trace.StartBatch(ctx, p.url, sends)
		sc = batchSpan.SpanContext()
	}
	err := beforeBatchSend(ops)
	if err == nil {
		err = t.batchExchange(ctx, p, ops, replies, buf, sc)
	}
	if batchSpan != nil {
		tracing.EndBatch(batchSpan, err)
	}
	if err != nil {
		if t.ctx.Err() != nil {
			return replies[:0] // shutting down: the engines are gone, nobody waits for these replies
		}
		var se *sendError
		if !errors.As(err, &se) {
			se = &sendError{kind: errKindConnection, msg: err.Error()}
		}
		t.errs.WithLabelValues(se.kind, participant.EndpointBatch).Inc()
		for i := range replies {
			r := &replies[i]
			r.Err, r.State, r.Conflict = se, "", false
		}
	} else {
		for _, r := range replies {
			var se *sendError
			if r.Err != nil && errors.As(r.Err, &se) {
				t.errs.WithLabelValues(se.kind, r.Kind.String()).Inc()
			}
		}
	}
	for i, j := range ops {
		if sends != nil {
			tracing.EndSend(sends[i], &replies[i])
		}
		j.deliver(replies[i])
	}
	clear(replies)
	return replies[:0]
}

// batchExchange performs the batch request of ops to p and reads each op's answer into
// replies[i] (State and Conflict, or Err for an op the participant answered with an
// error). An error fails every op: the request got no usable answer. sc, if valid, goes
// with the request as its traceparent.
func (t *Transport) batchExchange(ctx context.Context, p *batchPeer, ops []sendJob, replies []coordinator.Reply, buf *[]byte, sc trace.SpanContext) error {
	var timeout time.Duration // the longest of the ops', as the engines give every phase-2 request the same
	for _, j := range ops {
		d := j.m.Timeout
		if d <= 0 {
			d = t.o.RequestTimeout
		}
		timeout = max(timeout, d)
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	eps, err := t.endpointsOf(p.url)
	if err != nil {
		return &sendError{kind: errKindMalformed, msg: err.Error()}
	}
	what := fmt.Sprintf("batch of %d", len(ops))
	req := t.httpRequest(ctx, http.MethodPost, &eps.Batch, appendBatchBody(nil, ops))
	if t.trace != nil {
		t.trace.Inject(sc, req) // the dtc.batch span, if sendBatch started one
	}
	t.stats.batch.Add(1)
	t.stats.batchOps.Add(uint64(len(ops)))
	limit := t.o.ResponseMaxBytes + int64(len(ops))*batchResultMaxBytes
	resp, body, eof, err := t.fetch(req, what, p.url, timeout, limit, buf)
	if err != nil {
		return err
	}
	defer finishResponse(resp, eof)
	switch {
	case resp.StatusCode == http.StatusOK:
	case refusesBatches(resp.StatusCode) && !offersFewerOps(resp.Header, len(ops)):
		t.refuseBatch(p)
		return &sendError{kind: errKindStatus, msg: fmt.Sprintf("%s %s: HTTP %d: %s (the participant takes no batches: its commits and rollbacks go one by one for %v)",
			what, &eps.Batch, resp.StatusCode, snippet(body), batchRefuseFor)}
	default:
		return statusError(what, &eps.Batch, resp.StatusCode, body)
	}
	if err := parseBatchAnswer(body, replies, &eps.Batch); err != nil {
		return &sendError{kind: errKindMalformed, msg: fmt.Sprintf("%s %s: HTTP 200: %v: %s", what, &eps.Batch, err, snippet(body))}
	}
	if asksInDoubt(resp.Header) {
		for i := range replies {
			replies[i].Asks = true
		}
	}
	return nil
}

// offersFewerOps reports whether a batch's answer still offers batching, of fewer ops
// than the batch had: the participant lowered its Dtc-Batch-Max (a restart with a new
// limit), and its 4xx is about this batch's size, not about batches. noteBatchMax has
// taken the new limit; the ops fail this once, like any unanswered batch, and go again
// in batches that fit instead of one by one for batchRefuseFor.
func offersFewerOps(h http.Header, ops int) bool {
	v := h[protocol.HeaderBatchMax]
	if len(v) != 1 {
		return false
	}
	n, ok := protocol.ParseBatchMax(v[0])
	return ok && n < ops
}

// refusesBatches reports whether a batch answered status shows that the participant
// does not take our batches, whatever its header said: a 4xx other than 408 (timeout)
// and 429 (busy) is the same answer every time (no such endpoint, a body it cannot
// read, one larger than it takes), so every retry of the same ops in a batch would get
// it again, and with them every transaction they travel with.
func refusesBatches(status int) bool { return protocol.RefusesBatches(status) }

// appendBatchBody appends the JSON of the protocol.BatchRequest of ops.
func appendBatchBody(b []byte, ops []sendJob) []byte {
	var small [64]protocol.BatchOp // on the stack, for the usual batches
	bops := small[:0]
	if len(ops) > len(small) {
		bops = make([]protocol.BatchOp, 0, len(ops))
	}
	bops = bops[:len(ops)]
	for i, j := range ops {
		bops[i] = protocol.BatchOp{Op: protocol.BatchOpCommit, TxnID: j.m.Txn}
		if j.m.Kind == coordinator.MsgRollback {
			bops[i].Op = protocol.BatchOpRollback
		}
	}
	return protocol.AppendBatchRequest(b, bops)
}

// parseBatchAnswer reads the results of a 200 answer to a batch into replies, one to
// each (protocol.ParseBatchAnswer): State and Conflict, or Err for an op the
// participant answered with an error. u is the batch endpoint, for the errors.
func parseBatchAnswer(body []byte, replies []coordinator.Reply, u fmt.Stringer) error {
	return protocol.ParseBatchAnswer(body, replies, func(i int, e *protocol.ErrorBody) error {
		kind := errKindStatus
		if e.Code == protocol.CodeUnavailable {
			kind = errKind5xx // what the single endpoint answers with 503
		}
		return &sendError{kind: kind, msg: fmt.Sprintf("%s %s (op %d of %d): %s: %s",
			replies[i].Kind, u, i+1, len(replies), e.Code, e.Message)}
	})
}

// transportCounters count the requests a Transport begins, by kind.
type transportCounters struct {
	prepare, commit, rollback, status, batch, batchOps atomic.Uint64
}

func (c *transportCounters) count(k coordinator.MsgKind) {
	switch k {
	case coordinator.MsgPrepare:
		c.prepare.Add(1)
	case coordinator.MsgCommit:
		c.commit.Add(1)
	case coordinator.MsgRollback:
		c.rollback.Add(1)
	case coordinator.MsgStatus:
		c.status.Add(1)
	}
}

// Stats counts the HTTP requests a Transport has begun to participants since
// New, whatever their answer (or its lack): a request is counted when it
// leaves, and a retry is another request. Prepare, Commit, Rollback and Status are the
// single-transaction requests; Batch the POST …/batch requests, which carried BatchOps
// commits and rollbacks together. So the phase-2 messages that left are
// Commit+Rollback+BatchOps, in Commit+Rollback+Batch requests.
//
// The counters only grow; to measure a run, subtract the Stats taken at its start from
// those taken at its end.
type Stats struct {
	Prepare, Commit, Rollback, Status uint64
	Batch, BatchOps                   uint64
	// BatchParticipants is how many participants batching is on for now, and
	// BatchQueued how many commits and rollbacks wait in their queues for a request
	// (gauges, not counters).
	BatchParticipants, BatchQueued int
}

// Stats returns the Transport's request counters. It is safe to call at any time, from
// any goroutine, also after Close.
func (t *Transport) Stats() Stats {
	c := &t.stats
	s := Stats{
		Prepare: c.prepare.Load(), Commit: c.commit.Load(), Rollback: c.rollback.Load(), Status: c.status.Load(),
		Batch: c.batch.Load(), BatchOps: c.batchOps.Load(),
	}
	t.batchMu.Lock()
	defer t.batchMu.Unlock()
	for _, p := range t.batchPeers {
		if p.maxOps > 0 {
			s.BatchParticipants++
		}
		s.BatchQueued += len(p.queue)
	}
	return s
}
