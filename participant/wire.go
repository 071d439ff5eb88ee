package participant

import (
	"errors"
	"fmt"
	"unicode"
	"unicode/utf8"

	"github.com/dtc-project/dtc/protocol"
)

// State is what a participant knows about one transaction, as the status endpoint and
// the phase-2 answers report it: the protocol's (and the engine's) one state type.
type State = protocol.State

// The states of a transaction at a participant.
const (
	// StateUnknown: never prepared here, or forgotten (see Config.DecidedMax), or its
	// prepare record is not durable yet.
	StateUnknown = protocol.StateUnknown
	// StatePrepared: the prepare record is durable; the participant can still commit or
	// roll back.
	StatePrepared = protocol.StatePrepared
	// StateCommitted: the commit record is durable.
	StateCommitted = protocol.StateCommitted
	// StateAborted: the rollback (or fence) record is durable.
	StateAborted = protocol.StateAborted
)

// Wire values of VoteResponse.Vote.
const (
	VoteACK  = protocol.VoteACK
	VoteNACK = protocol.VoteNACK
)

// Vote is the core's answer to a prepare.
type Vote struct {
	ACK    bool
	Reason string // why the vote is NACK; empty for ACK
	// Cause classifies a NACK for the coordinator: CauseConflict, or "" for any other
	// refusal. Key is the key in conflict.
	Cause string
	Key   string
}

// CauseConflict is Vote.Cause of a NACK refused for a conflict with another
// transaction (a lock held under no-wait or occ, a version read that changed, a lock
// wait that ended), so that the coordinator records abort cause "conflict".
const CauseConflict = "conflict"

// Response is the vote as it goes on the wire.
func (v Vote) Response() VoteResponse {
	if v.ACK {
		return VoteResponse{Vote: VoteACK}
	}
	return VoteResponse{Vote: VoteNACK, Reason: v.Reason, Cause: v.Cause, Key: v.Key}
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

// The messages of the participant protocol, defined in package protocol.
type (
	PrepareRequest = protocol.PrepareRequest
	TxnRequest     = protocol.TxnRequest
	VoteResponse   = protocol.VoteResponse
	StateResponse  = protocol.StateResponse
	ErrorResponse  = protocol.ErrorResponse
	ErrorBody      = protocol.ErrorBody
	BatchRequest   = protocol.BatchRequest
	BatchOp        = protocol.BatchOp
	BatchResponse  = protocol.BatchResponse
	BatchResult    = protocol.BatchResult
)

// CodeTxnNotFound is the error code of the coordinator's 404 for a transaction it has no
// record of: the only 404 that means "presumed aborted" to a participant in doubt.
const CodeTxnNotFound = protocol.CodeTxnNotFound

// Names of a participant's endpoints, the last path element of their URLs.
const (
	EndpointPrepare  = protocol.EndpointPrepare
	EndpointCommit   = protocol.EndpointCommit
	EndpointRollback = protocol.EndpointRollback
	EndpointStatus   = protocol.EndpointStatus
	EndpointBatch    = protocol.EndpointBatch
)

// HeaderBatchMax (protocol.HeaderBatchMax): every answer of NewHandler's handler
// carries it, with HandlerOptions.BatchMaxOps.
const HeaderBatchMax = protocol.HeaderBatchMax

// HeaderInDoubt (protocol.HeaderInDoubt): NewHandler's handler sends it on every answer
// while a Resolver runs (Participant.Asks).
const HeaderInDoubt = protocol.HeaderInDoubt

// InDoubtAsk is HeaderInDoubt's value for a participant that asks.
const InDoubtAsk = protocol.InDoubtAsk

// Values of BatchOp.Op.
const (
	BatchOpCommit   = protocol.BatchOpCommit
	BatchOpRollback = protocol.BatchOpRollback
)

// Endpoint derives one of a participant's endpoints from its prepare URL
// (protocol.Endpoint).
func Endpoint(prepareURL, name string) (string, error) { return protocol.Endpoint(prepareURL, name) }

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
