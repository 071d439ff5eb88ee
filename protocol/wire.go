package protocol

import (
	"encoding/json"
	"fmt"
)

// PrepareRequest is the body of POST …/prepare.
type PrepareRequest struct {
	TxnID   string          `json:"txn_id"`
	Payload json.RawMessage `json:"payload,omitempty"`
	// Coordinator is the base URL of the coordinator that runs the transaction, asked
	// about it if the participant is left in doubt. Optional.
	Coordinator string `json:"coordinator,omitempty"`
	// Priority orders transactions for a participant's lock table (issue 16): assigned
	// once by the coordinator, the same at every participant and across retries;
	// smaller is older is stronger. 0: none given.
	Priority int64 `json:"priority,omitempty"`
}

// TxnRequest is the body of POST …/commit and POST …/rollback.
type TxnRequest struct {
	TxnID string `json:"txn_id"`
}

// VoteResponse is the answer to a prepare: Vote is VoteACK or VoteNACK.
type VoteResponse struct {
	Vote   Vote   `json:"vote"`
	Reason string `json:"reason,omitempty"`
	// Cause classifies a NACK for the coordinator's abort cause (issue 16: "conflict"),
	// Key the key it is about. Optional.
	Cause string `json:"cause,omitempty"`
	Key   string `json:"key,omitempty"`
}

// StateResponse is the answer to commit, rollback and status.
type StateResponse struct {
	State State `json:"state"`

	// Only in the status answer of a transaction in doubt (prepared for longer than
	// the participant's in-doubt delay), the rest only if the participant has a
	// resolver that has asked about it:

	// InDoubtSince is when it became in doubt (RFC 3339).
	InDoubtSince string `json:"in_doubt_since,omitempty"`
	// ResolveAttempts is how many times its coordinator was asked.
	ResolveAttempts int `json:"resolve_attempts,omitempty"`
	// CoordinatorUnreachable: the last query got no usable answer, since
	// UnreachableSince (RFC 3339), for the reason LastResolveError.
	CoordinatorUnreachable bool   `json:"coordinator_unreachable,omitempty"`
	UnreachableSince       string `json:"unreachable_since,omitempty"`
	LastResolveError       string `json:"last_resolve_error,omitempty"`
}

// ErrorResponse is the body of every 4xx and 5xx answer.
type ErrorResponse struct {
	Error ErrorBody `json:"error"`
}

// ErrorBody says what was wrong: Code is stable and machine-readable, Message is for
// people.
type ErrorBody struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// Error codes in ErrorBody.Code.
const (
	CodeMalformedJSON    = "malformed_json"
	CodeUnknownField     = "unknown_field"
	CodeMissingField     = "missing_field"
	CodeInvalidField     = "invalid_field"
	CodeBodyTooLarge     = "body_too_large"
	CodeMethodNotAllowed = "method_not_allowed"
	CodeNotFound         = "not_found"
	CodeUnavailable      = "unavailable"
	CodeUnauthorized     = "unauthorized"
)

// CodeTxnNotFound is the error code of the coordinator's 404 for a transaction it has no
// record of: the only 404 that means "presumed aborted" to a participant in doubt.
const CodeTxnNotFound = "not_found"

// Names of a participant's endpoints, the last path element of their URLs.
const (
	EndpointPrepare  = "prepare"
	EndpointCommit   = "commit"
	EndpointRollback = "rollback"
	EndpointStatus   = "status"
	// EndpointBatch takes many transactions' commits and rollbacks in one request
	// (BatchRequest); see HeaderBatchMax.
	EndpointBatch = "batch"
)

// HeaderBatchMax is the response header by which a participant offers the batch
// endpoint: every answer carries it, with the most ops one BatchRequest may hold, in
// decimal (ParseBatchMax). A coordinator that has seen it may send that participant's
// commits and rollbacks as POST …/batch; one that has not must use …/commit and
// …/rollback.
const HeaderBatchMax = "Dtc-Batch-Max"

// HeaderInDoubt is the response header by which a participant tells the coordinator how
// it deals with the transactions it holds in doubt (prepared, and no phase 2 has come).
// The one value defined, InDoubtAsk, says that it asks the coordinator
// (GET {coordinator}/v1/transactions/{id}, presumed abort on not_found: InDoubtVerdict).
// A coordinator may keep the begin record of a transaction lazy only if every
// participant of it said so on its last answer.
const HeaderInDoubt = "Dtc-In-Doubt"

// InDoubtAsk is HeaderInDoubt's value for a participant that asks.
const InDoubtAsk = "ask"

// AsksInDoubt reports whether the values of an answer's HeaderInDoubt say that its
// participant asks the coordinator about the transactions it holds in doubt.
func AsksInDoubt(values []string) bool { return len(values) == 1 && values[0] == InDoubtAsk }

// Values of BatchOp.Op.
const (
	BatchOpCommit   = "commit"
	BatchOpRollback = "rollback"
)

// BatchRequest is the body of POST …/batch: phase-2 calls for many transactions. Each
// op does what POST …/commit or …/rollback with its txn_id does, in the order given.
type BatchRequest struct {
	Ops []BatchOp `json:"ops"`
}

// BatchOp is one call of a BatchRequest: Op is BatchOpCommit or BatchOpRollback.
type BatchOp struct {
	Op    string `json:"op"`
	TxnID string `json:"txn_id"`
}

// BatchResponse is the 200 answer to POST …/batch: Results[i] answers Ops[i].
type BatchResponse struct {
	Results []BatchResult `json:"results"`
}

// BatchResult is the answer to one op, in one of three forms: {"state":S} what a 200 of
// the single endpoint would carry, {"state":S,"conflict":true} what its 409 would
// carry, {"error":{…}} what its 4xx or 5xx would carry (same codes).
type BatchResult struct {
	State    State      `json:"state,omitempty"`
	Conflict bool       `json:"conflict,omitempty"`
	Error    *ErrorBody `json:"error,omitempty"`
}

// BatchOpsMax bounds the ops of one batch request, whatever a participant offers.
const BatchOpsMax = 1024

// ParseBatchMax reads a HeaderBatchMax value: decimal digits only (no sign, no space),
// at least 1; values above BatchOpsMax are BatchOpsMax.
func ParseBatchMax(s string) (int, bool) {
	if s == "" {
		return 0, false
	}
	n := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		n = min(n*10+int(c-'0'), BatchOpsMax+1) // saturates: no overflow
	}
	if n < 1 {
		return 0, false
	}
	return min(n, BatchOpsMax), true
}

// RefusesBatches reports whether a batch answered status shows that the participant
// does not take batches, whatever its header said: a 4xx other than 408 (timeout) and
// 429 (busy) is the same answer every time (no such endpoint, a body it cannot read,
// one larger than it takes), so every retry of the same ops in a batch would get it
// again, and with them every transaction they travel with.
func RefusesBatches(status int) bool {
	return status >= 400 && status < 500 && status != 408 && status != 429
}

// CoordinatorTxn is the part of the coordinator's transaction resource
// (GET /v1/transactions/{id}) a participant in doubt reads.
type CoordinatorTxn struct {
	ID    string `json:"id"`     // the client's id
	TxnID string `json:"txn_id"` // the id participants see (the client's id and an incarnation nonce)
	State string `json:"state"`
	// Priority orders transactions for deadlock victims (smaller is older); the
	// participants were told it with the prepare. The cluster's deadlock detector reads
	// it; a participant in doubt does not.
	Priority int64 `json:"priority,omitempty"`
}

// BatchBodyMaxBytes bounds the body of a POST …/batch to a participant that takes at
// most maxOps ops with txn ids of at most txnIDMaxBytes: 64 bytes for {"ops":[ ]}, and
// per op 48 for {"op":"rollback","txn_id":""}, (31 bytes) with some white space, and 6
// per byte of the id, which the longest escapes (\u00XX for one byte) need.
func BatchBodyMaxBytes(maxOps, txnIDMaxBytes int) int64 {
	return 64 + int64(maxOps)*(48+6*int64(txnIDMaxBytes))
}

// CheckBatchOps says what is wrong, if anything, with the ops of a batch request to a
// participant that takes at most maxOps: empty, too long, or an op that is neither
// commit nor rollback. code is "" when nothing is; otherwise code and msg are the
// error of the 400 that answers the request, which then changes nothing.
func CheckBatchOps(ops []BatchOp, maxOps int) (code, msg string) {
	if len(ops) == 0 {
		return CodeInvalidField, "ops is empty: a batch needs at least one op"
	}
	if len(ops) > maxOps {
		return CodeInvalidField, fmt.Sprintf("ops: %d ops, at most %d (%s)", len(ops), maxOps, HeaderBatchMax)
	}
	for i, op := range ops {
		switch op.Op {
		case BatchOpCommit, BatchOpRollback:
		case "":
			return CodeMissingField, fmt.Sprintf("ops[%d].op is required", i)
		default:
			return CodeInvalidField, fmt.Sprintf("ops[%d].op: unknown op %q, want %q or %q", i, op.Op, BatchOpCommit, BatchOpRollback)
		}
	}
	return "", ""
}
