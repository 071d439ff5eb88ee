package httpnet

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/dtc-project/dtc/cluster"
	"github.com/dtc-project/dtc/coordinator"
	"github.com/dtc-project/dtc/httpnet/transport"
)

// ErrNotOwner: the transaction's shard is not owned by this node (another node owns
// it, or nobody does right now). The cluster's API handler forwards such requests to
// the owner; a request that still meets it is answered 503 with Retry-After.
var ErrNotOwner = errors.New("httpnet: this node does not own the transaction's shard")

// ClusterOptions make a Runtime one node of a cluster (package cluster): the shards'
// logs are in etcd, and the node runs the shards it owns. Zero values mean the
// defaults.
type ClusterOptions struct {
	// Client talks to etcd. Required; the caller closes it after the runtime.
	Client *clientv3.Client
	// Name is the cluster's name, NodeID this node's. Required.
	Name   string
	NodeID string
	// APIAddr is the base URL other nodes forward requests to. Default
	// Transport.AdvertiseURL.
	APIAddr string
	// Shards is the number of shards if this node creates the cluster. Default 64.
	Shards int
	// LeaseTTL is the node's lease TTL (whole seconds). Default 2s.
	LeaseTTL time.Duration
	// CheckpointRecords: a shard checkpoints (and so deletes its older keys in etcd)
	// once it has written this many records since its last checkpoint. Default 10000.
	CheckpointRecords uint64
	// Log tunes the shards' logs (batching, timeouts); the fields that name the shard
	// are filled in by the runtime.
	Log cluster.LogOptions
	// HandOffTimeout bounds the handoff of all shards when the runtime closes.
	// Default 10s.
	HandOffTimeout time.Duration
}

func (c *ClusterOptions) setDefaults(o *Options) {
	if c.APIAddr == "" {
		c.APIAddr = o.Transport.AdvertiseURL
	}
	if c.CheckpointRecords == 0 {
		c.CheckpointRecords = 10000
	}
}

// clusterState is the cluster half of a Runtime: the node, and the shards it runs,
// indexed by shard number (nil where another node owns the shard).
type clusterState struct {
	r       *Runtime
	o       ClusterOptions
	keys    cluster.Keys
	node    *cluster.Node
	metrics *cluster.Metrics
	slots   []atomic.Pointer[clusterShard]

	cancel  context.CancelFunc // ends node.Run: a graceful leave
	runDone chan struct{}
	stopped sync.WaitGroup // goroutines that wait for lost shards to stop
}

// clusterShard is one running shard of this node.
type clusterShard struct {
	s    *shard
	log  *cluster.Log
	cpAt uint64 // the log's Accepted() at the last checkpoint; the shard's goroutine only

	stopOnce sync.Once
}

func (c *clusterShard) stop() { c.stopOnce.Do(func() { close(c.s.quit) }) }

// openCluster is Open for a node of a cluster.
func openCluster(o Options) (*Runtime, error) {
	co := *o.Cluster
	co.setDefaults(&o)
	r := &Runtime{
		o:           o,
		lg:          o.Logger.With("node", co.NodeID),
		metrics:     newMetrics(),
		stopping:    make(chan struct{}),
		failed:      make(chan struct{}),
		compactDone: make(chan struct{}),
		samplerDone: make(chan struct{}),
	}
	r.dl = r.newDetector()
	cs := &clusterState{r: r, o: co, keys: cluster.Keys{Cluster: co.Name}, metrics: cluster.NewMetrics(), runDone: make(chan struct{})}
	node, err := cluster.NewNode(cluster.NodeOptions{
		Client: co.Client, Cluster: co.Name, NodeID: co.NodeID, APIAddr: co.APIAddr,
		Shards: co.Shards, LeaseTTL: co.LeaseTTL, HandOffTimeout: co.HandOffTimeout,
		Handler: cs, Metrics: cs.metrics, Logger: r.lg,
	})
	if err != nil {
		return nil, fmt.Errorf("httpnet: %w", err)
	}
	cs.node = node
	ictx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	shards, err := node.Init(ictx)
	cancel()
	if err != nil {
		return nil, fmt.Errorf("httpnet: joining cluster %q: %w", co.Name, err)
	}
	cs.slots = make([]atomic.Pointer[clusterShard], shards)
	r.cl = cs
	r.transport = transport.New(o.Transport)
	r.metrics.reg.MustRegister(newStatsCollector(r), r.transport.Collector())
	r.metrics.reg.MustRegister(cs.metrics.Collectors()...)

	ctx, stop := context.WithCancel(context.Background())
	cs.cancel = stop
	go func() {
		defer close(cs.runDone)
		if err := node.Run(ctx); err != nil && !errors.Is(err, context.Canceled) && !errors.Is(err, cluster.ErrKilled) {
			r.lg.Error("the cluster node stopped", "error", err)
		}
	}()
	r.compactCtx, r.compactCancel = context.WithCancel(context.Background())
	go r.compactor()
	go r.sampler(r.compactCtx, r.samplerDone)
	r.lg.Info("joined the cluster", "cluster", co.Name, "shards", shards)
	return r, nil
}

// Node returns the runtime's cluster node, nil when it runs the local log.
func (r *Runtime) Node() *cluster.Node {
	if r.cl == nil {
		return nil
	}
	return r.cl.node
}

// ClusterMetrics returns the cluster layer's metrics, nil when it runs the local log.
func (r *Runtime) ClusterMetrics() *cluster.Metrics {
	if r.cl == nil {
		return nil
	}
	return r.cl.metrics
}

// NodeID is this node's id in its cluster, "" when the runtime runs the local log.
func (r *Runtime) NodeID() string {
	if r.cl == nil {
		return ""
	}
	return r.cl.o.NodeID
}

// ClusterShardOf is the cluster's shard that transaction id (a client id, or the id its
// participants were told) routes to. Only for a runtime opened with Options.Cluster.
func (r *Runtime) ClusterShardOf(id string) int { return r.cl.shardNumber(id) }

// RunsShard reports whether this node runs the cluster's shard n and may answer for
// it. Only for a runtime opened with Options.Cluster.
func (r *Runtime) RunsShard(n int) bool { return r.cl.local(n) != nil }

// shardNumber is the shard a transaction id routes to in the cluster.
func (cs *clusterState) shardNumber(id string) int {
	client, _, _ := coordinator.SplitTxnID(id)
	return shardOf(client, len(cs.slots))
}

// local returns shard n if this node runs it and may answer for it.
func (cs *clusterState) local(n int) *shard {
	c := cs.slots[n].Load()
	if c == nil || !cs.node.Valid(n) {
		return nil
	}
	return c.s
}

// localID draws a transaction id that routes to a shard this node runs, so that a
// transaction without a client-chosen id is never forwarded. It gives up after a
// bounded number of draws (when the node owns few shards or none) and returns a random
// id.
func (cs *clusterState) localID() string {
	const drawsMax = 256
	for range drawsMax {
		id := NewTxnID()
		if cs.local(cs.shardNumber(id)) != nil {
			return id
		}
	}
	return NewTxnID()
}

// live returns the shards this node runs.
func (cs *clusterState) live() []*shard {
	var out []*shard
	for i := range cs.slots {
		if c := cs.slots[i].Load(); c != nil {
			out = append(out, c.s)
		}
	}
	return out
}

// StartShard implements cluster.ShardHandler: read the shard's log from etcd, replay
// it into a new engine over a fenced Log, and start the shard's goroutine, which
// resumes what the log held (Engine.Start) and checkpoints.
func (cs *clusterState) StartShard(ctx context.Context, n int, rev int64) error {
	r := cs.r
	s := newShard(n, r.o.InboxCap, r.lg)
	var recs []*coordinator.Record
	next, err := cluster.ReadLog(ctx, cs.o.Client, cs.keys, n, func(_ uint64, rec *coordinator.Record) error {
		if rec.Txn != "" { // checkpoint markers belong to no transaction
			recs = append(recs, rec)
		}
		return nil
	})
	if err != nil {
		return err
	}
	lo := cs.o.Log
	lo.KV, lo.Keys, lo.Shard, lo.OwnerRevision, lo.NextIndex = cs.o.Client, cs.keys, n, rev, next
	lo.Notify = s.notify
	lo.OnFenced = func(err error) { cs.node.LoseShard(n, err) }
	lo.Metrics, lo.Logger = cs.metrics, r.lg
	log, err := cluster.OpenLog(lo)
	if err != nil {
		return err
	}
	eng, err := coordinator.New(r.o.Engine, coordinator.Env{
		Clock:     clock{s},
		Transport: r.transport.For(s.deliver),
		Log:       log,
		Rand:      newRand(),
		Observer:  observer{m: r.metrics, log: r.lg, shard: n, dl: r.dl},
	})
	if err == nil {
		for _, rec := range recs {
			if err = eng.Replay(rec); err != nil {
				err = fmt.Errorf("httpnet: replaying shard %d's %s record of %s: %w", n, rec.Type, rec.Txn, err)
				break
			}
		}
	}
	if err != nil {
		log.Stop()
		return err
	}
	s.eng, s.log = eng, log
	c := &clusterShard{s: s, log: log}
	cs.slots[n].Store(c)
	go s.run()
	if err := log.Fenced(); err != nil {
		cs.LoseShard(n, err) // fenced while starting: the owner key is another's already
		return err
	}
	r.lg.Info("shard started", "shard", n, "records", len(recs), "next_index", next)
	return nil
}

// handOffPoll is how often a shard being handed off checks whether its transactions
// in flight have their decisions.
const handOffPoll = 20 * time.Millisecond

// HandOffShard implements cluster.ShardHandler: no new requests reach the shard; its
// undecided transactions get their decisions (for up to half of ctx's time), then it
// checkpoints, stops, and its log writes what it accepted.
func (cs *clusterState) HandOffShard(ctx context.Context, n int) {
	c := cs.slots[n].Swap(nil)
	if c == nil {
		return
	}
	drain := ctx
	if dl, ok := ctx.Deadline(); ok {
		var cancel context.CancelFunc
		drain, cancel = context.WithDeadline(ctx, time.Now().Add(time.Until(dl)/2))
		defer cancel()
	}
drain:
	for {
		var st coordinator.Stats
		if c.s.do(drain, func(e *coordinator.Engine) { st = e.Stats() }) != nil || st.Undecided == 0 {
			break
		}
		t := time.NewTimer(handOffPoll)
		select {
		case <-drain.Done():
			t.Stop()
			break drain
		case <-t.C:
		}
	}
	_ = c.s.do(ctx, func(*coordinator.Engine) { c.s.checkpoint() })
	c.stop()
	<-c.s.done
	if err := c.log.Close(ctx); err != nil {
		cs.r.lg.Warn("handing a shard off: its log did not write everything", "shard", n, "error", err)
	}
}

// LoseShard implements cluster.ShardHandler: stop at once. Callers waiting for a
// decision of this shard get ErrStopped; nothing more is written.
func (cs *clusterState) LoseShard(n int, cause error) {
	c := cs.slots[n].Swap(nil)
	if c == nil {
		return
	}
	c.log.Fence(cause)
	c.stop()
	cs.stopped.Add(1)
	go func() { // LoseShard may run on the log's own goroutine: wait elsewhere
		defer cs.stopped.Done()
		<-c.s.done
		c.log.Stop()
	}()
	cs.r.lg.Warn("shard lost: stopped at once", "shard", n, "cause", cause)
}

// compact checkpoints every shard that wrote CheckpointRecords records since its last
// checkpoint; the checkpoint's closing write deletes the shard's older keys in etcd.
func (cs *clusterState) compact(ctx context.Context) {
	for i := range cs.slots {
		c := cs.slots[i].Load()
		if c == nil {
			continue
		}
		_ = c.s.do(ctx, func(*coordinator.Engine) {
			if c.log.Accepted()-c.cpAt >= cs.o.CheckpointRecords || c.s.cpFailed.Load() {
				c.s.checkpoint()
				c.cpAt = c.log.Accepted()
			}
		})
	}
}

// close leaves the cluster: every shard is handed off, the lease revoked.
func (cs *clusterState) close() {
	cs.cancel()
	<-cs.runDone
	cs.stopped.Wait()
}

// Crash stops a cluster node abruptly, as kill -9 would: no handoff, nothing pending
// written, the lease left to expire. For tests that kill a node in-process; Close
// after it only releases what is left.
func (r *Runtime) Crash() {
	if r.cl == nil {
		panic("httpnet: Crash is for cluster nodes")
	}
	r.closed.Store(true)
	r.cl.node.Kill()
	<-r.cl.runDone
	r.cl.stopped.Wait()
}
