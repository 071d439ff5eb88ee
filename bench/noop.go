package bench

import (
	"bytes"
	"fmt"
	"net/http"
	"strconv"
	"sync"

	"github.com/dtc-project/dtc/participant"
	"github.com/dtc-project/dtc/protocol"
)

// noopParticipant is ModeNoop's participant: protocolNoop, plus the batch endpoint and
// its header, so that dtc talks to it as it talks to participants built on the
// participant package (which offer batches), with no log and no state behind it. Unless
// Options.Passive, it also says that it asks about transactions in doubt
// (participant.HeaderInDoubt), as a participant running a Resolver does: true of it,
// since it holds nothing that could be in doubt.
func noopParticipant(o Options) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !o.Passive {
			w.Header()[participant.HeaderInDoubt] = noopInDoubtHeader
		}
		noopAnswer(w, r)
	}
}

var noopInDoubtHeader = []string{participant.InDoubtAsk}

// noopBatchBodyMaxBytes bounds a batch body the no-op participant reads.
const noopBatchBodyMaxBytes = 4 << 20

// noopBatch is the memory of one batch call, reused (noopBatchPool) by later ones.
type noopBatch struct {
	body    bytes.Buffer
	ops     []protocol.BatchOp
	results []protocol.BatchResult
	out     []byte
}

// noopBatchKeepOps bounds the ops of a noopBatch that goes back to the pool, so that
// one large batch does not pin its memory.
const noopBatchKeepOps = 256

var noopBatchPool = sync.Pool{New: func() any { return new(noopBatch) }}

func (c *noopBatch) release() {
	if len(c.ops) > noopBatchKeepOps || c.body.Cap() > noopBatchKeepOps*128 {
		return
	}
	c.body.Reset()
	clear(c.ops)
	c.ops, c.results, c.out = c.ops[:0], c.results[:0], c.out[:0]
	noopBatchPool.Put(c)
}

func noopAnswer(w http.ResponseWriter, r *http.Request) {
	w.Header()[participant.HeaderBatchMax] = noopBatchHeader
	if endpointOf(r) != participant.EndpointBatch {
		protocolNoop(w, r)
		return
	}
	c := noopBatchPool.Get().(*noopBatch)
	defer c.release()
	if _, err := c.body.ReadFrom(http.MaxBytesReader(w, r.Body, noopBatchBodyMaxBytes)); err != nil {
		writeProtocolError(w, http.StatusBadRequest, protocol.CodeMalformedJSON, fmt.Sprintf("reading the body: %v", err))
		return
	}
	// The bodies the coordinator writes by the fast parser, any other by the strict
	// decoder, as the participant package reads them.
	ops, ok := protocol.ParseBatchRequest(c.body.Bytes(), c.ops[:0], participant.DefaultBatchMaxOps)
	if !ok {
		var req protocol.BatchRequest
		if err := protocol.DecodeStrict(bytes.NewReader(c.body.Bytes()), &req); err != nil {
			writeProtocolError(w, http.StatusBadRequest, protocol.CodeMalformedJSON, err.Error())
			return
		}
		ops = req.Ops
	}
	c.ops = ops
	if len(ops) == 0 || len(ops) > participant.DefaultBatchMaxOps {
		writeProtocolError(w, http.StatusBadRequest, protocol.CodeInvalidField,
			fmt.Sprintf("ops: %d, want 1 to %d", len(ops), participant.DefaultBatchMaxOps))
		return
	}
	c.results = append(c.results[:0], make([]protocol.BatchResult, len(ops))...)
	for i, op := range ops {
		c.results[i].State = participant.StateAborted
		if op.Op == participant.BatchOpCommit {
			c.results[i].State = participant.StateCommitted
		}
	}
	c.out = protocol.AppendBatchResponse(c.out[:0], c.results)
	writeCanned(w, c.out)
}

// writeProtocolError answers the protocol's JSON error.
func writeProtocolError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(protocol.AppendErrorResponse(nil, code, msg))
}

// noopBatchHeader offers the batch size of participant.NewHandler's default.
var noopBatchHeader = []string{strconv.Itoa(participant.DefaultBatchMaxOps)}
