package sqlpart

import (
	"net/http"

	"golang.org/x/sync/errgroup"

	"github.com/dtc-project/dtc/participant"
	"github.com/dtc-project/dtc/protocol"
)

// batch serves POST …/batch: the commits and rollbacks of many transactions in one
// request (protocol.BatchRequest), so that a coordinator under load sends one request
// where it would send many; each op does what …/commit or …/rollback does. The whole
// request is read and checked first: a bad one is answered 400 or 413 and nothing is
// done. Then the ops run, batchParallel transactions at once, each on a connection of
// its own, and all the results are written in one answer once every op has one. The
// ops of one transaction run one after the other, in the order given; those of
// different transactions have nothing to order.
//
// An op's database error is its result's error (unavailable: the coordinator tries it
// again), never a reason to fail the others. If the caller goes away before the end,
// nothing is answered: the ops done are done, and the coordinator's retry finds them so.
func (h *handler) batch(w http.ResponseWriter, r *http.Request) {
	body, ok := h.readBody(w, r, protocol.BatchBodyMaxBytes(h.batchMax, h.p.cfg.TxnIDMaxBytes))
	if !ok {
		return
	}
	ops, ok := protocol.ParseBatchRequest(body, nil, h.batchMax)
	if !ok {
		var req protocol.BatchRequest
		if !h.decodeBody(w, r, body, &req) {
			return
		}
		if req.Ops == nil {
			h.fail(w, r, http.StatusBadRequest, participant.CodeMissingField, "ops is required")
			return
		}
		ops = req.Ops
	}
	if code, msg := protocol.CheckBatchOps(ops, h.batchMax); code != "" {
		h.fail(w, r, http.StatusBadRequest, code, msg)
		return
	}
	results := make([]protocol.BatchResult, len(ops))
	// The ops of each transaction, in the order given (almost always one each).
	var order []string
	byTxn := make(map[string][]int, len(ops))
	for i, op := range ops {
		if code, msg := h.txnIDProblem(op.TxnID); code != "" {
			results[i].Error = &protocol.ErrorBody{Code: code, Message: msg}
			continue
		}
		if _, seen := byTxn[op.TxnID]; !seen {
			order = append(order, op.TxnID)
		}
		byTxn[op.TxnID] = append(byTxn[op.TxnID], i)
	}
	ctx := r.Context()
	var g errgroup.Group
	g.SetLimit(h.batchParallel())
	for _, id := range order {
		g.Go(func() error {
			for _, i := range byTxn[id] {
				res := h.phase2(ctx, ops[i].Op == protocol.BatchOpCommit, id)
				if res.Err != nil {
					results[i].Error = &protocol.ErrorBody{Code: participant.CodeUnavailable, Message: res.Err.Error()}
				} else {
					results[i].State, results[i].Conflict = res.State, res.Conflict
				}
			}
			return nil
		})
	}
	_ = g.Wait() // the ops return no error: each has its result
	if ctx.Err() != nil {
		return // nobody to answer
	}
	writeRaw(w, http.StatusOK, protocol.AppendBatchResponse(nil, results))
}

// batchParallel is how many transactions of one batch run at once: as many as the pool
// has connections. A commit needs one (on MariaDB/MySQL it mostly runs on the session
// that prepared it, held apart from the pool: park.go), so more would only wait for the
// pool; and a batch's commits free prepared transactions, which the prepares waiting
// for the pool beside them need more than a connection.
func (h *handler) batchParallel() int {
	return max(1, h.p.cfg.PoolConnsMax)
}
