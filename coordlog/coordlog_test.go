package coordlog

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/dtc-project/dtc/coordinator"
	"github.com/dtc-project/dtc/wal"
)

// node is one engine over ShardLog over SyncSink over a wal on a MemFS: the simulator's
// stack, driven by hand. Participants always vote ACK and acknowledge phase 2 at once.
type node struct {
	t      *testing.T
	fs     *wal.MemFS
	log    *wal.Log
	sink   *SyncSink
	shard  *ShardLog
	e      *coordinator.Engine
	now    time.Time
	outbox []coordinator.Message
	synced bool
}

func (n *node) Now() time.Time                            { return n.now }
func (n *node) SetTimer(time.Duration, coordinator.Timer) {}
func (n *node) Send(m coordinator.Message)                { n.outbox = append(n.outbox, m) }
func opts(fs wal.FS) wal.Options {
	return wal.Options{FS: fs, Dir: "/data", SegmentSizeBytes: 64 << 10}
}
func (n *node) notify() { n.synced = true }
func reply(m coordinator.Message) coordinator.Reply {
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
	return r
}

func start(t *testing.T, fs *wal.MemFS) *node {
	t.Helper()
	n := &node{t: t, fs: fs, now: time.Unix(1_700_000_000, 0)}
	var replayed []*coordinator.Record
	var err error
	n.log, err = Replay(opts(fs), func(_ wal.Pos, rec *coordinator.Record) error {
		replayed = append(replayed, rec)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	n.sink = NewSyncSink(n.log)
	n.shard = NewShardLog(n.sink, n.notify)
	n.e, err = coordinator.New(coordinator.DefaultConfig(), coordinator.Env{
		Clock: n, Transport: n, Log: n.shard, Rand: rand.New(rand.NewPCG(1, 2)),
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, rec := range replayed {
		if err := n.e.Replay(rec); err != nil {
			t.Fatal(err)
		}
	}
	n.e.Start()
	n.run()
	return n
}

// run flushes the disk and delivers messages until nothing is left to do.
func (n *node) run() {
	for i := 0; i < 1000; i++ {
		if n.sink.Pending() > 0 {
			if err := n.sink.Flush(); err != nil {
				n.t.Fatal(err)
			}
		}
		if n.synced {
			n.synced = false
			n.e.Step(coordinator.LogSynced{Through: n.shard.Synced()})
		}
		if len(n.outbox) == 0 && n.sink.Pending() == 0 && !n.synced {
			return
		}
		out := n.outbox
		n.outbox = nil
		for _, m := range out {
			n.e.Step(reply(m))
		}
	}
	n.t.Fatal("did not settle")
}

func (n *node) submit(id string) {
	n.t.Helper()
	req := coordinator.Request{ID: id, Participants: []coordinator.ParticipantSpec{
		{URL: "http://a.test/prepare"}, {URL: "http://b.test/prepare"},
	}}
	if _, err := n.e.Submit(req, nil); err != nil {
		n.t.Fatal(err)
	}
}

// Records written through ShardLog come back from Replay in order, and LogSynced
// reaches the engine only after the wal's sync.
func TestShardLogRoundTrip(t *testing.T) {
	fs := wal.NewMemFS()
	n := start(t, fs)
	n.submit("t1")
	if n.shard.Synced() != 0 {
		t.Fatal("synced before any flush")
	}
	n.run()
	if v, _ := n.e.Get("t1"); v.State != coordinator.StateCommitted || !v.PhaseTwoDone {
		t.Fatalf("t1: %+v", v)
	}
	if got := n.shard.Synced(); got != 3 { // begin, decision, end
		t.Fatalf("synced LSN %d, want 3", got)
	}
	fs.Crash()
	n = start(t, fs)
	if v, err := n.e.Get("t1"); err != nil || v.State != coordinator.StateCommitted {
		t.Fatalf("after restart: %+v %v", v, err)
	}
}

// Checkpoints let the log shed old segments while every live and remembered transaction
// survives a restart from what is left.
func TestCheckpointBoundsTheLog(t *testing.T) {
	fs := wal.NewMemFS()
	n := start(t, fs)
	if _, ok := n.shard.Floor(); ok {
		t.Fatal("a floor before any checkpoint")
	}
	// One transaction stays undecided the whole time: its participants never answer.
	stuck := coordinator.Request{ID: "stuck", Participants: []coordinator.ParticipantSpec{{URL: "http://slow.test/prepare"}}}
	if _, err := n.e.Submit(stuck, nil); err != nil {
		t.Fatal(err)
	}
	n.outbox = nil
	for i := 0; i < 300; i++ {
		n.submit(fmt.Sprintf("t%03d", i))
		n.run()
		if i%50 == 49 {
			if err := n.e.Checkpoint(); err != nil {
				t.Fatal(err)
			}
			n.run()
			seg, ok := RemovableBefore([]*ShardLog{n.shard})
			if !ok {
				t.Fatal("no floor after a durable checkpoint")
			}
			if err := n.log.RemoveBefore(seg); err != nil {
				t.Fatal(err)
			}
		}
	}
	if segs := n.log.Segments(); len(segs) > 4 || segs[0] == 1 {
		t.Fatalf("old segments not removed: %v", segs)
	}
	fs.Crash()
	n = start(t, fs)
	// "stuck" was undecided: recovery asks its participant, which says prepared.
	if v, err := n.e.Get("stuck"); err != nil || v.State != coordinator.StateCommitted {
		t.Fatalf("stuck after restart: %+v %v", v, err)
	}
	if v, err := n.e.Get("t299"); err != nil || v.State != coordinator.StateCommitted {
		t.Fatalf("t299 after restart: %+v %v", v, err)
	}
	if _, err := n.e.Submit(coordinator.Request{ID: "t010", Participants: []coordinator.ParticipantSpec{{URL: "http://c.test/prepare"}}}, nil); err == nil {
		t.Fatal("an id finished before the checkpoint is no longer reserved")
	}
}
