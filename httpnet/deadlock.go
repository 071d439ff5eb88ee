package httpnet

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
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
// In a cluster one node keeps the cluster's graph: the owner of shard DetectorShard
// (every node knows it from its view of the owners). The cluster's API handler forwards
// every wait report there (one hop). The detector looks up the transactions of other
// nodes, and aborts a victim of another node, through RemoteTxns (the API handler's
// calls to the transaction's owner). It does not see the decisions of other nodes'
// transactions, so an edge whose transaction it does not run lives RemoteWaitTTL after
// its last report (the participants re-tell a wait while it lasts), and before a victim
// is aborted every transaction of its cycle is looked up again: one that is no longer
// preparing loses its edges and the cycle is not broken (it is not one any more).
//
//	participant ──POST /v1/waits──▶ any node ──forward──▶ detector node (owner of shard 0)
//	                                                         │ Add: cycle? victim?
//	                          owner of a txn ◀──GET / abort──┘ (remote ones; local ones in process)
//
// When shard 0 moves, its new owner starts with an empty graph, which the re-told
// reports fill again within a report interval; a cycle closed in between is found at the
// next re-tell. A report that meets a node which believes itself the detector but is not
// any more is answered 503 (not_owner) and re-told.

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

// DetectorShard is the shard whose owner keeps the wait-for graph of a cluster.
const DetectorShard = 0

// RemoteWaitTTL is how long the detector of a cluster keeps the edges of a transaction it
// does not run after it was last named in a report: it does not see that transaction's
// decision. Several report intervals of the participant library (participant.Resolver
// re-tells a wait every WaitReportInterval, at most 1s), so that a wait still going on
// is re-told before its edges go.
const RemoteWaitTTL = 5 * time.Second

// RemoteTxns reaches the transactions of other nodes of a cluster for the detector
// (the cluster's API handler implements it with calls to the transaction's owner).
type RemoteTxns interface {
	// Get returns the view of transaction id from its owner: coordinator.ErrNotFound if
	// the owner does not know it, another error if it cannot tell.
	Get(ctx context.Context, id string) (coordinator.View, error)
	// AbortDeadlock aborts transaction txnID (the id its participants were told) at its
	// owner with cause deadlock and reason, and returns once the decision is durable.
	AbortDeadlock(ctx context.Context, txnID, reason string) (coordinator.View, error)
}

// SetRemoteTxns gives the detector its way to other nodes' transactions. The cluster's
// API handler calls it before it serves; without it, only local transactions are seen.
func (r *Runtime) SetRemoteTxns(rt RemoteTxns) {
	if r.dl != nil {
		r.dl.remote.Store(&rt)
	}
}

// detector is the wait-for graph of a Runtime and what feeds it.
type detector struct {
	rt     *Runtime
	lg     *slog.Logger
	remote atomic.Pointer[RemoteTxns] // nil outside a cluster

	mu        sync.Mutex
	g         *waitfor.Graph
	seen      map[string]seenTxn // cluster only: the transactions of g, as last reported
	lastSweep time.Time

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
		rt: rt, lg: rt.lg, g: waitfor.New(rt.o.WaitEdgesMax), seen: map[string]seenTxn{},
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
	delete(d.seen, id)
	d.mu.Unlock()
}

// sweep drops, in a cluster, the edges of the transactions this node does not run that
// were last reported more than RemoteWaitTTL before now, and forgets what the graph no
// longer holds. It runs at most once every RemoteWaitTTL/4, so it costs O(nodes) per
// quarter TTL. Called with d.mu held.
func (d *detector) sweep(now time.Time) {
	if d.rt.cl == nil || now.Sub(d.lastSweep) < RemoteWaitTTL/4 {
		return
	}
	d.lastSweep = now
	sweepSeen(d.g, d.seen, now, func(id string) bool { return d.rt.shardFor(id) != nil })
}

// sweepSeen removes from g the transactions that are not local and were last reported
// more than RemoteWaitTTL before now, and from seen those that g does not hold (any
// more). A local transaction stays until its decision removes it.
func sweepSeen(g *waitfor.Graph, seen map[string]seenTxn, now time.Time, local func(id string) bool) {
	for id, st := range seen {
		switch {
		case !g.Contains(id):
			delete(seen, id)
		case now.Sub(st.at) > RemoteWaitTTL && !local(id):
			g.Remove(id)
			delete(seen, id)
		}
	}
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
	var holders []liveTxn
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
	now := time.Now()
	d.sweep(now)
	cycles, err := d.g.Add(waiter.Txn, txns(holders))
	if err == nil && d.rt.cl != nil {
		for _, t := range append(holders, waiter) {
			d.seen[t.ID] = seenTxn{at: now, txnID: t.txnID}
		}
	}
	d.mu.Unlock()
	if err != nil {
		d.reports.WithLabelValues("full").Inc()
		return nil, fmt.Errorf("%w: %v", ErrGraphFull, err)
	}
	d.reports.WithLabelValues("added").Inc()
	// The waiter may have been decided while its edges were being added, after its
	// observer removed what there was: check again, so that no edge outlives it. (One
	// of another node is not observed here at all: RemoteWaitTTL and the check below.)
	if !waiter.remote {
		if _, still, err := d.live(ctx, rep.Waiter); err == nil && !still {
			d.decided(waiter.ID)
		}
	}
	var broken []waitfor.Cycle
	for _, c := range cycles {
		victim, ok := d.confirm(ctx, c)
		if !ok {
			continue
		}
		broken = append(broken, c)
		d.deadlocks.Inc()
		reason := fmt.Sprintf("cycle %s (reported by %s waiting for key %q)", c, rep.Participant, rep.Key)
		d.lg.Info("deadlock found: aborting the youngest transaction of the cycle", "victim", c.Victim.ID, "cycle", c.String(), "remote", victim.remote)
		if victim.remote {
			_, err = d.remoteTxns().AbortDeadlock(ctx, victim.txnID, reason)
			if err == nil {
				d.resolution.Observe(time.Since(start).Seconds())
			}
		} else {
			_, err = d.rt.abort(ctx, c.Victim.ID, coordinator.CauseDeadlock, reason, func(v coordinator.View) {
				d.resolution.Observe(time.Since(start).Seconds())
			})
		}
		if err != nil && !errors.Is(err, coordinator.ErrNotFound) {
			d.lg.Warn("deadlock victim could not be aborted", "victim", c.Victim.ID, "error", err)
		}
	}
	return broken, nil
}

// confirm looks every transaction of cycle c up again in a cluster, where some may live
// on another node (whose decisions this detector does not see), or have moved there: the
// cycle is real only if all are still preparing. Those that are not lose their edges.
// It returns the victim as looked up (where it lives, the id its participants were
// told). Outside a cluster every decision removes its edges: nothing to look up.
func (d *detector) confirm(ctx context.Context, c waitfor.Cycle) (liveTxn, bool) {
	if d.rt.cl == nil {
		return liveTxn{Txn: c.Victim, txnID: c.Victim.ID}, true
	}
	var victim liveTxn
	all, remote := true, false
	for _, t := range c.Txns {
		// By the id its participants were told when known: a lookup at another node
		// by that id needs no credentials.
		id := t.ID
		d.mu.Lock()
		if st, ok := d.seen[t.ID]; ok && st.txnID != "" {
			id = st.txnID
		}
		d.mu.Unlock()
		lt, ok, err := d.live(ctx, id)
		if err != nil || !ok {
			all = false
			if err == nil {
				d.decided(t.ID)
			}
			continue
		}
		remote = remote || lt.remote
		if t.ID == c.Victim.ID {
			victim = lt
		}
	}
	if !all {
		d.lg.Info("a cycle's transaction is no longer preparing (or could not be looked up): not a deadlock", "cycle", c.String(), "remote", remote)
	}
	return victim, all
}

// seenTxn is when a transaction was last named in a report, and the id its
// participants were told.
type seenTxn struct {
	at    time.Time
	txnID string
}

// liveTxn is a transaction as live found it.
type liveTxn struct {
	waitfor.Txn
	txnID  string // the id its participants were told
	remote bool   // another node runs it (looked up through RemoteTxns)
}

func txns(ts []liveTxn) []waitfor.Txn {
	out := make([]waitfor.Txn, len(ts))
	for i, t := range ts {
		out[i] = t.Txn
	}
	return out
}

func (d *detector) remoteTxns() RemoteTxns {
	if p := d.remote.Load(); p != nil {
		return *p
	}
	return nil
}

// live looks a transaction up: ok when it is preparing, with its client id and priority.
// A transaction of another node is looked up through RemoteTxns when the detector has
// them (in a cluster), else it is not live; unknown ids are not live. Other errors are
// returned (an owner that does not answer: ErrNotOwner).
func (d *detector) live(ctx context.Context, id string) (liveTxn, bool, error) {
	v, err := d.rt.Get(ctx, id)
	remote := false
	if errors.Is(err, ErrNotOwner) {
		if rt := d.remoteTxns(); rt != nil {
			remote = true
			v, err = rt.Get(ctx, id)
		}
	}
	switch {
	case errors.Is(err, coordinator.ErrNotFound), errors.Is(err, ErrNotOwner) && !remote:
		return liveTxn{}, false, nil
	case err != nil:
		return liveTxn{}, false, err
	}
	lt := liveTxn{Txn: waitfor.Txn{ID: v.ID, Priority: v.Priority}, txnID: v.TxnID, remote: remote}
	return lt, v.State == coordinator.StatePreparing, nil
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
