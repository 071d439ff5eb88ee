package coordinator

import (
	"fmt"
	"slices"
	"time"
)

// View is a transaction as the API shows it. State is one of:
//
//	preparing   votes are being collected (or, after a restart, statuses)
//	committing  commit decided; its record is not durable yet, so nobody acts on it
//	aborting    abort decided; its record is not durable yet
//	committed   the commit decision is durable; PhaseTwoDone says whether every
//	            participant has acknowledged it
//	aborted     the abort decision is durable; likewise
//
// Only committed and aborted are outcomes: they never change once shown.
type View struct {
	ID string `json:"id"`
	// TxnID is the id the participants know this transaction by: ID, the incarnation
	// separator '@' and a nonce drawn when it began. A participant in doubt asks about it.
	TxnID  string `json:"txn_id"`
	State  string `json:"state"`
	Reason string `json:"reason,omitempty"`
	// AbortCause classifies an abort once it is final (state aborted): nack, conflict,
	// timeout, error, deadlock, wound, client or recovery; empty otherwise, and for a
	// transaction aborted by an older version that did not log it.
	AbortCause AbortCause `json:"abort_cause,omitempty"`
	// Priority orders transactions for deadlock victims and wound-wait: smaller is older.
	Priority     int64             `json:"priority,omitempty"`
	Participants []ParticipantView `json:"participants"`
	PhaseTwoDone bool              `json:"phase2_done"`
	Hazard       bool              `json:"heuristic_hazard,omitempty"`
	Recovered    bool              `json:"recovered,omitempty"`
	BeganAt      time.Time         `json:"began_at"`
	DecidedAt    *time.Time        `json:"decided_at,omitempty"`
	EndedAt      *time.Time        `json:"ended_at,omitempty"`
	// Owner is the API client that began the transaction (Request.Owner); empty
	// without authentication.
	Owner string `json:"owner,omitempty"`
}

// ParticipantView is one participant's part in a transaction.
//
// VotedAt, AnsweredAt, Phase2Requests and Phase2Error are its history as this process
// saw it, from the engine's Clock; they are kept in memory only, so a transaction
// replayed from the log after a restart shows none of what happened before it.
type ParticipantView struct {
	URL    string `json:"url"`
	Vote   Vote   `json:"vote,omitempty"`
	Reason string `json:"reason,omitempty"`
	Acked  bool   `json:"acked"`
	Hazard string `json:"hazard,omitempty"`
	// LastSaid is what the participant last answered this engine about the
	// transaction ("ACK", "NACK: …", "prepared", "committed", "no answer: …"), and
	// LastSaidAt when; empty until it answers (and after a restart). For an operator
	// looking at a transaction in doubt: it shows which service holds what.
	LastSaid   string     `json:"last_said,omitempty"`
	LastSaidAt *time.Time `json:"last_said_at,omitempty"`
	// VotedAt: when its vote was counted (its prepare's answer, or its status in
	// recovery, or the deadline that made it TIMEOUT).
	VotedAt *time.Time `json:"voted_at,omitempty"`
	// AnsweredAt: when it acknowledged phase 2 (Acked) or contradicted it (Hazard).
	AnsweredAt *time.Time `json:"answered_at,omitempty"`
	// Phase2Requests: phase-2 requests (commit or rollback) sent to it so far.
	Phase2Requests int `json:"phase2_requests,omitempty"`
	// Phase2Error: why the last phase-2 request got no usable answer, while it is
	// not yet acknowledged (a participant down shows here).
	Phase2Error string `json:"phase2_error,omitempty"`
}

// The states a View may show.
const (
	StatePreparing  = "preparing"
	StateCommitting = "committing"
	StateAborting   = "aborting"
	StateCommitted  = "committed"
	StateAborted    = "aborted"
)

// Final reports whether the state is an outcome (committed or aborted).
func (v View) Final() bool { return v.State == StateCommitted || v.State == StateAborted }

func (t *txn) state() string {
	switch {
	case t.phase < phDeciding:
		return StatePreparing
	case t.phase == phDeciding && t.decision == Commit:
		return StateCommitting
	case t.phase == phDeciding:
		return StateAborting
	case t.decision == Commit:
		return StateCommitted
	default:
		return StateAborted
	}
}

func (t *txn) view() View {
	v := View{
		ID:           t.id,
		TxnID:        t.wire,
		State:        t.state(),
		Participants: make([]ParticipantView, len(t.parts)),
		PhaseTwoDone: t.phase == phDone,
		Recovered:    t.recovered,
		BeganAt:      t.began.UTC(),
		Owner:        t.owner,
		Priority:     t.priority,
	}
	if v.Final() {
		v.Reason = t.reason
		if t.decision == Abort {
			v.AbortCause = t.cause
		}
		if !t.decided.IsZero() {
			d := t.decided.UTC()
			v.DecidedAt = &d
		}
	}
	if t.phase == phDone {
		d := t.ended.UTC()
		v.EndedAt = &d
	}
	for i := range t.parts {
		p := &t.parts[i]
		v.Participants[i] = ParticipantView{URL: p.url, Vote: p.vote, Reason: p.reason, Acked: p.acked, Hazard: p.hazard,
			LastSaid: p.lastSaid, Phase2Requests: p.phase2Sent, Phase2Error: p.phase2Err}
		if !p.lastSaidAt.IsZero() {
			at := p.lastSaidAt.UTC()
			v.Participants[i].LastSaidAt = &at
		}
		if !p.votedAt.IsZero() {
			at := p.votedAt.UTC()
			v.Participants[i].VotedAt = &at
		}
		if !p.answeredAt.IsZero() {
			at := p.answeredAt.UTC()
			v.Participants[i].AnsweredAt = &at
		}
		v.Hazard = v.Hazard || p.hazard != ""
	}
	return v
}

// Filters List accepts besides the states of a View.
const (
	// FilterInDoubt: no durable decision yet, or phase 2 not yet acknowledged by all.
	FilterInDoubt = "in-doubt"
	// FilterHeuristic: a participant contradicted the decision.
	FilterHeuristic = "heuristic"
	// FilterAll: every transaction the engine remembers.
	FilterAll = ""
)

// CheckFilter says whether List understands filter.
func CheckFilter(filter string) error {
	switch filter {
	case FilterAll, FilterInDoubt, FilterHeuristic, StatePreparing, StateCommitting, StateAborting, StateCommitted, StateAborted:
		return nil
	}
	return fmt.Errorf("unknown state filter %q: use preparing, committing, aborting, committed, aborted, in-doubt or heuristic", filter)
}

// List returns up to limit transactions matching filter with ids greater than after, in
// id order, and the id to pass as after for the next page ("" when there is none).
func (e *Engine) List(filter, after string, limit int) ([]View, string, error) {
	if err := CheckFilter(filter); err != nil {
		return nil, "", fmt.Errorf("coordinator: %w", err)
	}
	if limit <= 0 {
		return nil, "", fmt.Errorf("coordinator: list limit must be positive, got %d", limit)
	}
	var ids []string
	for id, t := range e.txns {
		if id > after && t.matches(filter) {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	next := ""
	if len(ids) > limit {
		ids = ids[:limit]
		next = ids[limit-1]
	}
	out := make([]View, len(ids))
	for i, id := range ids {
		out[i] = e.txns[id].view()
	}
	return out, next, nil
}

func (t *txn) matches(filter string) bool {
	switch filter {
	case FilterAll:
		return true
	case FilterInDoubt:
		return t.phase != phDone
	case FilterHeuristic:
		for i := range t.parts {
			if t.parts[i].hazard != "" {
				return true
			}
		}
		return false
	}
	return t.state() == filter
}

// Checkpoint writes the whole state of every remembered transaction, bracketed by
// checkpoint records. Once the closing record is durable, every record this engine wrote
// before the opening one is obsolete, and the log's owner may delete segments holding
// only such records. If the log refuses a record, the checkpoint is abandoned (no closing
// record) and the error returned.
//
// When the engine has appended nothing since its last checkpoint, Checkpoint writes
// nothing: that checkpoint still stands, and an idle coordinator does not fill its disk
// with copies of it.
func (e *Engine) Checkpoint() error {
	now := e.env.Clock.Now()
	e.expire(now)
	if e.cpDone && e.lsn == e.cpLSN {
		return nil
	}
	ms := now.UnixMilli()
	if err := e.append(&Record{Type: RecCheckpoint, Bracket: "begin", TimeUnixMs: ms}, false); err != nil {
		return fmt.Errorf("coordinator: checkpoint: %w", err)
	}
	ids := make([]string, 0, len(e.txns))
	for id := range e.txns {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		if err := e.append(e.txns[id].snapshot(now), false); err != nil {
			return fmt.Errorf("coordinator: checkpoint: %w", err)
		}
	}
	if err := e.append(&Record{Type: RecCheckpoint, Bracket: "end", TimeUnixMs: ms}, true); err != nil {
		return fmt.Errorf("coordinator: checkpoint: %w", err)
	}
	e.cpLSN, e.cpDone = e.lsn, true
	return nil
}
