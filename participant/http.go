package participant

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
)

// HandlerOptions configure NewHandler.
type HandlerOptions struct {
	// BasePath is where the four endpoints are mounted: "/" (the default) serves
	// /prepare, /commit, /rollback and /status; "/bank/" serves /bank/prepare, ….
	BasePath string
	// BodyMaxBytes bounds a request body; a larger one is answered 413. Default 1 MiB.
	BodyMaxBytes int64
	// Logger gets one line per failed request. Default: slog.Default().
	Logger *slog.Logger
}

// Error codes in ErrorBody.Code.
const (
	CodeMalformedJSON    = "malformed_json"
	CodeUnknownField     = "unknown_field"
	CodeMissingField     = "missing_field"
	CodeInvalidField     = "invalid_field"
	CodeBodyTooLarge     = "body_too_large"
	CodeMethodNotAllowed = "method_not_allowed"
	CodeNotFound         = "not_found"
	CodeUnavailable      = "unavailable"
)

type handler struct {
	p       *Participant
	base    string
	bodyMax int64
	log     *slog.Logger
}

// NewHandler serves the participant protocol (DESIGN §3) for p: POST prepare, commit and
// rollback, GET status, under opts.BasePath. It is a thin adapter: it decodes, asks the
// core, and writes the core's answer once the core gives it (after the record is
// durable). A client that goes away stops the wait, not the record.
func NewHandler(p *Participant, opts HandlerOptions) http.Handler {
	base := opts.BasePath
	if base == "" {
		base = "/"
	}
	if !strings.HasPrefix(base, "/") {
		base = "/" + base
	}
	if !strings.HasSuffix(base, "/") {
		base += "/"
	}
	if opts.BodyMaxBytes <= 0 {
		opts.BodyMaxBytes = 1 << 20
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	return &handler{p: p, base: base, bodyMax: opts.BodyMaxBytes, log: opts.Logger}
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	name, ok := strings.CutPrefix(r.URL.Path, h.base)
	if !ok || strings.Contains(name, "/") {
		h.fail(w, r, http.StatusNotFound, CodeNotFound, fmt.Sprintf("no endpoint %s", r.URL.Path))
		return
	}
	method := http.MethodPost
	if name == EndpointStatus {
		method = http.MethodGet
	}
	switch name {
	case EndpointPrepare, EndpointCommit, EndpointRollback, EndpointStatus:
	default:
		h.fail(w, r, http.StatusNotFound, CodeNotFound, fmt.Sprintf("no endpoint %s", r.URL.Path))
		return
	}
	if r.Method != method && !(method == http.MethodGet && r.Method == http.MethodHead) {
		w.Header().Set("Allow", method)
		h.fail(w, r, http.StatusMethodNotAllowed, CodeMethodNotAllowed, fmt.Sprintf("%s takes %s", r.URL.Path, method))
		return
	}
	switch name {
	case EndpointPrepare:
		h.prepare(w, r)
	case EndpointCommit:
		h.phase2(w, r, h.p.Commit)
	case EndpointRollback:
		h.phase2(w, r, h.p.Rollback)
	case EndpointStatus:
		h.status(w, r)
	}
}

func (h *handler) prepare(w http.ResponseWriter, r *http.Request) {
	var req PrepareRequest
	if !h.decode(w, r, &req) || !h.checkTxnID(w, r, req.TxnID) {
		return
	}
	if req.Coordinator != "" {
		if err := checkCoordinatorURL(req.Coordinator, h.p.cfg.CoordinatorMaxBytes); err != nil {
			h.fail(w, r, http.StatusBadRequest, CodeInvalidField, err.Error())
			return
		}
	}
	ch := make(chan Vote, 1)
	h.p.Prepare(req.TxnID, req.Payload, req.Coordinator, func(v Vote) { ch <- v })
	select {
	case v := <-ch:
		writeJSON(w, http.StatusOK, v.Response())
	case <-r.Context().Done():
	}
}

func (h *handler) phase2(w http.ResponseWriter, r *http.Request, call func(string, func(Result))) {
	var req TxnRequest
	if !h.decode(w, r, &req) || !h.checkTxnID(w, r, req.TxnID) {
		return
	}
	ch := make(chan Result, 1)
	call(req.TxnID, func(res Result) { ch <- res })
	var res Result
	select {
	case res = <-ch:
	case <-r.Context().Done():
		return
	}
	switch {
	case res.Err != nil:
		w.Header().Set("Retry-After", "1")
		h.fail(w, r, http.StatusServiceUnavailable, CodeUnavailable, res.Err.Error())
	case res.Conflict:
		writeJSON(w, http.StatusConflict, StateResponse{State: res.State})
	default:
		writeJSON(w, http.StatusOK, StateResponse{State: res.State})
	}
}

func (h *handler) status(w http.ResponseWriter, r *http.Request) {
	id := r.URL.Query().Get("txn_id")
	if !h.checkTxnID(w, r, id) {
		return
	}
	writeJSON(w, http.StatusOK, StateResponse{State: h.p.Status(id)})
}

func (h *handler) checkTxnID(w http.ResponseWriter, r *http.Request, id string) bool {
	if id == "" {
		h.fail(w, r, http.StatusBadRequest, CodeMissingField, "txn_id is required")
		return false
	}
	if err := ValidateTxnID(id, h.p.cfg.TxnIDMaxBytes); err != nil {
		h.fail(w, r, http.StatusBadRequest, CodeInvalidField, "txn_id: "+strings.TrimPrefix(err.Error(), "participant: "))
		return false
	}
	return true
}

// decode reads one JSON object into dst, rejecting unknown fields, trailing data and
// bodies over the limit; it answers the request itself when it returns false.
func (h *handler) decode(w http.ResponseWriter, r *http.Request, dst any) bool {
	body := http.MaxBytesReader(w, r.Body, h.bodyMax)
	dec := json.NewDecoder(body)
	dec.DisallowUnknownFields()
	err := dec.Decode(dst)
	if err == nil {
		if _, terr := dec.Token(); terr != io.EOF {
			err = errTrailing
			if terr != nil && !isSyntaxOrEOF(terr) {
				err = terr
			}
		}
	}
	if err == nil {
		return true
	}
	status, code, msg := http.StatusBadRequest, CodeMalformedJSON, err.Error()
	var (
		tooLarge *http.MaxBytesError
		syntax   *json.SyntaxError
		typ      *json.UnmarshalTypeError
	)
	switch {
	case errors.As(err, &tooLarge):
		status, code = http.StatusRequestEntityTooLarge, CodeBodyTooLarge
		msg = fmt.Sprintf("request body larger than %d bytes", h.bodyMax)
	case errors.Is(err, io.EOF):
		msg = "empty body: expected a JSON object"
	case errors.Is(err, io.ErrUnexpectedEOF):
		msg = "body ends in the middle of the JSON object"
	case errors.Is(err, errTrailing):
		msg = "unexpected data after the JSON object"
	case errors.As(err, &syntax):
		msg = fmt.Sprintf("invalid JSON at byte %d: %v", syntax.Offset, syntax)
	case errors.As(err, &typ):
		code = CodeInvalidField
		if typ.Field != "" {
			msg = fmt.Sprintf("%s: expected %s, got JSON %s", typ.Field, typ.Type, typ.Value)
		} else {
			msg = fmt.Sprintf("expected a JSON object, got JSON %s", typ.Value)
		}
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		code = CodeUnknownField
		msg = "unknown field " + strings.TrimPrefix(err.Error(), "json: unknown field ")
	}
	h.fail(w, r, status, code, msg)
	return false
}

var errTrailing = errors.New("trailing data")

func isSyntaxOrEOF(err error) bool {
	var syntax *json.SyntaxError
	return errors.As(err, &syntax) || errors.Is(err, io.ErrUnexpectedEOF)
}

// checkCoordinatorURL accepts an absolute http(s) URL without query or fragment.
func checkCoordinatorURL(s string, maxBytes int) error {
	if len(s) > maxBytes {
		return fmt.Errorf("coordinator: %d bytes, at most %d", len(s), maxBytes)
	}
	u, err := url.Parse(s)
	if err != nil {
		return fmt.Errorf("coordinator: %v", err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return fmt.Errorf("coordinator: %q is not an absolute http(s) base URL", s)
	}
	return nil
}

func (h *handler) fail(w http.ResponseWriter, r *http.Request, status int, code, msg string) {
	h.log.Debug("participant: request refused", "method", r.Method, "path", r.URL.Path, "status", status, "code", code, "message", msg)
	writeJSON(w, status, ErrorResponse{Error: ErrorBody{Code: code, Message: msg}})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	data, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("participant: encoding %T: %v", v, err))
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(append(data, '\n'))
}
