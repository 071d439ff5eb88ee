package httpnet

import (
	"context"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/dtc-project/dtc/coordinator"
	"github.com/dtc-project/dtc/httpnet/internal/tracing"
)

// Metrics are the daemon's Prometheus metrics. Every counter is fed on the goroutine that
// sees the event (a shard's Observer, the log's syncer); the gauges of what the engines
// hold are gathered from the shards when they are scraped. Its Registry also holds the
// Transport's metrics (Transport.Collector) and the API server's, which they count
// themselves (package apiserver registers its own when a Server is made).
type Metrics struct {
	reg *prometheus.Registry

	begun             prometheus.Counter
	committed         prometheus.Counter
	aborted           *prometheus.CounterVec // reason: nack, timeout, error, recovery
	aborts            *prometheus.CounterVec // cause: every coordinator.AbortCause
	decisionLatency   prometheus.Histogram
	totalLatency      prometheus.Histogram
	hazards           prometheus.Counter
	logRefused        prometheus.Counter
	logSyncLatency    prometheus.Histogram
	logRecordsPerSync prometheus.Histogram
	fsyncLatency      prometheus.Histogram
}

// Reason classes of aborted transactions (label "reason" of dtc_transactions_aborted_total).
const (
	AbortNACK     = string(coordinator.CauseNACK)
	AbortTimeout  = string(coordinator.CauseTimeout)
	AbortError    = string(coordinator.CauseError)
	AbortRecovery = string(coordinator.CauseRecovery)
	AbortConflict = string(coordinator.CauseConflict)
	AbortDeadlock = string(coordinator.CauseDeadlock)
	AbortWound    = string(coordinator.CauseWound)
	AbortClient   = string(coordinator.CauseClient)
)

// newMetrics registers the metrics in a new registry, together with the Go runtime and
// process collectors.
func newMetrics() *Metrics {
	reg := prometheus.NewRegistry()
	latency := latencyBounds // 0.5ms .. ~65s
	m := &Metrics{
		reg: reg,
		begun: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "dtc_transactions_begun_total",
			Help: "Transactions begun (a begin record was accepted by the log).",
		}),
		committed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "dtc_transactions_committed_total",
			Help: "Transactions whose commit decision became durable.",
		}),
		aborted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "dtc_transactions_aborted_total",
			Help: "Transactions whose abort decision became durable, by reason class: the same label values as dtc_aborts_total's cause (kept for dashboards written before it).",
		}, []string{"reason"}),
		aborts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "dtc_aborts_total",
			Help: "Transactions whose abort decision became durable, by cause: nack (a participant voted NACK), conflict (a NACK for a lock or a stale read), timeout (no vote before the deadline), error (no usable answer), deadlock (victim of a wait-for cycle), wound (wounded by an older transaction), client (aborted through the API), recovery (decided after a restart).",
		}, []string{"cause"}),
		decisionLatency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "dtc_prepare_duration_seconds",
			Help:    "From begin until the decision is durable (the prepare phase plus the decision's sync), for transactions begun by this process.",
			Buckets: latency,
		}),
		totalLatency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "dtc_transaction_duration_seconds",
			Help:    "From begin until every participant acknowledged phase 2, for transactions begun by this process.",
			Buckets: latency,
		}),
		hazards: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "dtc_heuristic_hazards_total",
			Help: "Participants that answered phase 2 contradicting the durable decision.",
		}),
		logRefused: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "dtc_log_refused_total",
			Help: "Records the log refused (disk full, record too large).",
		}),
		logSyncLatency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "dtc_log_sync_duration_seconds",
			Help:    "From appending a record that asks for a sync until it is durable (queueing plus the group commit's write and fsync).",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16), // 0.1ms .. ~3s
		}),
		logRecordsPerSync: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "dtc_log_records_per_sync",
			Help:    "Records made durable together by one group commit (all shards share the log).",
			Buckets: prometheus.ExponentialBuckets(1, 2, 12), // 1 .. 2048
		}),
		fsyncLatency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "dtc_log_fsync_duration_seconds",
			Help:    "Duration of one fsync (fdatasync) of a log file.",
			Buckets: prometheus.ExponentialBuckets(0.00005, 2, 16), // 50µs .. ~1.6s
		}),
	}
	for _, r := range []string{AbortNACK, AbortTimeout, AbortError, AbortRecovery} {
		m.aborted.WithLabelValues(r)
	}
	for _, c := range coordinator.AbortCauses {
		m.aborts.WithLabelValues(string(c))
	}
	reg.MustRegister(m.begun, m.committed, m.aborted, m.aborts, m.decisionLatency, m.totalLatency,
		m.hazards, m.logRefused, m.logSyncLatency, m.logRecordsPerSync, m.fsyncLatency,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Registry is where the metrics are registered; /metrics serves it.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// abortClass is the label of an abort on both dtc_transactions_aborted_total (reason)
// and dtc_aborts_total (cause): the engine's cause, and recovery for a transaction found
// undecided in the log (unless the detector, a wound or a client aborted it first).
func abortClass(n coordinator.Note) string { return abortCause(n) }

// abortCause is the cause of an abort for dtc_aborts_total: the engine's, and recovery
// for a transaction found undecided in the log that gave none.
func abortCause(n coordinator.Note) string {
	if n.Cause == coordinator.CauseNone || (n.Recovered && n.Cause != coordinator.CauseDeadlock &&
		n.Cause != coordinator.CauseWound && n.Cause != coordinator.CauseClient) {
		return AbortRecovery
	}
	return string(n.Cause)
}

// observer is one shard's coordinator.Observer: it counts and logs what the engine
// reports. It runs on the shard's goroutine and never calls back into the engine.
type observer struct {
	m     *Metrics
	log   *slog.Logger
	shard int
	trace *tracing.Tracing // nil when tracing is off
	dl    *detector        // nil when deadlock detection is off
}

var _ coordinator.Observer = observer{}

// Observe counts n, and logs it if its level is enabled: the check comes first, as
// the arguments of a disabled log call would still be made (a few allocations on
// every transaction).
func (o observer) Observe(n coordinator.Note) {
	if o.trace != nil {
		o.trace.Observe(&n)
	}
	ctx := context.Background()
	switch n.Kind {
	case coordinator.NoteBegun:
		o.m.begun.Inc()
		if o.log.Enabled(ctx, slog.LevelDebug) {
			o.log.Debug("transaction begun", "txn", n.Txn, "shard", o.shard)
		}
	case coordinator.NoteDecided:
		o.dl.decided(n.Txn)
		if n.Commit {
			o.m.committed.Inc()
		} else {
			o.m.aborted.WithLabelValues(abortClass(n)).Inc()
			o.m.aborts.WithLabelValues(abortClass(n)).Inc()
		}
		if !n.Recovered {
			o.m.decisionLatency.Observe(n.Elapsed.Seconds())
		}
		outcome := coordinator.StateAborted
		if n.Commit {
			outcome = coordinator.StateCommitted
		}
		level := slog.LevelDebug // commits are the common case; aborts and recoveries are news
		if !n.Commit || n.Recovered {
			level = slog.LevelInfo
		}
		if o.log.Enabled(ctx, level) {
			o.log.Log(ctx, level, "transaction decided", "txn", n.Txn, "outcome", outcome,
				"reason", n.Reason, "elapsed", n.Elapsed, "recovered", n.Recovered, "shard", o.shard)
		}
	case coordinator.NoteEnded:
		if !n.Recovered {
			o.m.totalLatency.Observe(n.Elapsed.Seconds())
		}
		if o.log.Enabled(ctx, slog.LevelDebug) {
			o.log.Debug("transaction ended", "txn", n.Txn, "elapsed", n.Elapsed, "shard", o.shard)
		}
	case coordinator.NoteHazard:
		o.m.hazards.Inc()
		o.log.Warn("heuristic hazard: a participant contradicted the decision", "txn", n.Txn,
			"participant", n.URL, "answer", n.Reason, "shard", o.shard)
	case coordinator.NoteSendFailed:
		if o.log.Enabled(ctx, slog.LevelDebug) {
			o.log.Debug("participant request failed", "txn", n.Txn, "participant", n.URL,
				"request", n.Msg.String(), "error", n.Reason, "shard", o.shard)
		}
	case coordinator.NoteLogRefused:
		o.m.logRefused.Inc()
		o.log.Error("log refused a record", "txn", n.Txn, "error", n.Reason, "shard", o.shard)
	}
}

// statsCollector reports the engines' Stats as gauges, asking every shard when scraped.
type statsCollector struct {
	rt                                       *Runtime
	inflight, undecided, recovering, remembr *prometheus.Desc
	ready, shards                            *prometheus.Desc
	oldestInflight, oldestUndecided          *prometheus.Desc
	phase2                                   *prometheus.Desc
}

func newStatsCollector(rt *Runtime) *statsCollector {
	return &statsCollector{
		rt: rt,
		inflight: prometheus.NewDesc("dtc_transactions_inflight",
			"Transactions begun and not yet acknowledged by every participant (the API's in-doubt filter).", nil, nil),
		undecided: prometheus.NewDesc("dtc_transactions_in_doubt",
			"Transactions without a durable decision yet: their participants may be prepared and waiting.", nil, nil),
		recovering: prometheus.NewDesc("dtc_transactions_recovering",
			"Transactions found undecided in the log at startup and not yet resolved.", nil, nil),
		remembr: prometheus.NewDesc("dtc_transactions_remembered",
			"Finished transactions still remembered (their id stays reserved).", nil, nil),
		ready: prometheus.NewDesc("dtc_ready",
			"1 when every shard has finished recovery and answers requests.", nil, nil),
		shards: prometheus.NewDesc("dtc_shards", "Engines (shards) this process runs.", nil, nil),
		oldestInflight: prometheus.NewDesc("dtc_transactions_oldest_inflight_age_seconds",
			"Age of the oldest transaction not yet acknowledged by every participant (0 when none): a participant left in doubt that long.", nil, nil),
		oldestUndecided: prometheus.NewDesc("dtc_transactions_oldest_in_doubt_age_seconds",
			"Age of the oldest transaction without a durable decision (0 when none).", nil, nil),
		phase2: prometheus.NewDesc("dtc_transactions_phase2_pending",
			"Decided transactions whose phase 2 some participant has not acknowledged yet (they hold no in-flight slot; bounded by Phase2Max; dtc forget ends one whose participant is gone).", nil, nil),
	}
}

func (c *statsCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.inflight, c.undecided, c.recovering, c.remembr, c.ready, c.shards, c.oldestInflight, c.oldestUndecided, c.phase2} {
		ch <- d
	}
}

// statsTimeout bounds how long a scrape waits for the shards.
const statsTimeout = 2 * time.Second

func (c *statsCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), statsTimeout)
	defer cancel()
	s, err := c.rt.Stats(ctx)
	ready := 0.0
	if c.rt.Ready() {
		ready = 1
	}
	ch <- prometheus.MustNewConstMetric(c.ready, prometheus.GaugeValue, ready)
	ch <- prometheus.MustNewConstMetric(c.shards, prometheus.GaugeValue, float64(len(c.rt.liveShards())))
	if err != nil {
		return // a shard did not answer in time: leave the gauges out rather than lie
	}
	ch <- prometheus.MustNewConstMetric(c.inflight, prometheus.GaugeValue, float64(s.Inflight))
	ch <- prometheus.MustNewConstMetric(c.undecided, prometheus.GaugeValue, float64(s.Undecided))
	ch <- prometheus.MustNewConstMetric(c.recovering, prometheus.GaugeValue, float64(s.Recovering))
	ch <- prometheus.MustNewConstMetric(c.remembr, prometheus.GaugeValue, float64(s.Remembered))
	ch <- prometheus.MustNewConstMetric(c.phase2, prometheus.GaugeValue, float64(s.Phase2))
	now := time.Now()
	ch <- prometheus.MustNewConstMetric(c.oldestInflight, prometheus.GaugeValue, ageSeconds(now, s.OldestInflight))
	ch <- prometheus.MustNewConstMetric(c.oldestUndecided, prometheus.GaugeValue, ageSeconds(now, s.OldestUndecided))
}

// ageSeconds is how long ago t was, 0 for the zero time (or one in the future: the
// engines' clock is this process's).
func ageSeconds(now, t time.Time) float64 {
	if t.IsZero() {
		return 0
	}
	return max(0, now.Sub(t).Seconds())
}

// earliest is the earlier of two times, the zero time counting as none.
func earliest(a, b time.Time) time.Time {
	if a.IsZero() || (!b.IsZero() && b.Before(a)) {
		return b
	}
	return a
}
