package httpnet

import (
	"context"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// GET /v1/stats (served by package apiserver, from Runtime.StatsResponse): the daemon's
// counts and their recent history, for the admin page (/ui/) and for whoever would rather read JSON than Prometheus text. The history is a
// bounded ring of per-second samples kept by one goroutine of the Runtime (the
// sampler), so a page opened late still draws the last minutes.

// Bounds of the history.
const (
	// statsSampleInterval is the time between two samples.
	statsSampleInterval = time.Second
	// statsSamplesMax is how many samples the ring keeps: five minutes.
	statsSamplesMax = 300
)

// StatsResponse is the body of GET /v1/stats.
type StatsResponse struct {
	// Node is this process: the URL participants reach it at, and when it started.
	Node StatsNode `json:"node"`
	// Now is the server's time when it answered.
	Now    time.Time `json:"now"`
	Ready  bool      `json:"ready"`
	Shards int       `json:"shards"`
	// Totals are the counters since the process started (as on /metrics).
	Totals StatsTotals `json:"totals"`
	// Gauges are what the engines hold now; absent when a shard did not answer in time.
	Gauges *StatsGauges `json:"gauges,omitempty"`
	// SampleIntervalSeconds is the time between two Samples.
	SampleIntervalSeconds float64 `json:"sample_interval_seconds"`
	// Samples are the totals and gauges once per interval, oldest first, at most
	// statsSamplesMax: rates are the differences of consecutive samples.
	Samples []StatsSample `json:"samples"`
	// Latency is the histogram of the time to a durable decision (begin until the
	// decision record is synced) of the transactions decided between the oldest sample
	// and now.
	Latency StatsLatency `json:"latency"`
	// Cluster is set on a node of a cluster: the counts above are this node's own; the
	// cluster's nodes are listed there, each with its own /v1/stats and /ui/.
	Cluster *StatsCluster `json:"cluster,omitempty"`
}

// StatsNode names the process that answered.
type StatsNode struct {
	URL       string    `json:"url,omitempty"`
	StartedAt time.Time `json:"started_at"`
}

// StatsTotals are counters since the process started.
type StatsTotals struct {
	Begun            uint64        `json:"begun"`
	Committed        uint64        `json:"committed"`
	Aborted          StatsAborted  `json:"aborted"`
	HeuristicHazards uint64        `json:"heuristic_hazards"`
	Decided          StatsDecision `json:"decided"`
}

// StatsAborted counts aborts by cause (the cause label of dtc_aborts_total).
type StatsAborted struct {
	NACK     uint64 `json:"nack"`
	Conflict uint64 `json:"conflict"`
	Timeout  uint64 `json:"timeout"`
	Error    uint64 `json:"error"`
	Deadlock uint64 `json:"deadlock"`
	Wound    uint64 `json:"wound"`
	Client   uint64 `json:"client"`
	Recovery uint64 `json:"recovery"`
}

// Total is the sum of every cause.
func (a StatsAborted) Total() uint64 {
	return a.NACK + a.Conflict + a.Timeout + a.Error + a.Deadlock + a.Wound + a.Client + a.Recovery
}

// StatsDecision counts the decisions timed by the latency histogram (those of
// transactions begun by this process) and the sum of their latencies.
type StatsDecision struct {
	Count      uint64  `json:"count"`
	SumSeconds float64 `json:"sum_seconds"`
}

// StatsGauges are the engines' Stats.
type StatsGauges struct {
	Inflight   int `json:"inflight"`
	InDoubt    int `json:"in_doubt"`
	Recovering int `json:"recovering"`
	Remembered int `json:"remembered"`
}

// StatsSample is the totals (and gauges, when every shard answered) at one time.
type StatsSample struct {
	At     time.Time    `json:"at"`
	Totals StatsTotals  `json:"totals"`
	Gauges *StatsGauges `json:"gauges,omitempty"`

	latency []uint64 // the latency histogram's cumulative bucket counts
}

// StatsLatency is a latency histogram over a window, with non-cumulative buckets.
type StatsLatency struct {
	From       time.Time     `json:"from"`
	To         time.Time     `json:"to"`
	Count      uint64        `json:"count"`
	SumSeconds float64       `json:"sum_seconds"`
	Buckets    []StatsBucket `json:"buckets"`
	// Over counts the latencies above the last bucket's bound.
	Over uint64 `json:"over"`
}

// StatsBucket counts the latencies above the previous bucket's bound and at most LeSeconds.
type StatsBucket struct {
	LeSeconds float64 `json:"le_seconds"`
	Count     uint64  `json:"count"`
}

// history is the ring of samples. The sampler goroutine adds to it; the API reads it.
type history struct {
	mu      sync.Mutex
	ring    [statsSamplesMax]StatsSample
	next, n int // next slot to write; samples held
}

func (h *history) add(s StatsSample) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.ring[h.next] = s
	h.next = (h.next + 1) % len(h.ring)
	h.n = min(h.n+1, len(h.ring))
}

// samples returns the samples, oldest first.
func (h *history) samples() []StatsSample {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make([]StatsSample, 0, h.n)
	for i := range h.n {
		out = append(out, h.ring[(h.next-h.n+i+len(h.ring))%len(h.ring)])
	}
	return out
}

// sampler adds a sample to the history every statsSampleInterval until ctx ends, then
// closes done.
func (r *Runtime) sampler(ctx context.Context, done chan<- struct{}) {
	defer close(done)
	t := time.NewTicker(statsSampleInterval)
	defer t.Stop()
	r.history.add(r.sample(ctx))
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			r.history.add(r.sample(ctx))
		}
	}
}

// sample reads the counters, and asks the shards for their gauges (leaving them out if
// a shard does not answer within statsTimeout).
func (r *Runtime) sample(ctx context.Context) StatsSample {
	m := r.metrics
	s := StatsSample{At: time.Now().UTC()}
	s.Totals = StatsTotals{
		Begun:     counterValue(m.begun),
		Committed: counterValue(m.committed),
		Aborted: StatsAborted{
			NACK:     counterValue(m.aborts.WithLabelValues(AbortNACK)),
			Conflict: counterValue(m.aborts.WithLabelValues(AbortConflict)),
			Timeout:  counterValue(m.aborts.WithLabelValues(AbortTimeout)),
			Error:    counterValue(m.aborts.WithLabelValues(AbortError)),
			Deadlock: counterValue(m.aborts.WithLabelValues(AbortDeadlock)),
			Wound:    counterValue(m.aborts.WithLabelValues(AbortWound)),
			Client:   counterValue(m.aborts.WithLabelValues(AbortClient)),
			Recovery: counterValue(m.aborts.WithLabelValues(AbortRecovery)),
		},
		HeuristicHazards: counterValue(m.hazards),
	}
	var d dto.Metric
	if err := m.decisionLatency.Write(&d); err == nil && d.Histogram != nil {
		s.Totals.Decided = StatsDecision{Count: d.Histogram.GetSampleCount(), SumSeconds: d.Histogram.GetSampleSum()}
		for _, b := range d.Histogram.Bucket {
			s.latency = append(s.latency, b.GetCumulativeCount())
		}
	}
	sctx, cancel := context.WithTimeout(ctx, statsTimeout)
	defer cancel()
	if st, err := r.Stats(sctx); err == nil {
		s.Gauges = &StatsGauges{Inflight: st.Inflight, InDoubt: st.Undecided, Recovering: st.Recovering, Remembered: st.Remembered}
	}
	return s
}

func counterValue(c prometheus.Counter) uint64 {
	var d dto.Metric
	if err := c.Write(&d); err != nil || d.Counter == nil {
		return 0
	}
	return uint64(d.Counter.GetValue())
}

// latencyBounds are the upper bounds of the decision latency histogram's buckets.
var latencyBounds = prometheus.ExponentialBuckets(0.0005, 2, 18)

// StatsResponse is what GET /v1/stats answers: the history, and a sample of now.
func (r *Runtime) StatsResponse(ctx context.Context) StatsResponse {
	now := r.sample(ctx)
	samples := r.history.samples()
	resp := StatsResponse{
		Node:                  StatsNode{URL: r.o.Transport.AdvertiseURL, StartedAt: r.started},
		Now:                   now.At,
		Ready:                 r.Ready(),
		Shards:                len(r.shards),
		Totals:                now.Totals,
		Gauges:                now.Gauges,
		SampleIntervalSeconds: statsSampleInterval.Seconds(),
		Samples:               samples,
	}
	from := StatsSample{At: r.started}
	if len(samples) > 0 && len(samples) == statsSamplesMax {
		from = samples[0] // the ring is full: the window is what it holds
	}
	resp.Latency = latencyBetween(from, now)
	if r.cl != nil {
		resp.Cluster = r.cl.stats(ctx)
		resp.Shards = resp.Cluster.Shards
	}
	return resp
}

// latencyBetween is the histogram of the decisions between two samples.
func latencyBetween(from, to StatsSample) StatsLatency {
	l := StatsLatency{
		From:       from.At,
		To:         to.At,
		Count:      to.Totals.Decided.Count - from.Totals.Decided.Count,
		SumSeconds: max(0, to.Totals.Decided.SumSeconds-from.Totals.Decided.SumSeconds),
		Buckets:    make([]StatsBucket, len(latencyBounds)),
	}
	cum := func(s StatsSample, i int) uint64 {
		if i < len(s.latency) {
			return s.latency[i]
		}
		return 0
	}
	var below uint64
	for i, le := range latencyBounds {
		c := cum(to, i) - cum(from, i)
		l.Buckets[i] = StatsBucket{LeSeconds: le, Count: c - below}
		below = c
	}
	l.Over = l.Count - below
	return l
}
