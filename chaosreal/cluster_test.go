package chaosreal

import (
	"context"
	"testing"
	"time"
)

// TestARealClusterCampaignHoldsUp is the cluster campaign of make test: three dtc serve
// --cluster node processes over an etcd embedded in the test process, three banks,
// clients spreading their calls over every node; kill -9s of nodes and banks while the
// load runs, and nodes stopped (SIGSTOP) past their 1s lease, then resumed. No
// violation, nothing left prepared (the heal waits for that), every shard owned again,
// and a paused node wrote nothing once it lost its lease: etcd refused its writes (the
// fenced compare), as its dtc_cluster_fenced_writes_total shows: at least one of the
// pauses must land while the node holds a write (each batch is held 250ms before it
// leaves, cluster/beforeLogWrite), which it sends when resumed.
func TestARealClusterCampaignHoldsUp(t *testing.T) {
	b := testBinaries(t)
	o := Options{
		Seed:           20261206,
		Duration:       20 * time.Second,
		Cluster:        3,
		LeaseTTL:       time.Second,
		Pauses:         4,
		PauseFor:       2500 * time.Millisecond,
		Kills:          10,
		CoordKillShare: 0.5,
		// A shard's new engine syncs each begin before the prepares leave, until it
		// learns the banks ask about doubt; held 250ms, that eats a 1s prepare deadline.
		PrepareTimeout: 3 * time.Second,
		ClientTimeout:  6 * time.Second,
		NoFailpoints:   true, // the coordinator's are the local log's; the single-node campaign arms them
		Binaries:       b,
		Progress:       testWriter{t},
		Log:            testWriter{t},
	}
	res, err := Run(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	logSummary(t, res)
	if !res.OK() {
		t.Fatalf("%d violations; work dir kept at %s", len(res.Violations), res.WorkDir)
	}
	if res.Faults[FaultKillCoord] == 0 || res.Faults[FaultKillParticipant] == 0 {
		t.Errorf("kills must hit both nodes and banks: %v", res.Faults)
	}
	if len(res.Pauses) < 2 {
		t.Fatalf("only %d pauses were dealt, want at least 2: %+v", len(res.Pauses), res.Pauses)
	}
	for _, p := range res.Pauses {
		t.Logf("pause of %s for %v: %d writes refused by etcd after the resume, %d leases lost %s", p.Node, p.For, p.FencedWrites, p.LeasesLost, p.Error)
		if p.Error == "" && p.LeasesLost < 1 {
			t.Errorf("%s was paused %v past its %v lease and did not find it lost", p.Node, p.For, o.LeaseTTL)
		}
	}
	if res.FencedWrites < 1 {
		t.Error("no paused node had a write refused by etcd: nothing shows the fenced compare at work")
	}
	if res.Committed == 0 || res.Report == nil || res.Report.Ops == 0 {
		t.Errorf("the workload did nothing: %d committed", res.Committed)
	}
}
