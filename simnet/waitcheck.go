package simnet

import (
	"slices"
	"strings"

	"github.com/dtc-project/dtc/checker"
	"github.com/dtc-project/dtc/locks"
	"github.com/dtc-project/dtc/participant"
	"github.com/dtc-project/dtc/waitfor"
)

// Online checks of lock waits (issue 16), kept apart from the detector they judge.
//
// Wound-wait: a wound's victim must be younger than its wounder (a larger priority,
// as the coordinator gave it in the prepares; smaller is older). An older transaction
// that is wounded may never commit, which is what wound-wait promises it will.
//
// Deadlock liveness, with Options.DeadlockDetection: no transaction is aborted for its
// prepare deadline (cause timeout) while it is on a cycle of the wait edges the
// coordinator was told of. The simulator keeps those edges itself (waitEdges, by client
// id): an edge waiter → holder is kept from the report the coordinator's graph accepted
// (both preparing; a report refused for the graph's bound adds none) until either is
// decided or an abort of either is accepted; a coordinator crash drops them all, as it
// drops the real graph. Every such cycle was closed by one report, which the detector
// must have turned into an abort of one of its transactions.

// KindWoundWait and KindDeadlockLiveness are the kinds of these checks' violations.
const (
	KindWoundWait        = "wound-wait"
	KindDeadlockLiveness = checker.KindLiveness
)

// youngerWounds is BreakWoundWaitYoungerWounds's decorator: under wound-wait a waiting
// prepare wounds every transaction it waits for, older ones too.
func (s *sim) youngerWounds(w participant.LockWait) participant.LockWait {
	if s.o.Break&BreakWoundWaitYoungerWounds == 0 || s.partCfg.Locks.Policy != locks.PolicyWoundWait {
		return w
	}
	w.Wound = slices.Clone(w.WaitsFor)
	w.WoundCoordinator = make([]string, len(w.Wound))
	for i := range w.WoundCoordinator {
		w.WoundCoordinator[i] = w.Coordinator
	}
	return w
}

// checkWound checks that wounder is older than victim.
func (s *sim) checkWound(wounder, victim, by string) {
	pw, okW := s.priorities[wounder]
	pv, okV := s.priorities[victim]
	if okW && okV && pv <= pw && !s.badWounds[wounder+" "+victim] {
		if s.badWounds == nil {
			s.badWounds = map[string]bool{}
		}
		s.badWounds[wounder+" "+victim] = true // reported once, not at every repeated report
		s.violation(KindWoundWait, victim, "%s asked to abort %s (priority %d) for %s (priority %d): under wound-wait only an older transaction wounds a younger one",
			by, victim, pv, wounder, pw)
	}
}

// resetWaits forgets every wait edge: the coordinator (re)starts with an empty graph.
func (s *sim) resetWaits() {
	s.waitEdges = nil
	if s.o.DeadlockDetection {
		s.waitEdges = map[string]map[string]bool{}
	}
}

// noteWaits records the edges of a wait report the coordinator accepted.
func (s *sim) noteWaits(waiter string, holders []waitfor.Txn) {
	if s.waitEdges == nil {
		return
	}
	to := s.waitEdges[waiter]
	if to == nil {
		to = map[string]bool{}
		s.waitEdges[waiter] = to
	}
	for _, h := range holders {
		to[h.ID] = true
	}
}

// abortRequested drops the edges of a transaction whose abort the coordinator accepted.
func (s *sim) abortRequested(id string) { s.dropWaits(clientID(id)) }

// dropWaits removes id and its edges.
func (s *sim) dropWaits(id string) {
	if s.waitEdges == nil {
		return
	}
	delete(s.waitEdges, id)
	for _, to := range s.waitEdges {
		delete(to, id)
	}
}

// timedOut checks a transaction aborted for its prepare deadline: it must be on no
// cycle of the edges the coordinator was told of.
func (s *sim) timedOut(txnID string) {
	if s.waitEdges == nil {
		return
	}
	id := clientID(txnID)
	if path := s.cycleThrough(id); path != nil {
		s.violation(KindDeadlockLiveness, txnID, "%s was aborted at its prepare deadline while on the cycle %s of reported waits: the deadlock detector left it waiting",
			txnID, strings.Join(append(path, id), " -> "))
	}
}

// cycleThrough returns a path id → … back to id in waitEdges (without the last id), or
// nil. Depth-first, in sorted order, so that the message is deterministic.
func (s *sim) cycleThrough(id string) []string {
	seen := map[string]bool{}
	var path []string
	var visit func(n string) bool
	visit = func(n string) bool {
		path = append(path, n)
		next := make([]string, 0, len(s.waitEdges[n]))
		for h := range s.waitEdges[n] {
			next = append(next, h)
		}
		slices.Sort(next)
		for _, h := range next {
			if h == id {
				return true
			}
			if !seen[h] {
				seen[h] = true
				if visit(h) {
					return true
				}
			}
		}
		path = path[:len(path)-1]
		return false
	}
	if visit(id) {
		return path
	}
	return nil
}
