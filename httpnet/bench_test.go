package httpnet_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	"github.com/dtc-project/dtc/client"
	"github.com/dtc-project/dtc/httpnet"
)

// BenchmarkSubmit measures committed transactions through the whole stack on loopback:
// client → API → shard → two in-memory participants, with the decision synced to the
// data directory's disk (group commit) before each answer.
//
//	go test -run '^$' -bench Submit -benchtime 3000x ./httpnet
func BenchmarkSubmit(b *testing.B) {
	for _, shards := range []int{1, 4} {
		b.Run(fmt.Sprintf("shards=%d", shards), func(b *testing.B) {
			f1, f2 := newFakeParticipant(b), newFakeParticipant(b)
			rt, err := httpnet.Open(httpnet.Options{DataDir: b.TempDir(), Shards: shards, Engine: testEngineConfig(), Logger: testLogger(nil)})
			if err != nil {
				b.Fatal(err)
			}
			defer rt.Close()
			api := httptest.NewServer(httpnet.NewServer(rt, httpnet.ServerOptions{}))
			defer api.Close()
			hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 256}}
			cli, _ := client.New(api.URL, client.Options{HTTPClient: hc})
			eventually(b, "ready", rt.Ready)
			req := client.Request{Participants: []client.Participant{{URL: f1.url()}, {URL: f2.url()}}}
			var aborted atomic.Int64
			b.SetParallelism(16)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					v, err := cli.Submit(context.Background(), req)
					if err != nil {
						b.Error(err)
						return
					}
					if v.State != client.StateCommitted {
						aborted.Add(1)
					}
				}
			})
			b.StopTimer()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "txn/s")
			if mfs, err := rt.Metrics().Registry().Gather(); err == nil {
				for _, mf := range mfs {
					if mf.GetName() == "dtc_log_records_per_sync" {
						h := mf.GetMetric()[0].GetHistogram()
						b.ReportMetric(h.GetSampleSum()/float64(max(1, h.GetSampleCount())), "records/sync")
					}
				}
			}
			if n := aborted.Load(); n > 0 {
				b.Errorf("%d transactions aborted", n)
			}
		})
	}
}
