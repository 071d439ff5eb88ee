package simnet

import (
	"maps"
	"time"

	"github.com/dtc-project/dtc/checker"
	"github.com/dtc-project/dtc/locks"
)

// Serializability of committed transfers under the lock policies that hold every
// account a transfer writes, exclusively, from its prepare to its phase 2 (no-wait,
// wait, wound-wait, and occ, which validates the versions read and then locks as
// no-wait does; issue 16). The transfers read nothing explicitly under the first three,
// but a prepare decides on the account as it is: so at a participant's first ACK of a
// transaction the simulator reads each account of its legs there (balance and version,
// the number of commits that changed it), and checker.CheckBankSerializable looks for a
// serial order of the committed transactions that explains every such read and the
// final balances and versions.
//
// Each committed transaction is placed between its last first-ACK (from then on it
// holds all its locks) and its first applied commit (the first lock it lets go): with
// two-phase locking its serialization point lies between, and every read it made was of
// an account it held from that read to that point. Times are doubled and the return
// made one later, so that equal virtual times overlap rather than order. A transaction
// whose ACK at some participant was not seen (given before a crash) has no read there,
// and a call time of 0: the check is weaker for it, never wrong.
//
// Under occ the client reads before it writes: at its first submit it reads the
// accounts of its legs (readBeforeSubmit) and names their versions in each
// participant's payload ("reads"), which the participant validates at prepare (NACK,
// cause conflict, on a version that changed since). The simulator has no read path
// through its network (the bank's GET /accounts is not simulated), so the read is
// taken directly from each participant's bank at the client's submit event: a read
// that takes no time and cannot fail, of the participant's current state (a
// participant that is down at that moment is not read, and its legs go without reads:
// nothing to validate there). Those reads are what the check uses for the transaction,
// and its call time is the read: a validated read still holds at the prepare that
// validated it, and the lock taken there keeps it until the first commit applied, so
// the serialization point lies between the read and that commit. Accounts the client
// did not read keep the read at the ACK.

// serialTimeout bounds porcupine's search; a search that runs out is traced, not a
// violation.
const serialTimeout = 10 * time.Second

// serialReads is what one transaction read at its first ACKs.
type serialReads struct {
	reads   map[string]checker.BankRead // "p1/a0" → as read
	lastAck int64
	seen    map[string]bool // participants whose first ACK was read
}

// locksHeld reports whether the participants' policy holds write locks from prepare
// to phase 2.
func (s *sim) locksHeld() bool {
	switch s.partCfg.Locks.Policy {
	case locks.PolicyNoWait, locks.PolicyWait, locks.PolicyWoundWait, locks.PolicyOCC:
		return true
	}
	return false
}

// readAtAck records, at p's ACK of txn, the accounts of txn's legs at p as they are.
func (s *sim) readAtAck(txn string, p *partNode) {
	if !s.locksHeld() {
		return
	}
	run := s.runByID()[clientID(txn)]
	if run == nil {
		return
	}
	sr := s.serial[txn]
	if sr == nil {
		sr = &serialReads{reads: map[string]checker.BankRead{}, seen: map[string]bool{}}
		s.serial[txn] = sr
	}
	if sr.seen[p.name] {
		return
	}
	sr.seen[p.name] = true
	sr.lastAck = max(sr.lastAck, s.now)
	for _, l := range run.t.Legs {
		if l.Participant != p.name {
			continue
		}
		a, _ := p.bank.Account(l.Account)
		sr.reads[p.name+"/"+l.Account] = checker.BankRead{Version: a.Version, Balance: a.Balance}
	}
}

// readBeforeSubmit reads, under occ, the accounts of run's legs at each participant
// that is up, as a client reads before it writes, and rebuilds its request so that
// each payload names the versions read.
func (s *sim) readBeforeSubmit(run *txnRun) {
	run.reads, run.readAt = map[string]checker.BankRead{}, s.now
	for _, l := range run.t.Legs {
		p := s.part(l.Participant)
		if p == nil || !s.up[p.id] || p.bank == nil {
			continue
		}
		a, _ := p.bank.Account(l.Account)
		run.reads[l.Participant+"/"+l.Account] = checker.BankRead{Version: a.Version, Balance: a.Balance}
	}
	s.buildRequest(run)
}

// part returns the participant named name, or nil.
func (s *sim) part(name string) *partNode {
	for _, p := range s.parts {
		if p.name == name {
			return p
		}
	}
	return nil
}

// runByID maps every transfer's client id to its run.
func (s *sim) runByID() map[string]*txnRun {
	if s.runs == nil {
		s.runs = map[string]*txnRun{}
		for _, c := range s.clients {
			for _, run := range c.queue {
				s.runs[run.t.ID] = run
			}
		}
	}
	return s.runs
}

// checkSerializable checks the committed transfers of history h against the reads
// made at their ACKs and the accounts at the end.
func (s *sim) checkSerializable(h checker.History) []checker.Violation {
	if !s.locksHeld() {
		return nil
	}
	firstApply := map[string]int64{}
	var order []string
	for _, e := range h.Events {
		if e.Kind != checker.EventApplied || e.Outcome != checker.Committed {
			continue
		}
		if _, ok := firstApply[e.Txn]; !ok {
			firstApply[e.Txn] = e.At
			order = append(order, e.Txn)
		}
	}
	initial := map[string]checker.BankRead{}
	final := map[string]checker.BankRead{}
	for _, p := range s.parts {
		for _, a := range p.bank.Accounts() {
			initial[p.name+"/"+a.Name] = checker.BankRead{Balance: s.o.InitialBalance}
			final[p.name+"/"+a.Name] = checker.BankRead{Version: a.Version, Balance: a.Balance}
		}
	}
	txns := make([]checker.BankTxn, 0, len(order))
	for _, id := range order {
		run := s.runByID()[clientID(id)]
		if run == nil {
			continue
		}
		t := checker.BankTxn{ID: id, Return: 2*firstApply[id] + 1, Deltas: map[string]int64{}}
		for _, l := range run.t.Legs {
			t.Deltas[l.Participant+"/"+l.Account] += l.Amount
		}
		if sr := s.serial[id]; sr != nil {
			t.Call, t.Reads = min(2*sr.lastAck, 2*firstApply[id]), sr.reads
		}
		if len(run.reads) > 0 {
			// occ: what the client read and the participants validated.
			reads := maps.Clone(t.Reads)
			if reads == nil {
				reads = map[string]checker.BankRead{}
			}
			maps.Copy(reads, run.reads)
			t.Call, t.Reads = 2*run.readAt, reads
		}
		txns = append(txns, t)
	}
	res, vs := checker.CheckBankSerializable(initial, txns, final, serialTimeout)
	s.tracef(coordID, "serializability of %d committed transfers under %s: %s", len(txns), s.partCfg.Locks.Policy, res)
	return vs
}
