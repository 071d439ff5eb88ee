package scenarios

import (
	"testing"
	"time"

	"github.com/dtc-project/dtc/checker"
	"github.com/dtc-project/dtc/faults"
	"github.com/dtc-project/dtc/simnet"
)

// The checker is only worth what it catches. Each test below runs the simulator with one
// deliberately broken component (a decorator in simnet, see simnet.Breakage) and wants a
// violation within a bounded number of seeds, with a message that says what went wrong.

// seedsMax bounds how many seeds a breakage may take to be caught.
const seedsMax = 40

// crashy are swarm knobs with frequent crashes and slow fsyncs, so that the windows the
// broken components open are hit often.
func crashy(seed uint64) *faults.Knobs {
	k := faults.Draw(seed)
	k.CrashEvery = 300 * time.Millisecond
	k.CoordCrashShare = 0.6
	k.RestartMin, k.RestartMax = 10*time.Millisecond, 300*time.Millisecond
	k.SyncLatencyMin, k.SyncLatencyMax = 2*time.Millisecond, 15*time.Millisecond
	return &k
}

// catches runs seeds 1..seedsMax with the breakage and wants a violation of one of the
// kinds; it logs the first one found and its replay command.
func catches(t *testing.T, brk simnet.Breakage, knobs func(uint64) *faults.Knobs, adjust func(*simnet.Options), kinds ...string) {
	t.Helper()
	results := runSeeds(t, 1, seedsMax, func(seed uint64) simnet.Options {
		o := simnet.Options{Seed: seed, Txns: 100, Break: brk, Knobs: knobs(seed)}
		if adjust != nil {
			adjust(&o)
		}
		return o
	})
	caught := 0
	var first *simnet.Result
	var firstV checker.Violation
	for _, res := range results {
		for _, v := range res.Violations {
			if contains(kinds, v.Kind) {
				if first == nil {
					first, firstV = res, v
				}
				caught++
				break
			}
		}
	}
	if first == nil {
		t.Fatalf("%v: no %v violation in %d seeds: the checker misses this bug", brk, kinds, seedsMax)
	}
	t.Logf("%v: caught in %d of %d seeds, first at seed %d:\n  %s", brk, caught, seedsMax, first.Seed, firstV)
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func TestScenarioCheckerCatchesACommitSentBeforeTheDecisionIsDurable(t *testing.T) {
	catches(t, simnet.BreakCommitBeforeDurable, crashy, nil,
		checker.KindAtomicity, checker.KindStability, checker.KindBank)
}

func TestScenarioCheckerCatchesAClientToldBeforeTheLog(t *testing.T) {
	catches(t, simnet.BreakClientToldBeforeLog, crashy, nil,
		checker.KindStability, checker.KindLinearizability)
}

func TestScenarioCheckerCatchesAParticipantThatSkipsItsFsync(t *testing.T) {
	catches(t, simnet.BreakParticipantSkipsFsync, crashy, nil,
		checker.KindAtomicity, checker.KindLiveness, checker.KindBank, checker.KindStability)
}

func TestScenarioCheckerCatchesALatePrepareThatIsNotFenced(t *testing.T) {
	catches(t, simnet.BreakNoFencing, swarmKnobs, nil, "fencing")
}

func TestScenarioCheckerCatchesRecoveryThatPresumesCommit(t *testing.T) {
	catches(t, simnet.BreakRecoveryPresumesCommit, crashy, nil,
		checker.KindValidity, checker.KindAtomicity)
}

func TestScenarioCheckerCatchesAPhase2ThatGivesUp(t *testing.T) {
	// The coordinator forgets a transaction soon after it ends; the participants wait
	// longer before they ask about one in doubt, and partitions keep phase 2 from them.
	knobs := func(seed uint64) *faults.Knobs {
		k := faults.Draw(seed)
		k.PartitionEvery, k.PartitionFor, k.OneWayRate = 300*time.Millisecond, 2*time.Second, 0.5
		k.DoneRetention = 500 * time.Millisecond
		k.InDoubtAfter = 3 * time.Second
		return &k
	}
	catches(t, simnet.BreakPhase2GivesUp, knobs, nil,
		checker.KindAtomicity, checker.KindStability, checker.KindBank)
}

func TestScenarioCheckerCatchesABeginThatIsAlwaysLazy(t *testing.T) {
	// Passive participants (they never ask about transactions in doubt) and coordinator
	// crashes: a begin lost in a crash leaves them prepared after the heal phase.
	knobs := func(seed uint64) *faults.Knobs {
		k := crashy(seed)
		k.CoordCrashShare = 0.9
		k.Passive, k.PassiveNoStatus = 2, int(seed%3)
		return k
	}
	catches(t, simnet.BreakBeginAlwaysLazy, knobs, nil, checker.KindLiveness)
}

func TestScenarioCheckerCatchesABrokenBatchEncoder(t *testing.T) {
	// More clients than participants, so that phase-2 messages queue behind a batch in
	// flight and leave together, commits and rollbacks mixed.
	catches(t, simnet.BreakBatchEncoder, swarmKnobs, func(o *simnet.Options) { o.Clients = 8 },
		checker.KindAtomicity, checker.KindBank, checker.KindStability)
}

func TestScenarioCheckerCatchesAResolverThatPresumesCommit(t *testing.T) {
	// Coordinator crashes lose lazy begins: participants in doubt then hear "not found",
	// which means aborted.
	knobs := func(seed uint64) *faults.Knobs {
		k := crashy(seed)
		k.CoordCrashShare = 0.9
		return k
	}
	catches(t, simnet.BreakResolverPresumesCommit, knobs, nil,
		checker.KindAtomicity, checker.KindBank, checker.KindStability)
}
