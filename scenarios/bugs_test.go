package scenarios

import (
	"strings"
	"testing"
	"time"

	"github.com/dtc-project/dtc/faults"
	"github.com/dtc-project/dtc/simnet"
)

// Bugs the simulator found in the real components, each replayed by a scenario that now
// shows it fixed. When one of these fails, the bug is back.
//
//	bug                                               found by                 fixed by / scenario
//	────────────────────────────────────────────────  ───────────────────────  ────────────────────────────────────────
//	a client-chosen id that the coordinator answered  swarm seed 302, 3 × 200  coordinator: every begin is a new
//	"not found" (presumed abort) for could be begun   (first seen as seed 623  incarnation (id@nonce) for participants;
//	again and committed: a participant that acted     of an earlier build)     TestScenarioIDReusedAfterThePresumed…
//	on the late 404 aborted what the others committed
//	a start that failed during the repair of a torn   chaos sim seeds 823 and  simnet: a failed start is a crash, its
//	tail kept its unsynced zeros on the simulated     866 (of 1000, on tree    unsynced writes lost (torn if the power
//	disk; the next start read them as durable, and    928de76's parent as the  failed); the flip stays in the frame the
//	the next torn crash left old garbage behind (or   issue reported them);    cut goes through; wal: repair zeroes back
//	flipped a bit in a complete frame): "corrupt"     replayed here            to front. TestScenarioAStartThatFails…
//	a segment cut short among its zeros was accepted  chaos sim seed 458 (of   wal: nothing more is written into a
//	and written on; a torn write in it then looked    20000, the first run     segment accepted short: appends go on
//	like a cut through records, and the log refused   with disk lies)          in the next one.
//	to start: "segment file cut short"                                         TestScenarioATornWriteAfterASegment…

// TestScenarioIDReusedAfterThePresumedAbortIsANewIncarnation replays DESIGN §7
// "reusing a client-chosen id after the coordinator presumed it aborted":
//
//  1. c1 submits t0, which teaches the coordinator that p1 and p2 ask about transactions
//     in doubt, then t1; p1 and p2 prepare; the coordinator crashes as it appends the
//     decision, before its lazy begin record reached the disk. It restarts knowing
//     nothing of t1.
//  2. p1 and p2, in doubt, ask about t1 at 1.5 s and are answered "not found": presumed
//     abort. The answer to p2 is slow (200 ms), the one to p1 slower (2 s).
//  3. At 1.55 s c2 submits t1 again (the same id, the same transfer, as a client
//     retrying would). The coordinator begins it afresh and it commits; the commit to
//     p2 is slow (500 ms).
//  4. The late "not found" answers arrive.
//
// Before the fix the participants saw the same id twice, ACKed the second prepare as a
// duplicate of the first, and p2 rolled back on the late answer what p1 committed. Now
// each begin is a new incarnation with its own participant id: the late answers abort
// the old incarnation only, and the new one commits everywhere.
func TestScenarioIDReusedAfterThePresumedAbortIsANewIncarnation(t *testing.T) {
	k := Exact()
	k.InDoubtAfter = time.Second
	w := simulate(t, simnet.Options{
		Knobs: k,
		Workload: []simnet.Transfer{
			Move("t0", 1, "p1", "p2"), // teaches the coordinator that p1 and p2 ask: t1's begin is lazy
			Move("t1", 10, "p1", "p2"),
			By(2, At(1550*time.Millisecond, Move("t1", 10, "p1", "p2"))),
		},
		Schedule: faults.Schedule{
			faults.When("coord", faults.AppendDecision).Txn("t1").Crash("coord"),
			faults.When("p2", faults.QueryAnswered).Txn("t1").Delay(200 * time.Millisecond),
			faults.When("p1", faults.QueryAnswered).Txn("t1").Delay(2 * time.Second),
			faults.When("coord", faults.SendCommit).Txn("t1").To("p2").Delay(500 * time.Millisecond),
		},
	})
	w.noViolations().committedEverywhere("t1")
	presumed := false
	for _, e := range w.res.History.Events {
		presumed = presumed || strings.HasSuffix(e.Who, "(not found)")
	}
	if !presumed {
		t.Fatal("the scenario no longer reaches the presumed abort it is about")
	}
}

// TestScenarioIDReusedAfterThePresumedAbortSwarmSeed302 is the swarm seed (3 participants
// × 200 transfers) that first hit it with consequences, kept as a regression run.
func TestScenarioIDReusedAfterThePresumedAbortSwarmSeed302(t *testing.T) {
	simulate(t, simnet.Options{Seed: 302, Knobs: swarmKnobs(302)}).noViolations()
}

// TestScenarioAStartThatFailsDuringTheRepairOfATornTailLosesTheRepair replays the fault
// sequence behind chaos sim seeds 823 and 866:
//
//  1. At 40 ms the power fails during an fsync of p1: its log keeps a torn tail.
//  2. p1 restarts; its log zeroes the torn tail, and the fsync of that repair fails
//     (EIO): p1 does not start. It tries again 200 ms later.
//  3. At p1's first prepare after 330 ms, the power fails again during the fsync, and a
//     bit flips in the frame the cut goes through (BitFlipRate 1).
//
// The simulated disk used to keep the failed start's repair writes, unsynced: the
// retry read the zeros as if durable and repaired nothing, and the second torn crash
// kept a prefix of the new frames with the old torn bytes behind them (and placed its
// flip by the wrong bytes): p1's log refused to open ("corrupt record in segment 1 at
// offset 3096"). Now a failed start is a crash like any other: what it did not sync is
// lost, and the retry repairs the torn tail itself.
func TestScenarioAStartThatFailsDuringTheRepairOfATornTailLosesTheRepair(t *testing.T) {
	k := Calm()
	k.BitFlipRate = 1
	w := simulate(t, simnet.Options{Seed: 29, Txns: 400, Knobs: k, Schedule: faults.Schedule{
		faults.At(40 * time.Millisecond).CrashTorn("p1"),
		faults.At(80*time.Millisecond).FailSyncs("p1", 1),
		faults.When("p1", faults.AppendPrepare).After(330 * time.Millisecond).CrashTorn("p1"),
	}})
	w.noViolations().noted("does not start: wal: open: sync segment 1")
	w.happened("torn crashes", w.res.Stats.TornCrashes).happened("bit flips", w.res.Stats.BitFlips)
	w.happened("torn tails repaired", w.res.Stats.TornRepaired)
}

// TestScenarioATornWriteAfterASegmentCutShortIsStillATornTail replays what chaos sim
// seed 458 found:
//
//  1. At 50 ms p1 crashes, and while it is down its disk cuts its segment short among
//     the zeros after its records (nothing written is lost).
//  2. p1 restarts: its log accepts the short segment, as it must.
//  3. At p1's first prepare after 300 ms the power fails during the fsync: a torn tail.
//
// The log used to go on writing in the short segment; the torn frame there then had no
// end marker after it, which is what a cut through records looks like, and p1 refused
// to start. Now nothing more is written into a segment accepted short, and the torn
// tail is repaired like any other.
func TestScenarioATornWriteAfterASegmentCutShortIsStillATornTail(t *testing.T) {
	w := simulate(t, simnet.Options{Txns: 100, Knobs: Calm(), Schedule: faults.Schedule{
		faults.At(50 * time.Millisecond).Crash("p1").For(100 * time.Millisecond),
		faults.At(50 * time.Millisecond).CutShortAfterRecords("p1"),
		faults.When("p1", faults.AppendPrepare).After(300 * time.Millisecond).CrashTorn("p1"),
	}})
	w.noViolations().happened("cuts", w.res.Stats.ShortCuts).happened("torn tails repaired", w.res.Stats.TornRepaired)
}

func TestScenarioATornWriteAfterASegmentCutShortSwarmSeed458(t *testing.T) {
	simulate(t, simnet.Options{Seed: 458, Knobs: swarmKnobs(458)}).noViolations()
}
