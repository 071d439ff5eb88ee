package cluster

import "github.com/prometheus/client_golang/prometheus"

// Metrics count what the cluster layer does. Register Collectors in the daemon's
// registry to export them on /metrics.
type Metrics struct {
	// FencedWrites counts log writes refused by etcd because the owner key's revision
	// had changed: a node that lost a shard (a paused node, a partitioned one) tried to
	// write to it, and wrote nothing.
	FencedWrites prometheus.Counter
	// WriteErrors counts etcd transactions of the log that failed (and were retried).
	WriteErrors prometheus.Counter
	// Writes counts etcd transactions that wrote log records.
	Writes prometheus.Counter
	// RecordsWritten counts log records written.
	RecordsWritten prometheus.Counter
	// ShardsAcquired and ShardsLost count shard ownership changes of this node.
	ShardsAcquired prometheus.Counter
	ShardsLost     prometheus.Counter
	// LeasesLost counts the times this node's lease expired or was revoked under it.
	LeasesLost prometheus.Counter
	// ShardsOwned is how many shards this node owns now.
	ShardsOwned prometheus.Gauge
}

// NewMetrics returns unregistered metrics.
func NewMetrics() *Metrics {
	return &Metrics{
		FencedWrites: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "dtc_cluster_fenced_writes_total",
			Help: "Shard log writes refused by etcd because this node no longer owned the shard (the owner key's revision had changed); each stopped its shard.",
		}),
		WriteErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "dtc_cluster_log_write_errors_total",
			Help: "Shard log transactions to etcd that failed and were retried.",
		}),
		Writes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "dtc_cluster_log_writes_total",
			Help: "Shard log transactions written to etcd (each a batch of records).",
		}),
		RecordsWritten: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "dtc_cluster_log_records_total",
			Help: "Shard log records written to etcd.",
		}),
		ShardsAcquired: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "dtc_cluster_shards_acquired_total",
			Help: "Shards this node acquired.",
		}),
		ShardsLost: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "dtc_cluster_shards_released_total",
			Help: "Shards this node stopped owning (handed off, fenced, or lost with its lease).",
		}),
		LeasesLost: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "dtc_cluster_leases_lost_total",
			Help: "Times this node's etcd lease expired or was revoked while it held shards.",
		}),
		ShardsOwned: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "dtc_cluster_shards_owned",
			Help: "Shards this node owns.",
		}),
	}
}

// Collectors returns every metric, for prometheus.Registerer.MustRegister.
func (m *Metrics) Collectors() []prometheus.Collector {
	return []prometheus.Collector{m.FencedWrites, m.WriteErrors, m.Writes, m.RecordsWritten,
		m.ShardsAcquired, m.ShardsLost, m.LeasesLost, m.ShardsOwned}
}
