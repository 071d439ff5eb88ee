package transport

import "github.com/prometheus/client_golang/prometheus"

// Collector reports the Transport's metrics, for a Prometheus registry: the requests
// to participants that got no usable answer (dtc_participant_errors_total), the
// requests begun of each kind and the ops batches carried (Stats, read when scraped)
// and the batching gauges.
func (t *Transport) Collector() prometheus.Collector { return newTransportCollector(t) }

// newErrorsCounter is dtc_participant_errors_total, fed by the senders.
func newErrorsCounter() *prometheus.CounterVec {
	return prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "dtc_participant_errors_total",
		Help: "Requests to participants that got no usable answer, by kind (timeout, connection, status_5xx, status_other, malformed, host_busy: HostRetriesMax requests already in flight to its host) and request (prepare, commit, rollback, status; batch for a batch request that failed as a whole, which fails each of its ops; commit or rollback for an op a batch answer gave an error).",
	}, []string{"kind", "request"})
}

// transportCollector reports a Transport's request counters and its batching gauges
// (Transport.Stats), read when scraped: counting a request costs the Transport an atomic
// add, nothing more.
type transportCollector struct {
	t                                           *Transport
	errs                                        *prometheus.CounterVec
	requests, batchOps, batchPeers, batchQueued *prometheus.Desc
}

func newTransportCollector(t *Transport) *transportCollector {
	return &transportCollector{
		t: t, errs: t.errs,
		requests: prometheus.NewDesc("dtc_participant_requests_total",
			"HTTP requests begun to participants, answered or not, by kind: prepare, commit, rollback, status (one transaction each) and batch (POST …/batch, the commits and rollbacks of many).",
			[]string{"kind"}, nil),
		batchOps: prometheus.NewDesc("dtc_participant_batch_ops_total",
			"Commits and rollbacks carried by batch requests (dtc_participant_requests_total{kind=\"batch\"}).", nil, nil),
		batchPeers: prometheus.NewDesc("dtc_participant_batching",
			"Participants that phase 2 goes to in batch requests now (they offer Dtc-Batch-Max and have not refused a batch lately).", nil, nil),
		batchQueued: prometheus.NewDesc("dtc_participant_batch_queued",
			"Commits and rollbacks waiting in the participants' batch queues for a request to carry them: it grows when a participant answers slower than phase 2 comes.", nil, nil),
	}
}

func (c *transportCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.requests
	ch <- c.batchOps
	ch <- c.batchPeers
	ch <- c.batchQueued
	c.errs.Describe(ch)
}

func (c *transportCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.t.Stats()
	for _, k := range []struct {
		kind string
		n    uint64
	}{
		{"prepare", s.Prepare}, {"commit", s.Commit}, {"rollback", s.Rollback}, {"status", s.Status}, {"batch", s.Batch},
	} {
		ch <- prometheus.MustNewConstMetric(c.requests, prometheus.CounterValue, float64(k.n), k.kind)
	}
	ch <- prometheus.MustNewConstMetric(c.batchOps, prometheus.CounterValue, float64(s.BatchOps))
	ch <- prometheus.MustNewConstMetric(c.batchPeers, prometheus.GaugeValue, float64(s.BatchParticipants))
	ch <- prometheus.MustNewConstMetric(c.batchQueued, prometheus.GaugeValue, float64(s.BatchQueued))
	c.errs.Collect(ch)
}
