package participant

import (
	"context"
	"net/http"
	"time"
)

// AskCoordinator asks the coordinator at base (e.g. "http://127.0.0.1:7070") about the
// transaction txnID, GET {base}/v1/transactions/{txnID}, exactly as the Resolver does:
// it returns StateCommitted or StateAborted when the answer settles the transaction
// (a 404 counts as aborted only with the coordinator's "not_found" code: presumed
// abort), StateUnknown otherwise (still in progress, unreachable, an answer that does
// not parse); detail says why. timeout bounds the query and responseMaxBytes its
// answer. It is for participants that keep their prepared state elsewhere than in a
// Participant (sqlpart keeps it in the database), so that every participant reads the
// coordinator's answers by the same rules.
func AskCoordinator(ctx context.Context, client *http.Client, base, txnID string, timeout time.Duration, responseMaxBytes int64) (State, string) {
	if client == nil {
		client = http.DefaultClient
	}
	r := &Resolver{o: ResolverOptions{Client: client, QueryTimeout: timeout, ResponseMaxBytes: responseMaxBytes}}
	st, detail, _ := r.ask(ctx, base, txnID)
	return st, detail
}

// CheckCoordinatorURL reports whether s is acceptable as a coordinator base URL: an
// absolute http(s) URL without query or fragment, at most maxBytes long.
func CheckCoordinatorURL(s string, maxBytes int) error { return checkCoordinatorURL(s, maxBytes) }
