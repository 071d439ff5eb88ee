package checker

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"
)

// Outcome is what a transaction ended as, as far as one observer knows.
type Outcome string

// The outcomes. Only Committed and Aborted are final; Unknown is what a client records
// when its call ended without an answer (timeout, lost connection, crashed coordinator).
const (
	Committed Outcome = "committed"
	Aborted   Outcome = "aborted"
	Unknown   Outcome = "unknown"
)

// Final reports whether o is Committed or Aborted.
func (o Outcome) Final() bool { return o == Committed || o == Aborted }

// Other returns the final outcome that is not o (Committed for Aborted and vice versa).
func (o Outcome) other() Outcome {
	if o == Committed {
		return Aborted
	}
	return Committed
}

// The states a participant may hold at the end of a run (FinalParticipant). A
// participant may also report "committed" or "aborted".
const (
	StatePrepared = "prepared"
	StateUnknown  = "unknown"
)

// StateNotFound is what the harness records as the coordinator's final state of a
// transaction it has no record of (GET answered 404).
const StateNotFound = "not-found"

// Op is one client call: a request to run a transaction, and how it returned.
type Op struct {
	ID           int      `json:"id"` // the handle Submit returned; the index in History.Ops
	Client       int      `json:"client"`
	Txn          string   `json:"txn"`
	Participants []string `json:"participants"`
	Call         int64    `json:"call"`
	// Return and Outcome are set by Recorder.Return. An empty Outcome means the call never
	// returned before the history was taken; Check treats it like Unknown.
	Return  int64   `json:"return,omitempty"`
	Outcome Outcome `json:"outcome,omitempty"`
}

// open reports whether the op has an open end: the client never learned the outcome.
func (op *Op) open() bool { return !op.Outcome.Final() }

// EventKind says what an Event records.
type EventKind string

// The kinds of Event.
const (
	EventTold    EventKind = "told"    // an outcome was reported to Who (not the submitting client)
	EventVoted   EventKind = "voted"   // participant Who voted Vote in prepare
	EventApplied EventKind = "applied" // participant Who durably applied Outcome
)

// The votes an EventVoted carries.
const (
	VoteACK  = "ACK"
	VoteNACK = "NACK"
)

// Event is one instantaneous observation about a transaction.
type Event struct {
	Kind    EventKind `json:"kind"`
	Txn     string    `json:"txn"`
	Who     string    `json:"who"`               // the participant, or whom an outcome was told to
	Outcome Outcome   `json:"outcome,omitempty"` // told, applied
	Vote    string    `json:"vote,omitempty"`    // voted: ACK or NACK
	At      int64     `json:"at"`
}

// FinalState is what a participant (Who) or the coordinator (Who empty) holds for a
// transaction at the end of a run.
type FinalState struct {
	Txn   string `json:"txn"`
	Who   string `json:"who,omitempty"`
	State string `json:"state"`
}

// Note is a free-form annotation: a crash, a restart, a partition, the heal.
type Note struct {
	At   int64  `json:"at"`
	What string `json:"what"`
}

// History is everything recorded about one run. Its order is deterministic: Ops in
// submission order (an op's ID is its index), Events and Notes by time and, for equal
// times, in the order they were recorded, final states by transaction then participant.
type History struct {
	Ops               []Op         `json:"ops"`
	Events            []Event      `json:"events"`
	FinalParticipants []FinalState `json:"final_participants"`
	FinalCoordinator  []FinalState `json:"final_coordinator"`
	Notes             []Note       `json:"notes"`
}

// Recorder collects a History. All methods are safe for concurrent use. Times are int64
// nanoseconds chosen by the caller: virtual time in the simulator, wall or monotonic time
// in real runs; they are only compared with each other.
//
// Misuse (an unknown op handle, a second Return, a non-final outcome where only final
// ones belong) is a bug in the harness and panics.
type Recorder struct {
	mu         sync.Mutex
	ops        []Op
	returned   []bool
	events     []Event
	finalParts map[partKey]string
	finalCoord map[string]string
	notes      []Note
}

type partKey struct{ txn, who string }

// NewRecorder returns an empty Recorder.
func NewRecorder() *Recorder {
	return &Recorder{finalParts: map[partKey]string{}, finalCoord: map[string]string{}}
}

// Submit records that client asked for transaction txn over participants at time at,
// and returns the handle to pass to Return.
func (r *Recorder) Submit(client int, txn string, participants []string, at int64) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	id := len(r.ops)
	r.ops = append(r.ops, Op{ID: id, Client: client, Txn: txn, Participants: slices.Clone(participants), Call: at})
	r.returned = append(r.returned, false)
	return id
}

// Return records that the client's call op returned at time at with outcome: Committed,
// Aborted, or Unknown when the client did not learn the outcome (the op has an open end).
func (r *Recorder) Return(op int, outcome Outcome, at int64) {
	if !outcome.Final() && outcome != Unknown {
		panic(fmt.Sprintf("checker: Return of op %d with outcome %q: want committed, aborted or unknown", op, outcome))
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if op < 0 || op >= len(r.ops) {
		panic(fmt.Sprintf("checker: Return of op %d, but only %d ops were submitted", op, len(r.ops)))
	}
	if r.returned[op] {
		panic(fmt.Sprintf("checker: op %d (txn %s) returned twice", op, r.ops[op].Txn))
	}
	r.returned[op] = true
	r.ops[op].Return = at
	r.ops[op].Outcome = outcome
}

// Rebind moves client op op to transaction txn: the id under which the participants
// know the transaction the call ended up in. A coordinator may give a client's id a new
// incarnation (a new participant-visible id) when it begins it again; the client learns
// which one from the answer, or the harness finds out at the end of the run. Rebinding an
// op whose outcome is unknown is always sound: its open end allows every outcome.
func (r *Recorder) Rebind(op int, txn string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if op < 0 || op >= len(r.ops) {
		panic(fmt.Sprintf("checker: Rebind of op %d, but only %d ops were submitted", op, len(r.ops)))
	}
	r.ops[op].Txn = txn
}

// Told records that outcome (final) of txn was reported at time at to someone other than
// the submitting client: a status query's answer, or a phase-2 message to a participant.
// to names the recipient.
func (r *Recorder) Told(txn string, outcome Outcome, to string, at int64) {
	if !outcome.Final() {
		panic(fmt.Sprintf("checker: Told txn %s outcome %q to %s: only committed and aborted are recorded", txn, outcome, to))
	}
	r.add(Event{Kind: EventTold, Txn: txn, Who: to, Outcome: outcome, At: at})
}

// Voted records participant's vote in the prepare phase of txn. ack is true only once
// the participant's prepared state was durable.
func (r *Recorder) Voted(txn, participant string, ack bool, at int64) {
	vote := VoteNACK
	if ack {
		vote = VoteACK
	}
	r.add(Event{Kind: EventVoted, Txn: txn, Who: participant, Vote: vote, At: at})
}

// Applied records that participant durably applied outcome (final) of txn, including a
// rollback that fences a transaction it never prepared.
func (r *Recorder) Applied(txn, participant string, outcome Outcome, at int64) {
	if !outcome.Final() {
		panic(fmt.Sprintf("checker: Applied txn %s outcome %q at %s: only committed and aborted are recorded", txn, outcome, participant))
	}
	r.add(Event{Kind: EventApplied, Txn: txn, Who: participant, Outcome: outcome, At: at})
}

func (r *Recorder) add(e Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, e)
}

// FinalParticipant records what participant holds for txn at the end of the run, after
// the heal phase: "prepared", "committed", "aborted" or "unknown". A later call for the
// same pair replaces an earlier one.
func (r *Recorder) FinalParticipant(txn, participant, state string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.finalParts[partKey{txn, participant}] = state
}

// FinalCoordinator records what the coordinator says of txn at the end of the run: its
// View state ("committed", "aborted", "preparing", ...) or "not-found". A later call for
// the same txn replaces an earlier one.
func (r *Recorder) FinalCoordinator(txn, state string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.finalCoord[txn] = state
}

// Note records a free-form annotation shown in the HTML report and the trace.
func (r *Recorder) Note(at int64, what string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.notes = append(r.notes, Note{At: at, What: what})
}

// History returns a copy of everything recorded so far, in deterministic order.
func (r *Recorder) History() History {
	r.mu.Lock()
	defer r.mu.Unlock()
	h := History{
		Ops:               make([]Op, len(r.ops)),
		Events:            slices.Clone(r.events),
		FinalParticipants: make([]FinalState, 0, len(r.finalParts)),
		FinalCoordinator:  make([]FinalState, 0, len(r.finalCoord)),
		Notes:             slices.Clone(r.notes),
	}
	for i, op := range r.ops {
		op.Participants = slices.Clone(op.Participants)
		h.Ops[i] = op
	}
	if h.Events == nil {
		h.Events = []Event{}
	}
	if h.Notes == nil {
		h.Notes = []Note{}
	}
	slices.SortStableFunc(h.Events, func(a, b Event) int { return cmpInt64(a.At, b.At) })
	slices.SortStableFunc(h.Notes, func(a, b Note) int { return cmpInt64(a.At, b.At) })
	for k, s := range r.finalParts {
		h.FinalParticipants = append(h.FinalParticipants, FinalState{Txn: k.txn, Who: k.who, State: s})
	}
	slices.SortFunc(h.FinalParticipants, func(a, b FinalState) int {
		if c := strings.Compare(a.Txn, b.Txn); c != 0 {
			return c
		}
		return strings.Compare(a.Who, b.Who)
	})
	for txn, s := range r.finalCoord {
		h.FinalCoordinator = append(h.FinalCoordinator, FinalState{Txn: txn, State: s})
	}
	slices.SortFunc(h.FinalCoordinator, func(a, b FinalState) int { return strings.Compare(a.Txn, b.Txn) })
	return h
}

func cmpInt64(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// Trace renders the history as text, one line per entry in time order, for a failing
// run's log. Final states come last.
func (h History) Trace() string {
	type line struct {
		at int64
		s  string
	}
	var lines []line
	add := func(at int64, s string) { lines = append(lines, line{at, s}) }
	for _, op := range h.Ops {
		add(op.Call, fmt.Sprintf("client %d submits txn %s %v (op %d)", op.Client, op.Txn, op.Participants, op.ID))
		if op.Outcome != "" {
			add(op.Return, fmt.Sprintf("client %d gets txn %s %s (op %d)", op.Client, op.Txn, op.Outcome, op.ID))
		}
	}
	for _, e := range h.Events {
		switch e.Kind {
		case EventTold:
			add(e.At, fmt.Sprintf("%s is told txn %s %s", e.Who, e.Txn, e.Outcome))
		case EventVoted:
			add(e.At, fmt.Sprintf("%s votes %s on txn %s", e.Who, e.Vote, e.Txn))
		case EventApplied:
			add(e.At, fmt.Sprintf("%s applies txn %s %s", e.Who, e.Txn, e.Outcome))
		default:
			add(e.At, fmt.Sprintf("%s %s txn %s %s%s", e.Who, e.Kind, e.Txn, e.Outcome, e.Vote))
		}
	}
	for _, n := range h.Notes {
		add(n.At, "note: "+n.What)
	}
	slices.SortStableFunc(lines, func(a, b line) int { return cmpInt64(a.at, b.at) })
	var b strings.Builder
	for _, l := range lines {
		fmt.Fprintf(&b, "%-14s %s\n", fmtTime(l.at), l.s)
	}
	for _, f := range h.FinalCoordinator {
		fmt.Fprintf(&b, "%-14s coordinator holds txn %s %s\n", "final", f.Txn, f.State)
	}
	for _, f := range h.FinalParticipants {
		fmt.Fprintf(&b, "%-14s %s holds txn %s %s\n", "final", f.Who, f.Txn, f.State)
	}
	return b.String()
}

// wallTimeMin is where fmtTime starts reading a time as Unix nanoseconds (1973) rather
// than as a duration since the start of a run.
const wallTimeMin = int64(1e17)

// fmtTime renders a recorded time: a duration since the run's origin ("1.203s"), or, for
// what looks like Unix wall time, a UTC timestamp. Microseconds are kept (nanoseconds
// below a millisecond): in the simulator, events a few microseconds apart matter.
func fmtTime(at int64) string {
	if at >= wallTimeMin {
		return time.Unix(0, at).UTC().Format("2006-01-02T15:04:05.000000Z")
	}
	if d := time.Duration(at); d >= time.Millisecond || d <= -time.Millisecond {
		return d.Round(time.Microsecond).String()
	}
	return time.Duration(at).String()
}
