package sqlpart

import (
	"bytes"

	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"

	"github.com/dtc-project/dtc/participant"
	"github.com/dtc-project/dtc/protocol"
)

// HandlerOptions configure NewHandler.
type HandlerOptions struct {
	// BasePath is where the endpoints are mounted: "/" (the default) serves /prepare,
	// /commit, /rollback and /status.
	BasePath string
	// BodyMaxBytes bounds a request body; a larger one is answered 413. Default: the
	// participant's PayloadMaxBytes plus 4 KiB.
	BodyMaxBytes int64
	// Logger: default slog.Default().
	Logger *slog.Logger
}

type handler struct {
	p       *Participant
	base    string
	bodyMax int64
	log     *slog.Logger
}

// NewHandler serves the participant protocol (DESIGN §3) for p: POST prepare, commit and
// rollback, GET status, with the wire types and error codes of package participant. It
// offers no batch endpoint: a coordinator sends this participant single phase-2 calls.
func NewHandler(p *Participant, o HandlerOptions) http.Handler {
	base := o.BasePath
	if base == "" {
		base = "/"
	}
	if !strings.HasPrefix(base, "/") {
		base = "/" + base
	}
	if !strings.HasSuffix(base, "/") {
		base += "/"
	}
	if o.BodyMaxBytes <= 0 {
		o.BodyMaxBytes = int64(p.cfg.PayloadMaxBytes) + 4<<10
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return &handler{p: p, base: base, bodyMax: o.BodyMaxBytes, log: o.Logger}
}

// inDoubtAskHeader is participant.HeaderInDoubt's value (net/http only reads it).
var inDoubtAskHeader = []string{participant.InDoubtAsk}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	// While the resolver runs and a coordinator is known to ask, every answer says the
	// participant asks about its transactions in doubt (a prepare naming no
	// coordinator, with none configured, takes it off again below).
	asks := h.p.Asks()
	if asks {
		w.Header()[participant.HeaderInDoubt] = inDoubtAskHeader
	}
	name, ok := strings.CutPrefix(r.URL.Path, h.base)
	if !ok || strings.Contains(name, "/") {
		h.fail(w, r, http.StatusNotFound, participant.CodeNotFound, fmt.Sprintf("no endpoint %s", r.URL.Path))
		return
	}
	method := http.MethodPost
	switch name {
	case participant.EndpointStatus:
		method = http.MethodGet
	case participant.EndpointPrepare, participant.EndpointCommit, participant.EndpointRollback:
	default:
		h.fail(w, r, http.StatusNotFound, participant.CodeNotFound, fmt.Sprintf("no endpoint %s", r.URL.Path))
		return
	}
	if r.Method != method {
		w.Header().Set("Allow", method)
		h.fail(w, r, http.StatusMethodNotAllowed, participant.CodeMethodNotAllowed, fmt.Sprintf("%s takes %s", r.URL.Path, method))
		return
	}
	switch name {
	case participant.EndpointPrepare:
		var req participant.PrepareRequest
		if !h.decode(w, r, &req) || !h.checkTxnID(w, r, req.TxnID) {
			return
		}
		if req.Coordinator != "" {
			if err := participant.CheckCoordinatorURL(req.Coordinator, h.p.cfg.CoordinatorMaxBytes); err != nil {
				h.fail(w, r, http.StatusBadRequest, participant.CodeInvalidField, err.Error())
				return
			}
		}
		if asks && req.Coordinator == "" && h.p.cfg.Coordinator == "" {
			delete(w.Header(), participant.HeaderInDoubt) // nobody to ask about this one
		}
		v := h.p.Prepare(r.Context(), req.TxnID, req.Coordinator, req.Payload)
		if !v.ACK {
			h.log.Info("sqlpart: NACK", "txn_id", req.TxnID, "reason", v.Reason)
		}
		writeRaw(w, http.StatusOK, protocol.AppendVoteResponse(nil, v.Response()))
	case participant.EndpointCommit, participant.EndpointRollback:
		var req participant.TxnRequest
		if !h.decode(w, r, &req) || !h.checkTxnID(w, r, req.TxnID) {
			return
		}
		var res participant.Result
		if name == participant.EndpointCommit {
			res = h.p.Commit(r.Context(), req.TxnID)
		} else {
			res = h.p.Rollback(r.Context(), req.TxnID)
		}
		switch {
		case res.Err != nil:
			w.Header().Set("Retry-After", "1")
			h.fail(w, r, http.StatusServiceUnavailable, participant.CodeUnavailable, res.Err.Error())
		case res.Conflict:
			h.log.Error("sqlpart: phase 2 contradicts the database's state (heuristic hazard)", "txn_id", req.TxnID, "call", name, "state", res.State)
			writeRaw(w, http.StatusConflict, protocol.StateAnswer(res.State))
		default:
			writeRaw(w, http.StatusOK, protocol.StateAnswer(res.State))
		}
	case participant.EndpointStatus:
		id := protocol.StatusTxnID(r.URL.RawQuery)
		if id == "" {
			h.fail(w, r, http.StatusBadRequest, participant.CodeMissingField, "status needs ?txn_id=")
			return
		}
		if !h.checkTxnID(w, r, id) {
			return
		}
		s, err := h.p.Status(r.Context(), id)
		if err != nil {
			w.Header().Set("Retry-After", "1")
			h.fail(w, r, http.StatusServiceUnavailable, participant.CodeUnavailable, err.Error())
			return
		}
		writeRaw(w, http.StatusOK, protocol.StateAnswer(s))
	}
}

func (h *handler) checkTxnID(w http.ResponseWriter, r *http.Request, id string) bool {
	if err := participant.ValidateTxnID(id, h.p.cfg.TxnIDMaxBytes); err != nil {
		code := participant.CodeInvalidField
		if id == "" {
			code = participant.CodeMissingField
		}
		h.fail(w, r, http.StatusBadRequest, code, "txn_id: "+err.Error())
		return false
	}
	return true
}

func (h *handler) decode(w http.ResponseWriter, r *http.Request, dst any) bool {
	body, err := io.ReadAll(io.LimitReader(r.Body, h.bodyMax+1))
	if err != nil {
		h.fail(w, r, http.StatusBadRequest, participant.CodeMalformedJSON, fmt.Sprintf("reading body: %v", err))
		return false
	}
	if int64(len(body)) > h.bodyMax {
		h.fail(w, r, http.StatusRequestEntityTooLarge, participant.CodeBodyTooLarge, fmt.Sprintf("body over %d bytes", h.bodyMax))
		return false
	}
	if err := protocol.DecodeStrict(bytes.NewReader(body), dst); err != nil {
		switch {
		case errors.Is(err, protocol.ErrTrailing):
			h.fail(w, r, http.StatusBadRequest, participant.CodeMalformedJSON, "body: data after the JSON object")
		case strings.HasPrefix(err.Error(), "json: unknown field"):
			h.fail(w, r, http.StatusBadRequest, participant.CodeUnknownField, fmt.Sprintf("body: %v", err))
		default:
			h.fail(w, r, http.StatusBadRequest, participant.CodeMalformedJSON, fmt.Sprintf("body: %v", err))
		}
		return false
	}
	return true
}

func (h *handler) fail(w http.ResponseWriter, r *http.Request, status int, code, msg string) {
	h.log.Debug("sqlpart: request refused", "method", r.Method, "path", r.URL.Path, "status", status, "code", code, "message", msg)
	writeRaw(w, status, protocol.AppendErrorResponse(nil, code, msg))
}

// writeRaw writes data, a protocol message encoded by package protocol.
func writeRaw(w http.ResponseWriter, status int, data []byte) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(data)
}
