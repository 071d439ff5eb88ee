package simnet

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/dtc-project/dtc/faults"
)

func TestACalmRunCommitsOrAbortsEveryTransfer(t *testing.T) {
	k := faults.Calm()
	res, err := Run(Options{Seed: 1, Txns: 20, Knobs: &k})
	if err != nil {
		t.Fatal(err)
	}
	if !res.OK() {
		t.Fatal(res.Failure())
	}
	if res.Committed+res.Aborted != 20 || res.Unknown != 0 {
		t.Fatalf("every client should learn its outcome in a calm run: %s", res.Summary())
	}
}

// The same seed gives the same trace, byte for byte; another seed another one.
func TestTheSameSeedGivesTheSameTraceAndAnotherSeedAnother(t *testing.T) {
	run := func(seed uint64) (*Result, string) {
		var b bytes.Buffer
		res, err := Run(Options{Seed: seed, Txns: 60, Trace: &b})
		if err != nil {
			t.Fatal(err)
		}
		return res, b.String()
	}
	hashes := map[string]uint64{}
	for seed := uint64(1); seed <= 5; seed++ {
		a, ta := run(seed)
		b, tb := run(seed)
		if a.TraceSHA256 != b.TraceSHA256 || ta != tb {
			t.Fatalf("seed %d: two runs differ: %s vs %s", seed, a.TraceSHA256, b.TraceSHA256)
		}
		if a.TraceLines != strings.Count(ta, "\n") {
			t.Fatalf("seed %d: %d lines hashed, %d written", seed, a.TraceLines, strings.Count(ta, "\n"))
		}
		if other, dup := hashes[a.TraceSHA256]; dup {
			t.Fatalf("seeds %d and %d give the same trace %s", other, seed, a.TraceSHA256)
		}
		hashes[a.TraceSHA256] = seed
	}
}

func TestOptionsAreValidated(t *testing.T) {
	for _, o := range []Options{
		{Participants: -1},
		{Workload: []Transfer{{ID: "t1", Legs: []Leg{{Participant: "p1", Account: "a0", Amount: -5}}}}},
		{Workload: []Transfer{{ID: "t1", Legs: []Leg{{Participant: "p9", Account: "a0", Amount: -5}, {Participant: "p1", Account: "a0", Amount: 5}}}}},
		{Schedule: faults.Schedule{faults.At(0).Crash("p7")}},
		{Cluster: &ClusterOptions{Nodes: -1}},
		{Cluster: &ClusterOptions{LeaseTTL: time.Millisecond}},
		{Cluster: &ClusterOptions{Pauses: []ClusterFault{{At: time.Second}}}},
	} {
		if _, err := Run(o); err == nil {
			t.Errorf("Run(%+v) should fail", o)
		}
	}
}

func TestEveryBreakageHasAName(t *testing.T) {
	for _, b := range Breakages {
		if b.Break.String() != b.Name {
			t.Errorf("%v is named %q", b.Break, b.Name)
		}
	}
}

func TestQueueOrdersByTimeThenInsertion(t *testing.T) {
	var q queue
	for i, at := range []int64{5, 1, 5, 3, 1, 9, 0} {
		q.push(event{at: at, seq: uint64(i)})
	}
	var got []int64
	var seqs []uint64
	for len(q) > 0 {
		e := q.pop()
		got = append(got, e.at)
		seqs = append(seqs, e.seq)
	}
	want := []int64{0, 1, 1, 3, 5, 5, 9}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("popped %v, want %v", got, want)
		}
	}
	if seqs[1] != 1 || seqs[2] != 4 || seqs[4] != 0 || seqs[5] != 2 {
		t.Fatalf("ties not in insertion order: %v", seqs)
	}
}
