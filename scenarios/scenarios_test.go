package scenarios

import (
	"testing"
	"time"

	"github.com/dtc-project/dtc/checker"
	"github.com/dtc-project/dtc/faults"
	"github.com/dtc-project/dtc/simnet"
)

// Each scenario runs one small workload through the simulator with calm knobs (1–2 ms
// per message, 0.5 ms per fsync, restarts after 100 ms, 1 s prepare deadline, in-doubt
// queries after 3 s) and one explicit fault schedule, then says what must hold.

func TestScenarioHappyPathCommitsATransfer(t *testing.T) {
	simulate(t, simnet.Options{
		Workload: []simnet.Transfer{Move("t1", 10, "p1", "p2")},
	}).noViolations().committedEverywhere("t1").clientLearned("t1", checker.Committed)
}

func TestScenarioInsufficientFundsIsRefusedWithNACKAndAborted(t *testing.T) {
	simulate(t, simnet.Options{
		Workload: []simnet.Transfer{Move("t1", 1000, "p1", "p2")}, // a0 holds 100
	}).noViolations().abortedEverywhere("t1").clientLearned("t1", checker.Aborted)
}

func TestScenarioPrepareTimesOutWhenAParticipantIsPartitionedAndTheTransferAborts(t *testing.T) {
	simulate(t, simnet.Options{
		Workload: []simnet.Transfer{Move("t1", 10, "p1", "p2")},
		Schedule: faults.Schedule{faults.At(0).Partition("p2", "coord").For(3 * time.Second)},
	}).noViolations().abortedEverywhere("t1").clientLearned("t1", checker.Aborted)
}

func TestScenarioCoordinatorCrashesBeforeTheDecisionAndRecoveryCommitsWhatEveryonePrepared(t *testing.T) {
	// p2's prepare is slow, so the lazy begin record is synced before the votes are in;
	// the coordinator crashes as it appends the decision, which is lost. Recovery finds
	// the begin, asks both participants, hears "prepared" twice and commits.
	simulate(t, simnet.Options{
		Knobs:    Exact(),
		Workload: []simnet.Transfer{Move("t1", 10, "p1", "p2")},
		Schedule: faults.Schedule{
			faults.When("coord", faults.SendPrepare).Txn("t1").To("p2").Delay(50 * time.Millisecond),
			faults.When("coord", faults.AppendDecision).Txn("t1").Crash("coord"),
		},
	}).noViolations().noted("crashes").committedEverywhere("t1").clientLearned("t1", checker.Unknown)
}

func TestScenarioCoordinatorCrashesBeforeItsBeginIsDurableAndTheTransferIsPresumedAborted(t *testing.T) {
	// The crash comes before the lazy begin record reached the disk: the restarted
	// coordinator has never heard of t1; the participants, in doubt, ask, get "not
	// found" and roll back. The begin is lazy because t0 taught the coordinator that
	// p1 and p2 ask about transactions in doubt (before that it syncs every begin).
	simulate(t, simnet.Options{
		Knobs:    Exact(),
		Workload: []simnet.Transfer{Move("t0", 1, "p1", "p2"), Move("t1", 10, "p1", "p2")},
		Schedule: faults.Schedule{faults.When("coord", faults.AppendDecision).Txn("t1").Crash("coord")},
	}).noViolations().abortedEverywhere("t1").clientLearned("t1", checker.Unknown)
}

func TestScenarioCoordinatorCrashesAfterTheDecisionBeforePhase2AndStillCommits(t *testing.T) {
	simulate(t, simnet.Options{
		Workload: []simnet.Transfer{Move("t1", 10, "p1", "p2")},
		Schedule: faults.Schedule{faults.When("coord", faults.Decided).Txn("t1").Crash("coord")},
	}).noViolations().committedEverywhere("t1").clientLearned("t1", checker.Unknown)
}

func TestScenarioCoordinatorCrashesInTheMiddleOfPhase2AndFinishesItAfterTheRestart(t *testing.T) {
	simulate(t, simnet.Options{
		Workload: []simnet.Transfer{Transfer("t1", Debit("p1", "a0", 30), Credit("p2", "a0", 20), Credit("p3", "a0", 10))},
		Schedule: faults.Schedule{faults.When("coord", faults.SendCommit).Txn("t1").Nth(2).Crash("coord")},
	}).noViolations().committedEverywhere("t1")
}

func TestScenarioParticipantCrashesBeforeItsACKIsDurableAndTheTransferAborts(t *testing.T) {
	simulate(t, simnet.Options{
		Workload: []simnet.Transfer{Move("t1", 10, "p1", "p2")},
		Schedule: faults.Schedule{faults.When("p2", faults.AppendPrepare).Crash("p2")},
	}).noViolations().abortedEverywhere("t1").clientLearned("t1", checker.Aborted)
}

func TestScenarioParticipantCrashesAfterItsACKAndCommitsAfterItsRestart(t *testing.T) {
	simulate(t, simnet.Options{
		Workload: []simnet.Transfer{Move("t1", 10, "p1", "p2")},
		Schedule: faults.Schedule{faults.When("p2", faults.RecvCommit).Txn("t1").Crash("p2")},
	}).noViolations().committedEverywhere("t1").clientLearned("t1", checker.Committed)
}

func TestScenarioParticipantCrashesAfterItsPrepareIsDurableBeforeTheACKLeaves(t *testing.T) {
	// The ACK never reaches the coordinator, which aborts at the deadline; p2 comes back
	// prepared and is rolled back.
	simulate(t, simnet.Options{
		Workload: []simnet.Transfer{Move("t1", 10, "p1", "p2")},
		Schedule: faults.Schedule{faults.When("p2", faults.Ack).Txn("t1").Crash("p2")},
	}).noViolations().abortedEverywhere("t1").clientLearned("t1", checker.Aborted)
}

func TestScenarioParticipantPartitionedDuringPhase2CommitsOnceThePartitionHeals(t *testing.T) {
	simulate(t, simnet.Options{
		Workload: []simnet.Transfer{Move("t1", 10, "p1", "p2")},
		Schedule: faults.Schedule{
			faults.When("coord", faults.SendCommit).Txn("t1").To("p2").Partition("p2", "coord").For(5 * time.Second),
		},
	}).noViolations().committedEverywhere("t1").clientLearned("t1", checker.Committed)
}

func TestScenarioParticipantCutOffOneWayDuringPrepareAborts(t *testing.T) {
	// p2 hears the prepare and votes, but its answers never come back.
	simulate(t, simnet.Options{
		Workload: []simnet.Transfer{Move("t1", 10, "p1", "p2")},
		Schedule: faults.Schedule{faults.At(0).Cut("p2", "coord").For(2 * time.Second)},
	}).noViolations().abortedEverywhere("t1").clientLearned("t1", checker.Aborted)
}

func TestScenarioDuplicatedAndReorderedMessagesChangeNothing(t *testing.T) {
	k := Calm()
	k.LatencyMin, k.LatencyMax = time.Millisecond, 30*time.Millisecond
	k.DupRate, k.LatencyTailRate = 0.5, 0.3
	w := simulate(t, simnet.Options{Txns: 100, Knobs: k}).noViolations()
	w.happened("duplicated messages", w.res.Stats.Duplicated)
}

func TestScenarioLostMessagesAreRetriedOrAbort(t *testing.T) {
	k := Calm()
	k.DropRate = 0.2
	w := simulate(t, simnet.Options{Txns: 100, Knobs: k}).noViolations()
	w.happened("dropped messages", w.res.Stats.Dropped)
}

func TestScenarioUnsyncedLogWritesAreLostInCrashesAndNothingBreaks(t *testing.T) {
	var crashes faults.Schedule
	for i := 1; i <= 8; i++ {
		node := "coord"
		if i%2 == 0 {
			node = []string{"p1", "p2", "p3"}[i/2%3]
		}
		crashes = append(crashes, faults.At(time.Duration(i)*37*time.Millisecond).Crash(node).For(20*time.Millisecond))
	}
	w := simulate(t, simnet.Options{Txns: 100, Schedule: crashes}).noViolations()
	w.happened("crashes", w.res.Stats.Crashes)
}

func TestScenarioATornLogTailIsRepairedAtRestart(t *testing.T) {
	// The power fails during an fsync: a prefix of what was being written survives.
	w := simulate(t, simnet.Options{Txns: 60, Schedule: faults.Schedule{
		faults.At(20 * time.Millisecond).CrashTorn("coord"),
		faults.At(25 * time.Millisecond).CrashTorn("p1"),
		faults.At(200 * time.Millisecond).CrashTorn("coord"),
		faults.At(300 * time.Millisecond).CrashTorn("p2"),
	}}).noViolations()
	w.happened("torn crashes", w.res.Stats.TornCrashes).happened("torn tails repaired", w.res.Stats.TornRepaired)
}

func TestScenarioAnFsyncErrorCrashesTheNodeWhichRestarts(t *testing.T) {
	w := simulate(t, simnet.Options{Txns: 40, Schedule: faults.Schedule{
		faults.At(10*time.Millisecond).FailSyncs("coord", 1),
		faults.At(50*time.Millisecond).FailSyncs("p2", 1),
	}}).noViolations().noted("fsync failed")
	w.happened("fsync errors", w.res.Stats.SyncErrors).happened("restarts", w.res.Stats.Restarts)
}

func TestScenarioAFullDiskRefusesNewTransactionsUntilItHasRoomAgain(t *testing.T) {
	k := Calm()
	k.ClientRetries = 2
	w := simulate(t, simnet.Options{
		Txns: 60, Knobs: k, SegmentSizeBytes: 4 << 10,
		Schedule: faults.Schedule{
			faults.At(0).FillDisk("coord").For(300 * time.Millisecond),
			faults.At(0).FillDisk("p1").For(300 * time.Millisecond),
		},
	}).noViolations()
	w.happened("writes refused for lack of space", w.res.Stats.DiskFullErrors)
}

func TestScenarioConcurrentTransfersOnHotAccountsKeepTheMoneyConstant(t *testing.T) {
	w := simulate(t, simnet.Options{Txns: 200, Clients: 8, Accounts: 1}).noViolations()
	w.happened("refusals for lack of funds or conflicts", w.res.Aborted)
}

func TestScenarioABitFlippedInTheCoordinatorsLogStopsItFromStarting(t *testing.T) {
	// Rot in the last durable record (a decision already told) is not a torn tail: the
	// wal refuses to open, naming where. The refusal is what must happen after rot: the
	// run stops there (an operator must step in), with no violation.
	w := simulate(t, simnet.Options{Txns: 10, Schedule: faults.Schedule{
		faults.At(100 * time.Millisecond).FlipBit("coord"),
		faults.At(110 * time.Millisecond).Crash("coord"),
	}, HealMax: 10 * time.Second}).noViolations()
	w.noted("refuses to start after rot or a cut, as it must: wal: corrupt record in segment 1")
	w.happened("rot", w.res.Stats.RotFlips).happened("refusals after rot", w.res.Stats.RotRefusals)
	if !w.res.RotStop {
		t.Fatal("the run did not stop at the refusal")
	}
}

func TestScenarioABitFlippedInTheLastDurableRecordOfAParticipantStopsItFromStarting(t *testing.T) {
	// p1 ACKs t1's prepare (its prepare record is durable, the last of its log); while
	// p1 is down, a bit of that record rots. Its log must refuse to open, naming the
	// segment and the offset, rather than truncate the record as a torn tail (which
	// would forget a prepare the coordinator counts on).
	w := simulate(t, simnet.Options{
		Workload: []simnet.Transfer{Move("t1", 10, "p1", "p2")},
		Schedule: faults.Schedule{
			faults.When("p1", faults.Ack).Txn("t1").Crash("p1").For(time.Second),
			faults.At(10 * time.Millisecond).FlipBit("p1"),
		},
	}).noViolations()
	w.noted("refuses to start after rot or a cut, as it must: wal: corrupt record in segment 1 (0000000000000001.wal) at offset")
	if !w.res.RotStop {
		t.Fatal("the run did not stop at the refusal")
	}
}

func TestScenarioASegmentCutShortAtItsLastRecordStopsTheParticipantFromStarting(t *testing.T) {
	// p1 crashes as t1's commit reaches it; while it is down its disk loses the end of
	// the segment holding t1's prepare, cut exactly where that record starts: what is
	// left reads as a clean log one record shorter. The segment's header says how long
	// it was built, so the log must refuse to open rather than forget the prepare.
	w := simulate(t, simnet.Options{
		Workload: []simnet.Transfer{Move("t1", 10, "p1", "p2")},
		Schedule: faults.Schedule{
			faults.When("p1", faults.RecvCommit).Txn("t1").Crash("p1").For(time.Second),
			faults.When("p1", faults.RecvCommit).Txn("t1").CutShort("p1"),
		},
	}).noViolations()
	w.happened("lossy cuts", w.res.Stats.LossyCuts)
	w.noted("refuses to start after rot or a cut, as it must: wal: corrupt record in segment 1 (0000000000000001.wal) at offset")
	w.noted("segment file cut short")
	if !w.res.RotStop {
		t.Fatal("the run did not stop at the refusal")
	}
}

func TestScenarioASegmentCutShortAfterItsRecordsLosesNothing(t *testing.T) {
	// The same cut among the zeros after p1's records (past their end marker): nothing
	// written was lost, so p1 must start, with t1's prepare, and commit t1.
	w := simulate(t, simnet.Options{
		Workload: []simnet.Transfer{Move("t1", 10, "p1", "p2")},
		Schedule: faults.Schedule{
			faults.When("p1", faults.RecvCommit).Txn("t1").Crash("p1").For(time.Second),
			faults.When("p1", faults.RecvCommit).Txn("t1").CutShortAfterRecords("p1"),
		},
	}).noViolations().committedEverywhere("t1")
	w.happened("cuts", w.res.Stats.ShortCuts)
	if w.res.Stats.LossyCuts != 0 {
		t.Fatalf("the cut after the records counted as lossy")
	}
}

func TestScenarioLostRenamesOfAParticipantsSegmentsKeepItsPrepare(t *testing.T) {
	// p1 crashes as t1's commit reaches it, and its directory loses the renames of its
	// segment holding t1's prepare and of the spare after it: both are .tmp files
	// again. The log must finish the rename of the one holding records (a build never
	// writes one) instead of removing it as an unfinished spare, or p1 forgets its
	// prepare and never applies t1.
	w := simulate(t, simnet.Options{
		Workload: []simnet.Transfer{Move("t1", 10, "p1", "p2")},
		Schedule: faults.Schedule{
			faults.When("p1", faults.RecvCommit).Txn("t1").Crash("p1").For(time.Second),
			faults.When("p1", faults.RecvCommit).Txn("t1").LoseRenames("p1"),
		},
	}).noViolations().committedEverywhere("t1")
	w.happened("lost renames", w.res.Stats.LostRenames)
}

func TestScenarioTheCoordinatorsCheckpointsLetItDropOldSegmentsAndRestartFromThem(t *testing.T) {
	w := simulate(t, simnet.Options{
		Txns: 300, SegmentSizeBytes: 8 << 10,
		Schedule: faults.Schedule{faults.At(3 * time.Second).Crash("coord")},
	}).noViolations()
	w.happened("checkpoints", w.res.Stats.Checkpoints).happened("segments removed", w.res.Stats.Compactions)
	w.noted("restarted")
}

func TestScenarioCoordinatorCrashesDuringPrepareWithAPassiveParticipantAndRecoveryCommits(t *testing.T) {
	// p2 never asks about transactions in doubt (it is the last of two participants, and
	// Passive is 1), so t1's begin is synced before its prepares leave, though t0 taught
	// the coordinator that p1 asks. The coordinator crashes as it appends the decision; the restarted
	// one finds the begin, asks both for their status, hears "prepared" twice and
	// commits: p2 is not left holding its prepared change.
	k := Exact()
	k.Passive = 1
	simulate(t, simnet.Options{
		Knobs:        k,
		Participants: 2,
		Workload:     []simnet.Transfer{Move("t0", 1, "p1", "p2"), Move("t1", 10, "p1", "p2")},
		Schedule:     faults.Schedule{faults.When("coord", faults.AppendDecision).Txn("t1").Crash("coord")},
	}).noViolations().committedEverywhere("t1").clientLearned("t1", checker.Unknown)
}

func TestScenarioCoordinatorCrashesDuringPrepareWithAParticipantThatCannotTellAndRecoveryRollsBack(t *testing.T) {
	// As above, but p2 has no status endpoint either: recovery cannot learn that it
	// prepared, rolls t1 back, and delivers the rollback to both.
	k := Exact()
	k.Passive, k.PassiveNoStatus = 1, 1
	simulate(t, simnet.Options{
		Knobs:        k,
		Participants: 2,
		Workload:     []simnet.Transfer{Move("t0", 1, "p1", "p2"), Move("t1", 10, "p1", "p2")},
		Schedule:     faults.Schedule{faults.When("coord", faults.AppendDecision).Txn("t1").Crash("coord")},
	}).noViolations().abortedEverywhere("t1").clientLearned("t1", checker.Unknown)
}
