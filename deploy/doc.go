// Package deploy holds no code: it is the operations kit, a Grafana dashboard
// (grafana/dtc-dashboard.json) and Prometheus alert rules (prometheus/dtc-alerts.yaml),
// and the test that every metric they name is on a live dtc's /metrics.
package deploy
