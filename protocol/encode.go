package protocol

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"

	"github.com/dtc-project/dtc/internal/jsonstr"
)

// The encoders append a message's JSON to b exactly as json.Marshal writes it (the
// answers with json.Marshal's text and a newline, as a handler writes them), without
// reflection: they are on every transaction's path.

// AppendPrepareRequest appends the JSON of req: the payload compacted and HTML-escaped,
// empty fields left out. A payload that is not valid JSON is json.Marshal's to refuse,
// with its error.
func AppendPrepareRequest(b []byte, req *PrepareRequest) ([]byte, error) {
	if b == nil {
		b = make([]byte, 0, 64+len(req.TxnID)+len(req.Payload)+len(req.Coordinator))
	}
	buf := bytes.NewBuffer(b)
	buf.WriteString(`{"txn_id":`)
	buf.Write(jsonstr.Append(buf.AvailableBuffer(), req.TxnID))
	if len(req.Payload) > 0 {
		buf.WriteString(`,"payload":`)
		var compact bytes.Buffer
		if err := json.Compact(&compact, req.Payload); err != nil {
			v := *req // req itself does not escape: a copy does, on this path only
			data, err := json.Marshal(v)
			if err != nil {
				return b, err
			}
			return append(b, data...), nil
		}
		json.HTMLEscape(buf, compact.Bytes())
	}
	if req.Coordinator != "" {
		buf.WriteString(`,"coordinator":`)
		buf.Write(jsonstr.Append(buf.AvailableBuffer(), req.Coordinator))
	}
	if req.Priority != 0 {
		buf.WriteString(`,"priority":`)
		buf.Write(strconv.AppendInt(buf.AvailableBuffer(), req.Priority, 10))
	}
	buf.WriteByte('}')
	return buf.Bytes(), nil
}

// AppendTxnRequest appends the JSON of TxnRequest{TxnID: id}.
func AppendTxnRequest(b []byte, id string) []byte {
	if b == nil {
		b = make([]byte, 0, len(`{"txn_id":""}`)+len(id)+8)
	}
	b = append(b, `{"txn_id":`...)
	b = jsonstr.Append(b, id)
	return append(b, '}')
}

// AppendBatchRequest appends the JSON of BatchRequest{Ops: ops}.
func AppendBatchRequest(b []byte, ops []BatchOp) []byte {
	n := len(`{"ops":[]}`)
	for _, op := range ops {
		n += len(`{"op":"rollback","txn_id":""},`) + len(op.TxnID) + 8
	}
	b = append(make([]byte, 0, len(b)+n), b...)
	b = append(b, `{"ops":[`...)
	for i, op := range ops {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"op":`...)
		b = jsonstr.Append(b, op.Op)
		b = append(b, `,"txn_id":`...)
		b = jsonstr.Append(b, op.TxnID)
		b = append(b, '}')
	}
	return append(b, "]}"...)
}

// The most frequent answers, as AppendJSON writes them.
var (
	voteACKJSON        = MarshalAnswer(VoteResponse{Vote: VoteACK})
	stateCommittedJSON = MarshalAnswer(StateResponse{State: StateCommitted})
	stateAbortedJSON   = MarshalAnswer(StateResponse{State: StateAborted})
)

// AppendVoteResponse appends the answer to a prepare, and a newline.
func AppendVoteResponse(b []byte, v VoteResponse) []byte {
	if v == (VoteResponse{Vote: VoteACK}) {
		return append(b, voteACKJSON...)
	}
	return AppendJSON(b, v)
}

// AppendStateResponse appends StateResponse{State: s}, and a newline.
func AppendStateResponse(b []byte, s State) []byte {
	switch s {
	case StateCommitted:
		return append(b, stateCommittedJSON...)
	case StateAborted:
		return append(b, stateAbortedJSON...)
	}
	return AppendJSON(b, StateResponse{State: s})
}

// StateAnswer is AppendStateResponse(nil, s), shared for the outcomes: it must not be
// modified.
func StateAnswer(s State) []byte {
	switch s {
	case StateCommitted:
		return stateCommittedJSON
	case StateAborted:
		return stateAbortedJSON
	}
	return AppendStateResponse(nil, s)
}

// VoteACKAnswer is AppendVoteResponse(nil, ACK), shared: it must not be modified.
func VoteACKAnswer() []byte { return voteACKJSON }

// AppendErrorResponse appends ErrorResponse{Error: ErrorBody{code, message}}, and a
// newline.
func AppendErrorResponse(b []byte, code, message string) []byte {
	b = append(b, `{"error":{"code":`...)
	b = jsonstr.Append(b, code)
	b = append(b, `,"message":`...)
	b = jsonstr.Append(b, message)
	return append(b, "}}\n"...)
}

// AppendBatchResponse appends BatchResponse{Results: results}, and a newline.
func AppendBatchResponse(b []byte, results []BatchResult) []byte {
	b = append(b, `{"results":[`...)
	for i := range results {
		res := &results[i]
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, '{')
		comma := false
		if res.State != "" {
			b = append(b, `"state":`...)
			b = jsonstr.Append(b, string(res.State))
			comma = true
		}
		if res.Conflict {
			if comma {
				b = append(b, ',')
			}
			b = append(b, `"conflict":true`...)
			comma = true
		}
		if res.Error != nil {
			if comma {
				b = append(b, ',')
			}
			b = append(b, `"error":{"code":`...)
			b = jsonstr.Append(b, res.Error.Code)
			b = append(b, `,"message":`...)
			b = jsonstr.Append(b, res.Error.Message)
			b = append(b, '}')
		}
		b = append(b, '}')
	}
	return append(b, "]}\n"...)
}

// AppendJSON appends v as json.Marshal writes it, and a newline: the answers without a
// hand-written encoder (a NACK, a status with in-doubt details, the coordinator's
// transaction). A message that cannot be encoded is a programmer error.
func AppendJSON(b []byte, v any) []byte {
	data, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("protocol: encoding %T: %v", v, err))
	}
	b = append(b, data...)
	return append(b, '\n')
}

// MarshalAnswer is AppendJSON(nil, v).
func MarshalAnswer(v any) []byte { return AppendJSON(nil, v) }
