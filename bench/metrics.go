package bench

import (
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// dtcMetrics are the figures read from dtc's Prometheus registry (what /metrics serves).
type dtcMetrics struct {
	committed, aborted  float64
	participantErrors   float64
	hazards, logRefused float64
	apiErrors           float64
	// syncedRecords and syncWaitSeconds: the count and sum of
	// dtc_log_sync_duration_seconds, observed once per record that asked for a sync
	// (not once per fsync): from its append until it was durable.
	syncedRecords, syncWaitSeconds float64
	// decisions and decisionSeconds: dtc_prepare_duration_seconds, begin to durable
	// decision.
	decisions, decisionSeconds float64
}

func gatherMetrics(reg *prometheus.Registry) (dtcMetrics, error) {
	var m dtcMetrics
	families, err := reg.Gather()
	if err != nil {
		return m, err
	}
	sum := func(f *dto.MetricFamily) float64 {
		var s float64
		for _, mt := range f.GetMetric() {
			s += mt.GetCounter().GetValue()
		}
		return s
	}
	histo := func(f *dto.MetricFamily) (count, total float64) {
		for _, mt := range f.GetMetric() {
			count += float64(mt.GetHistogram().GetSampleCount())
			total += mt.GetHistogram().GetSampleSum()
		}
		return
	}
	for _, f := range families {
		switch f.GetName() {
		case "dtc_transactions_committed_total":
			m.committed = sum(f)
		case "dtc_transactions_aborted_total":
			m.aborted = sum(f)
		case "dtc_participant_errors_total":
			m.participantErrors = sum(f)
		case "dtc_heuristic_hazards_total":
			m.hazards = sum(f)
		case "dtc_log_refused_total":
			m.logRefused = sum(f)
		case "dtc_api_errors_total":
			m.apiErrors = sum(f)
		case "dtc_log_sync_duration_seconds":
			m.syncedRecords, m.syncWaitSeconds = histo(f)
		case "dtc_prepare_duration_seconds":
			m.decisions, m.decisionSeconds = histo(f)
		}
	}
	return m, nil
}

func (a dtcMetrics) sub(b dtcMetrics) dtcMetrics { return a.add(b.scale(-1)) }

func (a dtcMetrics) scale(k float64) dtcMetrics {
	return dtcMetrics{
		committed:         k * a.committed,
		aborted:           k * a.aborted,
		participantErrors: k * a.participantErrors,
		hazards:           k * a.hazards,
		logRefused:        k * a.logRefused,
		apiErrors:         k * a.apiErrors,
		syncedRecords:     k * a.syncedRecords,
		syncWaitSeconds:   k * a.syncWaitSeconds,
		decisions:         k * a.decisions,
		decisionSeconds:   k * a.decisionSeconds,
	}
}

func (a dtcMetrics) add(b dtcMetrics) dtcMetrics {
	return dtcMetrics{
		committed:         a.committed + b.committed,
		aborted:           a.aborted + b.aborted,
		participantErrors: a.participantErrors + b.participantErrors,
		hazards:           a.hazards + b.hazards,
		logRefused:        a.logRefused + b.logRefused,
		apiErrors:         a.apiErrors + b.apiErrors,
		syncedRecords:     a.syncedRecords + b.syncedRecords,
		syncWaitSeconds:   a.syncWaitSeconds + b.syncWaitSeconds,
		decisions:         a.decisions + b.decisions,
		decisionSeconds:   a.decisionSeconds + b.decisionSeconds,
	}
}
