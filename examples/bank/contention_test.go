package bank

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
	"github.com/dtc-project/dtc/checker"
	"github.com/dtc-project/dtc/locks"
	"github.com/dtc-project/dtc/participant"
	"github.com/dtc-project/dtc/wal"
)

// A small two-phase commit over two banks' participant cores, in process: enough to
// run conflicting transfers under each lock policy, with wounds (wound-wait) and a
// prepare timeout (which is what breaks a deadlock under wait, as no detector runs
// here).

// contentionBank is one bank under its participant.
type contentionBank struct {
	bank *Bank
	p    *participant.Participant
}

// brokenOCC is a deliberately broken occ validation, as a decorator (the bank and the
// participant have no test switch): it names the keys but drops the versions read, so
// the participant's version check is skipped.
type brokenOCC struct{ *Bank }

func (b brokenOCC) Keys(txnID string, payload json.RawMessage) (participant.KeySet, error) {
	ks, err := b.Bank.Keys(txnID, payload)
	ks.ReadVersions = nil
	return ks, err
}

type txnState struct {
	decided, commit bool
}

type miniCoord struct {
	t      *testing.T
	policy locks.Policy
	banks  [2]*contentionBank
	clock  atomic.Int64 // logical time for the history, and priorities
	// prepareTimeout ends a prepare phase that waits too long (a deadlock under wait).
	prepareTimeout time.Duration

	mu        sync.Mutex
	txns      map[string]*txnState
	committed []checker.BankTxn
	wounds    int
	conflicts atomic.Int64 // NACKs with cause conflict
	bg        sync.WaitGroup
}

func newMiniCoord(t *testing.T, policy locks.Policy, broken bool) *miniCoord {
	c := &miniCoord{t: t, policy: policy, txns: map[string]*txnState{}, prepareTimeout: 50 * time.Millisecond}
	for i, prefix := range []string{"a", "b"} {
		b, err := New(map[string]int64{prefix + "0": 1000, prefix + "1": 1000})
		must(t, err)
		var svc participant.Service = b
		if broken {
			svc = brokenOCC{b}
		}
		cfg := participant.DefaultConfig()
		cfg.Locks = locks.DefaultConfig(policy)
		p, err := participant.OpenSync(cfg, svc, clock{}, wal.Options{FS: wal.NewMemFS(), Dir: prefix, SegmentSizeBytes: 64 << 10})
		must(t, err)
		p.SetLockObserver(c)
		c.banks[i] = &contentionBank{bank: b, p: p}
	}
	return c
}

// LockWaiting wounds: the coordinator aborts a younger holder not decided yet.
func (c *miniCoord) LockWaiting(w participant.LockWait) {
	for _, id := range w.Wound {
		c.bg.Add(1)
		go func() {
			defer c.bg.Done()
			if c.decide(id, false) {
				c.mu.Lock()
				c.wounds++
				c.mu.Unlock()
			}
			c.phase2(id, false)
		}()
	}
}

// decide records the outcome unless one was recorded already; it reports whether the
// outcome is the one asked for.
func (c *miniCoord) decide(id string, commit bool) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.txns[id]
	if s == nil {
		s = &txnState{}
		c.txns[id] = s
	}
	if !s.decided {
		s.decided, s.commit = true, commit
	}
	return s.commit == commit
}

func (c *miniCoord) phase2(id string, commit bool) {
	var wg sync.WaitGroup
	for _, b := range c.banks {
		wg.Add(1)
		reply := func(r participant.Result) {
			if r.Err != nil || (r.Conflict && commit) {
				c.t.Errorf("%s: phase 2 commit=%v: %+v", id, commit, r)
			}
			wg.Done()
		}
		if commit {
			b.p.Commit(id, reply)
		} else {
			b.p.Rollback(id, reply)
		}
	}
	wg.Wait()
}

// transfer is one transaction: a debit at one bank and a credit at the other.
type transfer struct {
	id     string
	call   int64
	prio   int64
	from   int // bank index of the debit
	accts  [2]string
	reads  map[string]checker.BankRead
	amount int64
	hold   time.Duration // between the votes and the decision: a coordinator's latency
	gap    time.Duration // between the two prepares, debit first: network jitter
}

// begin picks a transfer and, under occ, reads its two accounts; the amount depends
// on the balance read, so that a stale read shows in the balances.
func (c *miniCoord) begin(id string, rng *rand.Rand) *transfer {
	tr := &transfer{id: id, call: c.clock.Add(1), from: rng.IntN(2)}
	tr.prio = tr.call
	tr.accts = [2]string{fmt.Sprintf("a%d", rng.IntN(2)), fmt.Sprintf("b%d", rng.IntN(2))}
	tr.amount = 1 + rng.Int64N(20)
	tr.hold = time.Duration(rng.IntN(1000)) * time.Microsecond
	tr.gap = time.Duration(rng.IntN(300)) * time.Microsecond
	if c.policy == locks.PolicyOCC {
		tr.reads = map[string]checker.BankRead{}
		for i, b := range c.banks {
			a, _ := b.bank.Account(tr.accts[i])
			tr.reads[a.Name] = checker.BankRead{Version: a.Version, Balance: a.Balance}
		}
		tr.amount = 1 + tr.reads[tr.accts[tr.from]].Balance%23
	}
	return tr
}

// run prepares, decides and finishes tr; it reports whether tr committed.
func (c *miniCoord) run(tr *transfer) bool {
	votes := make(chan participant.Vote, 2)
	for n, i := range []int{tr.from, 1 - tr.from} {
		b := c.banks[i]
		if n == 1 {
			time.Sleep(tr.gap)
		}
		amount := tr.amount
		if i == tr.from {
			amount = -amount
		}
		p := Payload{Ops: []Op{{Account: tr.accts[i], Amount: amount}}}
		if r, ok := tr.reads[tr.accts[i]]; ok {
			p.Reads = map[string]uint64{tr.accts[i]: r.Version}
		}
		data, _ := json.Marshal(p)
		b.p.PreparePriority(tr.id, data, "", tr.prio, func(v participant.Vote) {
			if v.Cause == participant.CauseConflict {
				c.conflicts.Add(1)
			}
			votes <- v
		})
	}
	commit := true
	timeout := time.NewTimer(c.prepareTimeout)
	defer timeout.Stop()
	for range 2 {
		select {
		case v := <-votes:
			commit = commit && v.ACK
		case <-timeout.C:
			commit = false
		}
		if !commit {
			break
		}
	}
	if commit {
		time.Sleep(tr.hold)
	}
	commit = c.decide(tr.id, commit) && commit
	c.phase2(tr.id, commit)
	if commit {
		t := checker.BankTxn{ID: tr.id, Call: tr.call, Return: c.clock.Add(1), Reads: tr.reads,
			Deltas: map[string]int64{tr.accts[tr.from]: -tr.amount, tr.accts[1-tr.from]: tr.amount}}
		c.mu.Lock()
		c.committed = append(c.committed, t)
		c.mu.Unlock()
	}
	return commit
}

// finish checks the bank invariant and that no lock is left, and returns the final
// accounts as read.
func (c *miniCoord) finish() map[string]checker.BankRead {
	t := c.t
	c.bg.Wait()
	final := map[string]checker.BankRead{}
	balances := map[string]int64{}
	for _, b := range c.banks {
		for _, a := range b.bank.Accounts() {
			final[a.Name] = checker.BankRead{Version: a.Version, Balance: a.Balance}
			balances[a.Name] = a.Balance
		}
		if prep := b.bank.Prepared(); len(prep) != 0 {
			t.Errorf("%s: transactions still hold reservations: %v", c.policy, prep)
		}
		if s := b.p.Stats(); s.LockWaiting != 0 || s.LockedKeys != 0 || s.Prepared != 0 {
			t.Errorf("%s: left behind: %+v", c.policy, s)
		}
		must(t, b.p.Close())
	}
	for _, v := range checker.CheckBank(4000, balances) {
		t.Errorf("%s: %v", c.policy, v)
	}
	return final
}

func initialReads() map[string]checker.BankRead {
	return map[string]checker.BankRead{"a0": {Balance: 1000}, "a1": {Balance: 1000}, "b0": {Balance: 1000}, "b1": {Balance: 1000}}
}

// Conflicting transfers in both directions over four hot accounts, from six clients at
// once, under every policy: money is conserved, no balance goes negative, no lock or
// reservation is left; under occ the committed transfers are serializable.
func TestContentionUnderEveryPolicy(t *testing.T) {
	const clients, perClient = 6, 15
	for _, policy := range locks.Policies {
		t.Run(string(policy), func(t *testing.T) {
			c := newMiniCoord(t, policy, false)
			var wg sync.WaitGroup
			var commits atomic.Int64
			for w := range clients {
				wg.Add(1)
				go func() {
					defer wg.Done()
					rng := rand.New(rand.NewPCG(uint64(w), 16))
					for i := range perClient {
						if c.run(c.begin(fmt.Sprintf("c%d-%d", w, i), rng)) {
							commits.Add(1)
						}
					}
				}()
			}
			wg.Wait()
			final := c.finish()
			if commits.Load() == 0 {
				t.Fatal("nothing committed")
			}
			if policy == locks.PolicyOCC {
				res, vs := checker.CheckBankSerializable(initialReads(), c.committed, final, 10*time.Second)
				if res != porcupine.Ok {
					t.Fatalf("occ: %v %v", res, vs)
				}
			}
			var waits int
			for _, b := range c.banks {
				waits += b.p.Stats().LockWaits
			}
			t.Logf("%s: %d of %d committed; %d conflict NACKs, %d lock waits, %d wounds", policy, commits.Load(), clients*perClient, c.conflicts.Load(), waits, c.wounds)
		})
	}
}

// The checker's serializability check catches an occ validation that skips the
// version check: two transfers read the same versions, one commits, then the other
// prepares on its stale read. The real validation refuses it (conflict); the broken one
// commits it, and no serial order explains the history.
func TestSerializabilityCatchesBrokenOCC(t *testing.T) {
	for _, broken := range []bool{false, true} {
		c := newMiniCoord(t, locks.PolicyOCC, broken)
		rng := rand.New(rand.NewPCG(1, 16))
		t1 := c.begin("T1", rng)
		t2 := c.begin("T2", rng)
		t2.accts, t2.from = t1.accts, t1.from // the same accounts, read at the same versions
		t2.reads = t1.reads
		if !c.run(t1) {
			t.Fatal("T1 did not commit")
		}
		committed := c.run(t2)
		final := c.finish()
		res, vs := checker.CheckBankSerializable(initialReads(), c.committed, final, 10*time.Second)
		switch {
		case !broken && (committed || res != porcupine.Ok):
			t.Fatalf("real occ: T2 committed %v, check %v %v", committed, res, vs)
		case broken && (!committed || res != porcupine.Illegal || len(vs) != 1):
			t.Fatalf("broken occ: T2 committed %v, check %v %v: the check missed the stale read", committed, res, vs)
		}
	}
}
