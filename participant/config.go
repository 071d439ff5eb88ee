package participant

import (
	"errors"
	"fmt"
	"time"

	"github.com/dtc-project/dtc/locks"
)

// Config holds the participant core's limits. Start from DefaultConfig; every field must
// be positive (Validate).
type Config struct {
	// PreparedMax bounds the transactions prepared and not yet decided. Beyond it a
	// prepare is answered NACK "too many prepared transactions".
	PreparedMax int
	// DecidedMax bounds the decided transactions (committed, rolled back, fenced)
	// remembered so that repeated phase-2 calls and late prepares get the same answer.
	// The oldest are forgotten first; a forgotten transaction is "unknown" again.
	DecidedMax int
	// InflightMax bounds the records appended to the log and not yet durable. Beyond it
	// a prepare is answered NACK and commit/rollback/update fail with ErrBusy.
	InflightMax int
	// InDoubtAfter: a transaction prepared for longer than this is in doubt, and the
	// Resolver asks its coordinator about it.
	InDoubtAfter time.Duration
	// CheckpointAfterBytes and CheckpointAfterRecords: a checkpoint is written (and the
	// log segments before it removed) once this much has been logged since the last one.
	// A checkpoint is one log record: the service snapshot, every prepared payload and
	// the decided ids. One that does not fit the log's record limit is skipped
	// (Stats.CheckpointFailures) and retried after another interval, so the log grows
	// until fewer transactions are prepared; size the limits so that it fits.
	CheckpointAfterBytes   int64
	CheckpointAfterRecords int
	// TxnIDMaxBytes bounds a transaction id.
	TxnIDMaxBytes int
	// PayloadMaxBytes bounds a prepare payload (compacted JSON).
	PayloadMaxBytes int
	// CoordinatorMaxBytes bounds the coordinator URL given with a prepare.
	CoordinatorMaxBytes int
	// Locks chooses the lock policy and the lock table's bounds (package locks). Any
	// policy but none needs a Service that implements Keyed (and Versioned for occ).
	// The zero value, or policy none, takes no locks.
	Locks locks.Config
}

// DefaultConfig returns limits suitable for a small service.
func DefaultConfig() Config {
	return Config{
		PreparedMax:            10_000,
		DecidedMax:             100_000,
		InflightMax:            4_096,
		InDoubtAfter:           30 * time.Second,
		CheckpointAfterBytes:   16 << 20,
		CheckpointAfterRecords: 100_000,
		TxnIDMaxBytes:          256,
		PayloadMaxBytes:        64 << 10,
		CoordinatorMaxBytes:    1024,
		Locks:                  locks.DefaultConfig(locks.PolicyNone),
	}
}

// Validate reports every limit that is not positive.
func (c Config) Validate() error {
	var errs []error
	positive := func(name string, v int64) {
		if v <= 0 {
			errs = append(errs, fmt.Errorf("participant: config: %s must be positive, got %d", name, v))
		}
	}
	positive("PreparedMax", int64(c.PreparedMax))
	positive("DecidedMax", int64(c.DecidedMax))
	positive("InflightMax", int64(c.InflightMax))
	positive("InDoubtAfter", int64(c.InDoubtAfter))
	positive("CheckpointAfterBytes", c.CheckpointAfterBytes)
	positive("CheckpointAfterRecords", int64(c.CheckpointAfterRecords))
	positive("TxnIDMaxBytes", int64(c.TxnIDMaxBytes))
	positive("PayloadMaxBytes", int64(c.PayloadMaxBytes))
	positive("CoordinatorMaxBytes", int64(c.CoordinatorMaxBytes))
	if c.Locks.Policy != "" && c.Locks.Policy != locks.PolicyNone {
		if err := c.Locks.Validate(); err != nil {
			errs = append(errs, fmt.Errorf("participant: config: %w", err))
		}
	}
	return errors.Join(errs...)
}
