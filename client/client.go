package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/dtc-project/dtc/coordinator"
)

// View is a transaction as the coordinator shows it (the API's JSON shape).
type View = coordinator.View

// ParticipantView is one participant's part in a View.
type ParticipantView = coordinator.ParticipantView

// The states a View may show; only StateCommitted and StateAborted are outcomes.
const (
	StatePreparing  = coordinator.StatePreparing
	StateCommitting = coordinator.StateCommitting
	StateAborting   = coordinator.StateAborting
	StateCommitted  = coordinator.StateCommitted
	StateAborted    = coordinator.StateAborted
)

// Participant names one participant by its prepare URL, with an optional JSON payload
// passed to its prepare.
type Participant struct {
	URL     string
	Payload json.RawMessage
}

// Request asks for one transaction.
type Request struct {
	// ID is optional. A client-chosen id makes the call idempotent (the same id answers
	// the same transaction), and lets the client retry it safely.
	ID           string
	Participants []Participant
	// PrepareTimeout overrides the coordinator's default prepare deadline; zero means
	// the default. It travels in milliseconds.
	PrepareTimeout time.Duration
}

// MarshalJSON writes the API's body: each participant is a plain URL string, or an
// object {"url","payload"} when it has a payload.
func (r Request) MarshalJSON() ([]byte, error) {
	type obj struct {
		URL     string          `json:"url"`
		Payload json.RawMessage `json:"payload"`
	}
	body := struct {
		ID               string `json:"id,omitempty"`
		Participants     []any  `json:"participants"`
		PrepareTimeoutMs int64  `json:"prepare_timeout_ms,omitempty"`
	}{ID: r.ID, Participants: make([]any, len(r.Participants))}
	for i, p := range r.Participants {
		if len(p.Payload) == 0 {
			body.Participants[i] = p.URL
		} else {
			body.Participants[i] = obj{URL: p.URL, Payload: p.Payload}
		}
	}
	if r.PrepareTimeout > 0 {
		body.PrepareTimeoutMs = max(1, r.PrepareTimeout.Milliseconds())
	}
	return json.Marshal(body)
}

// ListOptions select a page of GET /v1/transactions.
type ListOptions struct {
	// State filters: preparing, committing, aborting, committed, aborted, in-doubt,
	// heuristic; empty for all.
	State string
	// After is the cursor: the Next of the previous page.
	After string
	// Limit is the page size; zero means the server's default (100).
	Limit int
}

// Page is one page of a listing. Next is the cursor for the following page; empty on
// the last one.
//
// From a node of a cluster a page covers the whole cluster; Partial is true when some
// of it could not be asked, and Unreachable says which nodes and shards, and why: the
// page lists the rest.
type Page struct {
	Transactions []View        `json:"transactions"`
	Next         string        `json:"next,omitempty"`
	Partial      bool          `json:"partial,omitempty"`
	Unreachable  []Unreachable `json:"unreachable,omitempty"`
}

// Unreachable is a part of a cluster a listing could not cover: a node that did not
// answer (Node set) or shards that had no owner (Node empty).
type Unreachable struct {
	Node   string `json:"node,omitempty"`
	Addr   string `json:"addr,omitempty"`
	Shards []int  `json:"shards"`
	Error  string `json:"error"`
}

// Options configure a Client. Zero values mean the defaults.
type Options struct {
	// HTTPClient sends the requests. Default: a client without a timeout of its own
	// (the context bounds each call; a waiting Submit lasts up to the prepare timeout)
	// that keeps up to 256 idle connections to each dtc: Go's default of 2 made most
	// calls of a concurrent user open a new connection.
	HTTPClient *http.Client
	// MaxRetries bounds the retries of one call. Default 3; negative: never retry.
	MaxRetries int
	// RetryWaitMax caps the wait a Retry-After header asks for. Default 10s.
	RetryWaitMax time.Duration
	// UserAgent is sent with every request. Default "dtc-client".
	UserAgent string
	// Token is the bearer token sent with every request (Authorization: Bearer), for a
	// coordinator that requires authentication (dtc serve --tokens). Empty: none. A
	// client certificate (mTLS) goes in HTTPClient's TLS configuration instead.
	Token string

	authorization string // "Bearer " + Token

	// Endpoints are more base URLs of the same coordinator cluster (dtc serve
	// --cluster): any node answers any request. When a node cannot be reached, the
	// client moves to the next one and sends the call there: always for a call that is
	// safe to repeat (a Get, a Submit with an id), and for a Submit without an id only
	// when the connection was refused (nothing was sent).
	Endpoints []string
}

// Client talks to a dtc coordinator's API. It is safe for concurrent use.
type Client struct {
	bases []*url.URL
	cur   atomic.Int64 // index in bases of the node calls go to
	hc    *http.Client
	o     Options
}

// New returns a client for the coordinator at baseURL (e.g. http://127.0.0.1:7070).
func New(baseURL string, o Options) (*Client, error) {
	var bases []*url.URL
	for _, b := range append([]string{baseURL}, o.Endpoints...) {
		u, err := parseBase(b)
		if err != nil {
			return nil, err
		}
		bases = append(bases, u)
	}
	if o.HTTPClient == nil {
		o.HTTPClient = &http.Client{}
		if dt, ok := http.DefaultTransport.(*http.Transport); ok {
			t := dt.Clone()
			t.MaxIdleConnsPerHost = 256
			t.MaxIdleConns = 0 // no limit across hosts: each dtc has its own bound
			o.HTTPClient.Transport = t
		}
	}
	if o.MaxRetries == 0 {
		o.MaxRetries = 3
	}
	if o.RetryWaitMax <= 0 {
		o.RetryWaitMax = 10 * time.Second
	}
	if o.UserAgent == "" {
		o.UserAgent = "dtc-client"
	}
	if strings.ContainsAny(o.Token, "\r\n") || strings.TrimSpace(o.Token) != o.Token {
		return nil, errors.New("client: the token has a line break or surrounding spaces (read from a file with a trailing newline?)")
	}
	if o.Token != "" {
		o.authorization = "Bearer " + o.Token
	}
	return &Client{bases: bases, hc: o.HTTPClient, o: o}, nil
}

func parseBase(baseURL string) (*url.URL, error) {
	u, err := url.Parse(baseURL)
	if err != nil {
		return nil, fmt.Errorf("client: coordinator URL %q: %w", baseURL, err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("client: coordinator URL %q must be an absolute http(s) URL", baseURL)
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("client: coordinator URL %q must not carry a query or fragment", baseURL)
	}
	u.Path = strings.TrimSuffix(u.Path, "/")
	return u, nil
}

// connError: the node could not be reached, or the connection broke before an answer.
type connError struct{ err error }

func (e *connError) Error() string { return e.err.Error() }
func (e *connError) Unwrap() error { return e.err }

// Submit runs a transaction and returns once its outcome is durable: the View's State
// is committed or aborted. An aborted transaction is not an error. If ctx ends first the
// transaction still runs to its end at the coordinator; Get tells its outcome.
func (c *Client) Submit(ctx context.Context, req Request) (View, error) {
	var v View
	err := c.call(ctx, http.MethodPost, "/v1/transactions", nil, req, req.ID != "", http.StatusOK, &v)
	return v, err
}

// SubmitAsync begins a transaction and returns at once, with the View as it stands
// (usually preparing). Poll Get for the outcome.
func (c *Client) SubmitAsync(ctx context.Context, req Request) (View, error) {
	var v View
	err := c.call(ctx, http.MethodPost, "/v1/transactions", url.Values{"wait": {"false"}}, req, req.ID != "", http.StatusAccepted, &v)
	return v, err
}

// Get returns one transaction. An *Error with Code CodeNotFound (IsNotFound) means the
// coordinator has no record of it: never begun, or finished and forgotten; a
// participant in doubt takes that as aborted.
func (c *Client) Get(ctx context.Context, id string) (View, error) {
	if id == "" {
		return View{}, errors.New("client: Get needs a transaction id")
	}
	var v View
	err := c.call(ctx, http.MethodGet, "/v1/transactions/"+url.PathEscape(id), nil, nil, true, http.StatusOK, &v)
	return v, err
}

// Forget ends a decided transaction whose phase 2 waits on a participant that is gone
// for good: each participant that has not acknowledged is marked with a heuristic
// hazard naming the reason. It needs an admin client; an undecided transaction is
// refused (409 undecided). Forgetting again answers the same.
func (c *Client) Forget(ctx context.Context, id, reason string) (View, error) {
	if id == "" {
		return View{}, errors.New("client: Forget needs a transaction id")
	}
	var v View
	err := c.call(ctx, http.MethodPost, "/v1/transactions/"+url.PathEscape(id)+"/forget", nil,
		map[string]string{"reason": reason}, true, http.StatusOK, &v)
	return v, err
}

// List returns one page of transactions, in id order.
func (c *Client) List(ctx context.Context, o ListOptions) (Page, error) {
	q := url.Values{}
	if o.State != "" {
		q.Set("state", o.State)
	}
	if o.After != "" {
		q.Set("after", o.After)
	}
	if o.Limit > 0 {
		q.Set("limit", strconv.Itoa(o.Limit))
	}
	var p Page
	err := c.call(ctx, http.MethodGet, "/v1/transactions", q, nil, true, http.StatusOK, &p)
	return p, err
}

// Ready returns nil when the coordinator answers /readyz with 200, or the *Error it
// answered.
func (c *Client) Ready(ctx context.Context) error {
	return c.call(ctx, http.MethodGet, "/readyz", nil, nil, false, http.StatusOK, nil)
}

// responseMaxBytes bounds what is read of an answer: a page of 1000 views of 32
// participants fits.
const responseMaxBytes = 64 << 20

// call sends one request and decodes the answer into out, retrying (if retryable) on
// 429 and 503 answers that carry Retry-After, at most MaxRetries times.
func (c *Client) call(ctx context.Context, method, path string, q url.Values, body any, retryable bool, want int, out any) error {
	var payload []byte
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return fmt.Errorf("client: encoding the request: %w", err)
		}
		payload = b
	}
	suffix := path // escaped already
	if len(q) > 0 {
		suffix += "?" + q.Encode()
	}
	failovers := 0
	for attempt := 0; ; attempt++ {
		i := c.cur.Load()
		u := c.bases[i%int64(len(c.bases))].String() + suffix
		err := c.once(ctx, method, u, payload, want, out)
		var ce *connError
		if errors.As(err, &ce) && failovers < len(c.bases)-1 && ctx.Err() == nil &&
			(retryable || errors.Is(err, syscall.ECONNREFUSED)) {
			failovers++
			c.cur.CompareAndSwap(i, i+1) // the next node, unless another call moved on already
			attempt--
			continue
		}
		var apiErr *Error
		if !retryable || attempt >= c.o.MaxRetries || !errors.As(err, &apiErr) || !apiErr.Temporary() {
			return err
		}
		wait := min(apiErr.RetryAfter, c.o.RetryWaitMax)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return err
		case <-t.C:
		}
	}
}

func (c *Client) once(ctx context.Context, method, u string, payload []byte, want int, out any) error {
	var rd io.Reader
	if payload != nil {
		rd = bytes.NewReader(payload)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return fmt.Errorf("client: %s %s: %w", method, u, err)
	}
	if payload != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", c.o.UserAgent)
	if c.o.authorization != "" {
		req.Header.Set("Authorization", c.o.authorization)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return &connError{fmt.Errorf("client: %s %s: %w", method, u, err)}
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, responseMaxBytes+1))
	if err != nil {
		return fmt.Errorf("client: %s %s: reading the answer: %w", method, u, err)
	}
	if len(data) > responseMaxBytes {
		return fmt.Errorf("client: %s %s: answer larger than %d bytes", method, u, responseMaxBytes)
	}
	if resp.StatusCode != want && (resp.StatusCode < 200 || resp.StatusCode > 299) {
		return parseError(resp, data)
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("client: %s %s: the answer does not parse: %w", method, u, err)
	}
	return nil
}
