package participant

import (
	"bytes"
	"errors"
	"fmt"
	"net/http"
	"sync"

	"github.com/dtc-project/dtc/protocol"
)

// batchBodyMax is the bound of a batch body at h.
func (h *handler) batchBodyMax() int64 {
	return protocol.BatchBodyMaxBytes(h.batchMax, h.p.cfg.TxnIDMaxBytes)
}

// batchCall is the state of one batch request, reused (batchPool) by later ones.
type batchCall struct {
	body    bytes.Buffer
	ops     []BatchOp
	waiters []*replyWaiter[Result] // waiters[i] answers ops[i]; nil if the op had an error
	results []BatchResult
	out     []byte
}

// batchCallKeepOps bounds the ops of a batchCall that goes back to batchPool, so that one
// large batch does not pin its memory for every later small one.
const batchCallKeepOps = 256

var batchPool = sync.Pool{New: func() any { return new(batchCall) }}

func (c *batchCall) release() {
	if len(c.ops) > batchCallKeepOps || c.body.Cap() > batchCallKeepOps*128 {
		return
	}
	clear(c.ops)
	clear(c.waiters)
	clear(c.results)
	c.ops, c.waiters, c.results = c.ops[:0], c.waiters[:0], c.results[:0]
	c.body.Reset()
	c.out = c.out[:0]
	batchPool.Put(c)
}

// batch serves POST …/batch: the whole request is read and checked first (a bad one is
// answered 400 or 413 with nothing applied), then every op is started, as …/commit or
// …/rollback would start it, then every answer is awaited (each comes once its record
// is durable), then all are written in one response.
func (h *handler) batch(w http.ResponseWriter, r *http.Request, sh *signedHeaders) {
	c := batchPool.Get().(*batchCall)
	if !h.decodeBatchRequest(w, r, sh, c) || !h.checkBatchOps(w, r, c.ops) {
		c.release()
		return
	}
	n := len(c.ops)
	c.waiters = append(c.waiters[:0], make([]*replyWaiter[Result], n)...)
	c.results = append(c.results[:0], make([]BatchResult, n)...)
	for i, op := range c.ops {
		if code, msg := h.txnIDProblem(op.TxnID); code != "" {
			c.results[i].Error = &ErrorBody{Code: code, Message: msg}
			continue
		}
		rw := resultPool.Get().(*replyWaiter[Result])
		c.waiters[i] = rw
		if op.Op == BatchOpCommit {
			h.p.Commit(op.TxnID, rw.reply)
		} else {
			h.p.Rollback(op.TxnID, rw.reply)
		}
	}
	for i, rw := range c.waiters {
		if rw == nil {
			continue
		}
		res, ok := rw.await(r.Context())
		if !ok {
			// The waiters not yet answered are left to the garbage collector (see
			// replyWaiter); c holds them, so it is not reused either.
			return
		}
		switch {
		case res.Err != nil:
			c.results[i].Error = &ErrorBody{Code: CodeUnavailable, Message: res.Err.Error()}
		default:
			c.results[i].State, c.results[i].Conflict = res.State, res.Conflict
		}
	}
	c.out = protocol.AppendBatchResponse(c.out[:0], c.results)
	writeRaw(w, http.StatusOK, c.out)
	c.release()
}

// decodeBatchRequest reads the body into c.body (at most h.batchBodyMax() bytes, 413
// beyond) and its ops into c.ops: the bodies a coordinator writes by parseBatchRequest,
// any other by the strict decoder, so that what is accepted and the errors given are
// decode's. It answers the request itself when it returns false.
func (h *handler) decodeBatchRequest(w http.ResponseWriter, r *http.Request, sh *signedHeaders, c *batchCall) bool {
	bodyMax := h.batchBodyMax()
	_, err := c.body.ReadFrom(http.MaxBytesReader(w, r.Body, bodyMax))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			h.fail(w, r, http.StatusRequestEntityTooLarge, CodeBodyTooLarge,
				fmt.Sprintf("request body larger than %d bytes (%d ops at most)", bodyMax, h.batchMax))
			return false
		}
		h.fail(w, r, http.StatusBadRequest, CodeMalformedJSON, fmt.Sprintf("reading the body: %v", err))
		return false
	}
	if !h.authBody(w, r, sh, c.body.Bytes()) {
		return false
	}
	if ops, ok := protocol.ParseBatchRequest(c.body.Bytes(), c.ops[:0], h.batchMax); ok {
		c.ops = ops
		return true
	}
	var req BatchRequest // not into c.ops: an absent "ops" must stay nil
	if !h.decodeLimited(w, r, bytes.NewReader(c.body.Bytes()), bodyMax, true, &req) {
		return false
	}
	if req.Ops == nil {
		h.fail(w, r, http.StatusBadRequest, CodeMissingField, "ops is required")
		return false
	}
	c.ops = req.Ops
	return true
}

// checkBatchOps refuses a batch that is empty, longer than h.batchMax or has an op
// that is neither commit nor rollback, answering 400 (protocol.CheckBatchOps).
func (h *handler) checkBatchOps(w http.ResponseWriter, r *http.Request, ops []BatchOp) bool {
	if code, msg := protocol.CheckBatchOps(ops, h.batchMax); code != "" {
		h.fail(w, r, http.StatusBadRequest, code, msg)
		return false
	}
	return true
}
