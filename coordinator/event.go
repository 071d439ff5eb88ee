package coordinator

// Event is what comes back to the engine through Step: an answer from a participant, a
// timer, or news from the log. Requests from clients are method calls (Submit, Get, List),
// because they are answered at once or through a callback.
type Event interface{ isEvent() }

// Reply is the answer to one Message, or the reason there was none.
type Reply struct {
	Txn         string
	Participant int
	Seq         uint64
	Kind        MsgKind
	// Err is set when there was no usable answer: timeout, connection refused, 5xx, a
	// body that does not parse. Prepare counts it as a failed vote; phase 2 and status
	// queries retry.
	Err error
	// Vote and Reason answer a prepare. Cause, on a NACK, is the class the participant
	// gave ("conflict": a lock it could not take or a stale read); empty for none.
	Vote   Vote
	Reason string
	Cause  string
	// State answers commit, rollback and status. Conflict is set when the participant
	// refused phase 2 because its state contradicts it (HTTP 409): a heuristic hazard.
	State    PState
	Conflict bool
	// Asks is set when the participant said, on this answer, that it asks the
	// coordinator about the transactions it holds in doubt (HeaderInDoubt in the
	// participant protocol). Only a transaction whose every participant is known to ask
	// may keep its begin record lazy; see Engine.Submit.
	Asks bool
}

// TimerKind says what a timer is for.
type TimerKind uint8

const (
	// TimerDeadline ends the prepare phase (or a recovery's status round).
	TimerDeadline TimerKind = iota + 1
	// TimerRetry resends phase 2 or a status query to one participant.
	TimerRetry
	// TimerLogRetry appends a decision again after the log refused it.
	TimerLogRetry
)

// Timer identifies a timer. Gen tells a live timer from a stale one.
type Timer struct {
	Kind        TimerKind
	Txn         string
	Participant int
	Gen         uint64
}

// TimerFired is delivered when a timer set with Clock.SetTimer expires.
type TimerFired struct{ Timer Timer }

// LogSynced reports that every record up to and including LSN Through is durable.
type LogSynced struct{ Through uint64 }

func (Reply) isEvent()      {}
func (TimerFired) isEvent() {}
func (LogSynced) isEvent()  {}
