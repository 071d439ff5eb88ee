package httpnet_test

import (
	"context"
	"strings"
	"testing"

	"github.com/dtc-project/dtc/client"
)

// GET /v1/stats counts what /metrics counts, and its latency window holds every
// decision timed since the start.
func TestStatsCountWhatMetricsCount(t *testing.T) {
	f := newFakeParticipant(t)
	c := startCoord(t, "", nil)
	c.waitReady()
	ctx := context.Background()
	for range 3 {
		if _, err := c.cli.Submit(ctx, client.Request{Participants: []client.Participant{{URL: f.url()}}}); err != nil {
			t.Fatal(err)
		}
	}
	dead := "http://" + freeAddr(t) + "/prepare"
	if v, err := c.cli.Submit(ctx, client.Request{Participants: []client.Participant{{URL: dead}}}); err != nil || v.State != client.StateAborted {
		t.Fatalf("dead participant: %+v %v", v, err)
	}
	s := stats(t, c)
	tot := s.Totals
	if tot.Begun != 4 || tot.Committed != 3 || tot.Aborted.Error != 1 || tot.Aborted.Total() != 1 || tot.HeuristicHazards != 0 {
		t.Errorf("totals: %+v", tot)
	}
	if tot.Decided.Count != 4 || s.Latency.Count != 4 || tot.Decided.SumSeconds <= 0 {
		t.Errorf("decisions timed: totals %+v, window %+v", tot.Decided, s.Latency)
	}
	var inBuckets uint64
	for _, b := range s.Latency.Buckets {
		inBuckets += b.Count
	}
	if inBuckets+s.Latency.Over != s.Latency.Count {
		t.Errorf("buckets hold %d + %d over, count is %d", inBuckets, s.Latency.Over, s.Latency.Count)
	}
	if !s.Ready || s.Shards != 3 || s.Gauges == nil || s.Node.URL != c.url || len(s.Samples) == 0 {
		t.Errorf("stats: %+v", s)
	}
	_, body := get(t, c.url+"/metrics")
	for _, want := range []string{"dtc_transactions_begun_total 4", "dtc_transactions_committed_total 3",
		`dtc_transactions_aborted_total{reason="error"} 1`, "dtc_prepare_duration_seconds_count 4"} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
}
