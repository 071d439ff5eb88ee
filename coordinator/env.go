package coordinator

import (
	"encoding/json"
	"time"
)

// The engine's view of the world is three small interfaces (plus a random source and an
// optional observer). Each is implemented twice: by httpnet for the real world and by
// simnet for the simulated one. Every method must return at once; whatever takes time
// comes back later as an Event passed to Engine.Step.

// Clock tells the time and arms timers. The engine never reads the wall clock itself.
type Clock interface {
	// Now is the current time (virtual in the simulator).
	Now() time.Time
	// SetTimer arranges for Step(TimerFired{Timer: t}) to be called once, after d.
	// Timers are never cancelled: the engine ignores one that fires when it no longer
	// matters, so an implementation needs no cancellation either.
	SetTimer(d time.Duration, t Timer)
}

// Transport sends one request to a participant.
type Transport interface {
	// Send starts delivering m. Exactly one Step(Reply{...}) with m's Txn, Participant and
	// Seq must follow, carrying the answer or the reason there was none (Err). The
	// transport bounds how long it waits (m.Timeout, or its own per-request limit): a
	// request is never left without a reply, except when the coordinator itself crashes.
	Send(m Message)
}

// Log persists records, in the order they are appended.
type Log interface {
	// Append queues rec for the log. A nil error means the record was accepted and will
	// be durable after the next sync; its log sequence number (LSN) is one more than the
	// previous accepted record's, starting at 1 for a new Engine. If sync is true, a sync
	// must follow soon; otherwise the record is lazy and rides along with the next sync.
	// Durability is reported by Step(LogSynced{Through: lsn}) covering every accepted
	// record up to lsn. A non-nil error (disk full, record too large) means nothing was
	// written. A failed sync is not reported: it is fatal to the process.
	Append(rec *Record, sync bool) error
}

// Rand is the engine's only source of randomness (ids and backoff jitter). Production
// seeds it from the operating system; the simulator from the run's seed.
type Rand interface {
	Uint64() uint64
}

// Observer is told what happens, for metrics, logs and the simulator's checker. It must
// not call back into the engine.
type Observer interface {
	Observe(n Note)
}

// MsgKind is the kind of request sent to a participant.
type MsgKind uint8

const (
	MsgPrepare MsgKind = iota + 1
	MsgCommit
	MsgRollback
	MsgStatus
)

func (k MsgKind) String() string {
	switch k {
	case MsgPrepare:
		return "prepare"
	case MsgCommit:
		return "commit"
	case MsgRollback:
		return "rollback"
	case MsgStatus:
		return "status"
	}
	return "invalid"
}

// Message is one request to one participant.
type Message struct {
	Kind        MsgKind
	Txn         string
	Participant int    // index in the transaction's participant list
	URL         string // the participant's prepare URL, as the client gave it
	Payload     json.RawMessage
	// Priority (prepare only) is the transaction's priority, the same in every prepare
	// and after a restart: smaller is older. Participants that take locks use it for
	// wound-wait; 0 means none is known.
	Priority int64
	Seq      uint64 // unique per engine; echoed in the Reply
	// Timeout is how long the engine will wait for this answer (for prepare: the time
	// left before the transaction's deadline). Zero means the transport's default.
	Timeout time.Duration
}

// PState is a participant's state for a transaction, as it reports it.
type PState string

const (
	PUnknown   PState = "unknown"
	PPrepared  PState = "prepared"
	PCommitted PState = "committed"
	PAborted   PState = "aborted"
)

// Vote is a participant's answer to prepare, or why there was none.
type Vote string

const (
	VoteNone    Vote = ""
	VoteACK     Vote = "ACK"
	VoteNACK    Vote = "NACK"
	VoteTimeout Vote = "TIMEOUT"
	VoteError   Vote = "ERROR"
)

// NoteKind says what a Note reports.
type NoteKind uint8

const (
	NoteBegun NoteKind = iota + 1
	// NoteDecided: the decision is durable and has been told (Commit says which).
	NoteDecided
	NoteEnded
	NoteHazard
	NoteSendFailed
	NoteLogRefused
)

// AbortCause classifies why a transaction aborted: it is logged with the decision, shown
// by the API (abort_cause) and counted by the metrics.
type AbortCause string

const (
	CauseNone     AbortCause = ""
	CauseNACK     AbortCause = "nack"     // a participant voted NACK
	CauseConflict AbortCause = "conflict" // a participant voted NACK with cause conflict (a lock or a stale read)
	CauseTimeout  AbortCause = "timeout"  // no vote before the prepare deadline
	CauseError    AbortCause = "error"    // a participant gave no usable answer
	CauseDeadlock AbortCause = "deadlock" // the victim of a cycle in the wait-for graph
	CauseWound    AbortCause = "wound"    // wounded by an older transaction (wound-wait)
	CauseClient   AbortCause = "client"   // aborted on request through the API
	CauseRecovery AbortCause = "recovery" // decided by recovery after a restart
)

// AbortCauses lists every cause an abort may have, in a fixed order (for metrics).
var AbortCauses = []AbortCause{CauseNACK, CauseConflict, CauseTimeout, CauseError, CauseDeadlock, CauseWound, CauseClient, CauseRecovery}

// ParseAbortCause returns the cause s names; ok is false for any other string (and for "").
func ParseAbortCause(s string) (AbortCause, bool) {
	for _, c := range AbortCauses {
		if string(c) == s {
			return c, true
		}
	}
	return CauseNone, false
}

// Note is one observation passed to the Observer.
type Note struct {
	Kind    NoteKind
	Txn     string
	Commit  bool       // NoteDecided: the outcome
	Cause   AbortCause // NoteDecided: why it aborted
	Reason  string     // NoteDecided (abort reason), NoteHazard, NoteSendFailed, NoteLogRefused
	URL     string     // NoteHazard, NoteSendFailed
	Msg     MsgKind
	Elapsed time.Duration // NoteDecided, NoteEnded: since the transaction began
	// Recovered is set for transactions this engine found in the log at start.
	Recovered bool
	// DurableBegin (NoteBegun): the begin record is synced before the prepares leave,
	// because a participant is not known to ask about transactions in doubt.
	DurableBegin bool
}
