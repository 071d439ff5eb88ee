package coordinator

import (
	"encoding/json"
	"fmt"
)

// RecordType names a log record.
type RecordType string

const (
	// RecBegin opens a transaction: its id, participants and prepare timeout. Lazy (it
	// rides along with the next sync) when every participant asks about transactions in
	// doubt, because a transaction whose begin was lost was never answered and is
	// presumed aborted; otherwise synced before the first prepare leaves.
	RecBegin RecordType = "begin"
	// RecDecision is commit or abort, with the votes. Synced before anyone is told.
	RecDecision RecordType = "decision"
	// RecHazard records a participant that contradicted the decision. Lazy.
	RecHazard RecordType = "hazard"
	// RecEnd says every participant acknowledged the outcome: the transaction may be
	// forgotten once its id's reservation window has passed. Lazy.
	RecEnd RecordType = "end"
	// RecSnapshot is a transaction's whole state, written by a checkpoint so that older
	// segments can be deleted. Replaying it replaces what was known of the transaction.
	RecSnapshot RecordType = "snapshot"
	// RecCheckpoint brackets the snapshots of one checkpoint (Bracket "begin" or "end").
	RecCheckpoint RecordType = "checkpoint"
)

// Decision is the outcome of a transaction.
type Decision string

const (
	Undecided Decision = ""
	Commit    Decision = "commit"
	Abort     Decision = "abort"
)

// Record is one entry of the coordinator's log. It is stored as JSON so that
// `dtc log dump` and jq can read it; fields irrelevant to a Type are omitted. The JSON is
// written by appendRecord (record_encode.go), not by reflection: a field added here must
// be added there too, which TestEncodeRecordKnowsEveryField enforces.
type Record struct {
	Type RecordType `json:"type"`
	Txn  string     `json:"txn,omitempty"`
	// TimeUnixMs is when the record was written (the engine's clock).
	TimeUnixMs int64 `json:"ts"`

	// begin, snapshot
	Participants     []string `json:"participants,omitempty"`
	PrepareTimeoutMs int64    `json:"prepare_timeout_ms,omitempty"`
	PayloadSum       string   `json:"payload_sum,omitempty"` // fingerprint of the payloads
	// TxnID is the transaction id the participants see (begin, snapshot): the client's id
	// plus this incarnation's nonce. See ParticipantTxnID.
	TxnID       string `json:"txn_id,omitempty"`
	BeganUnixMs int64  `json:"began_ms,omitempty"` // snapshot only
	// Owner names the API client (its token's or certificate's name) that began the
	// transaction (begin, snapshot); empty when the API runs without authentication.
	// Older logs have none: their transactions belong to no client, and only a reader
	// of every transaction sees them.
	Owner string `json:"owner,omitempty"`
	// Priority orders transactions for deadlock victims and wound-wait (begin,
	// snapshot): assigned once at begin, smaller is older. Older logs have none (0): such
	// a transaction gets a priority from its begin time when replayed.
	Priority int64 `json:"priority,omitempty"`

	// decision, snapshot
	Decision Decision `json:"decision,omitempty"`
	Votes    []Vote   `json:"votes,omitempty"` // one per participant, in order
	Reason   string   `json:"reason,omitempty"`
	// Cause classifies an abort (decision, snapshot): nack, conflict, timeout, error,
	// deadlock, wound, client or recovery. Older logs have none.
	Cause AbortCause `json:"cause,omitempty"`

	// hazard (one participant), snapshot (per participant, "" for none)
	Participant *int     `json:"participant,omitempty"`
	Hazard      string   `json:"hazard,omitempty"`
	Hazards     []string `json:"hazards,omitempty"`

	// snapshot: which participants acknowledged phase 2, and whether it has ended.
	Acked         []bool `json:"acked,omitempty"`
	EndedUnixMs   int64  `json:"ended_ms,omitempty"`
	DecidedUnixMs int64  `json:"decided_ms,omitempty"`

	// checkpoint
	Bracket string `json:"phase,omitempty"` // "begin" or "end"
}

// EncodeRecord returns the record's JSON form, as stored in the log: byte for byte what
// json.Marshal(rec) returns, written without reflection (see appendRecord). It cannot
// fail; the error is kept for callers and for a future field that might.
func EncodeRecord(rec *Record) ([]byte, error) {
	return appendRecord(make([]byte, 0, encodedLen(rec)), rec), nil
}

// DecodeRecord parses a record read from the log and checks that it is one this version
// knows and that its fields are consistent.
func DecodeRecord(b []byte) (*Record, error) {
	var rec Record
	if err := json.Unmarshal(b, &rec); err != nil {
		return nil, fmt.Errorf("coordinator: decode record: %w", err)
	}
	if err := rec.check(); err != nil {
		return nil, err
	}
	return &rec, nil
}

func (r *Record) check() error {
	bad := func(why string) error {
		return fmt.Errorf("coordinator: invalid %q record for txn %q: %s", r.Type, r.Txn, why)
	}
	switch r.Type {
	case RecCheckpoint:
		if r.Bracket != "begin" && r.Bracket != "end" {
			return bad("phase must be begin or end")
		}
		return nil
	case RecBegin, RecDecision, RecHazard, RecEnd, RecSnapshot:
	default:
		return bad("unknown record type")
	}
	if r.Txn == "" {
		return bad("no transaction id")
	}
	switch r.Type {
	case RecBegin, RecSnapshot:
		if len(r.Participants) == 0 {
			return bad("no participants")
		}
	}
	switch r.Type {
	case RecDecision:
		if r.Decision != Commit && r.Decision != Abort {
			return bad("decision must be commit or abort")
		}
	case RecSnapshot:
		n := len(r.Participants)
		if r.Decision != Undecided && r.Decision != Commit && r.Decision != Abort {
			return bad("unknown decision")
		}
		if (r.Votes != nil && len(r.Votes) != n) || (r.Acked != nil && len(r.Acked) != n) ||
			(r.Hazards != nil && len(r.Hazards) != n) {
			return bad("per-participant lists do not match the participants")
		}
	case RecHazard:
		if r.Participant == nil || *r.Participant < 0 {
			return bad("no participant index")
		}
	}
	return nil
}
