package httpnet

import (
	"testing"
	"time"
)

// The history keeps the last statsSamplesMax samples, oldest first.
func TestHistoryIsBounded(t *testing.T) {
	var h history
	t0 := time.Unix(1000, 0)
	for i := range statsSamplesMax + 7 {
		h.add(StatsSample{At: t0.Add(time.Duration(i) * time.Second)})
		if got, want := len(h.samples()), min(i+1, statsSamplesMax); got != want {
			t.Fatalf("after %d adds: %d samples, want %d", i+1, got, want)
		}
	}
	s := h.samples()
	for i := range s {
		if want := t0.Add(time.Duration(7+i) * time.Second); !s[i].At.Equal(want) {
			t.Fatalf("sample %d at %v, want %v", i, s[i].At, want)
		}
	}
}

// The latency window is the difference of two samples' cumulative buckets, bucket by
// bucket, with what lies beyond the last bound counted as over.
func TestLatencyBetween(t *testing.T) {
	cum := func(counts ...uint64) []uint64 {
		out := make([]uint64, len(latencyBounds))
		var c uint64
		for i := range out {
			if i < len(counts) {
				c += counts[i]
			}
			out[i] = c
		}
		return out
	}
	from := StatsSample{latency: cum(1, 2), Totals: StatsTotals{Decided: StatsDecision{Count: 4, SumSeconds: 1}}}
	to := StatsSample{latency: cum(1, 5, 3), Totals: StatsTotals{Decided: StatsDecision{Count: 12, SumSeconds: 3}}}
	l := latencyBetween(from, to)
	if l.Count != 8 || l.SumSeconds != 2 || l.Buckets[0].Count != 0 || l.Buckets[1].Count != 3 || l.Buckets[2].Count != 3 || l.Over != 2 {
		t.Fatalf("window: %+v", l)
	}
}
