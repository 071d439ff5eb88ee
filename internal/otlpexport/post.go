package otlpexport

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

const (
	// retryFirst is the least wait before the first retry; it doubles with each
	// attempt, up to retryMax.
	retryFirst = 250 * time.Millisecond
	retryMax   = 5 * time.Second
	// errorBodyMax bounds how much of a refusal's body its error quotes.
	errorBodyMax = 256
	// drainMax bounds how much of an answer's body is read and thrown away so that its
	// connection can carry the next request; the connection of a longer one is closed.
	drainMax = 64 << 10
)

// statusError is an answer of the collector other than 2xx.
type statusError struct {
	url    string
	status string // "503 Service Unavailable"
	code   int
	body   string // its beginning, trimmed
	// retryAfter is the wait that the answer's Retry-After asks for; 0 if it has none.
	retryAfter time.Duration
}

func (e *statusError) Error() string {
	if e.body == "" {
		return fmt.Sprintf("otlpexport: POST %s: %s, with an empty body", e.url, e.status)
	}
	return fmt.Sprintf("otlpexport: POST %s: %s: %q", e.url, e.status, e.body)
}

// requestError is a request that got no answer: the collector could not be reached
// (it may be restarting), or the connection broke.
type requestError struct{ err error }

func (e *requestError) Error() string { return "otlpexport: " + e.err.Error() }
func (e *requestError) Unwrap() error { return e.err }

// retryable says whether an answer with the status code is tried again: the collector
// is overloaded (429, 503), or a proxy in front of it could not reach it (502, 504).
func retryable(code int) bool {
	switch code {
	case http.StatusTooManyRequests, http.StatusBadGateway, http.StatusServiceUnavailable,
		http.StatusGatewayTimeout:
		return true
	default:
		return false
	}
}

// post sends payload until the collector accepts or refuses it, trying again, while
// ctx lasts, after a retryable answer or none.
func (e *Exporter) post(ctx context.Context, payload []byte) error {
	for attempt := 1; ; attempt++ {
		err := e.postOnce(ctx, payload)
		wait, again := retryWait(ctx, err, attempt)
		if !again {
			return err
		}
		if serr := sleep(ctx, wait); serr != nil {
			return fmt.Errorf("%w (gave up after attempt %d: %w)", err, attempt, serr)
		}
	}
}

// retryWait says whether err, what attempt came to, is worth another try, and after
// what wait: a retryable answer (after at least what its Retry-After asks), or a
// request that got no answer while ctx lasts (one that ended with ctx is not tried
// again).
func retryWait(ctx context.Context, err error, attempt int) (time.Duration, bool) {
	var (
		se *statusError
		re *requestError
	)
	switch {
	case errors.As(err, &se):
		return max(se.retryAfter, backoff(attempt)), retryable(se.code)
	case errors.As(err, &re):
		return backoff(attempt), ctx.Err() == nil
	}
	return 0, false
}

// postOnce posts payload once, and returns nil if the collector accepted it, else what
// went wrong. It returns once the transport is done with payload.
func (e *Exporter) postOnce(ctx context.Context, payload []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, e.url, nil)
	if err != nil {
		return fmt.Errorf("otlpexport: %w", err)
	}
	b := &bodies{payload: payload}
	req.Header = e.header.Clone()
	req.ContentLength = int64(len(payload))
	req.Body, _ = b.open()
	req.GetBody = b.open
	resp, err := e.client.Do(req)
	if err != nil {
		err = &requestError{err}
	} else {
		err = e.answer(resp)
	}
	b.wait()
	return err
}

// answer reads what matters of the collector's answer and closes its body. It returns
// nil for a 2xx answer, else a *statusError.
func (e *Exporter) answer(resp *http.Response) error {
	defer resp.Body.Close()
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		drain(resp.Body)
		return nil
	}
	head := make([]byte, errorBodyMax)
	n, _ := io.ReadFull(resp.Body, head)
	drain(resp.Body)
	return &statusError{
		url:        e.url,
		status:     resp.Status,
		code:       resp.StatusCode,
		body:       strings.TrimSpace(string(head[:n])),
		retryAfter: retryAfter(resp.Header),
	}
}

// drain reads and throws away what is left of an answer's body, up to drainMax.
func drain(r io.Reader) {
	_, _ = io.Copy(io.Discard, io.LimitReader(r, drainMax))
}

// retryAfter returns the wait that h's Retry-After asks for, in seconds or until an
// HTTP date; 0 when it has none, or one not understood.
func retryAfter(h http.Header) time.Duration {
	v := h.Get("Retry-After")
	if s, err := strconv.ParseUint(v, 10, 32); err == nil {
		return time.Duration(s) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(time.Until(t), 0)
	}
	return 0
}

// backoff returns the least wait after attempt n (from 1): retryFirst, doubled with
// each attempt up to retryMax, give or take a quarter at random, so that exporters
// refused together do not all come back together. A longer Retry-After wins.
func backoff(n int) time.Duration {
	d := min(retryFirst<<min(n-1, 8), retryMax)
	return d - d/4 + rand.N(d/2)
}

// sleep waits d, and returns nil, unless ctx ends first, or would end before: then it
// returns why it did not wait.
func sleep(ctx context.Context, d time.Duration) error {
	if deadline, ok := ctx.Deadline(); ok && time.Until(deadline) < d {
		return fmt.Errorf("a wait of %v would pass the deadline", d)
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// bodies opens request bodies that read one payload: the request's, and more if the
// client asks (Request.GetBody: to follow a redirect, or to send again on a new
// connection). The transport may read a body after Client.Do returns
// (http.RoundTripper's contract), so the payload's buffer may be reused only after wait.
type bodies struct {
	payload  []byte
	unclosed sync.WaitGroup
}

// open returns a new body reading the payload.
func (b *bodies) open() (io.ReadCloser, error) {
	b.unclosed.Add(1)
	r := &body{unclosed: &b.unclosed}
	r.Reset(b.payload)
	return r, nil
}

// wait returns once every body opened is closed. The client opens none after Do
// returns.
func (b *bodies) wait() {
	b.unclosed.Wait()
}

// body is a request body that reads a payload and tells bodies when it is closed.
type body struct {
	bytes.Reader
	unclosed *sync.WaitGroup
	closed   sync.Once
}

// Close marks the body closed; the transport may call it more than once.
func (r *body) Close() error {
	r.closed.Do(r.unclosed.Done)
	return nil
}
