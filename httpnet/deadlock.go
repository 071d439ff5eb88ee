package httpnet

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/dtc-project/dtc/coordinator"
	"github.com/dtc-project/dtc/waitfor"
)

// Deadlock detection (issue 16). Participants that make a prepare wait for a lock report
// "waiter waits for holders" (POST /v1/waits, WaitReport); the detector keeps one
// wait-for graph (waitfor.Graph) above the shards — every transaction of this process,
// whatever its shard — and aborts the youngest transaction of each cycle the moment the
// edge that closes it is reported, with cause deadlock and the cycle in its reason.
// Edges go when a transaction is decided (the shards' observers tell the detector).
//
// In a cluster each node has its own graph: a report is forwarded to the node that owns
// the waiter's shard, and a cycle is found only if every one of its transactions lives
// on that node. A cycle across nodes is left to the prepare deadline.

// WaitReport is the body of POST /v1/waits: at Participant (its prepare URL), the
// transaction Waiter waits for Holders to release Key. Transactions are named by the id
// the participant was told (View.TxnID); client ids are accepted too.
type WaitReport struct {
	Participant string   `json:"participant"`
	Waiter      string   `json:"waiter"`
	Holders     []string `json:"holders"`
	Key         string   `json:"key"`
}

// WaitHoldersMax bounds the holders of one report (a shared lock may have many); the
// API refuses a report with more.
const WaitHoldersMax = 256

// detector is the wait-for graph of a Runtime and what feeds it.
type detector struct {
	rt *Runtime
	lg *slog.Logger

	mu sync.Mutex
	g  *waitfor.Graph

	deadlocks  prometheus.Counter
	resolution prometheus.Histogram
	reports    *prometheus.CounterVec // result: added, stale, full
}

// newDetector returns the runtime's detector, its metrics registered; nil when
// detection is off (then only dtc_wait_reports_total{result="off"} counts reports).
func (rt *Runtime) newDetector() *detector {
	if rt.o.NoDeadlockDetection {
		rt.waitsOff = prometheus.NewCounter(prometheus.CounterOpts{
			Name:        "dtc_wait_reports_total",
			Help:        "Wait reports (POST /v1/waits) received, by result: off (deadlock detection is off: ignored).",
			ConstLabels: prometheus.Labels{"result": "off"},
		})
		rt.metrics.reg.MustRegister(rt.waitsOff)
		return nil
	}
	d := &detector{
		rt: rt, lg: rt.lg, g: waitfor.New(rt.o.WaitEdgesMax),
		deadlocks: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "dtc_deadlocks_total",
			Help: "Cycles found in the wait-for graph; each one's youngest transaction is aborted with cause deadlock.",
		}),
		resolution: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "dtc_deadlock_resolution_seconds",
			Help:    "From the report of the edge that closed a cycle until its victim's abort decision was durable.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 18), // 0.1ms .. ~13s
		}),
		reports: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "dtc_wait_reports_total",
			Help: "Wait reports (POST /v1/waits) received, by result: added (to the wait-for graph), stale (the waiter is not preparing here, or no holder is), full (the graph is at its bound).",
		}, []string{"result"}),
	}
	for _, r := range []string{"added", "stale", "full"} {
		d.reports.WithLabelValues(r)
	}
	rt.metrics.reg.MustRegister(d.deadlocks, d.resolution, d.reports)
	return d
}

// decided drops a transaction's edges: it no longer waits and is no longer waited for.
// Called by the shards' observers (on their goroutines) when a decision is durable.
func (d *detector) decided(id string) {
	if d == nil {
		return
	}
	d.mu.Lock()
	d.g.Remove(id)
	d.mu.Unlock()
}

// ErrGraphFull: ReportWaits refused the report because the graph is at its bound (the
// API answers 429).
var ErrGraphFull = errors.New("httpnet: the wait-for graph is full")

// ReportWaits hands a participant's wait report to the wait-for graph (report). on
// is false when the runtime was opened with NoDeadlockDetection: the report is counted
// (dtc_wait_reports_total{result="off"}) and ignored. Otherwise it returns the cycles
// the report closed, each with its victim aborted, or an error: ErrGraphFull, a
// context's, or a shard's (ErrStopped, coordinator.ErrRecovering, ...).
func (r *Runtime) ReportWaits(ctx context.Context, rep WaitReport) (on bool, cycles []waitfor.Cycle, err error) {
	if r.dl == nil {
		r.waitsOff.Inc()
		return false, nil, nil
	}
	cycles, err = r.dl.report(ctx, rep)
	return true, cycles, err
}

// report adds a participant's wait report and aborts the victim of every cycle it
// closes. It returns once the victims' aborts are decided in memory (their durability is
// timed by dtc_deadlock_resolution_seconds), with the cycles found.
func (d *detector) report(ctx context.Context, rep WaitReport) ([]waitfor.Cycle, error) {
	start := time.Now()
	waiter, ok, err := d.live(ctx, rep.Waiter)
	if err != nil {
		return nil, err
	}
	var holders []waitfor.Txn
	if ok {
		for _, h := range rep.Holders {
			t, live, err := d.live(ctx, h)
			if err != nil {
				return nil, err
			}
			if live {
				holders = append(holders, t)
			}
		}
	}
	if !ok || len(holders) == 0 {
		d.reports.WithLabelValues("stale").Inc()
		return nil, nil
	}
	d.mu.Lock()
	cycles, err := d.g.Add(waiter, holders)
	d.mu.Unlock()
	if err != nil {
		d.reports.WithLabelValues("full").Inc()
		return nil, fmt.Errorf("%w: %v", ErrGraphFull, err)
	}
	d.reports.WithLabelValues("added").Inc()
	// The waiter may have been decided while its edges were being added, after its
	// observer removed what there was: check again, so that no edge outlives it.
	if _, still, err := d.live(ctx, rep.Waiter); err == nil && !still {
		d.decided(waiter.ID)
	}
	for _, c := range cycles {
		d.deadlocks.Inc()
		reason := fmt.Sprintf("cycle %s (reported by %s waiting for key %q)", c, rep.Participant, rep.Key)
		d.lg.Info("deadlock found: aborting the youngest transaction of the cycle", "victim", c.Victim.ID, "cycle", c.String())
		_, err := d.rt.abort(ctx, c.Victim.ID, coordinator.CauseDeadlock, reason, func(v coordinator.View) {
			d.resolution.Observe(time.Since(start).Seconds())
		})
		if err != nil && !errors.Is(err, coordinator.ErrNotFound) {
			d.lg.Warn("deadlock victim could not be aborted", "victim", c.Victim.ID, "error", err)
		}
	}
	return cycles, nil
}

// live looks a transaction up: ok when it is preparing, with its client id and priority.
// Unknown ids and transactions of other nodes are not live; other errors are returned.
func (d *detector) live(ctx context.Context, id string) (waitfor.Txn, bool, error) {
	v, err := d.rt.Get(ctx, id)
	switch {
	case errors.Is(err, coordinator.ErrNotFound), errors.Is(err, ErrNotOwner):
		return waitfor.Txn{}, false, nil
	case err != nil:
		return waitfor.Txn{}, false, err
	}
	return waitfor.Txn{ID: v.ID, Priority: v.Priority}, v.State == coordinator.StatePreparing, nil
}

// Abort aborts a transaction that is not decided yet (coordinator.Engine.Abort) and
// waits for the decision to be durable; a decided one is answered as it is. On ctx's end
// the view is the one at the call.
func (r *Runtime) Abort(ctx context.Context, id string, cause coordinator.AbortCause, reason string) (coordinator.View, error) {
	res := make(chan coordinator.View, 1)
	v, err := r.abort(ctx, id, cause, reason, func(v coordinator.View) { res <- v })
	if err != nil {
		return v, err
	}
	select {
	case v = <-res:
		return v, nil
	case <-ctx.Done():
		return v, nil
	case <-r.stopping:
		return v, ErrStopped
	case <-r.failed:
		return v, errNotDurable(v.ID)
	}
}

// abort runs Engine.Abort on the transaction's shard; done is called on the shard's
// goroutine once the decision is durable.
func (r *Runtime) abort(ctx context.Context, id string, cause coordinator.AbortCause, reason string, done func(coordinator.View)) (coordinator.View, error) {
	s := r.shardFor(id)
	if s == nil {
		return coordinator.View{}, ErrNotOwner
	}
	var (
		v   coordinator.View
		err error
	)
	if doErr := s.do(ctx, func(e *coordinator.Engine) { v, err = e.Abort(id, cause, reason, done) }); doErr != nil {
		return coordinator.View{}, doErr
	}
	return v, err
}
