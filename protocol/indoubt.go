package protocol

import (
	"cmp"
	"encoding/json"
	"fmt"
)

// InDoubtVerdict is the rule by which a participant in doubt about txnID (it prepared,
// and no phase 2 came) reads its coordinator's answer to
// GET {coordinator}/v1/transactions/{id} (CoordinatorTxnURL), given its HTTP status and
// body:
//
//	200 "state":"committed"             → StateCommitted: commit
//	200 "state":"aborted"               → StateAborted: roll back
//	404 with code "not_found"           → StateAborted: presumed abort
//	anything else (503, a state still in
//	progress, an answer about another
//	transaction, any other 404)         → StateUnknown: ask again later
//
// A 404 must carry the coordinator's JSON error with code CodeTxnNotFound: a bare 404
// from a misconfigured URL, or the coordinator's "no_route" for a wrong path, must not
// roll back a transaction the real coordinator may have committed. Presumed abort is
// safe because the coordinator forgets a transaction only after every participant has
// durably acknowledged its outcome, and one without a durable begin can never commit
// after a restart (DESIGN §2).
//
// statusLine is the answer's status line as the client reports it ("502 Bad Gateway"),
// for detail; empty: "HTTP 502". detail says why, for logs. reached reports whether the answer came from the
// coordinator in due form (a verdict, or a state still in progress); false counts the
// coordinator as unreachable.
func InDoubtVerdict(txnID string, status int, statusLine string, body []byte) (verdict State, detail string, reached bool) {
	switch status {
	case 200:
		var ct CoordinatorTxn
		if err := json.Unmarshal(body, &ct); err != nil {
			return StateUnknown, fmt.Sprintf("answer does not parse: %v", err), false
		}
		if about := ct.TxnID; about != txnID && (about != "" || ct.ID != txnID) {
			return StateUnknown, fmt.Sprintf("answer is about txn %q", cmp.Or(about, ct.ID)), false
		}
		switch ct.State {
		case string(StateCommitted):
			return StateCommitted, "coordinator: committed", true
		case string(StateAborted):
			return StateAborted, "coordinator: aborted", true
		default:
			return StateUnknown, fmt.Sprintf("coordinator: %q", ct.State), true
		}
	case 404:
		var e ErrorResponse
		if err := json.Unmarshal(body, &e); err != nil || e.Error.Code != CodeTxnNotFound {
			return StateUnknown, fmt.Sprintf("404 without the coordinator's %q error: wrong coordinator URL?", CodeTxnNotFound), false
		}
		return StateAborted, "coordinator: unknown transaction (presumed abort)", true
	default:
		return StateUnknown, "coordinator answered " + cmp.Or(statusLine, fmt.Sprintf("HTTP %d", status)), false
	}
}
