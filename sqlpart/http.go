package sqlpart

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
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
	// BatchMaxOps bounds the ops of one POST …/batch, the commits and rollbacks of many
	// transactions in one request; every answer offers it in the Dtc-Batch-Max header,
	// so that a coordinator sends phase 2 that way. Default DefaultBatchMaxOps; negative:
	// no batch endpoint, and the header is not sent (a coordinator then sends each
	// commit and rollback on its own).
	BatchMaxOps int
	// Logger: default slog.Default().
	Logger *slog.Logger
}

// DefaultBatchMaxOps is HandlerOptions.BatchMaxOps when it is not set. Each op is a
// statement on the database (batchParallel of them at once), so a batch of this many
// is answered in well under a coordinator's request timeout.
const DefaultBatchMaxOps = 64

type handler struct {
	p           *Participant
	base        string
	bodyMax     int64
	batchMax    int      // 0: no batch endpoint
	batchHeader []string // the value of Dtc-Batch-Max, shared by every answer (net/http only reads it)
	log         *slog.Logger
}

// NewHandler serves the participant protocol (DESIGN §3) for p: POST prepare, commit,
// rollback and batch, GET status, with the wire types and error codes of package
// participant.
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
	h := &handler{p: p, base: base, bodyMax: o.BodyMaxBytes, log: o.Logger}
	switch {
	case o.BatchMaxOps == 0:
		h.batchMax = DefaultBatchMaxOps
	case o.BatchMaxOps > 0:
		h.batchMax = min(o.BatchMaxOps, protocol.BatchOpsMax)
	}
	if h.batchMax > 0 {
		h.batchHeader = []string{strconv.Itoa(h.batchMax)}
	}
	return h
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
	if h.batchHeader != nil {
		w.Header()[participant.HeaderBatchMax] = h.batchHeader
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
	case participant.EndpointBatch:
		if h.batchMax == 0 {
			h.fail(w, r, http.StatusNotFound, participant.CodeNotFound, fmt.Sprintf("no endpoint %s (batches are off)", r.URL.Path))
			return
		}
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
		res := h.phase2(r.Context(), name == participant.EndpointCommit, req.TxnID)
		switch {
		case res.Err != nil:
			w.Header().Set("Retry-After", "1")
			h.fail(w, r, http.StatusServiceUnavailable, participant.CodeUnavailable, res.Err.Error())
		case res.Conflict:
			writeRaw(w, http.StatusConflict, protocol.StateAnswer(res.State))
		default:
			writeRaw(w, http.StatusOK, protocol.StateAnswer(res.State))
		}
	case participant.EndpointBatch:
		h.batch(w, r)
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

// phase2 commits (or rolls back) txnID, and logs a result that contradicts the
// database's state.
func (h *handler) phase2(ctx context.Context, commit bool, txnID string) participant.Result {
	call, do := participant.EndpointRollback, h.p.Rollback
	if commit {
		call, do = participant.EndpointCommit, h.p.Commit
	}
	res := do(ctx, txnID)
	if res.Err == nil && res.Conflict {
		h.log.Error("sqlpart: phase 2 contradicts the database's state (heuristic hazard)", "txn_id", txnID, "call", call, "state", res.State)
	}
	return res
}

func (h *handler) checkTxnID(w http.ResponseWriter, r *http.Request, id string) bool {
	if code, msg := h.txnIDProblem(id); code != "" {
		h.fail(w, r, http.StatusBadRequest, code, msg)
		return false
	}
	return true
}

// txnIDProblem says what is wrong with a transaction id, if anything: the error code
// and message of a single call's 400, and of a batch op's result. code is "" when
// nothing is.
func (h *handler) txnIDProblem(id string) (code, msg string) {
	err := participant.ValidateTxnID(id, h.p.cfg.TxnIDMaxBytes)
	switch {
	case err == nil:
		return "", ""
	case id == "":
		return participant.CodeMissingField, "txn_id: " + err.Error()
	}
	return participant.CodeInvalidField, "txn_id: " + err.Error()
}

func (h *handler) decode(w http.ResponseWriter, r *http.Request, dst any) bool {
	body, ok := h.readBody(w, r, h.bodyMax)
	return ok && h.decodeBody(w, r, body, dst)
}

// readBody reads r's body, at most max bytes: a larger one is answered 413.
func (h *handler) readBody(w http.ResponseWriter, r *http.Request, max int64) ([]byte, bool) {
	body, err := io.ReadAll(io.LimitReader(r.Body, max+1))
	if err != nil {
		h.fail(w, r, http.StatusBadRequest, participant.CodeMalformedJSON, fmt.Sprintf("reading body: %v", err))
		return nil, false
	}
	if int64(len(body)) > max {
		h.fail(w, r, http.StatusRequestEntityTooLarge, participant.CodeBodyTooLarge, fmt.Sprintf("body over %d bytes", max))
		return nil, false
	}
	return body, true
}

// decodeBody decodes body into dst strictly, answering 400 if it cannot.
func (h *handler) decodeBody(w http.ResponseWriter, r *http.Request, body []byte, dst any) bool {
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
