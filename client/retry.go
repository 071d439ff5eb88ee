package client

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/url"
	"time"

	"github.com/dtc-project/dtc/coordinator"
)

// Abort aborts a transaction that is not decided yet and returns its view once the
// decision is durable. A decided transaction is never changed: Abort then answers it as
// it is (committed, or aborted for its own cause), so calling it again is safe. reason
// (optional) goes to the coordinator's log. Role submit (its own transactions) or admin.
func (c *Client) Abort(ctx context.Context, id, reason string) (View, error) {
	if id == "" {
		return View{}, errors.New("client: Abort needs a transaction id")
	}
	var body any
	if reason != "" {
		body = map[string]string{"reason": reason}
	}
	var v View
	err := c.call(ctx, "POST", "/v1/transactions/"+url.PathEscape(id)+"/abort", nil, body, true, 200, &v)
	return v, err
}

// RetryOptions make SubmitRetry run a transaction again when it aborted for a cause
// that another attempt may not meet: conflict, deadlock or timeout (by default).
type RetryOptions struct {
	// Attempts bounds the attempts, the first included. Default 3; at most 100.
	Attempts int
	// Backoff is the wait after the first failed attempt; it doubles after each one, up
	// to BackoffMax, and a random part of it (full jitter: uniform in [d/2, d]) is
	// waited. Default 50ms.
	Backoff time.Duration
	// BackoffMax caps the wait. Default 2s.
	BackoffMax time.Duration
	// Causes are the abort causes retried. Default conflict, deadlock, timeout.
	Causes []coordinator.AbortCause
	// OnRetry, if set, is told of each aborted attempt before the wait.
	OnRetry func(attempt int, v View, wait time.Duration)
}

// RetryableCauses are the abort causes SubmitRetry retries by default: a conflict or a
// deadlock with another transaction, or a prepare deadline that waiting made pass.
var RetryableCauses = []coordinator.AbortCause{coordinator.CauseConflict, coordinator.CauseDeadlock, coordinator.CauseTimeout}

// SubmitRetry runs req as Submit does and, while it aborts for a retryable cause, runs
// it again as a new transaction (a new id: the old one's outcome is final) after a
// backoff with jitter, at most o.Attempts times in all. It returns the last attempt's
// view and the number of attempts made. req.ID, if set, is the first attempt's id;
// later ones append "-r2", "-r3"…, so that each attempt is idempotent on its own.
// An error ends the retries (the attempt's outcome is then unknown: see Get).
func (c *Client) SubmitRetry(ctx context.Context, req Request, o RetryOptions) (View, int, error) {
	if o.Attempts <= 0 {
		o.Attempts = 3
	}
	if o.Attempts > 100 {
		return View{}, 0, fmt.Errorf("client: RetryOptions.Attempts %d: at most 100", o.Attempts)
	}
	if o.Backoff <= 0 {
		o.Backoff = 50 * time.Millisecond
	}
	if o.BackoffMax <= 0 {
		o.BackoffMax = 2 * time.Second
	}
	if o.Causes == nil {
		o.Causes = RetryableCauses
	}
	base := req.ID
	d := o.Backoff
	for attempt := 1; ; attempt++ {
		r := req
		if base != "" && attempt > 1 {
			r.ID = fmt.Sprintf("%s-r%d", base, attempt)
		}
		v, err := c.Submit(ctx, r)
		if err != nil || v.State != StateAborted || attempt >= o.Attempts || !retryable(v.AbortCause, o.Causes) {
			return v, attempt, err
		}
		wait := d/2 + time.Duration(rand.Int64N(int64(d/2)+1))
		if o.OnRetry != nil {
			o.OnRetry(attempt, v, wait)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return v, attempt, ctx.Err()
		case <-t.C:
		}
		d = min(2*d, o.BackoffMax)
	}
}

func retryable(c coordinator.AbortCause, causes []coordinator.AbortCause) bool {
	for _, x := range causes {
		if x == c {
			return true
		}
	}
	return false
}
