package coordinator

import (
	"errors"
	"fmt"
	"time"
)

// Config bounds everything the engine holds. Every limit is checked by Validate; hitting
// one at run time is an answer (an error value naming the limit), never a crash.
type Config struct {
	// InflightMax is how many transactions may be undecided at once (begun, decision
	// not yet durable). Submit beyond it fails with ErrBusy (HTTP 429). A decided
	// transaction whose phase 2 is still under way does not count: a participant that
	// never answers must not keep new transactions out.
	InflightMax int
	// Phase2Max bounds the decided transactions whose phase 2 is under way (retried
	// until every participant acknowledges), for the memory they hold; Submit beyond it
	// fails with ErrBusy too. An operator can forget one whose participant is gone for
	// good (Engine.Forget).
	Phase2Max int
	// ParticipantsMax is the most participants one transaction may name.
	ParticipantsMax int
	// PayloadMaxBytes bounds one participant's prepare payload.
	PayloadMaxBytes int
	// URLMaxBytes bounds one participant URL.
	URLMaxBytes int
	// IDMaxBytes bounds a client-chosen transaction id.
	IDMaxBytes int

	// PrepareTimeout is the default prepare deadline; a request may ask for any value up
	// to PrepareTimeoutMax.
	PrepareTimeout    time.Duration
	PrepareTimeoutMax time.Duration
	// RecoveryTimeout bounds how long recovery waits for the status of a transaction
	// that was begun but not decided before a restart; then it aborts it.
	RecoveryTimeout time.Duration
	// RequestTimeout is what phase-2 and status requests are given (Message.Timeout).
	RequestTimeout time.Duration
	// RetryBackoffMin and RetryBackoffMax bound the exponential backoff (with jitter)
	// between phase-2 retries to one participant, and between log retries.
	RetryBackoffMin time.Duration
	RetryBackoffMax time.Duration

	// DoneRetention is how long a finished transaction is remembered: its id stays
	// reserved (a new transaction cannot reuse it) and Get still answers for it.
	DoneRetention time.Duration
	// DoneMax bounds how many finished transactions are remembered (about 1 KiB each
	// with two participants); the oldest is forgotten first when it is reached, even
	// inside DoneRetention, so under sustained load the reservation window of an id is
	// DoneMax divided by the rate at which transactions finish.
	DoneMax int
	// WaitersMax bounds how many callers may wait on one transaction (idempotent
	// resubmissions of the same id).
	WaitersMax int
	// AskersMax bounds how many participants the engine remembers as asking about
	// transactions in doubt (Reply.Asks). When it is full the longest-known is
	// forgotten, which is safe: a participant not known to ask only costs its
	// transactions a synced begin record.
	AskersMax int
}

// DefaultConfig returns limits that suit one shard of a daemon on a small machine.
func DefaultConfig() Config {
	return Config{
		InflightMax:       4096,
		Phase2Max:         65536,
		ParticipantsMax:   32,
		PayloadMaxBytes:   64 << 10,
		URLMaxBytes:       2048,
		IDMaxBytes:        128,
		PrepareTimeout:    5 * time.Second,
		PrepareTimeoutMax: 10 * time.Minute,
		RecoveryTimeout:   10 * time.Second,
		RequestTimeout:    5 * time.Second,
		RetryBackoffMin:   50 * time.Millisecond,
		RetryBackoffMax:   10 * time.Second,
		DoneRetention:     10 * time.Minute,
		DoneMax:           25_000,
		WaitersMax:        16,
		AskersMax:         4096,
	}
}

// Validate says which limit is out of range.
func (c Config) Validate() error {
	var errs []error
	pos := func(name string, v int) {
		if v <= 0 {
			errs = append(errs, fmt.Errorf("%s must be positive, got %d", name, v))
		}
	}
	posDur := func(name string, v time.Duration) {
		if v <= 0 {
			errs = append(errs, fmt.Errorf("%s must be positive, got %v", name, v))
		}
	}
	pos("InflightMax", c.InflightMax)
	pos("Phase2Max", c.Phase2Max)
	pos("ParticipantsMax", c.ParticipantsMax)
	pos("PayloadMaxBytes", c.PayloadMaxBytes)
	pos("URLMaxBytes", c.URLMaxBytes)
	pos("IDMaxBytes", c.IDMaxBytes)
	pos("DoneMax", c.DoneMax)
	pos("WaitersMax", c.WaitersMax)
	pos("AskersMax", c.AskersMax)
	posDur("PrepareTimeout", c.PrepareTimeout)
	posDur("PrepareTimeoutMax", c.PrepareTimeoutMax)
	posDur("RecoveryTimeout", c.RecoveryTimeout)
	posDur("RequestTimeout", c.RequestTimeout)
	posDur("RetryBackoffMin", c.RetryBackoffMin)
	posDur("RetryBackoffMax", c.RetryBackoffMax)
	if c.DoneRetention < 0 {
		errs = append(errs, fmt.Errorf("DoneRetention must not be negative, got %v", c.DoneRetention))
	}
	if c.PrepareTimeout > c.PrepareTimeoutMax {
		errs = append(errs, fmt.Errorf("PrepareTimeout %v exceeds PrepareTimeoutMax %v", c.PrepareTimeout, c.PrepareTimeoutMax))
	}
	if c.RetryBackoffMin > c.RetryBackoffMax {
		errs = append(errs, fmt.Errorf("RetryBackoffMin %v exceeds RetryBackoffMax %v", c.RetryBackoffMin, c.RetryBackoffMax))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("coordinator: invalid config: %w", err)
	}
	return nil
}
