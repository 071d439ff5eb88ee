package participant

import "github.com/dtc-project/dtc/protocol"

// The fast parsers and encoders these tests hold to the handler's strict decoder live in
// package protocol.
var (
	parseTxnRequest     = protocol.ParseTxnRequest
	parseBatchRequest   = protocol.ParseBatchRequest
	appendBatchResponse = protocol.AppendBatchResponse
)

func parsePrepareRequest(b []byte) (id, payload, coordinator []byte, ok bool) {
	id, payload, coordinator, _, ok = protocol.ParsePrepareRequest(b)
	return id, payload, coordinator, ok
}
