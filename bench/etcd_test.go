package bench

import (
	"context"
	"testing"
	"time"
)

// RunEtcdCluster measures every configuration it is asked for and a takeover per kill:
// every throughput is positive, the ratios are against the local log, and each kill's
// shards were all served again. Speeds are not judged: the machine decides them.
func TestRunEtcdClusterMeasuresEveryConfiguration(t *testing.T) {
	o := EtcdOptions{Nodes: 2, Shards: 8, Concurrency: 4, Duration: 300 * time.Millisecond, Kills: 2, TakeoverShards: 4, LeaseTTL: time.Second}
	res, err := RunEtcdCluster(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	if res.LocalTPS <= 0 || len(res.ClusterTPS) != 2 || len(res.Ratio) != 2 {
		t.Fatalf("local %v, cluster %v, ratios %v", res.LocalTPS, res.ClusterTPS, res.Ratio)
	}
	for i, tps := range res.ClusterTPS {
		if tps <= 0 || res.Ratio[i] != tps/res.LocalTPS {
			t.Errorf("cluster of %d: %v txn/s, ratio %v", i+1, tps, res.Ratio[i])
		}
	}
	if res.Kills != 2 || len(res.PerKill) != 2 || res.Takeover.N < 2 || res.Takeover.N != len(res.Takeovers) {
		t.Fatalf("takeover: %d kills, per kill %v, per shard %+v", res.Kills, res.PerKill, res.Takeover)
	}
	for _, d := range res.PerKill {
		// A shard is taken over only once the dead node's lease has expired.
		if d < o.LeaseTTL/2 {
			t.Errorf("a takeover after %v, before the %v lease could have expired", d, o.LeaseTTL)
		}
	}
	if res.Takeover.P50 > res.Takeover.P99 || res.Takeover.P99 > res.Takeover.Max {
		t.Errorf("percentiles out of order: %+v", res.Takeover)
	}
}
