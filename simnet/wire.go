package simnet

import (
	"bytes"
	"fmt"

	"github.com/dtc-project/dtc/coordinator"
	"github.com/dtc-project/dtc/protocol"
)

// What crosses the simulated network between the coordinator and a participant is what
// crosses a real one: the bytes package protocol writes and reads, with the few headers
// the two sides act on. Nothing else is shared; the simulator encodes and decodes every
// message as httpnet and participant's handler do.

// wireRequest is one request to a participant: its endpoint, its body (a POST) or its
// query (GET …/status).
type wireRequest struct {
	endpoint string // protocol.Endpoint*
	body     []byte
	query    string
	what     string // for the trace only (as a traceparent header would be)
}

// wireAnswer is a participant's (or, for a query in doubt, the coordinator's) answer:
// its HTTP status, its body, and the headers the other side reads.
type wireAnswer struct {
	status   int
	body     []byte
	asks     bool // protocol.HeaderInDoubt: InDoubtAsk
	batchMax int  // protocol.HeaderBatchMax; 0: not offered
}

// encodeRequest is the request of m as httpnet/transport writes it; coordinator is
// the coordinator's base URL, sent with every prepare.
func encodeRequest(m coordinator.Message, coordinatorURL string) wireRequest {
	r := wireRequest{what: fmt.Sprintf("%s %s #%d", m.Kind, m.Txn, m.Seq)}
	switch m.Kind {
	case coordinator.MsgPrepare:
		body, err := protocol.AppendPrepareRequest(nil, &protocol.PrepareRequest{TxnID: m.Txn, Payload: m.Payload, Coordinator: coordinatorURL, Priority: m.Priority})
		if err != nil {
			panic(fmt.Sprintf("simnet: encoding a prepare of %s: %v", m.Txn, err)) // the workload's payloads are valid JSON
		}
		r.endpoint, r.body = protocol.EndpointPrepare, body
	case coordinator.MsgCommit:
		r.endpoint, r.body = protocol.EndpointCommit, protocol.AppendTxnRequest(nil, m.Txn)
	case coordinator.MsgRollback:
		r.endpoint, r.body = protocol.EndpointRollback, protocol.AppendTxnRequest(nil, m.Txn)
	case coordinator.MsgStatus:
		r.endpoint, r.query = protocol.EndpointStatus, protocol.StatusQuery(m.Txn)
	default:
		panic(fmt.Sprintf("simnet: message of unknown kind %d", m.Kind))
	}
	return r
}

// decodePrepare reads a prepare body as participant's handler does: the fast parser,
// else the strict decoder.
func decodePrepare(body []byte) (protocol.PrepareRequest, error) {
	if id, payload, coord, prio, ok := protocol.ParsePrepareRequest(body); ok {
		return protocol.PrepareRequest{TxnID: string(id), Payload: bytes.Clone(payload), Coordinator: string(coord), Priority: prio}, nil
	}
	var req protocol.PrepareRequest
	err := protocol.DecodeStrict(bytes.NewReader(body), &req)
	return req, err
}

// decodeTxn reads a commit or rollback body as participant's handler does.
func decodeTxn(body []byte) (string, error) {
	if id, ok := protocol.ParseTxnRequest(body); ok {
		return id, nil
	}
	var req protocol.TxnRequest
	err := protocol.DecodeStrict(bytes.NewReader(body), &req)
	return req.TxnID, err
}

// decodeBatch reads a batch body as participant's handler does (at most maxOps ops).
func decodeBatch(body []byte, maxOps int) ([]protocol.BatchOp, error) {
	if ops, ok := protocol.ParseBatchRequest(body, nil, maxOps); ok {
		return ops, nil
	}
	var req protocol.BatchRequest
	err := protocol.DecodeStrict(bytes.NewReader(body), &req)
	return req.Ops, err
}

// errorAnswer is an answer with the protocol's JSON error.
func errorAnswer(status int, code, msg string) wireAnswer {
	return wireAnswer{status: status, body: protocol.AppendErrorResponse(nil, code, msg)}
}
