package protocol

import (
	"encoding/json"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/dtc-project/dtc/coordinator"
)

// Answer is a participant's answer to one request, as the transport received it.
type Answer struct {
	Kind   coordinator.MsgKind // what was asked
	Status int                 // the HTTP status
	Body   []byte
	// Asks: the answer said that its participant asks about the transactions it holds
	// in doubt (AsksInDoubt of its HeaderInDoubt).
	Asks bool
}

// Classes of AnswerError.
const (
	// ClassMalformed: the answer is not one the protocol allows.
	ClassMalformed = "malformed"
	// Class5xx: a server error (the participant cannot answer now).
	Class5xx = "status_5xx"
	// ClassStatus: a status the request makes nothing of.
	ClassStatus = "status_other"
)

// AnswerError is an answer that gives no usable reply: "no answer" to the engine
// (DESIGN §3: in prepare it counts as a failed vote, in phase 2 it is retried).
type AnswerError struct {
	Class string
	// What says what was wrong in words that quote nothing of the answer (API clients
	// may see them); Detail says it with what the participant said, for logs.
	What, Detail string
}

func (e *AnswerError) Error() string { return e.Detail }

// Interpret maps a participant's answer to the engine's Reply (its Vote, Reason, State,
// Conflict and Asks; the caller sets the fields that name the request). DESIGN §3:
//
//	prepare   200 {"vote":"ACK"}                 → VoteACK
//	          200 {"vote":"NACK","reason":R}     → VoteNACK, R made fit to show
//	commit,   200 {"state":S}                    → S
//	rollback  409 {"state":S}                    → S, Conflict (a heuristic hazard)
//	status    200 {"state":S}                    → S
//	          404, 405, a body that does not parse → unknown (cannot tell)
//	anything else                                 → an *AnswerError
func Interpret(a Answer) (coordinator.Reply, error) {
	r := coordinator.Reply{Kind: a.Kind, Asks: a.Asks}
	body := a.Body
	switch {
	case a.Status == 200:
	case a.Status == 409 && (a.Kind == coordinator.MsgCommit || a.Kind == coordinator.MsgRollback):
		st, ok := ParseState(body)
		if !ok {
			return r, malformed(a, "409 without a state", "409 without a state")
		}
		r.State, r.Conflict = st, true
		return r, nil
	case a.Kind == coordinator.MsgStatus && (a.Status == 404 || a.Status == 405):
		// A participant without a status endpoint cannot tell: recovery rolls back.
		r.State, r.Reason = StateUnknown, fmt.Sprintf("cannot tell: status answered HTTP %d", a.Status)
		return r, nil
	default:
		class := ClassStatus
		if a.Status >= 500 {
			class = Class5xx
		}
		return r, &AnswerError{Class: class, What: fmt.Sprintf("HTTP %d", a.Status), Detail: fmt.Sprintf("HTTP %d", a.Status)}
	}
	switch a.Kind {
	case coordinator.MsgPrepare:
		if IsVoteACK(body) {
			r.Vote = VoteACK
			return r, nil
		}
		var vr VoteResponse
		if err := json.Unmarshal(body, &vr); err != nil {
			return r, malformed(a, "vote does not parse", "vote does not parse")
		}
		switch vr.Vote {
		case VoteACK:
			r.Vote = VoteACK
		case VoteNACK:
			r.Vote, r.Reason = VoteNACK, SanitizeReason(vr.Reason)
			if vr.Cause == string(coordinator.CauseConflict) {
				r.Cause = vr.Cause // the only cause that means anything to the coordinator
			}
			if r.Reason == "" {
				r.Reason = "no reason given"
			}
		default:
			return r, malformed(a, "unknown vote", fmt.Sprintf("unknown vote %q", vr.Vote))
		}
	default:
		st, ok := ParseState(body)
		switch {
		case !ok && a.Kind == coordinator.MsgStatus:
			// A status that does not parse is no status either: this participant
			// cannot tell, and recovery rolls back rather than wait for ever.
			r.State, r.Reason = StateUnknown, "cannot tell: status answer does not parse"
		case !ok:
			return r, malformed(a, "no known state", "no known state")
		default:
			r.State = st
		}
	}
	return r, nil
}

func malformed(a Answer, what, detail string) error {
	return &AnswerError{Class: ClassMalformed, What: fmt.Sprintf("HTTP %d: %s", a.Status, what), Detail: fmt.Sprintf("HTTP %d: %s", a.Status, detail)}
}

// ReasonMaxBytes bounds a NACK's reason as the coordinator keeps and shows it.
const ReasonMaxBytes = 256

// SanitizeReason makes a participant's NACK reason fit to show: valid UTF-8, control
// characters as spaces, at most ReasonMaxBytes (cut at a character, marked with …).
func SanitizeReason(s string) string {
	clean := true
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f {
			clean = false
			break
		}
	}
	if clean && len(s) <= ReasonMaxBytes {
		return s
	}
	var b strings.Builder
	for _, r := range strings.ToValidUTF8(s, "\uFFFD") {
		if unicode.IsControl(r) || r == '\u2028' || r == '\u2029' {
			r = ' '
		}
		if b.Len()+utf8.RuneLen(r) > ReasonMaxBytes-len("…") {
			b.WriteString("…")
			break
		}
		b.WriteRune(r)
	}
	return b.String()
}
