package simnet

import (
	"fmt"
	"testing"
	"time"

	"github.com/dtc-project/dtc/checker"

	"github.com/dtc-project/dtc/faults"
	"github.com/dtc-project/dtc/locks"
	"github.com/dtc-project/dtc/participant"
)

// The bank participants under each lock policy (issue 16), with two hot accounts each:
// every run, calm or with the seed's faults (crashes replay the log and retake the
// locks of prepared transactions), stays atomic and keeps the money invariant, and
// every transaction ends. Detection is off here: under wait a deadlock across
// participants ends at the prepare deadline; under wound-wait the older wounds the
// younger (waits.go).
//
// Under occ the clients read their accounts before submitting and the participants
// validate those reads: some prepares are refused for a stale read, and the committed
// transfers stay serializable (serial.go) with the reads the clients made.
func TestLockPoliciesKeepTheInvariants(t *testing.T) {
	calmAborts := map[locks.Policy]int{}
	staleReads := 0
	for _, policy := range locks.Policies {
		for seed := uint64(1); seed <= 4; seed++ {
			o := Options{Seed: seed, Txns: 60, Accounts: 2, Participants: 2, Clients: 4,
				Participant: func(c *participant.Config) { c.Locks = locks.DefaultConfig(policy) }}
			if seed == 1 {
				k := faults.Calm()
				o.Knobs = &k
			}
			res, err := Run(o)
			if err != nil {
				t.Fatal(err)
			}
			if !res.OK() {
				t.Fatalf("policy %s seed %d: %s", policy, seed, res.Failure())
			}
			if policy == locks.PolicyOCC {
				staleReads += res.Stats.StaleReads
			} else if res.Stats.StaleReads != 0 {
				t.Fatalf("policy %s seed %d: %d stale reads refused, but only occ validates reads", policy, seed, res.Stats.StaleReads)
			}
			if seed == 1 {
				calmAborts[policy] = res.Aborted
				t.Logf("policy %s, calm: %s", policy, res.Summary())
			}
		}
	}
	// The run is deterministic: with the same seed, refusing conflicts aborts more
	// transfers than taking no locks at all.
	if calmAborts[locks.PolicyNoWait] <= calmAborts[locks.PolicyNone] {
		t.Fatalf("calm aborts by policy %v: no-wait refused no conflict", calmAborts)
	}
	if staleReads == 0 {
		t.Fatal("occ refused no stale read: the clients' reads were never validated")
	}
}

// deadlockPairs is a workload of n pairs of opposite transfers between p1/a0 and p2/a0,
// both of a pair submitted at once by two clients: whenever each takes its first
// account before the other's prepare arrives, they deadlock across the participants.
func deadlockPairs(n int) []Transfer {
	var w []Transfer
	for i := range n {
		at := time.Duration(i) * 10 * time.Millisecond
		w = append(w,
			Transfer{ID: fmt.Sprintf("t1-%d", i), Client: 0, At: at, PrepareTimeout: 5 * time.Second, Legs: []Leg{
				{Participant: "p1", Account: "a0", Amount: -1}, {Participant: "p2", Account: "a0", Amount: 1}}},
			Transfer{ID: fmt.Sprintf("t2-%d", i), Client: 1, At: at, PrepareTimeout: 5 * time.Second, Legs: []Leg{
				{Participant: "p2", Account: "a0", Amount: -1}, {Participant: "p1", Account: "a0", Amount: 1}}})
	}
	return w
}

// The two-service deadlock with the library's participants under wait, in the
// simulator: with the coordinator's detector (the real waitfor graph) every deadlock is
// broken by aborting its youngest transaction and the run ends far sooner in virtual
// time than without it, where each deadlock lasts until the prepare deadline. Under
// wound-wait no deadlock is found: the older wounds the younger.
func TestDeadlockDetectedInTheSimulator(t *testing.T) {
	run := func(policy locks.Policy, detect bool) *Result {
		k := faults.Calm()
		k.LatencyMax = 20 * time.Millisecond // prepares of a pair cross often
		res, err := Run(Options{Seed: 7, Participants: 2, Clients: 2, Accounts: 1, Workload: deadlockPairs(20), Knobs: &k,
			DeadlockDetection: detect, Participant: func(c *participant.Config) { c.Locks = locks.DefaultConfig(policy) }})
		if err != nil {
			t.Fatal(err)
		}
		if !res.OK() {
			t.Fatalf("policy %s, detection %v: %s", policy, detect, res.Failure())
		}
		t.Logf("policy %s, detection %v: %s; %d wait reports, %d wounds, %d deadlocks; fault phase ended at %v",
			policy, detect, res.Summary(), res.Stats.WaitReports, res.Stats.Wounds, res.Stats.Deadlocks, res.HealAt)
		return res
	}
	on, off := run(locks.PolicyWait, true), run(locks.PolicyWait, false)
	if again := run(locks.PolicyWait, true); again.TraceSHA256 != on.TraceSHA256 {
		t.Fatal("the same seed gave two traces: wait reports made the run depend on more than the seed")
	}
	if on.Stats.Deadlocks == 0 {
		t.Fatal("with detection, no deadlock was found: the workload built none")
	}
	if off.Stats.Deadlocks != 0 {
		t.Fatalf("without detection, %d deadlocks found", off.Stats.Deadlocks)
	}
	if on.HealAt >= off.HealAt {
		t.Fatalf("with detection the workload ended at %v, without at %v", on.HealAt, off.HealAt)
	}
	for i := range 20 { // every pair: at least one of the two commits
		if on.Outcomes[fmt.Sprintf("t1-%d", i)].Client != checker.Committed && on.Outcomes[fmt.Sprintf("t2-%d", i)].Client != checker.Committed {
			t.Errorf("with detection, neither of pair %d committed", i)
		}
	}
	ww := run(locks.PolicyWoundWait, false)
	if ww.Stats.Deadlocks != 0 || ww.Stats.Wounds == 0 {
		t.Fatalf("wound-wait: %d deadlocks, %d wounds", ww.Stats.Deadlocks, ww.Stats.Wounds)
	}
}
