package scenarios

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/dtc-project/dtc/faults"
	"github.com/dtc-project/dtc/simnet"
)

// Cluster mode (simnet.Options.Cluster): three coordinator nodes own the shard in turn
// over the lease store's model; the engine, the owner key's acquisition, the takeover's
// read and the fenced log write are the real code (see simnet/cluster.go for what is
// modelled). Each scenario: one cluster fault in the middle of 60 transfers, then the
// checker, the online fencing check and "the shard is served again after the heal".

func clusterRun(t *testing.T, o simnet.Options, c simnet.ClusterOptions) *world {
	t.Helper()
	if o.Txns == 0 {
		o.Txns = 60
	}
	o.Cluster = &c
	return simulate(t, o)
}

// A node crashes (kill -9) with transactions in flight: its lease runs out, another
// node acquires the shard, reads its records, replays them and resumes phase 2 with the
// participants; nothing is lost, nothing decided twice.
func TestScenarioClusterCrashTakeover(t *testing.T) {
	w := clusterRun(t, simnet.Options{Schedule: faults.Schedule{faults.At(400 * time.Millisecond).Crash("coord").For(50 * time.Millisecond)}},
		simnet.ClusterOptions{})
	w.noViolations().
		noted("crashes: scheduled").
		noted("owns the shard (owner key created at revision").
		happened("a takeover after the first owner", w.res.Stats.Takeovers-1)
	// The dead node's lease runs out at most a TTL (2 s) after the crash; a takeover is
	// tried every 100 ms.
	if gap := w.res.Stats.TakeoverGapMax; gap <= 0 || gap > 2100*time.Millisecond {
		t.Fatalf("the shard went unserved for %v after the crash, want at most the lease TTL + 100ms", gap)
	} else {
		t.Logf("the shard went unserved for %v", gap)
	}
}

// The owner is paused (SIGSTOP) with a log write in hand for longer than its lease;
// another node takes over; the resumed zombie still believes it owns the shard and
// sends the write: the owner compare refuses it, and nothing it wrote is accepted.
func TestScenarioClusterZombieAfterLease(t *testing.T) {
	w := clusterRun(t, simnet.Options{},
		simnet.ClusterOptions{Pauses: []simnet.ClusterFault{{At: 300 * time.Millisecond, For: 3 * time.Second}}})
	w.noViolations().
		noted("n1 paused (SIGSTOP)").
		noted("n2 owns the shard").
		noted("n1 resumes; its held write").
		happened("a fenced write", w.res.Stats.FencedWrites)
}

// The same zombie with the log written without the owner compare: the store accepts
// the zombie's records over the new owner's, and the online check says so.
func TestScenarioClusterZombieCatchesAnUnfencedLogWrite(t *testing.T) {
	w := clusterRun(t, simnet.Options{Break: simnet.BreakUnfencedLogWrite},
		simnet.ClusterOptions{Pauses: []simnet.ClusterFault{{At: 300 * time.Millisecond, For: 3 * time.Second}}})
	v := w.violation(simnet.ClusterKindUnfenced)
	if !strings.Contains(v.Detail, "from n1") || !strings.Contains(v.Detail, "while n2 owned the shard") {
		t.Fatalf("the violation does not say who wrote while whom owned the shard: %s", v)
	}
}

// The store is down for longer than a lease: writes fail and are retried, the owner
// cannot renew its lease and gives the shard up; when the store is back (every lease
// renewed for its TTL), the shard is taken over and served again.
func TestScenarioClusterStoreOutage(t *testing.T) {
	w := clusterRun(t, simnet.Options{},
		simnet.ClusterOptions{StoreDown: []simnet.ClusterFault{{At: 300 * time.Millisecond, For: 3 * time.Second}}})
	w.noViolations().
		noted("the store is down").
		noted("the store is back").
		happened("store write errors", w.res.Stats.StoreWriteErrors).
		happened("the shard given up", w.res.Stats.ShardsLost).
		happened("a takeover after the first owner", w.res.Stats.Takeovers-1)
}

// The owner is cut off from the store (not from the participants) for longer than its
// lease: its lease expires in the store, it gives the shard up, another node takes it.
func TestScenarioClusterOwnerCutFromTheStore(t *testing.T) {
	w := clusterRun(t, simnet.Options{},
		simnet.ClusterOptions{Cuts: []simnet.ClusterFault{{At: 300 * time.Millisecond, For: 4 * time.Second}}})
	w.noViolations().
		noted("n1 is cut off from the store").
		noted("n2 owns the shard").
		happened("the shard given up", w.res.Stats.ShardsLost)
}

// A cluster run is as deterministic as any: the same seed gives the same trace.
func TestScenarioClusterRunsAreDeterministic(t *testing.T) {
	run := func() (string, string) {
		var b bytes.Buffer
		res, err := simnet.Run(simnet.Options{Seed: 7, Txns: 60, Knobs: swarmKnobs(7), Trace: &b,
			Cluster: &simnet.ClusterOptions{FaultEvery: 500 * time.Millisecond}})
		if err != nil {
			t.Fatal(err)
		}
		return res.TraceSHA256, b.String()
	}
	h1, t1 := run()
	h2, t2 := run()
	if h1 != h2 || t1 != t2 {
		t.Fatalf("two cluster runs of seed 7 differ: %s vs %s", h1, h2)
	}
}

// clusterSwarm: swarm knobs drawn from the seed, plus a random cluster fault (pause,
// store outage, cut) every second on average.
func clusterSwarm(seed uint64) simnet.Options {
	return simnet.Options{Seed: seed, Txns: 100, Knobs: swarmKnobs(seed),
		Cluster: &simnet.ClusterOptions{FaultEvery: time.Second}}
}

func TestScenarioClusterSwarm(t *testing.T) {
	const seeds = 20
	results := runSeeds(t, 1, seeds, clusterSwarm)
	var takeovers, fenced int
	for _, res := range results {
		if !res.OK() {
			t.Errorf("%s", res.Failure())
		}
		takeovers += res.Stats.Takeovers - 1
		fenced += res.Stats.FencedWrites
	}
	t.Logf("%d cluster seeds: %d takeovers, %d fenced writes", seeds, takeovers, fenced)
	if takeovers == 0 || fenced == 0 {
		t.Fatalf("%d seeds made %d takeovers and %d fenced writes: the cluster faults do not bite", seeds, takeovers, fenced)
	}
}

func TestScenarioCheckerCatchesAnUnfencedLogWrite(t *testing.T) {
	const seeds = 10 // 25 of seeds 1..40 catch it
	results := runSeeds(t, 1, seeds, func(seed uint64) simnet.Options {
		o := clusterSwarm(seed)
		o.Txns = 60
		o.Break = simnet.BreakUnfencedLogWrite
		return o
	})
	caught := 0
	for _, res := range results {
		for _, v := range res.Violations {
			if v.Kind == simnet.ClusterKindUnfenced {
				caught++
				break
			}
		}
	}
	if caught == 0 {
		t.Fatalf("no %s violation in %d cluster seeds: the checker misses this bug", simnet.ClusterKindUnfenced, seeds)
	}
	t.Logf("unfenced-log-write: caught in %d of %d cluster seeds", caught, seeds)
}
