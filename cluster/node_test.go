package cluster

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/dtc-project/dtc/coordinator"
	"github.com/dtc-project/dtc/internal/etcdtest"
)

// logHandler is a ShardHandler that runs, for each shard, the real Log over etcd (no
// engine): StartShard reads the log and opens it, HandOffShard closes it, LoseShard
// fences it. It remembers which shards it runs.
type logHandler struct {
	t       *testing.T
	c       *clientv3.Client
	keys    Keys
	node    string
	metrics *Metrics

	mu      sync.Mutex
	running map[int]*Log
	started []int
	lost    []int
}

func (h *logHandler) StartShard(ctx context.Context, n int, rev int64) error {
	next, err := ReadLog(ctx, h.c, h.keys, n, func(uint64, *coordinator.Record) error { return nil })
	if err != nil {
		return err
	}
	l, err := OpenLog(LogOptions{KV: h.c, Keys: h.keys, Shard: n, OwnerRevision: rev, NextIndex: next, Metrics: h.metrics})
	if err != nil {
		return err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.running[n] = l
	h.started = append(h.started, n)
	return nil
}

func (h *logHandler) HandOffShard(ctx context.Context, n int) {
	h.mu.Lock()
	l := h.running[n]
	delete(h.running, n)
	h.mu.Unlock()
	if l != nil {
		_ = l.Close(ctx)
	}
}

func (h *logHandler) LoseShard(n int, cause error) {
	h.mu.Lock()
	l := h.running[n]
	delete(h.running, n)
	h.lost = append(h.lost, n)
	h.mu.Unlock()
	if l != nil {
		l.Fence(cause) // at once, without waiting for etcd
	}
}

func (h *logHandler) shards() []int {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []int
	for n := range h.running {
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}

func (h *logHandler) log(n int) *Log {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.running[n]
}

type testNode struct {
	*Node
	h      *logHandler
	cancel context.CancelFunc
	done   chan error
}

func startNode(t *testing.T, c *clientv3.Client, cluster, id string, shards int) *testNode {
	t.Helper()
	h := &logHandler{t: t, c: c, keys: Keys{Cluster: cluster}, node: id, metrics: NewMetrics(), running: map[int]*Log{}}
	n, err := NewNode(NodeOptions{
		Client: c, Cluster: cluster, NodeID: id, APIAddr: "http://" + id + ".test",
		Shards: shards, LeaseTTL: time.Second, Handler: h, Metrics: h.metrics,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	tn := &testNode{Node: n, h: h, cancel: cancel, done: make(chan error, 1)}
	go func() { tn.done <- n.Run(ctx) }()
	t.Cleanup(func() { n.Kill(); cancel(); <-tn.done })
	return tn
}

// owners reads every shard's owner from etcd.
func owners(t *testing.T, c *clientv3.Client, keys Keys) map[int]string {
	t.Helper()
	resp, err := c.Get(context.Background(), keys.OwnersPrefix(), clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	out := map[int]string{}
	for _, kv := range resp.Kvs {
		n, _ := keys.shardOfOwnerKey(string(kv.Key))
		out[n] = string(kv.Value)
	}
	return out
}

// balanced reports whether the nodes run every shard between them, each exactly once,
// each node at most ceil(shards/nodes), and etcd's owner keys agree.
func balanced(t *testing.T, c *clientv3.Client, keys Keys, shards int, nodes ...*testNode) bool {
	own := owners(t, c, keys)
	seen := map[int]string{}
	target := (shards + len(nodes) - 1) / len(nodes)
	for _, n := range nodes {
		mine := n.h.shards()
		if len(mine) > target || !slices.Equal(mine, n.Owned()) {
			return false
		}
		for _, sh := range mine {
			if _, dup := seen[sh]; dup || own[sh] != n.o.NodeID {
				return false
			}
			seen[sh] = n.o.NodeID
		}
	}
	return len(seen) == shards
}

// Nodes share the shards evenly; a node that joins gets its share (handed off by the
// others); a killed node's shards are taken over once its lease expires; a node that
// leaves hands its shards off at once.
func TestNodesBalanceTakeOverAndLeave(t *testing.T) {
	srv := etcdtest.Start(t)
	c := srv.Client(t)
	keys := Keys{Cluster: "bal"}
	const shards = 8
	a := startNode(t, c, "bal", "a", shards)
	waitFor(t, "a owns every shard", func() bool { return balanced(t, c, keys, shards, a) })
	if a.Shards() != shards {
		t.Fatalf("shard count %d", a.Shards())
	}
	b := startNode(t, c, "bal", "b", 99) // the cluster keeps the count it was created with
	cc := startNode(t, c, "bal", "c", 99)
	waitFor(t, "three nodes balanced", func() bool { return balanced(t, c, keys, shards, a, b, cc) })
	if b.Shards() != shards {
		t.Fatalf("b sees %d shards, want the cluster's %d", b.Shards(), shards)
	}
	waitFor(t, "a's view of the owners refreshed", func() bool {
		id, addr, ok := a.OwnerAddr(b.Owned()[0])
		return ok && id == "b" && addr == "http://b.test"
	})

	// b dies: nothing handed off; a and c take its shards when its lease expires.
	bShards := b.Owned()
	b.Kill()
	if err := <-b.done; !errors.Is(err, ErrKilled) {
		t.Fatalf("Run after Kill: %v", err)
	}
	b.done <- nil // for the cleanup
	if len(b.h.shards()) != 0 {
		t.Fatal("b still runs shards after Kill")
	}
	waitFor(t, "a and c balanced", func() bool { return balanced(t, c, keys, shards, a, cc) })
	for _, sh := range bShards {
		if !slices.Contains(a.h.shards(), sh) && !slices.Contains(cc.h.shards(), sh) {
			t.Fatalf("b's shard %d not taken over", sh)
		}
	}

	// c leaves gracefully: its shards are handed off and its lease revoked, so a takes
	// them without waiting for an expiry.
	cc.cancel()
	if err := <-cc.done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Run after cancel: %v", err)
	}
	cc.done <- nil
	if len(cc.h.lost) != 0 {
		t.Fatalf("c lost shards %v instead of handing them off", cc.h.lost)
	}
	waitFor(t, "a alone", func() bool { return balanced(t, c, keys, shards, a) })
	if resp, _ := c.Get(context.Background(), keys.Node("c")); len(resp.Kvs) != 0 {
		t.Fatal("c's registration outlived its graceful leave")
	}
}

// A node cut off from etcd (its traffic held, as for a paused process) stops every
// shard once its lease may have expired, without hearing from etcd; the others take
// the shards over; a write the paused node had in flight reaches etcd after the pause
// and fails its compare (counted), so nothing it sends after losing its lease is
// written. Resumed, it rejoins and gets its share again.
func TestPausedNodeIsFenced(t *testing.T) {
	srv := etcdtest.Start(t)
	keys := Keys{Cluster: "pause"}
	proxy := etcdtest.NewProxy(t, srv.Endpoint[len("http://"):])
	ca, err := clientv3.New(clientv3.Config{Endpoints: []string{proxy.URL()}, DialTimeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ca.Close() })
	c := srv.Client(t)
	const shards = 4
	a := startNode(t, ca, "pause", "a", shards)
	b := startNode(t, c, "pause", "b", shards)
	waitFor(t, "a and b balanced", func() bool { return balanced(t, c, keys, shards, a, b) })
	aShards := a.Owned()
	victim := aShards[0]
	l := a.h.log(victim)
	if err := l.Append(endRecord("before-pause"), true); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a's record durable", func() bool { return l.Synced() == 1 })

	proxy.Pause()
	// A write sent during the pause waits in the proxy.
	if err := l.Append(endRecord("during-pause"), true); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a stops its shards", func() bool { return len(a.h.shards()) == 0 })
	if !errors.Is(l.Fenced(), ErrFenced) || !errors.Is(l.Fenced(), ErrLeaseLost) {
		t.Fatalf("a's log after the lease was lost: %v", l.Fenced())
	}
	for _, sh := range aShards {
		if a.Valid(sh) {
			t.Fatalf("a still answers for shard %d", sh)
		}
	}
	waitFor(t, "b owns every shard", func() bool { return len(b.h.shards()) == shards })

	proxy.Resume()
	waitFor(t, "a's held write refused by etcd", func() bool { return testutilValue(a.h.metrics.FencedWrites) == 1 })
	_, recs, _ := readAll(t, c, keys, victim)
	for _, r := range recs {
		if strings.Contains(string(r), "during-pause") {
			t.Fatal("a write sent after the lease was lost reached etcd")
		}
	}
	if len(recs) != 1 {
		t.Fatalf("shard %d holds %d records, want a's 1 from before the pause", victim, len(recs))
	}
	waitFor(t, "a rejoined and balanced", func() bool { return balanced(t, c, keys, shards, a, b) })
	if got := testutilValue(a.h.metrics.LeasesLost); got < 1 {
		t.Fatalf("leases lost %v", got)
	}
}
