package participant

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"unicode"
	"unicode/utf8"
)

// State is what a participant knows about one transaction, as the status endpoint and
// the phase-2 answers report it.
type State string

// The states of a transaction at a participant.
const (
	// StateUnknown: never prepared here, or forgotten (see Config.DecidedMax), or its
	// prepare record is not durable yet.
	StateUnknown State = "unknown"
	// StatePrepared: the prepare record is durable; the participant can still commit or
	// roll back.
	StatePrepared State = "prepared"
	// StateCommitted: the commit record is durable.
	StateCommitted State = "committed"
	// StateAborted: the rollback (or fence) record is durable.
	StateAborted State = "aborted"
)

// decided reports whether s is an outcome.
func (s State) decided() bool { return s == StateCommitted || s == StateAborted }

// Wire values of VoteResponse.Vote.
const (
	VoteACK  = "ACK"
	VoteNACK = "NACK"
)

// Vote is the core's answer to a prepare.
type Vote struct {
	ACK    bool
	Reason string // why the vote is NACK; empty for ACK
}

// Response is the vote as it goes on the wire.
func (v Vote) Response() VoteResponse {
	if v.ACK {
		return VoteResponse{Vote: VoteACK}
	}
	return VoteResponse{Vote: VoteNACK, Reason: v.Reason}
}

func ack() Vote                     { return Vote{ACK: true} }
func nack(reason string) Vote       { return Vote{Reason: reason} }
func nackf(f string, a ...any) Vote { return nack(fmt.Sprintf(f, a...)) }

// Result is the core's answer to a commit or a rollback.
type Result struct {
	// State is the transaction's durable state after the call.
	State State
	// Conflict is set when the call contradicts that state: commit of an aborted or
	// unknown transaction, rollback of a committed one (a heuristic hazard; HTTP 409).
	Conflict bool
	// Err is set when no answer can be given now (the log failed, too many records in
	// flight); the caller may retry later. State and Conflict are then meaningless.
	Err error
}

// Sentinel errors carried by Result.Err and returned by the core.
var (
	// ErrBusy: Config.InflightMax records are already waiting to become durable.
	ErrBusy = errors.New("participant: too many records waiting to be persisted")
	// ErrClosed: the participant was closed.
	ErrClosed = errors.New("participant: closed")
	// ErrInvalidTxnID: the transaction id is empty, too long or not printable.
	ErrInvalidTxnID = errors.New("participant: invalid transaction id")
	// ErrNoUpdater: Update was called but the Service does not implement Updater.
	ErrNoUpdater = errors.New("participant: service does not implement Updater")
)

// PrepareRequest is the body of POST …/prepare.
type PrepareRequest struct {
	TxnID   string          `json:"txn_id"`
	Payload json.RawMessage `json:"payload,omitempty"`
	// Coordinator is the base URL of the coordinator that runs the transaction, asked
	// about it if the participant is left in doubt. Optional.
	Coordinator string `json:"coordinator,omitempty"`
	// Priority is the transaction's priority (issue 16): assigned once by the
	// coordinator at begin, smaller is older; 0 when none was given.
	Priority int64 `json:"priority,omitempty"`
}

// TxnRequest is the body of POST …/commit and POST …/rollback.
type TxnRequest struct {
	TxnID string `json:"txn_id"`
}

// VoteResponse is the answer to a prepare: Vote is VoteACK or VoteNACK.
type VoteResponse struct {
	Vote   string `json:"vote"`
	Reason string `json:"reason,omitempty"`
}

// StateResponse is the answer to commit, rollback and status.
type StateResponse struct {
	State State `json:"state"`

	// Only in the status answer of a transaction in doubt (prepared for longer than
	// Config.InDoubtAfter), the rest only if the handler has a Resolver
	// (HandlerOptions.Resolver) that has asked about it:

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
// endpoint: every answer of NewHandler's handler carries it, with the most ops one
// BatchRequest may hold (HandlerOptions.BatchMaxOps) in decimal. A coordinator that has
// seen it may send that participant's commits and rollbacks as POST …/batch; one that
// has not must use …/commit and …/rollback.
const HeaderBatchMax = "Dtc-Batch-Max"

// HeaderInDoubt is the response header by which a participant tells the coordinator how
// it deals with the transactions it holds in doubt (prepared, and no phase 2 has come).
// The one value defined, InDoubtAsk, says that it asks the coordinator
// (GET {coordinator}/v1/transactions/{id}, presumed abort on not_found). A coordinator
// may keep the begin record of a transaction lazy only if every participant of it said
// so on its last answer; for any other, the begin is durable before the prepare is sent,
// so that a restarted coordinator can find the transaction and resolve it by itself.
// NewHandler's handler sends it on every answer while a Resolver runs
// (Participant.Asks).
const HeaderInDoubt = "Dtc-In-Doubt"

// InDoubtAsk is HeaderInDoubt's value for a participant that asks.
const InDoubtAsk = "ask"

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

// Endpoint derives one of a participant's endpoints from its prepare URL by replacing
// the last path element (query and fragment are dropped):
// Endpoint("http://h:9001/bank/prepare", EndpointCommit) is "http://h:9001/bank/commit".
func Endpoint(prepareURL, name string) (string, error) {
	u, err := url.Parse(prepareURL)
	if err != nil {
		return "", fmt.Errorf("participant: bad participant URL %q: %w", prepareURL, err)
	}
	if u.Scheme == "" || u.Host == "" {
		return "", fmt.Errorf("participant: participant URL %q is not absolute", prepareURL)
	}
	p := u.Path
	i := strings.LastIndexByte(p, '/')
	u.Path = p[:i+1] + name
	if i < 0 {
		u.Path = "/" + name
	}
	u.RawPath = ""
	u.RawQuery = ""
	u.Fragment = ""
	return u.String(), nil
}

// ValidateTxnID checks a transaction id as the participant accepts it: non-empty, at
// most maxBytes bytes, valid UTF-8 without control characters.
func ValidateTxnID(id string, maxBytes int) error {
	switch {
	case id == "":
		return fmt.Errorf("%w: empty", ErrInvalidTxnID)
	case len(id) > maxBytes:
		return fmt.Errorf("%w: %d bytes, at most %d", ErrInvalidTxnID, len(id), maxBytes)
	case !utf8.ValidString(id):
		return fmt.Errorf("%w: not valid UTF-8", ErrInvalidTxnID)
	}
	for _, r := range id {
		if unicode.IsControl(r) {
			return fmt.Errorf("%w: contains control character %U", ErrInvalidTxnID, r)
		}
	}
	return nil
}
