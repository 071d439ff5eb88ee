package simnet

import (
	"encoding/json"
	"fmt"

	"github.com/dtc-project/dtc/coordinator"
	"github.com/dtc-project/dtc/examples/bank"
	"github.com/dtc-project/dtc/locks"
	"github.com/dtc-project/dtc/participant"
)

// The deliberate bugs of Options.Break. Each is a decorator around a real component, so
// that the components carry no test switches; each breaks one rule of DESIGN.md that the
// checker (or the simulator's own online checks) must catch.

// appendedDecision runs when the engine's decision record has been appended, before it
// is durable.
func (c *coordNode) appendedDecision(rec *coordinator.Record, lsn uint64) {
	s := c.s
	inc := c.inc
	if s.o.Break&BreakCommitBeforeDurable != 0 {
		// "Durable" at once: the engine starts phase 2 while the record may still be lost.
		s.after(0, func() {
			if c.alive(inc) {
				s.tracef(coordID, "BROKEN: reports lsn %d durable before any sync", lsn)
				c.step(coordinator.LogSynced{Through: lsn})
			}
		})
	}
	if s.o.Break&BreakClientToldBeforeLog != 0 {
		// The client hears the decision as soon as it is appended.
		state := coordinator.StateAborted
		if rec.Decision == coordinator.Commit {
			state = coordinator.StateCommitted
		}
		for _, r := range c.requests {
			if !r.answered && r.txn == rec.Txn {
				r.answered = true
				s.tracef(coordID, "BROKEN: tells client %s %s before the decision is durable", rec.Txn, state)
				r.reply(coordinator.View{ID: rec.Txn, TxnID: c.incarnation[rec.Txn], State: state}, nil)
			}
		}
	}
}

// phase2GivesUpAfter is how many failed phase-2 attempts BreakPhase2GivesUp allows.
const phase2GivesUpAfter = 2

// phase2GivesUp, under BreakPhase2GivesUp, answers a phase-2 request to a participant
// that did not answer the previous attempts as if it had acknowledged: the engine then
// ends and, after DoneRetention, forgets a transaction the participant never learned.
func (c *coordNode) phase2GivesUp(m coordinator.Message, p *partNode, reply func(coordinator.Reply)) bool {
	s := c.s
	if s.o.Break&BreakPhase2GivesUp == 0 || (m.Kind != coordinator.MsgCommit && m.Kind != coordinator.MsgRollback) {
		return false
	}
	if c.attempts == nil {
		c.attempts = map[string]int{}
	}
	key := fmt.Sprintf("%s %d", m.Txn, m.Participant)
	c.attempts[key]++
	if c.attempts[key] <= phase2GivesUpAfter {
		return false
	}
	state := coordinator.PCommitted
	if m.Kind == coordinator.MsgRollback {
		state = coordinator.PAborted
	}
	s.tracef(coordID, "BROKEN: gives up %s %s to %s after %d attempts and calls it acknowledged", m.Kind, m.Txn, p.name, phase2GivesUpAfter)
	s.after(0, func() { reply(coordinator.Reply{State: state}) })
	return true
}

// rewriteStatus, under BreakRecoveryPresumesCommit, turns every status answer into
// "prepared": recovery commits transactions some participant never prepared.
func (c *coordNode) rewriteStatus(r *coordinator.Reply) {
	if c.s.o.Break&BreakRecoveryPresumesCommit != 0 && r.Kind == coordinator.MsgStatus && r.Err == nil && r.State != coordinator.PPrepared {
		c.s.tracef(coordID, "BROKEN: status %s of %s read as prepared", r.State, r.Txn)
		r.State = coordinator.PPrepared
	}
}

// unfencedRollback, under BreakNoFencing, answers a rollback of a transaction the
// participant does not know with "aborted" without writing the fence: a prepare that
// arrives later is then ACKed.
func (p *partNode) unfencedRollback(txn, what string, done func(participant.Result)) bool {
	s := p.s
	if s.o.Break&BreakNoFencing == 0 || p.core.Status(txn) != participant.StateUnknown {
		return false
	}
	s.tracef(p.id, "BROKEN: %s of an unknown transaction answered without a fence", what)
	s.rolledBack[p.name+" "+txn] = true
	done(participant.Result{State: participant.StateAborted})
	return true
}

// everyoneAsks, under BreakBeginAlwaysLazy, makes every answer say that its participant
// asks about transactions in doubt: the engine then keeps every begin lazy, and a
// coordinator crash before the begin is durable leaves passive participants prepared.
func (c *coordNode) everyoneAsks(r *coordinator.Reply) {
	if c.s.o.Break&BreakBeginAlwaysLazy != 0 && r.Err == nil {
		r.Asks = true
	}
}

// service is the Service a participant runs: its bank or, under BreakOCCSkipsValidation
// and the occ policy, the bank without the versions its payloads read.
func (p *partNode) service(b *bank.Bank, policy locks.Policy) participant.Service {
	if p.s.o.Break&BreakOCCSkipsValidation == 0 || policy != locks.PolicyOCC {
		return b
	}
	return unvalidatedBank{b, p}
}

// unvalidatedBank is the bank with Keys that drops the versions read (KeySet.
// ReadVersions): the participant locks the accounts as occ does but validates nothing,
// so a prepare on a stale read is ACKed.
type unvalidatedBank struct {
	*bank.Bank
	p *partNode
}

func (u unvalidatedBank) Keys(txn string, payload json.RawMessage) (participant.KeySet, error) {
	ks, err := u.Bank.Keys(txn, payload)
	if len(ks.ReadVersions) > 0 {
		u.p.s.tracef(u.p.id, "BROKEN: %s: the versions read are not validated", txn)
		ks.ReadVersions = nil
	}
	return ks, err
}
