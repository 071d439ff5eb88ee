package simnet

import "testing"

// Phase 2 travels in batches in swarm runs, and the cases httpnet's transport handles
// all happen: batches of several ops, batches refused (batching then stops for a
// while), and batches half-answered (an op failed inside a batch that others passed).
func TestSwarmRunsCarryPhase2InBatches(t *testing.T) {
	var total Stats
	multi := 0
	for seed := uint64(1); seed <= 12; seed++ {
		res, err := Run(Options{Seed: seed, Txns: 100})
		if err != nil {
			t.Fatal(err)
		}
		if !res.OK() {
			t.Fatalf("seed %d: %s", seed, res.Failure())
		}
		st := res.Stats
		total.Batches += st.Batches
		total.BatchOps += st.BatchOps
		total.BatchesRefused += st.BatchesRefused
		total.BatchOpsFailed += st.BatchOpsFailed
		if st.BatchOps > st.Batches {
			multi++
		}
	}
	t.Logf("12 seeds: %d batches carrying %d ops (%d seeds with batches of several ops), %d refused, %d ops failed inside a batch",
		total.Batches, total.BatchOps, multi, total.BatchesRefused, total.BatchOpsFailed)
	if total.Batches == 0 || multi == 0 {
		t.Error("no batch of several ops: phase 2 is not batched")
	}
	if total.BatchesRefused == 0 {
		t.Error("no batch refused")
	}
	if total.BatchOpsFailed == 0 {
		t.Error("no batch half-answered")
	}
}
