package scenarios

import (
	"fmt"
	"strings"
	"testing"

	"github.com/dtc-project/dtc/checker"
	"github.com/dtc-project/dtc/faults"
	"github.com/dtc-project/dtc/locks"
	"github.com/dtc-project/dtc/participant"
	"github.com/dtc-project/dtc/simnet"
)

// hotTransfers is a contention workload of n transfers over few hot accounts: a0 and a1
// of p1 and of p2, four clients at once, each transfer moving 5 between p1/aX and
// p2/aX. Clients 1 and 2 share one account, 3 and 4 the other (swapping every round),
// and the two of a pair move in opposite directions (turning every round). Each client
// submits its transfers one after the other, as soon as the last one ended.
func hotTransfers(n int) []simnet.Transfer {
	var w []simnet.Transfer
	for i := range n {
		c, round := i%4, i/4
		acct := fmt.Sprintf("a%d", (c/2+round)%2)
		from, to := "p1", "p2"
		if (c+round)%2 == 1 {
			from, to = to, from
		}
		w = append(w, By(c+1, Transfer(fmt.Sprintf("t%d", i+1), Debit(from, acct, 5), Credit(to, acct, 5))))
	}
	return w
}

// occOptions runs hotTransfers(40) with participants under occ: each client reads the
// accounts of its transfer before it submits it and names their versions in the
// payloads; a prepare whose read is stale is refused.
func occOptions() simnet.Options {
	return simnet.Options{
		Participants: 2, Clients: 4, Accounts: 2,
		Workload:    hotTransfers(40),
		Participant: func(c *participant.Config) { c.Locks = locks.DefaultConfig(locks.PolicyOCC) },
	}
}

// Under occ, a contention workload on four hot accounts commits some transfers and
// refuses others with cause conflict for a version that changed since the client read
// it; the committed transfers are serializable: some serial order explains every
// version and balance the clients read, and the accounts at the end.
func TestScenarioOCCOnHotAccountsCommitsSomeRefusesStaleReadsAndStaysSerializable(t *testing.T) {
	o := occOptions()
	var trace strings.Builder
	o.Trace = &trace
	w := simulate(t, o).noViolations()
	w.happened("stale reads refused", w.res.Stats.StaleReads)
	if w.res.Committed == 0 {
		t.Fatalf("nothing committed:\n%s", w.res.Failure())
	}
	if !strings.Contains(trace.String(), "committed transfers under occ: Ok") {
		t.Fatal("the trace reports no serializability check under occ that passed")
	}
	t.Logf("%d committed, %d aborted; %d conflict NACKs, %d of them stale reads",
		w.res.Committed, w.res.Aborted, w.res.Stats.Conflicts, w.res.Stats.StaleReads)
}

// Participants under occ that skip the version check: a transfer prepared on a stale
// read is ACKed and commits over a transfer that committed since its read; no serial
// order explains both reads.
func TestScenarioCheckerCatchesOCCThatSkipsValidation(t *testing.T) {
	o := occOptions()
	o.Break = simnet.BreakOCCSkipsValidation
	w := simulate(t, o)
	w.violation(checker.KindSerializability)
	if w.res.Stats.StaleReads != 0 {
		t.Fatalf("%d stale reads refused by participants that validate nothing", w.res.Stats.StaleReads)
	}
}

// The same breakage over the swarm's seeds: the generated workload (transfers in both
// directions between two participants of two hot accounts each) with each seed's drawn
// faults; the serializability check catches it within seedsMax seeds.
func TestScenarioCheckerCatchesOCCThatSkipsValidationUnderFaults(t *testing.T) {
	catches(t, simnet.BreakOCCSkipsValidation, func(seed uint64) *faults.Knobs { k := faults.Draw(seed); return &k },
		func(o *simnet.Options) {
			o.Participants, o.Clients, o.Accounts, o.Txns = 2, 4, 2, 60
			o.Participant = func(c *participant.Config) { c.Locks = locks.DefaultConfig(locks.PolicyOCC) }
		}, checker.KindSerializability)
}

// Without the breakage, the same seeds stay serializable under occ, faults included.
func TestOCCOnHotAccountsUnderFaultsKeepsEveryInvariant(t *testing.T) {
	results := runSeeds(t, 1, seedsMax, func(seed uint64) simnet.Options {
		k := faults.Draw(seed)
		return simnet.Options{Seed: seed, Participants: 2, Clients: 4, Accounts: 2, Txns: 60, Knobs: &k,
			Participant: func(c *participant.Config) { c.Locks = locks.DefaultConfig(locks.PolicyOCC) }}
	})
	stale := 0
	for _, res := range results {
		if !res.OK() {
			t.Fatalf("seed %d: %s", res.Seed, res.Failure())
		}
		stale += res.Stats.StaleReads
	}
	if stale == 0 {
		t.Fatal("no stale read refused in any seed: the clients' reads were never validated")
	}
	t.Logf("%d seeds ok, %d stale reads refused", len(results), stale)
}
