package simnet

import (
	"fmt"
	"strconv"
	"time"

	"github.com/dtc-project/dtc/coordinator"
	"github.com/dtc-project/dtc/participant"
	"github.com/dtc-project/dtc/protocol"
)

// Phase-2 batching, simulated as httpnet/transport does it (batch.go there): a
// participant that offers batching (protocol.HeaderBatchMax on any answer) gets its
// commits and rollbacks in POST …/batch requests, at most its limit to a request and
// one request in flight to it at a time; what comes while one is in flight waits and
// leaves together in the next. A 4xx refusal of a batch (other than a batch larger than
// the limit it now offers) stops batching to that participant for batchRefuseFor: its
// queue and later messages go one by one. An op answered with an error fails alone; an
// answer that does not parse, or none, fails every op of the batch.
//
// Participants differ, drawn from the seed without touching its streams
// (batchOffer): some offer no batching, some offer it and refuse every batch (a proxy
// that does not route …/batch), the others offer a small limit that may change with
// every restart, so that a batch sized for the old limit is refused once; some of
// those are busy (few records may wait for a sync), so that a batch comes back
// half-answered: some ops done, the others failed with ErrBusy.

// batchRefuseFor is how long a participant that refused a batch gets its phase 2 one
// by one (httpnet/transport's batchRefuseFor).
const batchRefuseFor = time.Minute

// batchPeer is the coordinator's view of one participant that offers batching. It
// lives as long as the coordinator's incarnation.
type batchPeer struct {
	p            *partNode
	maxOps       int   // 0: refused until refusedUntil
	refusedUntil int64 // virtual time
	queue        []queuedOp
	inflight     bool
}

// queuedOp is one commit or rollback waiting for a batch, with where its reply goes.
type queuedOp struct {
	m       coordinator.Message
	timeout time.Duration
	reply   func(coordinator.Reply)
}

// noteBatchMax learns, from an answer of p, whether it offers batching (as
// httpnet/transport's Transport.noteBatchMax).
func (c *coordNode) noteBatchMax(p *partNode, a wireAnswer) {
	if a.batchMax <= 0 {
		return
	}
	n, ok := protocol.ParseBatchMax(strconv.Itoa(a.batchMax))
	if !ok {
		return
	}
	bp := c.batchPeers[p.url]
	if bp == nil {
		c.batchPeers[p.url] = &batchPeer{p: p, maxOps: n}
		return
	}
	if bp.maxOps == 0 && c.s.now < bp.refusedUntil {
		return
	}
	bp.maxOps = n
}

// enqueueBatch queues a commit or rollback for its participant's next batch, when the
// participant offers batching; it reports false when m is to be sent on its own.
func (c *coordNode) enqueueBatch(p *partNode, m coordinator.Message, timeout time.Duration, reply func(coordinator.Reply)) bool {
	bp := c.batchPeers[p.url]
	if bp == nil || bp.maxOps == 0 {
		return false
	}
	bp.queue = append(bp.queue, queuedOp{m: m, timeout: timeout, reply: reply})
	if !bp.inflight {
		c.sendBatch(bp)
	}
	return true
}

// sendBatch sends the next batch of bp's queue, if any.
func (c *coordNode) sendBatch(bp *batchPeer) {
	s := c.s
	inc := c.inc
	if len(bp.queue) == 0 || bp.maxOps == 0 {
		return
	}
	n := min(len(bp.queue), bp.maxOps)
	ops := append([]queuedOp(nil), bp.queue[:n]...)
	bp.queue = append(bp.queue[:0], bp.queue[n:]...)
	bp.inflight = true
	bops := make([]protocol.BatchOp, len(ops))
	var timeout time.Duration // the longest of the ops', as httpnet/transport's
	for i, op := range ops {
		bops[i] = protocol.BatchOp{Op: protocol.BatchOpCommit, TxnID: op.m.Txn}
		if op.m.Kind == coordinator.MsgRollback {
			bops[i].Op = protocol.BatchOpRollback
		}
		timeout = max(timeout, op.timeout)
	}
	body := c.encodeBatch(bops)
	s.stats.Batches++
	s.stats.BatchOps += len(ops)
	what := fmt.Sprintf("batch of %d to %s", len(ops), bp.p.name)
	s.tracef(coordID, "→ %s %s", bp.p.name, what)
	s.call(coordID, bp.p.id, timeout, what,
		func(answer func(any, error)) {
			bp.p.handle(wireRequest{endpoint: protocol.EndpointBatch, body: body, what: what}, answer)
		},
		func(resp any, err error) {
			if !c.alive(inc) {
				return
			}
			replies := make([]coordinator.Reply, len(ops))
			for i, op := range ops {
				replies[i] = coordinator.Reply{Txn: op.m.Txn, Participant: op.m.Participant, Seq: op.m.Seq, Kind: op.m.Kind}
			}
			if err == nil {
				err = c.readBatchAnswer(bp, resp.(wireAnswer), replies)
			}
			if err != nil {
				s.tracef(coordID, "%s: %v", what, err)
				for i := range replies {
					replies[i].Err, replies[i].State, replies[i].Conflict = err, "", false
				}
			}
			bp.inflight = false
			for i, op := range ops {
				op.reply(replies[i])
			}
			if c.alive(inc) {
				c.sendBatch(bp)
			}
		})
}

// readBatchAnswer reads a batch's answer into replies, as httpnet/transport's batchExchange
// does: an error fails every op.
func (c *coordNode) readBatchAnswer(bp *batchPeer, a wireAnswer, replies []coordinator.Reply) error {
	s := c.s
	c.noteBatchMax(bp.p, a)
	switch {
	case a.status == 200:
	case protocol.RefusesBatches(a.status) && !(a.batchMax > 0 && a.batchMax < len(replies)):
		s.stats.BatchesRefused++
		bp.maxOps, bp.refusedUntil = 0, s.now+int64(batchRefuseFor)
		queued := bp.queue
		bp.queue = nil
		s.tracef(coordID, "%s refuses batches (HTTP %d): its phase 2 goes one by one for %v", bp.p.name, a.status, batchRefuseFor)
		for _, op := range queued {
			c.sendOne(bp.p, op.m, 0, op.timeout, op.reply)
		}
		return fmt.Errorf("batch refused: HTTP %d", a.status)
	default:
		return fmt.Errorf("batch answered HTTP %d", a.status)
	}
	err := protocol.ParseBatchAnswer(a.body, replies, func(i int, e *protocol.ErrorBody) error {
		s.stats.BatchOpsFailed++
		return fmt.Errorf("op %d of %d: %s: %s", i+1, len(replies), e.Code, e.Message)
	})
	if err != nil {
		return err
	}
	for i := range replies {
		replies[i].Asks = a.asks
	}
	return nil
}

// encodeBatch is the body of a batch of ops: protocol's encoder, or, under
// BreakBatchEncoder, a broken one that swaps the transactions of the first two ops.
func (c *coordNode) encodeBatch(ops []protocol.BatchOp) []byte {
	if c.s.o.Break&BreakBatchEncoder != 0 && len(ops) >= 2 && ops[0].Op != ops[1].Op {
		c.s.tracef(coordID, "BROKEN: the batch encoder swaps %s and %s", ops[0].TxnID, ops[1].TxnID)
		broken := append([]protocol.BatchOp(nil), ops...)
		broken[0].TxnID, broken[1].TxnID = ops[1].TxnID, ops[0].TxnID
		return protocol.AppendBatchRequest(nil, broken)
	}
	return protocol.AppendBatchRequest(nil, ops)
}

// --- the participant's side ---

// batchOffer is what the participant offers (protocol.HeaderBatchMax, 0: none) and
// whether it refuses every batch all the same, drawn from the seed, the participant and
// its restart count, without drawing from the run's streams.
func (p *partNode) batchOffer() (maxOps int, refuses bool) {
	h := mix64(p.s.o.Seed ^ uint64(p.id)*0x9e3779b97f4a7c15)
	switch h % 8 {
	case 0:
		return 0, false // no batching
	case 1:
		return 4, true // offers, and refuses every batch
	}
	return 1 + int(mix64(h+uint64(p.restarts))%4), false
}

// busyInflightMax is participant.Config.InflightMax of a busy participant (busy).
const busyInflightMax = 3

// busy reports whether p is one of the participants that keep few records waiting for
// a sync (busyInflightMax), drawn as batchOffer draws: among those that batch, so that
// batches come back half-answered.
func (p *partNode) busy() bool {
	return mix64(p.s.o.Seed^uint64(p.id)*0x9e3779b97f4a7c15)%8 == 2
}

func (p *partNode) batchMax() int {
	n, _ := p.batchOffer()
	return n
}

// mix64 is splitmix64's finaliser.
func mix64(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	return x ^ x>>31
}

// handleBatch serves POST …/batch as participant's handler does: the whole request is
// read and checked first (a bad one is answered 400, nothing applied), then every op
// is started, then, once every op is answered, all are answered in one response.
func (p *partNode) handleBatch(req wireRequest, answer func(any, error)) {
	s := p.s
	inc := p.inc
	maxOps, refuses := p.batchOffer()
	if maxOps == 0 || refuses {
		s.tracef(p.id, "%s: no batch endpoint here (404)", req.what)
		answer(p.answer(404, []byte("404 page not found\n")), nil)
		return
	}
	ops, err := decodeBatch(req.body, maxOps)
	switch {
	case err != nil:
		answer(p.answer(400, protocol.AppendErrorResponse(nil, protocol.CodeMalformedJSON, err.Error())), nil)
		return
	case len(ops) == 0 || len(ops) > maxOps:
		s.tracef(p.id, "%s: refused, %d ops, at most %d", req.what, len(ops), maxOps)
		answer(p.answer(400, protocol.AppendErrorResponse(nil, protocol.CodeInvalidField, fmt.Sprintf("ops: %d ops, at most %d", len(ops), maxOps))), nil)
		return
	}
	for i, op := range ops {
		if op.Op != protocol.BatchOpCommit && op.Op != protocol.BatchOpRollback {
			answer(p.answer(400, protocol.AppendErrorResponse(nil, protocol.CodeInvalidField, fmt.Sprintf("ops[%d].op: unknown op %q", i, op.Op))), nil)
			return
		}
	}
	results := make([]protocol.BatchResult, len(ops))
	pending := len(ops)
	for i, op := range ops {
		s.incarnations[op.TxnID] = true
		what := fmt.Sprintf("%s %s (op %d of %s)", op.Op, op.TxnID, i+1, req.what)
		p.phase2Op(op.TxnID, op.Op == protocol.BatchOpCommit, what, func(res participant.Result) {
			if res.Err != nil {
				results[i].Error = &protocol.ErrorBody{Code: protocol.CodeUnavailable, Message: res.Err.Error()}
			} else {
				results[i].State, results[i].Conflict = res.State, res.Conflict
			}
			if pending--; pending == 0 {
				answer(p.answer(200, protocol.AppendBatchResponse(nil, results)), nil)
			}
		})
		if !p.alive(inc) {
			return // crashed in the middle of the batch: no answer
		}
	}
}
