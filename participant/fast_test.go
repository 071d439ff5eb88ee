package participant

import "github.com/dtc-project/dtc/protocol"

// The fast parsers and encoders these tests hold to the handler's strict decoder live in
// package protocol.
var (
	parseTxnRequest     = protocol.ParseTxnRequest
	parsePrepareRequest = protocol.ParsePrepareRequest
	parseBatchRequest   = protocol.ParseBatchRequest
	appendBatchResponse = protocol.AppendBatchResponse
)
