package simnet

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/dtc-project/dtc/checker"
	"github.com/dtc-project/dtc/cluster"
	"github.com/dtc-project/dtc/coordinator"
	"github.com/dtc-project/dtc/faults"
	"github.com/dtc-project/dtc/simnet/leasestore"
)

// Cluster mode (Options.Cluster). The coordinator is one shard of a dtc cluster: nodes
// n1..nK, one of which owns the shard at a time through an owner key attached to its
// lease in the lease store (package leasestore, etcd's model, in virtual time). "coord"
// on the simulated network is the shard's address: whichever node owns it serves it
// (the forwarding of a real cluster, one hop, is not modelled).
//
// What is real: the engine; cluster.Acquire (the owner key's create-if-absent txn);
// cluster.ReadLog (the takeover's read of the shard's records, replayed through the
// engine's Replay and Start as at a restart); cluster.WriteBatch (every group commit,
// one txn guarded by the owner key's create revision); etcd's clientv3 request
// building. What is modelled here: cluster.Log's batching and retries (its writer is a
// goroutine on the wall clock; here a write is an event: the same batches, bounded as
// Log bounds them), and node.go's lease keeping and shard acquisition (a keepalive
// every TTL/3; a node gives the shard up when its lease is gone or it could not renew
// it for a TTL; a takeover is tried on the next live node every 100 ms).
//
// Faults: a node crash is a coordinator crash (the next start is a takeover on another
// node, once the dead node's lease has expired); a pause (SIGSTOP) holds the owner at
// its next log write for longer than its lease, another node takes over, and the
// resumed zombie sends the write it held; the owner cut off from the store; the store
// down. Checked online: the store never accepts a log record from a node that does not
// hold the owner key (ClusterKindUnfenced); at the end the shard must be owned by the
// node serving it (ClusterKindNotServed).

// ClusterOptions configure cluster mode.
type ClusterOptions struct {
	// Nodes is how many coordinator nodes there are (default 3).
	Nodes int
	// LeaseTTL is the TTL of every node's lease (default 2 s).
	LeaseTTL time.Duration
	// StoreLatencyMin and StoreLatencyMax bound one way to the store (default 1–3 ms).
	StoreLatencyMin, StoreLatencyMax time.Duration
	// Pauses, StoreDown and Cuts are explicit faults: each starts at At and lasts For.
	// A pause stops the owner at its first log write at or after At, with the batch in
	// hand, for For (a zombie if For is longer than the lease); a cut cuts the node
	// owning the shard at At off from the store.
	Pauses, StoreDown, Cuts []ClusterFault
	// FaultEvery is the mean time between random cluster faults of the fault phase
	// (a pause, a cut or an outage, drawn from the seed); 0 means none.
	FaultEvery time.Duration
}

// ClusterFault is one explicit cluster fault.
type ClusterFault struct{ At, For time.Duration }

// Violation kinds of cluster mode.
const (
	// ClusterKindUnfenced: the store accepted a log record from a node that did not own
	// the shard (its lease was gone, another node had taken over).
	ClusterKindUnfenced = "unfenced-write"
	// ClusterKindNotServed: after the heal, the shard is not owned by the node serving it.
	ClusterKindNotServed = "shard-not-served"
)

func (o ClusterOptions) withDefaults() ClusterOptions {
	if o.Nodes == 0 {
		o.Nodes = 3
	}
	if o.LeaseTTL == 0 {
		o.LeaseTTL = 2 * time.Second
	}
	if o.StoreLatencyMax == 0 {
		o.StoreLatencyMin, o.StoreLatencyMax = time.Millisecond, 3*time.Millisecond
	}
	return o
}

// Validate reports options that cannot be run.
func (o ClusterOptions) Validate() error {
	o = o.withDefaults()
	var errs []error
	if o.Nodes < 1 || o.Nodes > 16 {
		errs = append(errs, fmt.Errorf("Cluster.Nodes is %d, must be 1..16", o.Nodes))
	}
	if o.LeaseTTL < 100*time.Millisecond {
		errs = append(errs, fmt.Errorf("Cluster.LeaseTTL is %v, must be at least 100ms", o.LeaseTTL))
	}
	if o.StoreLatencyMin < 0 || o.StoreLatencyMax < o.StoreLatencyMin {
		errs = append(errs, fmt.Errorf("Cluster.StoreLatency %v..%v is not a range", o.StoreLatencyMin, o.StoreLatencyMax))
	}
	for _, fs := range [][]ClusterFault{o.Pauses, o.StoreDown, o.Cuts} {
		for _, f := range fs {
			if f.At < 0 || f.For <= 0 {
				errs = append(errs, fmt.Errorf("cluster fault %+v: At must not be negative and For must be positive", f))
			}
		}
	}
	return errors.Join(errs...)
}

// streamCluster draws the random cluster faults and the store's latencies, apart from
// the other streams: a run without cluster mode draws exactly what it drew before.
const streamCluster = 0x636c7573

// shard is the one shard the simulated cluster serves.
const shard = 0

// logBatchRecordsMax bounds the records of one write, and logPendingRecordsMax the
// records waiting for the store, as cluster.Log's defaults do.
const (
	logBatchRecordsMax   = 100
	logPendingRecordsMax = 10000
)

// clusterSim is the cluster's shared state: the store and the nodes.
type clusterSim struct {
	o     ClusterOptions
	store *leasestore.Store
	keys  cluster.Keys
	nodes []*clusterNode
	host  int // the node that served (or tries to serve) the shard last
	rng   *rand.Rand
	// pauses: armed pauses, each firing at the owner's first log write at or after its time.
	pauses []ClusterFault
	// lostAt is when the shard last stopped being served (-1: it is served).
	lostAt int64
	// downs counts the store outages under way (they may overlap); the store is up
	// again when the last ends.
	downs int
}

// clusterNode is one coordinator node, as the store knows it.
type clusterNode struct {
	name        string
	client      *leasestore.Client
	pausedUntil int64
	cuts        int // cuts from the store under way (they may overlap)
}

// clusterShard is what one incarnation (the shard on one node, from its takeover to
// its end) holds: its ownership and its log's state.
type clusterShard struct {
	node     *clusterNode
	lease    clientv3.LeaseID
	ownerRev int64
	next     uint64 // index of the next record appended
	cpBegin  uint64 // index of the last checkpoint's opening record
	pending  []lsnRecord
	syncLSN  uint64 // highest LSN appended with sync
	writing  bool   // a write is scheduled or in flight
	backoff  time.Duration
	renewed  int64 // when the lease was last renewed
}

type lsnRecord struct {
	lsn uint64
	cluster.BatchRecord
}

var (
	errShardOwned = errors.New("the shard's owner key is held by another node's lease")
	errNoHost     = errors.New("no node can take the shard: every node is paused")
)

func newClusterSim(s *sim) *clusterSim {
	o := s.o.Cluster.withDefaults()
	cl := &clusterSim{o: o, keys: cluster.Keys{Cluster: "sim"}, rng: rand.New(rand.NewPCG(s.o.Seed, streamCluster)),
		store: leasestore.New(s.time), host: -1, lostAt: -1, pauses: append([]ClusterFault(nil), o.Pauses...)}
	for i := range o.Nodes {
		name := fmt.Sprintf("n%d", i+1)
		cl.nodes = append(cl.nodes, &clusterNode{name: name, client: cl.store.Client(name)})
	}
	cl.store.OnWrite(func(w leasestore.Write) { s.checkStoreWrite(w) })
	return cl
}

// checkStoreWrite is the online fencing check: every log record the store accepts must
// come from the node that holds the shard's owner key at that revision.
func (s *sim) checkStoreWrite(w leasestore.Write) {
	cl := s.cl
	prefix := cl.keys.LogPrefix(shard)
	var logPuts int
	for _, k := range w.Puts {
		if strings.HasPrefix(k, prefix) {
			logPuts++
		}
	}
	if logPuts == 0 {
		return
	}
	owner, ok := cl.store.Current(cl.keys.Owner(shard))
	switch {
	case !ok:
		s.violation(ClusterKindUnfenced, "", "the store accepted %d log records from %s at revision %d while nobody owned the shard (its lease was gone)", logPuts, w.Client, w.Revision)
	case string(owner.Value) != w.Client:
		s.violation(ClusterKindUnfenced, "", "the store accepted %d log records from %s at revision %d while %s owned the shard (owner key created at revision %d)", logPuts, w.Client, w.Revision, owner.Value, owner.CreateRevision)
	}
}

func (s *sim) storeLatency() time.Duration {
	return uniform(s.cl.rng, s.cl.o.StoreLatencyMin, s.cl.o.StoreLatencyMax)
}

// pickHost returns the next node after the last host that is not paused.
func (cl *clusterSim) pickHost(now int64) *clusterNode {
	for i := 1; i <= len(cl.nodes); i++ {
		n := cl.nodes[(cl.host+i+len(cl.nodes))%len(cl.nodes)]
		if n.pausedUntil <= now {
			cl.host = (cl.host + i + len(cl.nodes)) % len(cl.nodes)
			return n
		}
	}
	return nil
}

// startCluster is a takeover: a node acquires the shard's owner key, reads the shard's
// records from the store and replays them into a new engine, then starts it.
func (c *coordNode) startCluster() error {
	s := c.s
	cl := s.cl
	node := cl.pickHost(s.now)
	if node == nil {
		return errNoHost
	}
	ctx := context.Background()
	lease, err := node.client.Grant(cl.o.LeaseTTL)
	if err != nil {
		return fmt.Errorf("%s: granting a lease: %w", node.name, err)
	}
	rev, ok, err := cluster.Acquire(ctx, node.client.KV(), cl.keys, shard, node.name, lease)
	if err != nil {
		return fmt.Errorf("%s: %w", node.name, err)
	}
	if !ok {
		_ = node.client.Revoke(lease)
		return fmt.Errorf("%s: %w", node.name, errShardOwned)
	}
	eng, err := coordinator.New(s.coordCfg, coordinator.Env{Clock: coordClock{c, c.inc}, Transport: coordTransport{c, c.inc},
		Rand: s.engineRng, Observer: coordObserver{c, c.inc}, Log: (*coordLog)(c)})
	if err != nil {
		return err
	}
	cs := &clusterShard{node: node, lease: lease, ownerRev: rev, renewed: s.now}
	replayed := 0
	next, err := cluster.ReadLog(ctx, node.client.KV(), cl.keys, shard, func(i uint64, rec *coordinator.Record) error {
		replayed++
		if rec.Type == coordinator.RecCheckpoint && rec.Bracket == "begin" {
			cs.cpBegin = i
		}
		return eng.Replay(rec)
	})
	if err != nil {
		_, _ = cluster.Release(ctx, node.client.KV(), cl.keys, shard, rev)
		return fmt.Errorf("%s: %w", node.name, err)
	}
	cs.next = next
	c.cs = cs
	c.eng = eng
	s.up[coordID] = true
	s.stats.Takeovers++
	if cl.lostAt >= 0 {
		s.stats.TakeoverGapMax = max(s.stats.TakeoverGapMax, time.Duration(s.now-cl.lostAt))
		cl.lostAt = -1
	}
	s.note(coordID, "%s owns the shard (owner key created at revision %d): %d records replayed", node.name, rev, replayed)
	eng.Start()
	c.point(faults.Recovered, "")
	c.kick()
	c.scheduleCheckpoint(c.inc)
	c.scheduleKeepAlive(c.inc)
	c.scheduleLeaseDeadline(c.inc)
	return nil
}

// scheduleKeepAlive renews the owner's lease every TTL/3, as cluster.Node does. The
// node gives the shard up at once when its lease is gone, or when a TTL has passed
// since the last renewal was sent (the store may have let the lease expire): a deadline
// event at that very time, like Node's expiry timer.
func (c *coordNode) scheduleKeepAlive(inc int) {
	s := c.s
	ttl := s.cl.o.LeaseTTL
	s.after(ttl/3, func() {
		if !c.alive(inc) {
			return
		}
		cs := c.cs
		err := cs.node.client.KeepAlive(cs.lease)
		switch {
		case err == nil:
			cs.renewed = s.now
			c.scheduleLeaseDeadline(inc)
		case errors.Is(err, rpctypes.ErrLeaseNotFound):
			c.loseShard(fmt.Sprintf("%s's lease is gone", cs.node.name))
			return
		default:
			s.tracef(coordID, "%s: a keepalive failed: %v", cs.node.name, err)
		}
		c.scheduleKeepAlive(inc)
	})
}

// scheduleLeaseDeadline gives the shard up a TTL after the last renewal, unless a
// later one moved the deadline.
func (c *coordNode) scheduleLeaseDeadline(inc int) {
	s := c.s
	ttl := s.cl.o.LeaseTTL
	at := c.cs.renewed + int64(ttl)
	s.at(at, func() {
		if c.alive(inc) && c.cs.renewed+int64(ttl) <= s.now {
			c.loseShard(fmt.Sprintf("%s could not renew its lease for %v", c.cs.node.name, ttl))
		}
	})
}

// loseShard stops the shard on its node at once (it answers nothing more), and starts
// the takeover attempts.
func (c *coordNode) loseShard(why string) {
	s := c.s
	s.stats.ShardsLost++
	s.crash(coordID, "shard lost: "+why)
	s.restartAfter(coordID, 100*time.Millisecond)
}

// clusterAppend queues a record for the store, as cluster.Log.Append does.
func (c *coordNode) clusterAppend(rec *coordinator.Record, sync bool) error {
	cs := c.cs
	if len(cs.pending) >= logPendingRecordsMax {
		return cluster.ErrLogBacklog
	}
	b, err := coordinator.EncodeRecord(rec)
	if err != nil {
		return err
	}
	r := lsnRecord{lsn: c.lsn + 1, BatchRecord: cluster.BatchRecord{Index: cs.next, Data: b}}
	if rec.Type == coordinator.RecCheckpoint && rec.Bracket == "end" {
		r.DeleteBefore = cs.cpBegin
	}
	if rec.Type == coordinator.RecCheckpoint && rec.Bracket == "begin" {
		cs.cpBegin = r.Index
	}
	cs.next++
	cs.pending = append(cs.pending, r)
	if sync {
		cs.syncLSN = r.lsn
	}
	return nil
}

// logLazyFlushInterval is how long a lazy record waits for a write, cluster.Log's
// default LazyFlushInterval.
const logLazyFlushInterval = 50 * time.Millisecond

// clusterKick schedules the next write if records wait and none is under way: at once
// for a record someone waits for, after logLazyFlushInterval for lazy ones.
func (c *coordNode) clusterKick() {
	s := c.s
	cs := c.cs
	if cs.writing || len(cs.pending) == 0 {
		return
	}
	cs.writing = true
	d := time.Duration(0)
	if cs.syncLSN < cs.pending[0].lsn {
		d = logLazyFlushInterval
	}
	inc := c.inc
	s.after(d+cs.backoff+s.storeLatency(), func() { c.clusterWrite(inc) })
}

// clusterWrite sends the front of the pending records to the store in one fenced
// transaction (cluster.WriteBatch); the answer comes back after the store's latency.
func (c *coordNode) clusterWrite(inc int) {
	s := c.s
	if !c.alive(inc) {
		return
	}
	cs := c.cs
	n := min(len(cs.pending), logBatchRecordsMax)
	batch := make([]cluster.BatchRecord, n)
	for i, r := range cs.pending[:n] {
		batch[i] = r.BatchRecord
	}
	through := cs.pending[n-1].lsn
	if c.pauseNow(batch) {
		return
	}
	written, err := cluster.WriteBatch(context.Background(), s.logKV(cs.node), s.cl.keys, shard, cs.ownerRev, batch)
	s.after(s.storeLatency(), func() {
		if !c.alive(inc) {
			return // crashed with the write in flight: applied or not, nobody hears of it
		}
		cs.writing = false
		switch {
		case err != nil:
			s.stats.StoreWriteErrors++
			cs.backoff = min(max(2*cs.backoff, 10*time.Millisecond), time.Second)
			s.tracef(coordID, "log: %s's write of %d records failed (retrying in %v): %v", cs.node.name, n, cs.backoff, err)
			c.kick()
		case !written:
			s.stats.FencedWrites++
			c.loseShard(fmt.Sprintf("%s's log write was fenced: the owner key no longer has create revision %d", cs.node.name, cs.ownerRev))
		default:
			cs.backoff = 0
			cs.pending = cs.pending[n:]
			s.tracef(coordID, "log: %s wrote %d records, durable through lsn %d", cs.node.name, n, through)
			c.logDurable(inc, through)
		}
	})
}

// logDurable tells the engine that the records through lsn are durable.
func (c *coordNode) logDurable(inc int, through uint64) {
	for len(c.decision) > 0 && c.decision[0].lsn <= through {
		txn := c.decision[0].txn
		c.decision = c.decision[1:]
		c.point(faults.Decided, txn)
		if !c.alive(inc) {
			return
		}
	}
	c.step(coordinator.LogSynced{Through: through})
}

// pauseNow, when a pause is due, stops the owner (SIGSTOP) with batch in hand: the
// incarnation stops serving, another node takes over once the lease expires, and when
// the pause ends the zombie sends the batch with the owner revision it still believes
// in.
func (c *coordNode) pauseNow(batch []cluster.BatchRecord) bool {
	s := c.s
	cl := s.cl
	if !s.faultPhase {
		return false
	}
	i := -1
	for j, p := range cl.pauses {
		if s.now >= int64(p.At) {
			i = j
			break
		}
	}
	if i < 0 {
		return false
	}
	p := cl.pauses[i]
	cl.pauses = append(cl.pauses[:i], cl.pauses[i+1:]...)
	cs := c.cs
	node, rev := cs.node, cs.ownerRev
	node.pausedUntil = s.now + int64(p.For)
	s.stats.Pauses++
	s.note(coordID, "%s paused (SIGSTOP) for %v with a write of %d records in hand", node.name, p.For, len(batch))
	// The paused process answers nothing: its callers time out.
	for _, r := range c.requests {
		if !r.answered {
			r.answered = true
			reply := r.reply
			s.after(s.knobs.ClientTimeout, func() { reply(nil, errTimeout) })
		}
	}
	c.requests = nil
	s.up[coordID] = false
	s.inc[coordID]++
	cl.lostAt = s.now
	s.restartAfter(coordID, 100*time.Millisecond)
	s.after(p.For, func() { s.zombieWrites(node, rev, batch) })
	return true
}

// zombieWrites is the resumed node sending the write it held: the store must refuse it.
func (s *sim) zombieWrites(node *clusterNode, rev int64, batch []cluster.BatchRecord) {
	written, err := cluster.WriteBatch(context.Background(), s.logKV(node), s.cl.keys, shard, rev, batch)
	switch {
	case err != nil:
		s.note(coordID, "%s resumes; its held write fails: %v", node.name, err)
	case !written:
		s.stats.FencedWrites++
		s.note(coordID, "%s resumes; its held write of %d records is fenced (owner revision %d is gone): it stops the shard", node.name, len(batch), rev)
	default:
		s.note(coordID, "%s resumes; its held write of %d records went through with owner revision %d", node.name, len(batch), rev)
	}
}

// logKV is the KV a node writes its log through: the store, or under
// BreakUnfencedLogWrite the store with the owner compare dropped.
func (s *sim) logKV(n *clusterNode) clientv3.KV {
	if s.o.Break&BreakUnfencedLogWrite != 0 {
		return unfencedKV{n.client.KV()}
	}
	return n.client.KV()
}

// --- cluster faults ---

func (s *sim) setupClusterFaults() {
	cl := s.cl
	for _, f := range cl.o.StoreDown {
		s.at(int64(f.At), func() { s.storeDown(f.For) })
	}
	for _, f := range cl.o.Cuts {
		s.at(int64(f.At), func() { s.cutOwner(f.For) })
	}
	if cl.o.FaultEvery > 0 {
		s.after(exponential(cl.rng, cl.o.FaultEvery), s.randomClusterFault)
	}
}

func (s *sim) storeDown(d time.Duration) {
	if !s.faultPhase {
		return
	}
	cl := s.cl
	s.stats.StoreOutages++
	s.note(coordID, "the store is down for %v", d)
	cl.downs++
	cl.store.SetDown(true)
	s.after(d, func() {
		if cl.downs == 0 {
			return // the heal ended it
		}
		if cl.downs--; cl.downs == 0 {
			cl.store.SetDown(false)
			s.note(coordID, "the store is back; every lease renewed for its TTL")
		}
	})
}

// cutOwner cuts the node that owns the shard (or served it last) off from the store.
func (s *sim) cutOwner(d time.Duration) {
	if !s.faultPhase || s.cl.host < 0 {
		return
	}
	n := s.cl.nodes[s.cl.host]
	s.stats.StoreCuts++
	s.note(coordID, "%s is cut off from the store for %v", n.name, d)
	n.cuts++
	n.client.SetCut(true)
	s.after(d, func() {
		if n.cuts == 0 {
			return // the heal ended it
		}
		if n.cuts--; n.cuts == 0 {
			n.client.SetCut(false)
			s.tracef(coordID, "%s reaches the store again", n.name)
		}
	})
}

func (s *sim) randomClusterFault() {
	if !s.faultPhase {
		return
	}
	cl := s.cl
	ttl := cl.o.LeaseTTL
	switch cl.rng.IntN(3) {
	case 0:
		p := ClusterFault{At: time.Duration(s.now), For: ttl + uniform(cl.rng, 100*time.Millisecond, 2*time.Second)}
		cl.pauses = append(cl.pauses, p)
		s.tracef(coordID, "the owner will pause at its next log write for %v", p.For)
	case 1:
		s.storeDown(uniform(cl.rng, 100*time.Millisecond, 3*time.Second))
	case 2:
		s.cutOwner(uniform(cl.rng, 100*time.Millisecond, 2*ttl))
	}
	s.after(exponential(cl.rng, cl.o.FaultEvery), s.randomClusterFault)
}

// healCluster ends the cluster faults: the store is up, no node is cut off, paused
// nodes resume (their zombie writes were scheduled when they paused).
func (s *sim) healCluster() {
	cl := s.cl
	if cl.downs > 0 {
		s.note(coordID, "the store is back (heal); every lease renewed for its TTL")
	}
	cl.downs = 0
	cl.store.SetDown(false)
	cl.pauses = nil
	for _, n := range cl.nodes {
		n.cuts = 0
		n.client.SetCut(false)
	}
}

// checkServed: after the heal, the shard must be owned by the node serving it.
func (s *sim) checkServed() []checker.Violation {
	if s.cl == nil || s.rotStop {
		return nil
	}
	if !s.up[coordID] || s.coord.cs == nil {
		return []checker.Violation{{Kind: ClusterKindNotServed, Detail: "the shard is served by no node at the end"}}
	}
	cs := s.coord.cs
	owner, ok := s.cl.store.Current(s.cl.keys.Owner(shard))
	if !ok || string(owner.Value) != cs.node.name || owner.CreateRevision != cs.ownerRev {
		return []checker.Violation{{Kind: ClusterKindNotServed, Detail: fmt.Sprintf("%s serves the shard with owner revision %d, but the store's owner key is %v", cs.node.name, cs.ownerRev, owner)}}
	}
	return nil
}

// unfencedKV is BreakUnfencedLogWrite's decorator: transactions lose their compares.
type unfencedKV struct{ clientv3.KV }

func (k unfencedKV) Txn(ctx context.Context) clientv3.Txn { return unfencedTxn{k.KV.Txn(ctx)} }

type unfencedTxn struct{ clientv3.Txn }

func (t unfencedTxn) If(...clientv3.Cmp) clientv3.Txn { return t }
func (t unfencedTxn) Then(ops ...clientv3.Op) clientv3.Txn {
	return unfencedTxn{t.Txn.Then(ops...)}
}
func (t unfencedTxn) Else(ops ...clientv3.Op) clientv3.Txn {
	return unfencedTxn{t.Txn.Else(ops...)}
}
