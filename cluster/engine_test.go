package cluster

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/dtc-project/dtc/coordinator"
	"github.com/dtc-project/dtc/internal/etcdtest"
)

// engineNode is one coordinator engine over a shard's etcd Log, driven by the test's
// goroutine (as a shard's goroutine drives it in the daemon). Participants answer only
// when the test delivers the engine's messages.
type engineNode struct {
	t      *testing.T
	log    *shardLog
	e      *coordinator.Engine
	now    time.Time
	outbox []coordinator.Message
	// decided is what the engine told: transaction id → committed.
	decided map[string]bool
}

func (n *engineNode) Now() time.Time                            { return n.now }
func (n *engineNode) SetTimer(time.Duration, coordinator.Timer) {}
func (n *engineNode) Send(m coordinator.Message)                { n.outbox = append(n.outbox, m) }

// startEngine acquires shard sh for node under lease, reads its log into a new engine
// and starts it, as a takeover does.
func startEngine(t *testing.T, c *clientv3.Client, keys Keys, sh int, node string, lease clientv3.LeaseID) *engineNode {
	t.Helper()
	rev := acquire(t, c, keys, sh, node, lease)
	n := &engineNode{t: t, now: time.Unix(1_700_000_000, 0), decided: map[string]bool{}}
	var recs []*coordinator.Record
	next, err := ReadLog(context.Background(), c, keys, sh, func(_ uint64, rec *coordinator.Record) error {
		recs = append(recs, rec)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	n.log = openLog(t, c, keys, sh, rev, next, nil)
	n.e, err = coordinator.New(coordinator.DefaultConfig(), coordinator.Env{
		Clock: n, Transport: n, Log: n.log, Rand: rand.New(rand.NewPCG(1, 2)),
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, rec := range recs {
		if err := n.e.Replay(rec); err != nil {
			t.Fatal(err)
		}
	}
	n.e.Start()
	return n
}

// settle delivers answers to every message (all ACK / prepared, except to the
// participants in silent) and steps LogSynced until the log has made everything
// durable and nothing is left to send.
func (n *engineNode) settle(silent string) {
	n.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		n.e.Step(coordinator.LogSynced{Through: n.log.Synced()})
		out := n.outbox
		n.outbox = nil
		for _, m := range out {
			if m.URL == silent {
				continue
			}
			r := coordinator.Reply{Txn: m.Txn, Participant: m.Participant, Seq: m.Seq, Kind: m.Kind}
			switch m.Kind {
			case coordinator.MsgPrepare:
				r.Vote = coordinator.VoteACK
			case coordinator.MsgCommit:
				r.State = coordinator.PCommitted
			case coordinator.MsgRollback:
				r.State = coordinator.PAborted
			case coordinator.MsgStatus:
				r.State = coordinator.PPrepared
			}
			n.e.Step(r)
		}
		if len(out) == 0 && n.log.Synced() == n.appended() {
			return
		}
		time.Sleep(time.Millisecond) // the log's writer works on its own goroutine
	}
	n.t.Fatal("engine did not settle")
}

// appended is the LSN of the last record the engine appended.
func (n *engineNode) appended() uint64 { return n.log.Accepted() }

func (n *engineNode) submit(id string, urls ...string) {
	n.t.Helper()
	req := coordinator.Request{ID: id}
	for _, u := range urls {
		req.Participants = append(req.Participants, coordinator.ParticipantSpec{URL: u})
	}
	if _, err := n.e.Submit(req, func(v coordinator.View) { n.decided[id] = v.State == coordinator.StateCommitted }); err != nil {
		n.t.Fatal(err)
	}
}

// An engine writes its transactions and a checkpoint to the shard's log; the
// checkpoint deletes the keys before it; the node dies abruptly; another node takes
// the shard over, replays the log into a new engine through Replay and Start, and
// finds every decision the first engine told, remembers the finished ids, and resolves
// the transaction that was left undecided.
func TestEngineTakeoverFromEtcdLog(t *testing.T) {
	srv := etcdtest.Start(t)
	c := srv.Client(t)
	keys := Keys{Cluster: "takeover"}
	const sh = 5
	leaseA := grant(t, c)
	a := startEngine(t, c, keys, sh, "a", leaseA)
	for i := range 30 {
		a.submit(fmt.Sprintf("t%03d", i), "http://p1.test/prepare", "http://p2.test/prepare")
	}
	a.settle("")
	// "stuck" gets no vote from p3 before the crash: undecided.
	a.submit("stuck", "http://p1.test/prepare", "http://p3.test/prepare")
	a.settle("http://p3.test/prepare")
	firstBefore, _, _ := readAll(t, c, keys, sh)
	if err := a.e.Checkpoint(); err != nil {
		t.Fatal(err)
	}
	a.settle("http://p3.test/prepare")
	idx, _, _ := readAll(t, c, keys, sh)
	if idx[0] <= firstBefore[0] {
		t.Fatalf("the checkpoint deleted nothing: log starts at %d, was %d", idx[0], firstBefore[0])
	}
	for i := range 10 {
		a.submit(fmt.Sprintf("u%03d", i), "http://p1.test/prepare", "http://p2.test/prepare")
	}
	a.settle("http://p3.test/prepare")
	if len(a.decided) != 40 {
		t.Fatalf("a decided %d transactions, want 40", len(a.decided))
	}
	// a dies: its log stops without writing anything more, its lease is gone.
	a.log.Stop()
	if _, err := c.Revoke(context.Background(), leaseA); err != nil {
		t.Fatal(err)
	}

	b := startEngine(t, c, keys, sh, "b", grant(t, c))
	for id, committed := range a.decided {
		v, err := b.e.Get(id)
		if err != nil {
			t.Fatalf("%s after takeover: %v", id, err)
		}
		if (v.State == coordinator.StateCommitted) != committed {
			t.Fatalf("%s: a told committed=%v, b says %s", id, committed, v.State)
		}
	}
	// An id that finished before the checkpoint is still reserved.
	if _, err := b.e.Submit(coordinator.Request{ID: "t003", Participants: []coordinator.ParticipantSpec{{URL: "http://p9.test/prepare"}}}, nil); err == nil {
		t.Fatal("t003 is no longer reserved after takeover")
	}
	if b.e.Ready() {
		t.Fatal("b is ready before resolving stuck")
	}
	b.settle("") // p1 and p3 report prepared: recovery commits
	if v, err := b.e.Get("stuck"); err != nil || v.State != coordinator.StateCommitted || !v.Recovered {
		t.Fatalf("stuck after takeover: %+v %v", v, err)
	}
	if !b.e.Ready() {
		t.Fatal("b not ready after resolving stuck")
	}
}
