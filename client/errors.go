package client

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Error codes the API answers with (the "code" of {"error":{"code","message"}}).
const (
	CodeMalformedJSON    = "malformed_json"     // 400: the body is not one JSON object
	CodeUnknownField     = "unknown_field"      // 400
	CodeInvalid          = "invalid_request"    // 400: a field has a bad value; the message names it
	CodeBodyTooLarge     = "body_too_large"     // 413
	CodeNotFound         = "not_found"          // 404: unknown transaction (presumed aborted)
	CodeNoRoute          = "no_route"           // 404: no such endpoint (a wrong coordinator URL?)
	CodeMethodNotAllowed = "method_not_allowed" // 405
	CodeConflict         = "conflict"           // 409: the id names a different transaction
	CodeBusy             = "busy"               // 429: in-flight limit reached; retry after RetryAfter
	CodeRecovering       = "recovering"         // 503: the coordinator is still recovering
	CodeLogUnavailable   = "log_unavailable"    // 503: the coordinator's log refused the write
	CodeShuttingDown     = "shutting_down"      // 503
	CodeInternal         = "internal"           // 500
)

// Error codes of issue 12: authentication, the participant allowlist, slow bodies.
const (
	CodeUnauthorized          = "unauthorized"            // 401: no token, or one the coordinator does not know
	CodeForbidden             = "forbidden"               // 403: the token's role does not allow the call
	CodeParticipantNotAllowed = "participant_not_allowed" // 400: a participant outside the coordinator's allowlist
	CodeRequestTimeout        = "request_timeout"         // 408: the body came more slowly than the server's read timeout
)

// Error is an error answer of the API.
type Error struct {
	// StatusCode is the HTTP status, e.g. 409.
	StatusCode int
	// Code is the API's error code (the Code* constants); empty if the answer was not
	// the API's JSON error (a proxy in between, say).
	Code string
	// Message says what was wrong, naming the field at fault.
	Message string
	// RetryAfter is what the Retry-After header asked for; zero if there was none.
	RetryAfter time.Duration
}

func (e *Error) Error() string {
	code := e.Code
	if code == "" {
		code = strings.ToLower(strings.ReplaceAll(http.StatusText(e.StatusCode), " ", "_"))
	}
	return fmt.Sprintf("dtc: HTTP %d %s: %s", e.StatusCode, code, e.Message)
}

// Temporary reports whether the same call may succeed later: a 429 or 503 that says
// when to retry.
func (e *Error) Temporary() bool {
	return (e.StatusCode == http.StatusTooManyRequests || e.StatusCode == http.StatusServiceUnavailable) &&
		e.RetryAfter > 0
}

// IsNotFound reports whether err is the API's 404: the coordinator has no record of the
// transaction.
func IsNotFound(err error) bool { return hasCode(err, CodeNotFound) }

// IsConflict reports whether err is the API's 409: the id is used by a different
// transaction.
func IsConflict(err error) bool { return hasCode(err, CodeConflict) }

// CodeUndecided is the 409 of Forget for a transaction not decided yet.
const CodeUndecided = "undecided"

// IsUndecided reports whether err is Forget's 409: the transaction is not decided yet.
func IsUndecided(err error) bool { return hasCode(err, CodeUndecided) }

// IsInvalid reports whether err is a 400: the request is malformed.
func IsInvalid(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.StatusCode == http.StatusBadRequest
}

func hasCode(err error, code string) bool {
	var e *Error
	return errors.As(err, &e) && e.Code == code
}

// parseError reads an error answer.
func parseError(resp *http.Response, body []byte) *Error {
	e := &Error{StatusCode: resp.StatusCode}
	var wire struct {
		Error struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	if json.Unmarshal(body, &wire) == nil && wire.Error.Code != "" {
		e.Code, e.Message = wire.Error.Code, wire.Error.Message
	} else {
		msg := strings.TrimSpace(string(body))
		if len(msg) > 200 {
			msg = msg[:200] + "…"
		}
		if msg == "" {
			msg = "(empty body)"
		}
		e.Message = msg
	}
	if ra := resp.Header.Get("Retry-After"); ra != "" {
		if secs, err := strconv.Atoi(ra); err == nil && secs >= 0 {
			e.RetryAfter = time.Duration(secs) * time.Second
		} else if t, err := http.ParseTime(ra); err == nil {
			e.RetryAfter = max(time.Until(t), time.Millisecond)
		}
		if e.RetryAfter == 0 {
			e.RetryAfter = time.Millisecond // "retry now" still says the call may be retried
		}
	}
	return e
}
