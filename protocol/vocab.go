package protocol

import "github.com/dtc-project/dtc/coordinator"

// State is what a participant knows about one transaction, as its status endpoint and its
// phase-2 answers report it. It is the engine's coordinator.PState.
type State = coordinator.PState

// The states of a transaction at a participant.
const (
	// StateUnknown: never prepared there, or forgotten, or its prepare record is not
	// durable yet.
	StateUnknown = coordinator.PUnknown
	// StatePrepared: the prepare record is durable; the participant can still commit or
	// roll back.
	StatePrepared = coordinator.PPrepared
	// StateCommitted: the commit record is durable.
	StateCommitted = coordinator.PCommitted
	// StateAborted: the rollback (or fence) record is durable.
	StateAborted = coordinator.PAborted
)

// States are the states a participant may answer with.
var States = [...]State{StateUnknown, StatePrepared, StateCommitted, StateAborted}

// KnownState reports whether s is one of States.
func KnownState(s State) bool {
	switch s {
	case StateUnknown, StatePrepared, StateCommitted, StateAborted:
		return true
	}
	return false
}

// Decided reports whether s is an outcome.
func Decided(s State) bool { return s == StateCommitted || s == StateAborted }

// Vote is a participant's answer to prepare, as it goes on the wire (ACK, NACK), or, in
// the engine, why there was none (TIMEOUT, ERROR). It is the engine's coordinator.Vote.
type Vote = coordinator.Vote

// The votes a participant may give.
const (
	VoteACK  = coordinator.VoteACK
	VoteNACK = coordinator.VoteNACK
)
