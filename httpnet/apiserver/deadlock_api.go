package apiserver

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/dtc-project/dtc/coordinator"
	"github.com/dtc-project/dtc/httpnet"
)

// HeaderAbortCause names the cause of POST /v1/transactions/{id}/abort: "wound" from a
// participant whose older transaction wounds a younger holder (wound-wait), "client"
// (the default) otherwise. "deadlock" is taken only from the cluster's deadlock detector
// aborting a victim another node runs: a forwarded request (HeaderForwarded) naming the
// victim by its participant id.
const HeaderAbortCause = "Dtc-Abort-Cause"

// abortReasonMaxBytes bounds the reason given with an abort (it goes to the log).
const abortReasonMaxBytes = 512

// abortBody is the optional body of POST /v1/transactions/{id}/abort.
type abortBody struct {
	Reason string `json:"reason"`
}

// asParticipant reports whether a request may be served as a participant's: it has no
// credentials (no Authorization header, no verified client certificate) and every
// transaction it names is named by the id its participants were told (client id, '@',
// the 64-bit random nonce of its incarnation). That is the trust of a participant's
// status query (getAuthorized): knowing the nonce proves it was told of the
// transaction. A participant of T could abort T anyway, by voting NACK; with the nonce
// of U it can wound U or report waits on U, as wound-wait and detection need.
func (s *Server) asParticipant(r *http.Request, ids ...string) bool {
	if s.o.Auth == nil {
		return false
	}
	if _, has := r.Header["Authorization"]; has || (r.TLS != nil && len(r.TLS.VerifiedChains) > 0) {
		return false
	}
	for _, id := range ids {
		if _, _, ok := coordinator.SplitTxnID(id); !ok {
			return false
		}
	}
	return len(ids) > 0
}

// abortTxn serves POST /v1/transactions/{id}/abort: a client cancels its transaction, a
// participant wounds a younger one. It aborts the transaction if it is not decided yet
// and answers its view once the decision is durable: aborted, or committed if it was
// decided before (a decided transaction never changes). Role submit (its own), admin, or
// a participant naming it by its participant id (asParticipant).
func (s *Server) abortTxn(w http.ResponseWriter, r *http.Request, id string) {
	who := noAuth
	participant := s.asParticipant(r, id)
	if !participant {
		p, ok := s.authorize(w, r, "abort transactions", RoleSubmit, RoleAdmin)
		if !ok {
			return
		}
		who = p
	}
	if len(r.URL.RawQuery) > 0 {
		s.fail(w, http.StatusBadRequest, CodeInvalid, "POST /v1/transactions/{id}/abort takes no query parameters")
		return
	}
	cause := coordinator.CauseClient
	switch h := r.Header.Get(HeaderAbortCause); h {
	case "", string(coordinator.CauseClient):
	case string(coordinator.CauseWound):
		cause = coordinator.CauseWound
	case string(coordinator.CauseDeadlock):
		// Only the cluster's detector, on another node, names a victim so: a forwarded
		// call naming it by its participant id (the trust of a wound: the caller could
		// abort it as wound anyway). Anyone else is refused, as for an unknown cause.
		if r.Header.Get(HeaderForwarded) == "" || (s.o.Auth != nil && !participant) {
			s.fail(w, http.StatusBadRequest, CodeInvalid, fmt.Sprintf("%s: %q: use wound or client", HeaderAbortCause, h))
			return
		}
		cause = coordinator.CauseDeadlock
	default:
		s.fail(w, http.StatusBadRequest, CodeInvalid, fmt.Sprintf("%s: %q: use wound or client", HeaderAbortCause, h))
		return
	}
	var body abortBody
	raw, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.o.BodyMaxBytes))
	if err != nil {
		r.Body = io.NopCloser(io.MultiReader(bytes.NewReader(raw), errReader{err}))
		s.decode(w, r, &body) // answers the read error as any body's
		return
	}
	if len(bytes.TrimSpace(raw)) > 0 {
		r.Body = io.NopCloser(bytes.NewReader(raw))
		if !s.decode(w, r, &body) {
			return
		}
	}
	if len(body.Reason) > abortReasonMaxBytes {
		s.fail(w, http.StatusBadRequest, CodeInvalid, fmt.Sprintf("reason: %d bytes, at most %d", len(body.Reason), abortReasonMaxBytes))
		return
	}
	if len(id) > 1024 {
		s.fail(w, http.StatusNotFound, CodeNotFound, fmt.Sprintf("no transaction with a %d-byte id", len(id)))
		return
	}
	if who.Role == RoleSubmit {
		v, err := s.rt.Get(r.Context(), id)
		if err == nil && v.Owner != who.Name {
			s.fail(w, http.StatusForbidden, CodeForbidden,
				fmt.Sprintf("client %q (role submit) may abort only the transactions it began", who.Name))
			return
		}
	}
	reason := body.Reason
	if reason == "" {
		switch {
		case cause == coordinator.CauseWound:
			reason = "wounded by an older transaction"
		case cause == coordinator.CauseDeadlock:
			reason = "the victim of a deadlock"
		case who.Name != "":
			reason = "requested by client " + who.Name
		default:
			reason = "requested through the API"
		}
	}
	v, err := s.rt.Abort(r.Context(), id, cause, reason)
	switch {
	case err == nil:
		writeView(w, http.StatusOK, &v)
	case r.Context().Err() != nil:
	case errors.Is(err, coordinator.ErrNotFound):
		s.fail(w, http.StatusNotFound, CodeNotFound, fmt.Sprintf("transaction %q is not known", id))
	default:
		s.failErr(w, err)
	}
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

// waitsAnswer is the body of the 202 answer to POST /v1/waits.
type waitsAnswer struct {
	// Detection says whether the coordinator keeps a wait-for graph ("on") or ignores
	// the report ("off").
	Detection string `json:"detection"`
	// Deadlocks lists the cycles the report closed, each with the victim aborted.
	Deadlocks []deadlockView `json:"deadlocks,omitempty"`
}

type deadlockView struct {
	Cycle  []string `json:"cycle"`
	Victim string   `json:"victim"`
}

// waits serves POST /v1/waits: a participant reports that a transaction waits for
// others to release a key. Role submit or admin, or a participant naming every
// transaction by its participant id (asParticipant).
func (s *Server) waits(w http.ResponseWriter, r *http.Request) {
	var rep httpnet.WaitReport
	if !s.decode(w, r, &rep) {
		return
	}
	if !s.asParticipant(r, append([]string{rep.Waiter}, rep.Holders...)...) {
		if _, ok := s.authorize(w, r, "report waits", RoleSubmit, RoleAdmin); !ok {
			return
		}
	}
	switch {
	case rep.Waiter == "" || len(rep.Waiter) > 1024:
		s.fail(w, http.StatusBadRequest, CodeInvalid, "waiter: a transaction id (the one the participant was told), at most 1024 bytes")
		return
	case len(rep.Holders) == 0 || len(rep.Holders) > httpnet.WaitHoldersMax:
		s.fail(w, http.StatusBadRequest, CodeInvalid, fmt.Sprintf("holders: 1 to %d transaction ids", httpnet.WaitHoldersMax))
		return
	case len(rep.Participant) > 2048 || len(rep.Key) > 1024:
		s.fail(w, http.StatusBadRequest, CodeInvalid, "participant (at most 2048 bytes) or key (at most 1024 bytes) too long")
		return
	}
	for i, h := range rep.Holders {
		if h == "" || len(h) > 1024 {
			s.fail(w, http.StatusBadRequest, CodeInvalid, fmt.Sprintf("holders[%d]: a transaction id, at most 1024 bytes", i))
			return
		}
	}
	on, cycles, err := s.rt.ReportWaits(r.Context(), rep)
	switch {
	case !on:
		writeJSON(w, http.StatusAccepted, waitsAnswer{Detection: "off"})
		return
	case err == nil:
	case r.Context().Err() != nil:
		return
	case errors.Is(err, httpnet.ErrGraphFull):
		w.Header().Set("Retry-After", s.retryAfter())
		s.fail(w, http.StatusTooManyRequests, CodeBusy, strings.TrimPrefix(err.Error(), "httpnet: "))
		return
	default:
		s.failErr(w, err)
		return
	}
	ans := waitsAnswer{Detection: "on"}
	for _, c := range cycles {
		dv := deadlockView{Victim: c.Victim.ID}
		for _, t := range c.Txns {
			dv.Cycle = append(dv.Cycle, t.ID)
		}
		ans.Deadlocks = append(ans.Deadlocks, dv)
	}
	writeJSON(w, http.StatusAccepted, ans)
}
