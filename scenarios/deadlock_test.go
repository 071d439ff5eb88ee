package scenarios

import (
	"strings"
	"testing"
	"time"

	"github.com/dtc-project/dtc/checker"
	"github.com/dtc-project/dtc/faults"
	"github.com/dtc-project/dtc/locks"
	"github.com/dtc-project/dtc/participant"
	"github.com/dtc-project/dtc/simnet"
)

// The two-service deadlock of issue 16 with the library's participants under lock
// policy wait: t1 moves from p1/a0 to p2/a0, t2 (begun 1 ms later: the younger) from
// p2/a0 to p1/a0. t1's prepare to p2 and t2's to p1 are held 50 ms, so t1 takes p1/a0
// and t2 takes p2/a0 first; then each waits at the other participant for what the
// other holds. Neither participant sees more than a wait.
func deadlockOptions(detect bool) simnet.Options {
	return simnet.Options{
		Knobs: Exact(),
		Workload: []simnet.Transfer{
			By(1, Transfer("t1", Debit("p1", "a0", 10), Credit("p2", "a0", 10))),
			By(2, At(time.Millisecond, Transfer("t2", Debit("p2", "a0", 10), Credit("p1", "a0", 10)))),
		},
		Schedule: faults.Schedule{
			faults.When("coord", faults.SendPrepare).Txn("t1").To("p2").Delay(50 * time.Millisecond),
			faults.When("coord", faults.SendPrepare).Txn("t2").To("p1").Delay(50 * time.Millisecond),
		},
		Participant:       func(c *participant.Config) { c.Locks = locks.DefaultConfig(locks.PolicyWait) },
		DeadlockDetection: detect,
	}
}

func TestScenarioTwoServiceDeadlockTheDetectorAbortsTheYoungerAndTheOlderCommits(t *testing.T) {
	o := deadlockOptions(true)
	var trace strings.Builder
	o.Trace = &trace
	w := simulate(t, o).noViolations().
		committedEverywhere("t1").clientLearned("t1", checker.Committed).
		abortedEverywhere("t2").clientLearned("t2", checker.Aborted)
	if st := w.res.Stats; st.Deadlocks != 1 || st.WaitReports < 2 {
		t.Fatalf("%d deadlocks found from %d wait reports, want 1 from both waits", st.Deadlocks, st.WaitReports)
	}
	if !strings.Contains(trace.String(), "victim t2 (youngest)") {
		t.Fatalf("the trace names no deadlock with victim t2:\n%s", w.res.Failure())
	}
	// Far sooner than the 1 s prepare deadline: the closing report aborts t2 at once.
	if w.res.HealAt >= time.Second {
		t.Fatalf("the workload ended at %v of virtual time", w.res.HealAt)
	}
}

func TestScenarioTwoServiceDeadlockWithoutTheDetectorWaitsOutThePrepareDeadline(t *testing.T) {
	w := simulate(t, deadlockOptions(false)).noViolations().
		abortedEverywhere("t1").clientLearned("t1", checker.Aborted)
	if st := w.res.Stats; st.Deadlocks != 0 {
		t.Fatalf("%d deadlocks found with the detector off", st.Deadlocks)
	}
	if w.res.HealAt < time.Second {
		t.Fatalf("the workload ended at %v of virtual time, before the 1 s prepare deadline", w.res.HealAt)
	}
}

// A detector that finds the cycle but never aborts its victim: both transactions wait
// out the prepare deadline, and the first to reach it is on a cycle of reported waits.
func TestScenarioCheckerCatchesADetectorThatNeverAborts(t *testing.T) {
	o := deadlockOptions(true)
	o.Break = simnet.BreakDetectorNeverAborts
	w := simulate(t, o)
	v := w.violation(simnet.KindDeadlockLiveness)
	if !strings.Contains(v.Detail, "cycle") || !strings.HasPrefix(v.Txn, "t1") {
		t.Fatalf("want t1 caught waiting on the cycle, got %s", v)
	}
	t.Logf("caught: %s", v)
}

// The same two transactions under wound-wait: t1, the older, wounds t2 at p2 and
// commits; t2, the younger, waits for t1 at p1 and is aborted. No deadlock forms.
func TestScenarioWoundWaitTheOlderWoundsTheYoungerAndCommits(t *testing.T) {
	o := deadlockOptions(false)
	o.Participant = func(c *participant.Config) { c.Locks = locks.DefaultConfig(locks.PolicyWoundWait) }
	w := simulate(t, o).noViolations().
		committedEverywhere("t1").clientLearned("t1", checker.Committed).
		abortedEverywhere("t2").clientLearned("t2", checker.Aborted)
	if st := w.res.Stats; st.Wounds != 1 {
		t.Fatalf("%d wounds, want 1: t1 wounding t2", st.Wounds)
	}
	if w.res.HealAt >= time.Second {
		t.Fatalf("the workload ended at %v of virtual time, after the 1 s prepare deadline", w.res.HealAt)
	}
}

// A wound-wait where the younger wounds the older too: t2, waiting for t1 at p1, asks
// for t1's abort.
func TestScenarioCheckerCatchesAYoungerTransactionThatWounds(t *testing.T) {
	o := deadlockOptions(false)
	o.Participant = func(c *participant.Config) { c.Locks = locks.DefaultConfig(locks.PolicyWoundWait) }
	o.Break = simnet.BreakWoundWaitYoungerWounds
	w := simulate(t, o)
	v := w.violation(simnet.KindWoundWait)
	if !strings.HasPrefix(v.Txn, "t1") {
		t.Fatalf("want t1 wounded by t2, got %s", v)
	}
	t.Logf("caught: %s", v)
}

// Participants given the wait policy that take no locks: prepares of one account
// overlap, two transfers decide on the same version of it, and no serial order of the
// committed transfers explains what they read.
func TestScenarioCheckerCatchesLocksThatAreNotTaken(t *testing.T) {
	o := simnet.Options{Seed: 1, Txns: 60, Accounts: 2, Participants: 2, Clients: 4, Break: simnet.BreakLocksNotTaken,
		Participant: func(c *participant.Config) { c.Locks = locks.DefaultConfig(locks.PolicyWait) }}
	simulate(t, o).violation(checker.KindSerializability)
}
