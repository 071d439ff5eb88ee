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
