package scenarios

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dtc-project/dtc/faults"
	"github.com/dtc-project/dtc/simnet"
)

// swarmKnobs are the knobs a swarm seed draws.
func swarmKnobs(seed uint64) *faults.Knobs {
	k := faults.Draw(seed)
	return &k
}

// The swarm's size: DTC_SWARM_SEEDS and DTC_SWARM_TXNS override it.
const (
	swarmSeeds = 500
	swarmTxns  = 200 // the benchmark's configuration: 3 participants × 200 transfers
)

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// runSeeds runs opts for seeds from..from+n-1 on every core and returns the results in
// seed order.
func runSeeds(t testing.TB, from uint64, n int, opts func(seed uint64) simnet.Options) []*simnet.Result {
	results := make([]*simnet.Result, n)
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for range runtime.GOMAXPROCS(0) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				o := opts(from + uint64(i))
				res, err := simnet.Run(o)
				if err != nil {
					errs <- err
					return
				}
				results[i] = res
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	return results
}

// TestScenarioSwarm runs 500 seeds, each with its own fault mix drawn from the seed,
// 3 participants × 200 transfers each, and wants every one of them clean. A failing
// seed prints its violations, knobs, the command that replays it and the end of its
// trace, and writes porcupine's HTML to the test's temporary directory.
func TestScenarioSwarm(t *testing.T) {
	n := envInt("DTC_SWARM_SEEDS", swarmSeeds)
	txns := envInt("DTC_SWARM_TXNS", swarmTxns)
	from := uint64(envInt("DTC_SWARM_FROM", 1))
	start := time.Now()
	results := runSeeds(t, from, n, func(seed uint64) simnet.Options {
		return simnet.Options{Seed: seed, Txns: txns, Participants: 3}
	})
	var virtual time.Duration
	var crashes, partitions, committed, aborted, failed int
	for _, res := range results {
		virtual += res.VirtualTime
		crashes += res.Stats.Crashes
		partitions += res.Stats.Partitions
		committed += res.Committed
		aborted += res.Aborted
		if res.OK() {
			continue
		}
		failed++
		if failed <= 3 {
			path := filepath.Join(t.TempDir(), fmt.Sprintf("seed-%d.html", res.Seed))
			if err := res.WriteHTML(path); err == nil {
				t.Logf("porcupine report: %s", path)
			}
			t.Errorf("swarm seed failed:\n%s", res.Failure())
		} else {
			t.Errorf("%s", res.Summary())
		}
	}
	wall := time.Since(start)
	t.Logf("%d seeds × %d transfers: %d committed, %d aborted; %d crashes, %d partitions; wall %v (%.0f seeds/min), virtual %v",
		n, txns, committed, aborted, crashes, partitions, wall.Round(time.Millisecond), float64(n)/wall.Minutes(), virtual.Round(time.Second))
}

// BenchmarkSwarm measures the simulator on the benchmark configuration: one op is one
// seed of 3 participants × 200 transfers with its own fault mix, seeds run on every core.
// It reports seeds per minute and how much faster than real time the runs go.
func BenchmarkSwarm(b *testing.B) {
	var seed atomic.Uint64
	var virtual atomic.Int64
	start := time.Now()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			res, err := simnet.Run(simnet.Options{Seed: seed.Add(1), Txns: 200, Participants: 3})
			if err != nil {
				b.Error(err)
				return
			}
			virtual.Add(int64(res.VirtualTime))
		}
	})
	wall := time.Since(start)
	b.ReportMetric(float64(b.N)/wall.Minutes(), "seeds/min")
	b.ReportMetric(time.Duration(virtual.Load()).Seconds()/wall.Seconds(), "sim/wall")
}
