package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"maps"
	"slices"
	"strconv"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"golang.org/x/sync/errgroup"
)

// ErrLeaseLost: this node's lease expired (or may have: no keepalive was acknowledged
// within its TTL). Every shard it owned has stopped.
var ErrLeaseLost = errors.New("cluster: this node's lease is lost")

// ShardHandler runs the shards a node owns: one engine each, over a Log.
type ShardHandler interface {
	// StartShard is called when the node has acquired shard n (its owner key has create
	// revision rev): read the shard's log (ReadLog), replay it into a new engine, open
	// the Log with OwnerRevision rev, and start serving. An error gives the shard up.
	StartShard(ctx context.Context, n int, rev int64) error
	// HandOffShard is called when the node gives shard n up while it still owns it (the
	// shards are rebalanced, or the node leaves): stop taking new work, make everything
	// accepted durable (Log.Close) and stop. The owner key is deleted after it returns.
	HandOffShard(ctx context.Context, n int)
	// LoseShard is called when the node lost shard n (its lease is gone, or the shard's
	// log was fenced): stop at once, write and answer nothing more. It must not block
	// on etcd.
	LoseShard(n int, cause error)
}

// NodeOptions configure a Node. Zero values mean the defaults.
type NodeOptions struct {
	// Client talks to etcd. Required.
	Client *clientv3.Client
	// Cluster names the cluster; NodeID this node. Required: letters, digits, '-', '_', '.'.
	Cluster string
	NodeID  string
	// APIAddr is the base URL other nodes forward requests to (http://host:port).
	APIAddr string
	// Shards is the number of shards when this node creates the cluster; a cluster that
	// exists keeps the number it was created with. Default 64.
	Shards int
	// LeaseTTL is the lifetime of the node's lease without a keepalive: how long a dead
	// node's shards wait before others take them over. etcd counts whole seconds.
	// Default 2s.
	LeaseTTL time.Duration
	// BalanceInterval is how often the node looks for shards to take or give up.
	// Default LeaseTTL/4.
	BalanceInterval time.Duration
	// StartParallelMax bounds the shards started (logs read and replayed) at once.
	// Default 8.
	StartParallelMax int
	// RequestTimeout bounds each etcd request of the ownership loop. Default LeaseTTL/2.
	RequestTimeout time.Duration
	// HandOffTimeout bounds a graceful handoff of all shards when the node leaves.
	// Default 10s.
	HandOffTimeout time.Duration
	// Handler runs the shards. Required.
	Handler ShardHandler
	// Metrics count ownership changes. Default: counters nobody exports.
	Metrics *Metrics
	// Logger gets the node's structured logs. Default slog.Default().
	Logger *slog.Logger
}

// ShardsMax bounds the shards of a cluster.
const ShardsMax = 4096

func (o *NodeOptions) setDefaults() {
	if o.Shards == 0 {
		o.Shards = 64
	}
	if o.LeaseTTL == 0 {
		o.LeaseTTL = 2 * time.Second
	}
	if o.BalanceInterval == 0 {
		o.BalanceInterval = o.LeaseTTL / 4
	}
	if o.StartParallelMax == 0 {
		o.StartParallelMax = 8
	}
	if o.RequestTimeout == 0 {
		o.RequestTimeout = o.LeaseTTL / 2
	}
	if o.HandOffTimeout == 0 {
		o.HandOffTimeout = 10 * time.Second
	}
	if o.Metrics == nil {
		o.Metrics = NewMetrics()
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
}

// Validate says which option is out of range.
func (o NodeOptions) Validate() error {
	var errs []error
	if o.Client == nil {
		errs = append(errs, errors.New("Client is required"))
	}
	if o.Handler == nil {
		errs = append(errs, errors.New("Handler is required"))
	}
	if err := CheckName("cluster name", o.Cluster); err != nil {
		errs = append(errs, err)
	}
	if err := CheckName("node id", o.NodeID); err != nil {
		errs = append(errs, err)
	}
	if o.Shards < 1 || o.Shards > ShardsMax {
		errs = append(errs, fmt.Errorf("Shards must be between 1 and %d, got %d", ShardsMax, o.Shards))
	}
	if o.LeaseTTL < time.Second || o.LeaseTTL%time.Second != 0 {
		errs = append(errs, fmt.Errorf("LeaseTTL must be a whole number of seconds, at least 1s (etcd counts leases in seconds), got %v", o.LeaseTTL))
	}
	if o.BalanceInterval <= 0 {
		errs = append(errs, fmt.Errorf("BalanceInterval must be positive, got %v", o.BalanceInterval))
	}
	if o.StartParallelMax < 1 {
		errs = append(errs, fmt.Errorf("StartParallelMax must be positive, got %d", o.StartParallelMax))
	}
	if o.RequestTimeout <= 0 {
		errs = append(errs, fmt.Errorf("RequestTimeout must be positive, got %v", o.RequestTimeout))
	}
	if o.HandOffTimeout <= 0 {
		errs = append(errs, fmt.Errorf("HandOffTimeout must be positive, got %v", o.HandOffTimeout))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("cluster: invalid node options: %w", err)
	}
	return nil
}

// NodeInfo is what a node registers under /dtc/<cluster>/nodes/<id>.
type NodeInfo struct {
	Addr    string `json:"addr"`
	Started int64  `json:"started_ms"`
}

// Node is one member of a cluster: it keeps a lease alive, registers itself, takes
// shards that nobody owns up to its fair share (ceil(shards / live nodes)), gives up
// shards beyond it, and stops all of its shards at once when its lease is lost.
//
// The lease is kept alive by the node itself (KeepAliveOnce every LeaseTTL/3), so that
// it knows a time before which etcd cannot have expired the lease: the send time of
// the last acknowledged keepalive plus the TTL (etcd renews a lease no earlier than it
// receives the request). Past that time the node treats the lease as lost even if etcd
// is unreachable, and answers nothing more for its shards (Valid). Writes of the
// shards' logs are fenced in etcd anyway; this keeps the node from answering reads
// (a participant's status query) from a shard another node may own by then.
type Node struct {
	o    NodeOptions
	keys Keys
	lg   *slog.Logger

	shards int // the cluster's shard count, read or written at Run's start

	mu         sync.Mutex
	lease      clientv3.LeaseID
	validUntil time.Time      // the lease cannot have expired before this
	owned      map[int]int64  // shard → owner key create revision, while valid
	owners     map[int]string // the last view of every owner (shard → node id)
	nodes      map[string]NodeInfo

	kill     chan struct{} // closed by Kill
	killOnce sync.Once
}

// NewNode checks o and returns a node that has not started.
func NewNode(o NodeOptions) (*Node, error) {
	o.setDefaults()
	if err := o.Validate(); err != nil {
		return nil, err
	}
	return &Node{
		o: o, keys: Keys{Cluster: o.Cluster}, lg: o.Logger.With("node", o.NodeID),
		owned: map[int]int64{}, owners: map[int]string{}, nodes: map[string]NodeInfo{},
		kill: make(chan struct{}),
	}, nil
}

// Shards returns the cluster's number of shards (0 before Run has read it).
func (n *Node) Shards() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.shards
}

// Valid reports whether this node owns shard sh and its lease cannot have expired: only
// then may the shard answer anything.
func (n *Node) Valid(sh int) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	_, ok := n.owned[sh]
	return ok && time.Now().Before(n.validUntil)
}

// Owned returns the shards this node owns, in order.
func (n *Node) Owned() []int {
	n.mu.Lock()
	defer n.mu.Unlock()
	out := make([]int, 0, len(n.owned))
	for sh := range n.owned {
		out = append(out, sh)
	}
	slices.Sort(out)
	return out
}

// OwnerAddr returns the API address of shard sh's owner as this node last saw it, and
// the owner's id; ok is false if the shard had no owner or its owner had no
// registration.
func (n *Node) OwnerAddr(sh int) (id, addr string, ok bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	id, ok = n.owners[sh]
	if !ok {
		return "", "", false
	}
	info, ok := n.nodes[id]
	return id, info.Addr, ok
}

// Peers returns this node's last view of the cluster, as Run keeps it from etcd's
// watch: every shard's owner (shard → node id, absent for none) and every registered
// node's information. Both are copies.
func (n *Node) Peers() (owners map[int]string, nodes map[string]NodeInfo) {
	n.mu.Lock()
	defer n.mu.Unlock()
	return maps.Clone(n.owners), maps.Clone(n.nodes)
}

// Kill stops the node abruptly, as a crash would: its shards stop at once, nothing is
// handed off, the lease is neither revoked nor kept alive (it expires after its TTL).
// Run returns.
func (n *Node) Kill() { n.killOnce.Do(func() { close(n.kill) }) }

// Run creates the cluster if it does not exist (with o.Shards shards), then keeps the
// node's lease and shards until ctx ends, when it hands every shard off and revokes its
// lease (a graceful leave), or until Kill. A lost lease stops every shard at once and
// starts over with a new lease. Run returns ctx's error, ErrKilled, or an error that
// says why it could not start.
func (n *Node) Run(ctx context.Context) error {
	if n.Shards() == 0 {
		if _, err := n.Init(ctx); err != nil {
			return err
		}
	}
	for {
		err := n.session(ctx)
		if errors.Is(err, ErrLeaseLost) {
			select {
			case <-n.kill:
				return ErrKilled
			default:
			}
			if ctx.Err() == nil {
				continue // a new lease, a new registration
			}
		}
		return err
	}
}

// Init creates the cluster in etcd if it does not exist (with o.Shards shards) and
// returns its number of shards. Run calls it if it was not called before.
func (n *Node) Init(ctx context.Context) (int, error) {
	shards, err := n.ensureCluster(ctx)
	if err != nil {
		return 0, err
	}
	n.mu.Lock()
	n.shards = shards
	n.mu.Unlock()
	return shards, nil
}

// ErrKilled: Run returned because of Kill.
var ErrKilled = errors.New("cluster: node killed")

// ensureCluster writes the shard count if the cluster is new, and returns the count.
func (n *Node) ensureCluster(ctx context.Context) (int, error) {
	key := n.keys.ShardCount()
	rctx, cancel := context.WithTimeout(ctx, n.o.RequestTimeout*4)
	defer cancel()
	resp, err := n.o.Client.Txn(rctx).
		If(clientv3.Compare(clientv3.CreateRevision(key), "=", 0)).
		Then(clientv3.OpPut(key, strconv.Itoa(n.o.Shards))).
		Else(clientv3.OpGet(key)).
		Commit()
	if err != nil {
		return 0, fmt.Errorf("cluster: reading the shard count of cluster %q: %w", n.o.Cluster, err)
	}
	if resp.Succeeded {
		n.lg.Info("created the cluster", "cluster", n.o.Cluster, "shards", n.o.Shards)
		return n.o.Shards, nil
	}
	kvs := resp.Responses[0].GetResponseRange().Kvs
	if len(kvs) != 1 {
		return 0, fmt.Errorf("cluster: the shard count of cluster %q vanished", n.o.Cluster)
	}
	c, err := strconv.Atoi(string(kvs[0].Value))
	if err != nil || c < 1 || c > ShardsMax {
		return 0, fmt.Errorf("cluster: %s holds %q, not a shard count between 1 and %d", key, kvs[0].Value, ShardsMax)
	}
	return c, nil
}

// session is one lease's life: grant, register, keep alive and balance until the
// lease is lost (ErrLeaseLost), ctx ends (graceful leave) or Kill.
func (n *Node) session(ctx context.Context) error {
	ttl := int64(n.o.LeaseTTL / time.Second)
	sent := time.Now()
	rctx, cancel := context.WithTimeout(ctx, n.o.RequestTimeout)
	g, err := n.o.Client.Grant(rctx, ttl)
	cancel()
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		n.lg.Warn("granting a lease failed; retrying", "error", err)
		return n.pauseThen(ctx, ErrLeaseLost)
	}
	n.mu.Lock()
	n.lease = g.ID
	n.validUntil = sent.Add(time.Duration(g.TTL) * time.Second)
	n.mu.Unlock()
	info, _ := json.Marshal(NodeInfo{Addr: n.o.APIAddr, Started: time.Now().UnixMilli()})
	rctx, cancel = context.WithTimeout(ctx, n.o.RequestTimeout)
	_, err = n.o.Client.Put(rctx, n.keys.Node(n.o.NodeID), string(info), clientv3.WithLease(g.ID))
	cancel()
	if err != nil {
		n.lg.Warn("registering the node failed; retrying with a new lease", "error", err)
		return n.pauseThen(ctx, ErrLeaseLost)
	}
	n.lg.Info("joined the cluster", "lease", fmt.Sprintf("%x", g.ID), "ttl", n.o.LeaseTTL)

	// The keepalives run on their own goroutine, so that a slow balance (shards being
	// replayed) never delays them.
	lost := make(chan struct{})
	// Not derived from ctx: the lease is kept alive while a leaving node hands off.
	kctx, stopKeep := context.WithCancel(context.Background())
	var keeper sync.WaitGroup
	keeper.Add(1)
	go func() {
		defer keeper.Done()
		if n.keepAlive(kctx, g.ID) {
			close(lost)
		}
	}()
	defer func() { stopKeep(); keeper.Wait() }()

	// A deleted owner key (a lease expired, a shard handed off) triggers a balance at
	// once rather than at the next interval: it is most of a takeover's time.
	wctx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	// A new owner updates this node's view of the owners at once, so that requests are
	// forwarded to it without waiting for the next balance.
	freed := n.o.Client.Watch(wctx, n.keys.OwnersPrefix(), clientv3.WithPrefix())

	balance := time.NewTimer(0)
	defer balance.Stop()
	for {
		select {
		case wr, ok := <-freed:
			if !ok {
				freed = nil // the watch ended (ctx); the interval still balances
				continue
			}
			if n.applyOwnerEvents(wr.Events) {
				n.balance(ctx, g.ID)
				balance.Reset(n.o.BalanceInterval)
			}
		case <-n.kill:
			n.loseAll(ErrKilled)
			return ErrLeaseLost
		case <-lost:
			return ErrLeaseLost
		case <-ctx.Done():
			n.leave(func() { stopKeep(); keeper.Wait() })
			return ctx.Err()
		case <-balance.C:
			n.balance(ctx, g.ID)
			balance.Reset(n.o.BalanceInterval)
		}
	}
}

// keepAlive renews the lease every LeaseTTL/3 until ctx ends (false) or the lease is
// lost (true): etcd says it is gone, or no renewal was acknowledged before the time
// etcd may expire it. Then every shard has been stopped.
func (n *Node) keepAlive(ctx context.Context, lease clientv3.LeaseID) bool {
	keepEvery := n.o.LeaseTTL / 3
	keep := time.NewTimer(keepEvery)
	defer keep.Stop()
	expiry := time.NewTimer(time.Until(n.leaseDeadline()))
	defer expiry.Stop()
	for {
		select {
		case <-ctx.Done():
			return false
		case <-n.kill:
			return false
		case <-expiry.C:
			if d := time.Until(n.leaseDeadline()); d > 0 {
				expiry.Reset(d)
				continue
			}
			n.o.Metrics.LeasesLost.Inc()
			n.lg.Error("no keepalive acknowledged within the lease's TTL: every shard stops")
			n.loseAll(ErrLeaseLost)
			return true
		case <-keep.C:
			sent := time.Now()
			kctx, cancel := context.WithTimeout(ctx, keepEvery)
			resp, err := n.o.Client.KeepAliveOnce(kctx, lease)
			cancel()
			switch {
			case err == nil && resp.TTL > 0:
				n.mu.Lock()
				if n.lease == lease {
					n.validUntil = sent.Add(time.Duration(resp.TTL) * time.Second)
				}
				n.mu.Unlock()
			case errors.Is(err, rpctypes.ErrLeaseNotFound) || err == nil:
				n.o.Metrics.LeasesLost.Inc()
				n.lg.Error("the lease expired: every shard stops")
				n.loseAll(ErrLeaseLost)
				return true
			case ctx.Err() != nil:
				return false
			default:
				n.lg.Warn("a keepalive failed", "error", err)
			}
			keep.Reset(keepEvery)
		}
	}
}

// applyOwnerEvents updates the view of the owners from watched changes of owner keys,
// and reports whether a shard became free.
func (n *Node) applyOwnerEvents(evs []*clientv3.Event) (freed bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, ev := range evs {
		sh, ok := n.keys.shardOfOwnerKey(string(ev.Kv.Key))
		if !ok {
			continue
		}
		if ev.Type == clientv3.EventTypeDelete {
			delete(n.owners, sh)
			freed = true
		} else {
			n.owners[sh] = string(ev.Kv.Value)
		}
	}
	return freed
}

func (n *Node) leaseDeadline() time.Time {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.validUntil
}

// pauseThen waits a little before the caller retries, so that an unreachable etcd is
// not hammered.
func (n *Node) pauseThen(ctx context.Context, err error) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-n.kill:
		return ErrLeaseLost
	case <-time.After(n.o.BalanceInterval):
		return err
	}
}

// loseAll stops every shard at once.
func (n *Node) loseAll(cause error) {
	n.mu.Lock()
	owned := n.owned
	n.owned = map[int]int64{}
	n.validUntil = time.Time{}
	n.lease = 0 // a shard still starting under the old lease is stopped when it is started
	n.mu.Unlock()
	for _, sh := range sortedKeys(owned) {
		n.o.Handler.LoseShard(sh, cause)
		n.o.Metrics.ShardsLost.Inc()
	}
	n.o.Metrics.ShardsOwned.Set(0)
}

// LoseShard is for the shard's log to call when it was fenced: the node no longer owns
// sh. The handler's LoseShard is called.
func (n *Node) LoseShard(sh int, cause error) {
	n.mu.Lock()
	_, ok := n.owned[sh]
	delete(n.owned, sh)
	count := len(n.owned)
	n.mu.Unlock()
	if ok {
		n.o.Handler.LoseShard(sh, cause)
		n.o.Metrics.ShardsLost.Inc()
		n.o.Metrics.ShardsOwned.Set(float64(count))
	}
}

// leave hands every shard off, its lease kept alive meanwhile, then stops the
// keepalives (stopKeeping) and revokes the lease: the other nodes take the shards at
// once, without waiting for the lease to expire.
func (n *Node) leave(stopKeeping func()) {
	ctx, cancel := context.WithTimeout(context.Background(), n.o.HandOffTimeout)
	defer cancel()
	n.mu.Lock()
	owned := n.owned
	n.owned = map[int]int64{}
	lease := n.lease
	n.mu.Unlock()
	var g errgroup.Group
	g.SetLimit(n.o.StartParallelMax)
	for _, sh := range sortedKeys(owned) {
		g.Go(func() error {
			n.o.Handler.HandOffShard(ctx, sh)
			n.o.Metrics.ShardsLost.Inc()
			return nil
		})
	}
	_ = g.Wait()
	n.o.Metrics.ShardsOwned.Set(0)
	stopKeeping()
	if _, err := n.o.Client.Revoke(ctx, lease); err != nil {
		n.lg.Warn("revoking the lease failed; it expires on its own", "error", err)
	}
	n.lg.Info("left the cluster", "shards", len(owned))
}

// balance reads the live nodes and the owners, takes free shards up to this node's
// share and hands off shards beyond it.
func (n *Node) balance(ctx context.Context, lease clientv3.LeaseID) {
	rctx, cancel := context.WithTimeout(ctx, n.o.RequestTimeout)
	resp, err := n.o.Client.Txn(rctx).Then(
		clientv3.OpGet(n.keys.NodesPrefix(), clientv3.WithPrefix()),
		clientv3.OpGet(n.keys.OwnersPrefix(), clientv3.WithPrefix()),
	).Commit()
	cancel()
	if err != nil {
		n.lg.Warn("reading the cluster's nodes and owners failed", "error", err)
		return
	}
	nodes := map[string]NodeInfo{}
	for _, kv := range resp.Responses[0].GetResponseRange().Kvs {
		var info NodeInfo
		if json.Unmarshal(kv.Value, &info) == nil {
			nodes[string(kv.Key[len(n.keys.NodesPrefix()):])] = info
		}
	}
	owners := map[int]string{}
	mineInEtcd := map[int]int64{}
	for _, kv := range resp.Responses[1].GetResponseRange().Kvs {
		sh, ok := n.keys.shardOfOwnerKey(string(kv.Key))
		if !ok || sh >= n.shards {
			continue
		}
		owners[sh] = string(kv.Value)
		if string(kv.Value) == n.o.NodeID {
			mineInEtcd[sh] = kv.CreateRevision
		}
	}
	n.mu.Lock()
	n.nodes, n.owners = nodes, owners
	var mine, gone []int
	for sh, rev := range n.owned {
		if mineInEtcd[sh] == rev {
			mine = append(mine, sh)
		} else if lease == n.lease {
			gone = append(gone, sh) // its owner key is not the one this node acquired
		}
	}
	n.mu.Unlock()
	for _, sh := range gone {
		n.LoseShard(sh, fmt.Errorf("%w: its owner key changed", ErrFenced))
	}
	// An owner key of this node's for a shard it does not run (a handoff whose release
	// failed, a shard that failed to start): give it back, or nobody would run the
	// shard until this node's lease expires.
	n.mu.Lock()
	var stray []int
	for sh := range mineInEtcd {
		if _, ok := n.owned[sh]; !ok {
			stray = append(stray, sh)
		}
	}
	n.mu.Unlock()
	for _, sh := range stray {
		rctx, cancel := context.WithTimeout(ctx, n.o.RequestTimeout)
		if _, err := Release(rctx, n.o.Client, n.keys, sh, mineInEtcd[sh]); err == nil {
			n.mu.Lock()
			delete(owners, sh) // owners is n.owners: readers hold n.mu
			n.mu.Unlock()
			n.lg.Info("released a shard this node does not run", "shard", sh)
		}
		cancel()
	}
	live := max(len(nodes), 1)
	if _, ok := nodes[n.o.NodeID]; !ok {
		live++ // registration not visible (yet): count this node anyway
	}
	target := (n.shards + live - 1) / live

	switch {
	case len(mine) < target:
		n.acquire(ctx, lease, n.freeShards(owners), target-len(mine))
	case len(mine) > target && len(owners) == n.shards:
		// Every shard is owned and this node holds more than its share: some node holds
		// less. Hand the surplus off; that node takes it at its next balance.
		slices.Sort(mine)
		n.handOff(ctx, mine[target:])
	}
}

// freeShards returns the shards without an owner, starting at a place that depends on
// the node's id, so that nodes starting together do not all race for the same shards.
func (n *Node) freeShards(owners map[int]string) []int {
	h := fnv.New32a()
	h.Write([]byte(n.o.NodeID))
	start := int(h.Sum32() % uint32(n.shards))
	var free []int
	for i := range n.shards {
		sh := (start + i) % n.shards
		if _, ok := owners[sh]; !ok {
			free = append(free, sh)
		}
	}
	return free
}

// acquire takes up to want of the free shards and starts them, StartParallelMax at a
// time.
func (n *Node) acquire(ctx context.Context, lease clientv3.LeaseID, free []int, want int) {
	var (
		g     errgroup.Group
		mu    sync.Mutex
		taken int
	)
	g.SetLimit(n.o.StartParallelMax)
	for _, sh := range free {
		mu.Lock()
		enough := taken >= want
		mu.Unlock()
		if enough {
			break
		}
		g.Go(func() error {
			mu.Lock()
			if taken >= want {
				mu.Unlock()
				return nil
			}
			taken++ // reserved; given back if the shard is not ours
			mu.Unlock()
			if !n.acquireOne(ctx, sh, lease) {
				mu.Lock()
				taken--
				mu.Unlock()
			}
			return nil
		})
	}
	_ = g.Wait()
}

func (n *Node) acquireOne(ctx context.Context, sh int, lease clientv3.LeaseID) bool {
	rctx, cancel := context.WithTimeout(ctx, n.o.RequestTimeout)
	rev, ok, err := Acquire(rctx, n.o.Client, n.keys, sh, n.o.NodeID, lease)
	cancel()
	if err != nil || !ok {
		return false
	}
	// The shard is not in owned (not Valid, answering nothing) until it has started.
	start := time.Now()
	if err := n.o.Handler.StartShard(ctx, sh, rev); err != nil {
		n.lg.Error("starting an acquired shard failed; giving it up", "shard", sh, "error", err)
		rctx, cancel := context.WithTimeout(context.Background(), n.o.RequestTimeout)
		_, _ = Release(rctx, n.o.Client, n.keys, sh, rev)
		cancel()
		return false
	}
	n.mu.Lock()
	current := n.lease == lease
	if current {
		n.owned[sh] = rev
		n.o.Metrics.ShardsOwned.Set(float64(len(n.owned)))
	}
	n.mu.Unlock()
	if !current {
		n.o.Handler.LoseShard(sh, ErrLeaseLost) // the lease was lost while it started
		return false
	}
	n.o.Metrics.ShardsAcquired.Inc()
	n.lg.Info("acquired a shard", "shard", sh, "owner_revision", rev, "start", time.Since(start))
	return true
}

// handOff gives the shards up gracefully: the handler stops each (making what it
// accepted durable), then the owner key is deleted if it is still this node's.
func (n *Node) handOff(ctx context.Context, shards []int) {
	for _, sh := range shards {
		n.mu.Lock()
		rev, ok := n.owned[sh]
		delete(n.owned, sh)
		count := len(n.owned)
		n.mu.Unlock()
		if !ok {
			continue
		}
		hctx, cancel := context.WithTimeout(ctx, n.o.HandOffTimeout)
		n.o.Handler.HandOffShard(hctx, sh)
		_, err := Release(hctx, n.o.Client, n.keys, sh, rev)
		cancel()
		if err != nil {
			n.lg.Warn("releasing a shard failed; it is free when the lease expires", "shard", sh, "error", err)
		}
		n.o.Metrics.ShardsLost.Inc()
		n.o.Metrics.ShardsOwned.Set(float64(count))
		n.lg.Info("handed a shard off", "shard", sh)
	}
}

func sortedKeys(m map[int]int64) []int {
	out := make([]int, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
