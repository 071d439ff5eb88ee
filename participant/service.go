package participant

import (
	"encoding/json"
	"time"
)

// Service is the application that takes part in transactions: what it reserves on
// prepare, applies on commit and releases on rollback. The core calls it under its lock,
// one call at a time, in log order, and calls it again while replaying the log on
// restart, so the service's state is rebuilt from the log. It must therefore be
// deterministic: its answers may depend only on its own state and the arguments, never on
// time, randomness or anything outside.
type Service interface {
	// Prepare reserves what the transaction needs. nil means ACK; an error means NACK
	// and its message is the reason, and then nothing may have changed. On replay it is
	// called only for transactions that were ACKed, and must return nil.
	Prepare(txnID string, payload json.RawMessage) error
	// Commit applies what Prepare reserved. It cannot fail: Prepare promised it.
	Commit(txnID string)
	// Rollback releases what Prepare reserved.
	Rollback(txnID string)
	// Snapshot returns the whole service state, for a checkpoint. If it is valid JSON
	// it is stored as such, so the log stays readable with jq.
	Snapshot() ([]byte, error)
	// Restore replaces the whole service state with a Snapshot.
	Restore(snapshot []byte) error
}

// Updater is implemented by a Service whose state also changes outside transactions (an
// operator freezes an account). Participant.Update logs such a change so that it is
// durable and replayed in order with the transactions.
type Updater interface {
	// Update validates and applies a change. An error means it was refused and nothing
	// changed; nothing is logged. On replay it must succeed.
	Update(change []byte) error
}

// KeySet is what one transaction touches at this participant: the keys it reads
// (locked shared) and writes (locked exclusive), and, for the occ policy, the version of
// each key as the transaction read it.
type KeySet struct {
	Reads  []string
	Writes []string
	// ReadVersions (occ): key → version the transaction read. Each is compared with
	// Versioned.Version at prepare; a difference is a conflict.
	ReadVersions map[string]uint64
}

// Keyed is implemented by a Service that names the keys of its transactions, so that
// the participant locks them from prepare until phase 2 (Config.Locks). Keys is called
// under the core's lock before Service.Prepare, and again on replay for transactions
// still prepared: it must depend only on its arguments. An error NACKs the prepare.
type Keyed interface {
	Keys(txnID string, payload json.RawMessage) (KeySet, error)
}

// Versioned is implemented by a Service under the occ policy: Version returns a key's
// current version, which the service changes (in its own, durable state) whenever a
// commit writes the key. Called under the core's lock.
type Versioned interface {
	Version(key string) uint64
}

// Clock tells the time. The core reads it only to stamp prepared transactions (for
// InDoubt); the simulator gives it virtual time.
type Clock interface {
	Now() time.Time
}

// SystemClock is the real clock.
type SystemClock struct{}

// Now returns time.Now().
func (SystemClock) Now() time.Time { return time.Now() }
