package coordinator

import (
	"errors"
	"fmt"
)

// Sentinel errors that callers branch on (the HTTP API maps each to a status code).
var (
	// ErrInvalidRequest: the request is malformed; the *RequestError says which field.
	ErrInvalidRequest = errors.New("invalid request")
	// ErrBusy: InflightMax transactions are in flight (HTTP 429).
	ErrBusy = errors.New("too many transactions in flight")
	// ErrConflict: a client-chosen id is already used by a transaction with other
	// participants or payloads.
	ErrConflict = errors.New("transaction id already used by a different request (other participants or payloads)")
	// ErrNotFound: no record of this id. For a participant in doubt it means aborted.
	ErrNotFound = errors.New("transaction not found")
	// ErrRecovering: the engine is still resolving transactions found in its log.
	ErrRecovering = errors.New("coordinator is recovering")
	// ErrLogUnavailable: the log refused the begin record (disk full).
	ErrLogUnavailable = errors.New("log refused the write")
	// ErrUndecided: the transaction has no durable decision yet, so it cannot be
	// forgotten (HTTP 409).
	ErrUndecided = errors.New("transaction not decided yet")
)

// RequestError says which field of a request is wrong and why.
type RequestError struct {
	Field  string
	Reason string
}

func (e *RequestError) Error() string {
	return fmt.Sprintf("invalid request: %s: %s", e.Field, e.Reason)
}

func (e *RequestError) Unwrap() error { return ErrInvalidRequest }
