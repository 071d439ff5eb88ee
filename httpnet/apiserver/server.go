package apiserver

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/otel/trace"

	"github.com/dtc-project/dtc/coordinator"
	"github.com/dtc-project/dtc/httpnet"
	"github.com/dtc-project/dtc/httpnet/internal/tracing"
	"github.com/dtc-project/dtc/httpnet/transport"
	"github.com/dtc-project/dtc/internal/jsonstr"
	"github.com/dtc-project/dtc/protocol"
)

// Error codes of the API: the "code" in {"error":{"code","message"}}. They are stable;
// the client package mirrors them.
const (
	CodeMalformedJSON    = "malformed_json"     // 400: the body is not one JSON object
	CodeUnknownField     = "unknown_field"      // 400: a field the API does not know
	CodeInvalid          = "invalid_request"    // 400: a field has a bad value (the message names it)
	CodeBodyTooLarge     = "body_too_large"     // 413
	CodeNotFound         = "not_found"          // 404: no such transaction (presumed aborted)
	CodeNoRoute          = "no_route"           // 404: no such endpoint (never means "aborted")
	CodeMethodNotAllowed = "method_not_allowed" // 405
	CodeConflict         = "conflict"           // 409: the id is used by a different transaction
	CodeBusy             = "busy"               // 429: too many transactions in flight; see Retry-After
	CodeRecovering       = "recovering"         // 503: still resolving what the log held
	CodeLogUnavailable   = "log_unavailable"    // 503: the log refused the write (disk full)
	CodeShuttingDown     = "shutting_down"      // 503
	CodeInternal         = "internal"           // 500
)

// Error codes of issue 12: authentication, the participant allowlist, slow bodies.
const (
	CodeUnauthorized          = "unauthorized"            // 401: no credentials, or unknown ones; see WWW-Authenticate
	CodeForbidden             = "forbidden"               // 403: the client's role does not allow the request
	CodeParticipantNotAllowed = "participant_not_allowed" // 400: a participant URL outside the allowlist
	CodeRequestTimeout        = "request_timeout"         // 408: the body came too slowly (the server's read timeout)
	CodeUndecided             = "undecided"               // 409: forget asked of a transaction not decided yet
)

// ServerOptions configure the API handler. Zero values mean the defaults.
type ServerOptions struct {
	// InflightMax bounds the POST /v1/transactions requests being served at once; one
	// more is answered 429. Default 8192.
	InflightMax int
	// BodyMaxBytes bounds a request body; a larger one is answered 413. Default 4 MiB.
	BodyMaxBytes int64
	// ListLimitMax bounds the page size of GET /v1/transactions. Default 1000.
	ListLimitMax int
	// RetryAfter is what 429 and 503 answers put in Retry-After. Default 1s.
	RetryAfter time.Duration
	// Logger gets one line per request that failed on the server's side. Default
	// slog.Default().
	Logger *slog.Logger
	// Auth authenticates clients (bearer tokens, client certificates) and the
	// requests are authorized by role: submit begins transactions and reads its own,
	// read reads everything, admin does everything. Nil: no authentication, every
	// request is allowed (dtc serve allows that on loopback only, or with
	// --insecure). /healthz and /readyz are always open, and so is a participant's
	// query by the id it was told (View.TxnID: it holds a 64-bit random nonce), which
	// is answered with the id and the state only.
	Auth *Auth
	// MetricsAuth: with Auth, /metrics needs a read or admin client too. Default: open.
	MetricsAuth bool
	// Participants are the participants a transaction may name (dtc serve
	// --allow-participant); any other is answered 400 participant_not_allowed before
	// a connection is made. Nil: this machine only (DefaultAllowRules).
	Participants *transport.Allowlist
}

func (o *ServerOptions) setDefaults() {
	if o.InflightMax <= 0 {
		o.InflightMax = 8192
	}
	if o.BodyMaxBytes <= 0 {
		o.BodyMaxBytes = 4 << 20
	}
	if o.ListLimitMax <= 0 {
		o.ListLimitMax = 1000
	}
	if o.RetryAfter <= 0 {
		o.RetryAfter = time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
}

// listLimitDefault is the page size of GET /v1/transactions without ?limit.
const listLimitDefault = 100

// Server is the coordinator's HTTP API (DESIGN §4) over a Runtime.
type Server struct {
	rt      *httpnet.Runtime
	o       ServerOptions
	lim     coordinator.Config   // rt's engines' (Runtime.EngineConfig)
	allow   *transport.Allowlist // o.Participants, or the default
	slots   chan struct{}        // one per POST /v1/transactions being served
	metrics http.Handler

	httpRequests *prometheus.CounterVec // dtc_http_requests_total: route, code
	rejected     *prometheus.CounterVec // dtc_api_errors_total: code
}

var _ http.Handler = (*Server)(nil)

// NewServer returns the API handler for rt.
func NewServer(rt *httpnet.Runtime, o ServerOptions) *Server {
	o.setDefaults()
	allow := o.Participants
	if allow == nil {
		allow, _ = transport.NewAllowlist() // the default rules parse
	}
	reg := rt.Metrics().Registry()
	return &Server{
		rt:    rt,
		o:     o,
		lim:   rt.EngineConfig(),
		allow: allow,
		slots: make(chan struct{}, o.InflightMax),
		metrics: promhttp.HandlerFor(reg, promhttp.HandlerOpts{
			ErrorHandling: promhttp.ContinueOnError,
		}),
		httpRequests: registered(reg, newHTTPRequests()),
		rejected:     registered(reg, newRejected()),
	}
}

// newHTTPRequests is dtc_http_requests_total, by route and status code.
func newHTTPRequests() *prometheus.CounterVec {
	return prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "dtc_http_requests_total",
		Help: "API requests answered, by route and status code.",
	}, []string{"route", "code"})
}

// newRejected is dtc_api_errors_total, by error code.
func newRejected() *prometheus.CounterVec {
	return prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "dtc_api_errors_total",
		Help: "API requests answered with an error, by error code.",
	}, []string{"code"})
}

// registered registers c in reg and returns it, or returns the same counter that an
// earlier Server of the runtime registered: every Server of a runtime counts into one.
func registered(reg *prometheus.Registry, c *prometheus.CounterVec) *prometheus.CounterVec {
	if err := reg.Register(c); err != nil {
		var dup prometheus.AlreadyRegisteredError
		if errors.As(err, &dup) {
			return dup.ExistingCollector.(*prometheus.CounterVec)
		}
		panic(fmt.Sprintf("apiserver: registering %v", err))
	}
	return c
}

// ErrorBody is the body of every error answer: {"error":{"code","message"}}.
type ErrorBody struct {
	Error ErrorDetail `json:"error"`
}

// ErrorDetail says what went wrong: Code is stable and machine-readable (Code*
// constants), Message is for people and names the field at fault.
type ErrorDetail struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// ListResponse is the body of GET /v1/transactions. Next is the cursor for the next
// page (pass it as ?after=); empty on the last page. On a cluster node the listing
// covers the whole cluster (cluster_list.go); Partial is true when part of it could not
// be asked, and Unreachable says which part and why.
type ListResponse struct {
	Transactions []coordinator.View `json:"transactions"`
	Next         string             `json:"next,omitempty"`
	Partial      bool               `json:"partial,omitempty"`
	Unreachable  []ListUnreachable  `json:"unreachable,omitempty"`
}

// statusRecorder remembers the status code, for the request counter.
type statusRecorder struct {
	http.ResponseWriter
	code int
}

func (w *statusRecorder) WriteHeader(code int) {
	if w.code == 0 {
		w.code = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusRecorder) Write(b []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// ServeHTTP routes the API.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rec := &statusRecorder{ResponseWriter: w}
	route := s.route(rec, r)
	code := rec.code
	if code == 0 {
		code = 499 // the client went away before an answer was written
	}
	s.httpRequests.WithLabelValues(route, codeLabel(code)).Inc()
}

// codeLabels are the status codes 100..599 as labels, made once.
var codeLabels = func() (l [600]string) {
	for code := 100; code < len(l); code++ {
		l[code] = strconv.Itoa(code)
	}
	return l
}()

// codeLabel is strconv.Itoa(code), without making a string for a usual status code.
func codeLabel(code int) string {
	if code >= 100 && code < len(codeLabels) {
		return codeLabels[code]
	}
	return strconv.Itoa(code)
}

func (s *Server) route(w http.ResponseWriter, r *http.Request) string {
	path := r.URL.Path
	switch {
	case path == "/v1/transactions":
		switch r.Method {
		case http.MethodPost:
			if p, ok := s.authorize(w, r, "begin transactions", RoleSubmit, RoleAdmin); ok {
				s.submit(w, r, p)
			}
		case http.MethodGet, http.MethodHead:
			if p, ok := s.authorize(w, r, "list transactions", RoleSubmit, RoleRead, RoleAdmin); ok {
				s.list(w, r, p)
			}
		default:
			s.methodNotAllowed(w, r, "GET, HEAD, POST")
		}
		return "/v1/transactions"
	case path == "/v1/waits":
		if r.Method != http.MethodPost {
			s.methodNotAllowed(w, r, "POST")
		} else {
			s.waits(w, r)
		}
		return path
	case strings.HasPrefix(path, "/v1/transactions/") && strings.HasSuffix(path, "/abort"):
		id := strings.TrimSuffix(strings.TrimPrefix(path, "/v1/transactions/"), "/abort")
		if id == "" || strings.Contains(id, "/") {
			s.fail(w, http.StatusNotFound, CodeNoRoute, fmt.Sprintf("no route %s: use /v1/transactions/{id}/abort", path))
			return "other"
		}
		if r.Method != http.MethodPost {
			s.methodNotAllowed(w, r, "POST")
		} else {
			s.abortTxn(w, r, id)
		}
		return "/v1/transactions/{id}/abort"
	case strings.HasPrefix(path, "/v1/transactions/") && strings.HasSuffix(path, "/forget"):
		id := strings.TrimSuffix(strings.TrimPrefix(path, "/v1/transactions/"), "/forget")
		if id == "" || strings.Contains(id, "/") {
			s.fail(w, http.StatusNotFound, CodeNoRoute, fmt.Sprintf("no route %s: use /v1/transactions/{id}/forget", path))
			return "other"
		}
		if r.Method != http.MethodPost {
			s.methodNotAllowed(w, r, "POST")
		} else if _, ok := s.authorize(w, r, "forget transactions", RoleAdmin); ok {
			s.forget(w, r, id)
		}
		return "/v1/transactions/{id}/forget"
	case strings.HasPrefix(path, "/v1/transactions/"):
		id := strings.TrimPrefix(path, "/v1/transactions/")
		if id == "" || strings.Contains(id, "/") {
			s.fail(w, http.StatusNotFound, CodeNoRoute, fmt.Sprintf("no route %s: use /v1/transactions/{id}", path))
			return "other"
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			s.methodNotAllowed(w, r, "GET, HEAD")
		} else {
			s.getAuthorized(w, r, id)
		}
		return "/v1/transactions/{id}"
	case path == "/metrics":
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			s.methodNotAllowed(w, r, "GET, HEAD")
		} else if !s.o.MetricsAuth {
			s.metrics.ServeHTTP(w, r)
		} else if _, ok := s.authorize(w, r, "read metrics", RoleRead, RoleAdmin); ok {
			s.metrics.ServeHTTP(w, r)
		}
		return path
	case path == "/healthz":
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			s.methodNotAllowed(w, r, "GET, HEAD")
		} else {
			writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
		}
		return path
	case path == "/readyz":
		switch {
		case r.Method != http.MethodGet && r.Method != http.MethodHead:
			s.methodNotAllowed(w, r, "GET, HEAD")
		case s.rt.Closed():
			s.fail(w, http.StatusServiceUnavailable, CodeShuttingDown, "the coordinator is shutting down")
		case !s.rt.Ready():
			w.Header().Set("Retry-After", s.retryAfter())
			s.fail(w, http.StatusServiceUnavailable, CodeRecovering,
				"the coordinator is still resolving transactions found undecided in its log")
		default:
			writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
		}
		return path
	}
	if route, ok := s.routeObs(w, r); ok {
		return route
	}
	s.fail(w, http.StatusNotFound, CodeNoRoute, fmt.Sprintf("no route %s", path))
	return "other"
}

// submitBody is the body of POST /v1/transactions. Participants are decoded one by one
// (each is a URL string or an object) so that an error can name its index.
type submitBody struct {
	ID               string            `json:"id"`
	Participants     []json.RawMessage `json:"participants"`
	PrepareTimeoutMs *int64            `json:"prepare_timeout_ms"`
}

type participantObject struct {
	URL     *string         `json:"url"`
	Payload json.RawMessage `json:"payload"`
}

func (s *Server) submit(w http.ResponseWriter, r *http.Request, who Principal) {
	wait := true
	var query url.Values // parsed only when there is one
	if r.URL.RawQuery != "" {
		query = r.URL.Query()
	}
	for k, vs := range query {
		switch k {
		case "wait":
			b, err := strconv.ParseBool(vs[len(vs)-1])
			if err != nil {
				s.fail(w, http.StatusBadRequest, CodeInvalid, fmt.Sprintf("query parameter wait: %q is not true or false", vs[len(vs)-1]))
				return
			}
			wait = b
		default:
			s.fail(w, http.StatusBadRequest, CodeInvalid, fmt.Sprintf("unknown query parameter %q: POST /v1/transactions takes only wait", k))
			return
		}
	}
	var body submitBody
	if !s.decode(w, r, &body) {
		return
	}
	req, status, code, msg := parseSubmit(&body, s.allow, &s.lim)
	if status != 0 {
		s.fail(w, status, code, msg)
		return
	}
	req.Owner = who.Name
	// The global cap is taken only once the body is read: a client that trickles its
	// body (bounded by the server's ReadTimeout) holds a connection, never a slot.
	select {
	case s.slots <- struct{}{}:
		defer func() { <-s.slots }()
	default:
		w.Header().Set("Retry-After", s.retryAfter())
		s.fail(w, http.StatusTooManyRequests, CodeBusy,
			fmt.Sprintf("%d requests are being served (the server's in-flight limit): retry later", s.o.InflightMax))
		return
	}
	ctx := r.Context()
	if tr := s.rt.Tracing(); tr != nil {
		if req.ID == "" {
			req.ID = httpnet.NewTxnID() // as Submit would: the trace's children find it by its id
		}
		var (
			span       trace.Span
			remembered bool
			v          coordinator.View
			err        error
		)
		ctx, span, remembered = tr.StartTxn(r, req.ID)
		defer func() {
			if remembered && err != nil && tracing.BeganNot(err) {
				tr.Forget(req.ID)
			}
			tr.EndTxn(span, req.ID, &v, err)
		}()
		v, err = s.rt.Submit(ctx, req, wait)
		s.answerSubmit(w, r, &v, err, wait)
		return
	}
	v, err := s.rt.Submit(ctx, req, wait)
	s.answerSubmit(w, r, &v, err, wait)
}

// answerSubmit answers POST /v1/transactions with what Runtime.Submit returned.
func (s *Server) answerSubmit(w http.ResponseWriter, r *http.Request, v *coordinator.View, err error, wait bool) {
	if err != nil {
		if r.Context().Err() != nil {
			return // the client went away; a submitted transaction still runs to its end
		}
		s.failErr(w, err)
		return
	}
	if !wait {
		w.Header().Set("Location", "/v1/transactions/"+url.PathEscape(v.ID))
		writeView(w, http.StatusAccepted, v)
		return
	}
	writeView(w, http.StatusOK, v)
}

// parseSubmit turns the body into a Request. Participant URLs are normalised
// (NormalizeParticipantURL), checked against allow, and refused when two name the same
// participant. What it cannot judge (limits) the engine checks, before anything
// reaches the log.
func parseSubmit(b *submitBody, allow *transport.Allowlist, lim *coordinator.Config) (req coordinator.Request, status int, code, msg string) {
	req.ID = b.ID
	if req.ID == "." || req.ID == ".." {
		return req, http.StatusBadRequest, CodeInvalid, fmt.Sprintf("id: %q cannot be used in a URL path (/v1/transactions/%s): choose another", req.ID, req.ID)
	}
	if b.Participants == nil {
		return req, http.StatusBadRequest, CodeInvalid, "participants: missing: name at least one participant"
	}
	req.Participants = make([]coordinator.ParticipantSpec, len(b.Participants))
	for i, raw := range b.Participants {
		field := func() string { return fmt.Sprintf("participants[%d]", i) } // for errors only
		trimmed := bytes.TrimSpace(raw)
		switch {
		case len(trimmed) > 0 && trimmed[0] == '"':
			if u, ok := plainJSONString(trimmed); ok {
				req.Participants[i].URL = u
			} else if err := json.Unmarshal(trimmed, &req.Participants[i].URL); err != nil {
				return req, http.StatusBadRequest, CodeMalformedJSON, fmt.Sprintf("%s: %v", field(), err)
			}
		case len(trimmed) > 0 && trimmed[0] == '{':
			var p participantObject
			dec := json.NewDecoder(bytes.NewReader(trimmed))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&p); err != nil {
				if f, ok := unknownField(err); ok {
					return req, http.StatusBadRequest, CodeUnknownField,
						fmt.Sprintf("%s: unknown field %s: a participant object has url and payload", field(), f)
				}
				return req, http.StatusBadRequest, CodeInvalid, fmt.Sprintf("%s: %s", field(), describeJSONError(err))
			}
			if p.URL == nil {
				return req, http.StatusBadRequest, CodeInvalid, fmt.Sprintf("%s.url: missing", field())
			}
			req.Participants[i].URL = *p.URL
			if len(p.Payload) > 0 && !bytes.Equal(bytes.TrimSpace(p.Payload), []byte("null")) {
				req.Participants[i].Payload = p.Payload
			}
		default:
			return req, http.StatusBadRequest, CodeInvalid,
				fmt.Sprintf("%s: expected a prepare URL string or an object {\"url\",\"payload\"}, got %s", field(), jsonKind(trimmed))
		}
	}
	if len(req.Participants) > lim.ParticipantsMax {
		return req, 0, "", "" // the engine refuses it, with its words
	}
	if status, code, msg := checkParticipants(req.Participants, allow, lim.URLMaxBytes); status != 0 {
		return req, status, code, msg
	}
	if b.PrepareTimeoutMs != nil {
		ms := *b.PrepareTimeoutMs
		if ms > math.MaxInt64/int64(time.Millisecond) {
			return req, http.StatusBadRequest, CodeInvalid, fmt.Sprintf("prepare_timeout_ms: %d is absurdly large", ms)
		}
		if ms == 0 {
			return req, http.StatusBadRequest, CodeInvalid, "prepare_timeout_ms: must be positive (leave it out for the default)"
		}
		req.PrepareTimeout = time.Duration(ms) * time.Millisecond
	}
	return req, 0, "", ""
}

// participantsKeysMax: up to this many participants, duplicates are found by
// comparing every pair, without a map.
const participantsKeysMax = 8

// checkParticipants normalises every participant's URL in place and refuses a URL
// that is malformed or not allowed, and two that name the same participant (the same
// key: dtc would send both's commits to one endpoint).
func checkParticipants(ps []coordinator.ParticipantSpec, allow *transport.Allowlist, urlMaxBytes int) (status int, code, msg string) {
	var (
		small [participantsKeysMax]string
		keys  = small[:0]
		seen  map[string]int
	)
	if len(ps) > participantsKeysMax {
		seen = make(map[string]int, len(ps))
	}
	for i := range ps {
		if len(ps[i].URL) > urlMaxBytes {
			return http.StatusBadRequest, CodeInvalid, fmt.Sprintf("participants[%d].url: %d bytes exceed the limit of %d (URLMaxBytes)",
				i, len(ps[i].URL), urlMaxBytes)
		}
		p, err := transport.NormalizeParticipantURL(ps[i].URL)
		if err != nil {
			return http.StatusBadRequest, CodeInvalid, fmt.Sprintf("participants[%d].url: %v", i, err)
		}
		if err := allow.Check(p); err != nil {
			return http.StatusBadRequest, CodeParticipantNotAllowed,
				fmt.Sprintf("participants[%d].url: %s", i, strings.TrimPrefix(err.Error(), "httpnet: "))
		}
		j := -1
		if seen != nil {
			if k, dup := seen[p.Key]; dup {
				j = k
			} else {
				seen[p.Key] = i
			}
		} else {
			j = slices.Index(keys, p.Key)
			keys = append(keys, p.Key)
		}
		if j >= 0 {
			return http.StatusBadRequest, CodeInvalid, fmt.Sprintf(
				"participants[%d].url: %q is the same participant as participants[%d] (%q): both are %s… once normalised, and dtc derives commit and rollback from everything before the last path element",
				i, ps[i].URL, j, ps[j].URL, p.Key)
		}
		ps[i].URL = p.URL
	}
	return 0, "", ""
}

// plainJSONString returns what json.Unmarshal makes of b when b is a JSON string of
// printable ASCII without escapes: its bytes between the quotes. ok is false for any
// other b, which is json.Unmarshal's.
func plainJSONString(b []byte) (s string, ok bool) {
	if len(b) < 2 || b[0] != '"' || b[len(b)-1] != '"' {
		return "", false
	}
	inner := b[1 : len(b)-1]
	for _, c := range inner {
		if c < 0x20 || c > 0x7e || c == '"' || c == '\\' {
			return "", false
		}
	}
	return string(inner), true
}

func jsonKind(b []byte) string {
	if len(b) == 0 {
		return "nothing"
	}
	switch b[0] {
	case '[':
		return "an array"
	case 't', 'f':
		return "a boolean"
	case 'n':
		return "null"
	}
	return "a number"
}

func (s *Server) get(w http.ResponseWriter, r *http.Request, id string, who Principal, wireOnly bool) {
	if len(r.URL.RawQuery) > 0 {
		s.fail(w, http.StatusBadRequest, CodeInvalid, "GET /v1/transactions/{id} takes no query parameters")
		return
	}
	if len(id) > 1024 {
		s.fail(w, http.StatusNotFound, CodeNotFound, fmt.Sprintf("no transaction with a %d-byte id", len(id)))
		return
	}
	v, err := s.rt.Get(r.Context(), id)
	if err != nil {
		if r.Context().Err() != nil {
			return
		}
		if errors.Is(err, coordinator.ErrNotFound) {
			s.fail(w, http.StatusNotFound, CodeNotFound,
				fmt.Sprintf("transaction %q is not known: never begun, or finished and forgotten (a participant in doubt takes this as aborted)", id))
			return
		}
		s.failErr(w, err)
		return
	}
	switch {
	case wireOnly:
		writeBody(w, http.StatusOK, protocol.MarshalAnswer(protocol.CoordinatorTxn{ID: v.ID, TxnID: v.TxnID, State: v.State, Priority: v.Priority}))
		return
	case who.Role == RoleSubmit && v.Owner != who.Name:
		s.fail(w, http.StatusForbidden, CodeForbidden,
			fmt.Sprintf("client %q (role submit) may read only the transactions it began", who.Name))
		return
	}
	writeView(w, http.StatusOK, &v)
}

// forgetBody is the body of POST /v1/transactions/{id}/forget.
type forgetBody struct {
	Reason string `json:"reason"`
}

// forgetReasonMaxBytes bounds the reason an operator gives, which goes to the log.
const forgetReasonMaxBytes = 512

// forget ends a decided transaction whose phase 2 waits on a participant that is gone
// for good (coordinator.Engine.Forget): an admin's call, with a reason.
func (s *Server) forget(w http.ResponseWriter, r *http.Request, id string) {
	var body forgetBody
	if !s.decode(w, r, &body) {
		return
	}
	if body.Reason == "" {
		s.fail(w, http.StatusBadRequest, CodeInvalid, "reason: missing: say why the transaction is forgotten (it goes to the log)")
		return
	}
	if len(body.Reason) > forgetReasonMaxBytes {
		s.fail(w, http.StatusBadRequest, CodeInvalid, fmt.Sprintf("reason: %d bytes, at most %d", len(body.Reason), forgetReasonMaxBytes))
		return
	}
	v, err := s.rt.Forget(r.Context(), id, body.Reason)
	switch {
	case err == nil:
		writeView(w, http.StatusOK, &v)
	case r.Context().Err() != nil:
	case errors.Is(err, coordinator.ErrNotFound):
		s.fail(w, http.StatusNotFound, CodeNotFound, fmt.Sprintf("transaction %q is not known", id))
	case errors.Is(err, coordinator.ErrUndecided):
		s.fail(w, http.StatusConflict, CodeUndecided, trimPkg(err)+": only a decided transaction can be forgotten")
	default:
		s.failErr(w, err)
	}
}

func (s *Server) list(w http.ResponseWriter, r *http.Request, who Principal) {
	var (
		filter, after string
		limit         = listLimitDefault
	)
	for k, vs := range r.URL.Query() {
		v := vs[len(vs)-1]
		switch k {
		case "state":
			filter = v
			if err := coordinator.CheckFilter(v); err != nil {
				s.fail(w, http.StatusBadRequest, CodeInvalid, "query parameter state: "+err.Error())
				return
			}
		case "after":
			after = v
		case "limit":
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 || n > s.o.ListLimitMax {
				s.fail(w, http.StatusBadRequest, CodeInvalid,
					fmt.Sprintf("query parameter limit: %q is not a number between 1 and %d", v, s.o.ListLimitMax))
				return
			}
			limit = n
		default:
			s.fail(w, http.StatusBadRequest, CodeInvalid,
				fmt.Sprintf("unknown query parameter %q: GET /v1/transactions takes state, after and limit", k))
			return
		}
	}
	vs, next, err := s.rt.List(r.Context(), filter, after, limit)
	if err != nil {
		if r.Context().Err() != nil {
			return
		}
		s.failErr(w, err)
		return
	}
	if who.Role == RoleSubmit { // its own only: the page may come out shorter
		vs = slices.DeleteFunc(vs, func(v coordinator.View) bool { return v.Owner != who.Name })
	}
	if vs == nil {
		vs = []coordinator.View{}
	}
	writeJSON(w, http.StatusOK, ListResponse{Transactions: vs, Next: next})
}

// decode reads one JSON object into dst: unknown fields, trailing data and bodies over
// the limit are refused. When it returns false it has answered the request.
func (s *Server) decode(w http.ResponseWriter, r *http.Request, dst any) bool {
	body := http.MaxBytesReader(w, r.Body, s.o.BodyMaxBytes)
	dec := json.NewDecoder(body)
	dec.DisallowUnknownFields()
	err := dec.Decode(dst)
	if err == nil {
		if _, terr := dec.Token(); terr != io.EOF {
			err = errTrailing
			var tooLarge *http.MaxBytesError
			if errors.As(terr, &tooLarge) {
				err = terr
			}
		}
	}
	if err == nil {
		return true
	}
	var (
		tooLarge *http.MaxBytesError
		netErr   net.Error
	)
	switch {
	case errors.As(err, &tooLarge):
		s.fail(w, http.StatusRequestEntityTooLarge, CodeBodyTooLarge,
			fmt.Sprintf("request body larger than %d bytes", s.o.BodyMaxBytes))
	case errors.As(err, &netErr) && netErr.Timeout():
		w.Header().Set("Connection", "close")
		s.fail(w, http.StatusRequestTimeout, CodeRequestTimeout,
			"the request body did not arrive within the server's read timeout")
	case errors.As(err, &netErr):
		return false // the connection broke: nobody to answer
	case errors.Is(err, errTrailing):
		s.fail(w, http.StatusBadRequest, CodeMalformedJSON, "unexpected data after the JSON object")
	default:
		if f, ok := unknownField(err); ok {
			s.fail(w, http.StatusBadRequest, CodeUnknownField,
				fmt.Sprintf("unknown field %s: the body has id, participants and prepare_timeout_ms", f))
			return false
		}
		code := CodeMalformedJSON
		var typ *json.UnmarshalTypeError
		if errors.As(err, &typ) {
			code = CodeInvalid
		}
		s.fail(w, http.StatusBadRequest, code, describeJSONError(err))
	}
	return false
}

var errTrailing = errors.New("trailing data")

// unknownField extracts the name from encoding/json's unknown-field error.
func unknownField(err error) (string, bool) {
	return strings.CutPrefix(err.Error(), "json: unknown field ")
}

// describeJSONError words a decoding error for the client, naming the field if it can.
func describeJSONError(err error) string {
	var (
		syntax *json.SyntaxError
		typ    *json.UnmarshalTypeError
	)
	switch {
	case errors.Is(err, io.EOF):
		return "empty body: expected a JSON object"
	case errors.Is(err, io.ErrUnexpectedEOF):
		return "the body ends in the middle of the JSON object"
	case errors.As(err, &syntax):
		return fmt.Sprintf("invalid JSON at byte %d: %v", syntax.Offset, syntax)
	case errors.As(err, &typ):
		if typ.Field != "" {
			return fmt.Sprintf("%s: expected %s, got JSON %s", typ.Field, typeName(typ.Type.String()), typ.Value)
		}
		return fmt.Sprintf("expected a JSON object, got JSON %s", typ.Value)
	}
	return err.Error()
}

func typeName(goType string) string {
	switch goType {
	case "string":
		return "a string"
	case "int64":
		return "an integer"
	case "[]json.RawMessage":
		return "an array"
	}
	return goType
}

func (s *Server) retryAfter() string {
	return strconv.Itoa(int(max(1, (s.o.RetryAfter+time.Second-1)/time.Second)))
}

// failErr answers an error from the runtime with its status.
func (s *Server) failErr(w http.ResponseWriter, err error) {
	var reqErr *coordinator.RequestError
	switch {
	case errors.As(err, &reqErr):
		s.fail(w, http.StatusBadRequest, CodeInvalid, reqErr.Field+": "+reqErr.Reason)
	case errors.Is(err, coordinator.ErrInvalidRequest):
		s.fail(w, http.StatusBadRequest, CodeInvalid, err.Error())
	case errors.Is(err, coordinator.ErrConflict):
		s.fail(w, http.StatusConflict, CodeConflict, trimPkg(err))
	case errors.Is(err, coordinator.ErrBusy):
		w.Header().Set("Retry-After", s.retryAfter())
		s.fail(w, http.StatusTooManyRequests, CodeBusy, trimPkg(err))
	case errors.Is(err, coordinator.ErrRecovering):
		w.Header().Set("Retry-After", s.retryAfter())
		s.fail(w, http.StatusServiceUnavailable, CodeRecovering,
			"the coordinator is still resolving transactions found undecided in its log: retry later")
	case errors.Is(err, coordinator.ErrLogUnavailable):
		// The log's error names files of the server (and its disk's state): for its
		// log, not for clients.
		s.o.Logger.Warn("api: the log refused a write", "error", err)
		w.Header().Set("Retry-After", s.retryAfter())
		s.fail(w, http.StatusServiceUnavailable, CodeLogUnavailable,
			"the coordinator's log refused the write (a full disk?): retry later; the coordinator's log says more")
	case errors.Is(err, httpnet.ErrNotOwner): // a cluster node; see cluster.go
		w.Header().Set("Retry-After", s.retryAfter())
		s.fail(w, http.StatusServiceUnavailable, CodeNotOwner, err.Error()+": retry")
	case errors.Is(err, httpnet.ErrStopped):
		s.fail(w, http.StatusServiceUnavailable, CodeShuttingDown,
			"the coordinator is shutting down; a transaction already begun resumes after the restart")
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		w.Header().Set("Retry-After", s.retryAfter())
		s.fail(w, http.StatusServiceUnavailable, CodeBusy, "the coordinator did not get to the request in time")
	default:
		s.o.Logger.Error("api: unexpected error", "error", err)
		s.fail(w, http.StatusInternalServerError, CodeInternal, "internal error: the coordinator's log says more")
	}
}

func trimPkg(err error) string { return strings.TrimPrefix(err.Error(), "coordinator: ") }

func (s *Server) methodNotAllowed(w http.ResponseWriter, r *http.Request, allow string) {
	w.Header().Set("Allow", allow)
	s.fail(w, http.StatusMethodNotAllowed, CodeMethodNotAllowed, fmt.Sprintf("%s does not take %s: use %s", r.URL.Path, r.Method, allow))
}

func (s *Server) fail(w http.ResponseWriter, status int, code, msg string) {
	s.rejected.WithLabelValues(code).Inc()
	writeJSON(w, status, ErrorBody{Error: ErrorDetail{Code: code, Message: msg}})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	data, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("httpnet: encoding %T: %v", v, err))
	}
	writeBody(w, status, append(data, '\n'))
}

// writeView is writeJSON for a transaction's view, with its JSON appended by
// appendView rather than made by json.Marshal's reflection.
func writeView(w http.ResponseWriter, status int, v *coordinator.View) {
	b, ok := appendView(make([]byte, 0, 512), v)
	if !ok {
		writeJSON(w, status, *v)
		return
	}
	writeBody(w, status, append(b, '\n'))
}

// writeBody answers with a JSON body.
func writeBody(w http.ResponseWriter, status int, body []byte) {
	// As Header.Set would, the keys being canonical already, with one array for both
	// values.
	vals := [...]string{"application/json", "no-store"}
	h := w.Header()
	h["Content-Type"], h["Cache-Control"] = vals[0:1:1], vals[1:2:2]
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// appendView appends v as json.Marshal writes it (TestAppendViewIsMarshal holds it
// to that, field by field). ok is false for what only json.Marshal may judge: a time
// that RFC 3339 cannot represent, which it refuses.
func appendView(b []byte, v *coordinator.View) (_ []byte, ok bool) {
	b = append(b, `{"id":`...)
	b = jsonstr.Append(b, v.ID)
	b = append(b, `,"txn_id":`...)
	b = jsonstr.Append(b, v.TxnID)
	b = append(b, `,"state":`...)
	b = jsonstr.Append(b, v.State)
	if v.Reason != "" {
		b = append(b, `,"reason":`...)
		b = jsonstr.Append(b, v.Reason)
	}
	if v.AbortCause != "" {
		b = append(b, `,"abort_cause":`...)
		b = jsonstr.Append(b, string(v.AbortCause))
	}
	if v.Priority != 0 {
		b = append(b, `,"priority":`...)
		b = strconv.AppendInt(b, v.Priority, 10)
	}
	b = append(b, `,"participants":`...)
	if v.Participants == nil {
		b = append(b, "null"...)
	} else {
		b = append(b, '[')
		for i := range v.Participants {
			p := &v.Participants[i]
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, `{"url":`...)
			b = jsonstr.Append(b, p.URL)
			if p.Vote != "" {
				b = append(b, `,"vote":`...)
				b = jsonstr.Append(b, string(p.Vote))
			}
			if p.Reason != "" {
				b = append(b, `,"reason":`...)
				b = jsonstr.Append(b, p.Reason)
			}
			b = append(b, `,"acked":`...)
			b = strconv.AppendBool(b, p.Acked)
			if p.Hazard != "" {
				b = append(b, `,"hazard":`...)
				b = jsonstr.Append(b, p.Hazard)
			}
			if p.LastSaid != "" {
				b = append(b, `,"last_said":`...)
				b = jsonstr.Append(b, p.LastSaid)
			}
			if p.LastSaidAt != nil {
				b = append(b, `,"last_said_at":`...)
				if b, ok = appendJSONTime(b, *p.LastSaidAt); !ok {
					return b, false
				}
			}
			if p.VotedAt != nil {
				b = append(b, `,"voted_at":`...)
				if b, ok = appendJSONTime(b, *p.VotedAt); !ok {
					return b, false
				}
			}
			if p.AnsweredAt != nil {
				b = append(b, `,"answered_at":`...)
				if b, ok = appendJSONTime(b, *p.AnsweredAt); !ok {
					return b, false
				}
			}
			if p.Phase2Requests != 0 {
				b = append(b, `,"phase2_requests":`...)
				b = strconv.AppendInt(b, int64(p.Phase2Requests), 10)
			}
			if p.Phase2Error != "" {
				b = append(b, `,"phase2_error":`...)
				b = jsonstr.Append(b, p.Phase2Error)
			}
			b = append(b, '}')
		}
		b = append(b, ']')
	}
	b = append(b, `,"phase2_done":`...)
	b = strconv.AppendBool(b, v.PhaseTwoDone)
	if v.Hazard {
		b = append(b, `,"heuristic_hazard":true`...)
	}
	if v.Recovered {
		b = append(b, `,"recovered":true`...)
	}
	b = append(b, `,"began_at":`...)
	if b, ok = appendJSONTime(b, v.BeganAt); !ok {
		return b, false
	}
	if v.DecidedAt != nil {
		b = append(b, `,"decided_at":`...)
		if b, ok = appendJSONTime(b, *v.DecidedAt); !ok {
			return b, false
		}
	}
	if v.EndedAt != nil {
		b = append(b, `,"ended_at":`...)
		if b, ok = appendJSONTime(b, *v.EndedAt); !ok {
			return b, false
		}
	}
	if v.Owner != "" {
		b = append(b, `,"owner":`...)
		b = jsonstr.Append(b, v.Owner)
	}
	return append(b, '}'), true
}

// appendJSONTime appends t as its MarshalJSON writes it, RFC 3339 with nanoseconds,
// quoted. ok is false where MarshalJSON fails: a year beyond 4 digits, an offset of 24
// hours or more.
func appendJSONTime(b []byte, t time.Time) (_ []byte, ok bool) {
	b = append(b, '"')
	n0 := len(b)
	b = t.AppendFormat(b, time.RFC3339Nano)
	if b[n0+len("9999")] != '-' {
		return b, false
	}
	if b[len(b)-1] != 'Z' {
		c := b[len(b)-len("Z07:00")]
		if ('0' <= c && c <= '9') || 10*(b[len(b)-5]-'0')+(b[len(b)-4]-'0') >= 24 {
			return b, false
		}
	}
	return append(b, '"'), true
}
