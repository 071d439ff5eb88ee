package simnet

import (
	"testing"

	"github.com/dtc-project/dtc/faults"
	"github.com/dtc-project/dtc/locks"
	"github.com/dtc-project/dtc/participant"
)

// The bank participants under each lock policy (issue 16), with two hot accounts each:
// every run, calm or with the seed's faults (crashes replay the log and retake the
// locks of prepared transactions), stays atomic and keeps the money invariant, and
// every transaction ends. The coordinator here sends no priority, so wound-wait waits
// like wait; a deadlock across participants ends at the prepare deadline.
func TestLockPoliciesKeepTheInvariants(t *testing.T) {
	calmAborts := map[locks.Policy]int{}
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
}
