package cluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/dtc-project/dtc/coordinator"
	"github.com/dtc-project/dtc/internal/etcdtest"
)

// waitFor polls cond until it holds; the deadline is a guard against a hang, not a
// measure of speed.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func grant(t *testing.T, c *clientv3.Client) clientv3.LeaseID {
	t.Helper()
	l, err := c.Grant(context.Background(), 60)
	if err != nil {
		t.Fatal(err)
	}
	return l.ID
}

func acquire(t *testing.T, c *clientv3.Client, keys Keys, n int, node string, lease clientv3.LeaseID) int64 {
	t.Helper()
	rev, ok, err := Acquire(context.Background(), c, keys, n, node, lease)
	if err != nil || !ok {
		t.Fatalf("acquire shard %d for %s: ok=%v err=%v", n, node, ok, err)
	}
	return rev
}

// shardLog is a Log with its notifications and fencing observed.
type shardLog struct {
	*Log
	notified atomic.Int64
	fenced   atomic.Pointer[error]
	metrics  *Metrics
}

func openLog(t *testing.T, c *clientv3.Client, keys Keys, n int, rev int64, next uint64, tweak func(*LogOptions)) *shardLog {
	t.Helper()
	s := &shardLog{metrics: NewMetrics()}
	o := LogOptions{
		KV: c, Keys: keys, Shard: n, OwnerRevision: rev, NextIndex: next,
		Notify:   func() { s.notified.Add(1) },
		OnFenced: func(err error) { s.fenced.Store(&err) },
		Metrics:  s.metrics,
	}
	if tweak != nil {
		tweak(&o)
	}
	l, err := OpenLog(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(l.Stop)
	s.Log = l
	return s
}

func readAll(t *testing.T, c *clientv3.Client, keys Keys, n int) (idx []uint64, recs [][]byte, next uint64) {
	t.Helper()
	next, err := ReadLog(context.Background(), c, keys, n, func(i uint64, rec *coordinator.Record) error {
		b, err := coordinator.EncodeRecord(rec)
		if err != nil {
			return err
		}
		idx = append(idx, i)
		recs = append(recs, b)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return idx, recs, next
}

func endRecord(txn string) *coordinator.Record {
	return &coordinator.Record{Type: coordinator.RecEnd, Txn: txn, TimeUnixMs: 1_700_000_000_000}
}

// Records appended come back from ReadLog exactly, in order, at consecutive indexes,
// and many appends share one etcd transaction (group commit).
func TestLogRoundTripAndGroupCommit(t *testing.T) {
	srv := etcdtest.Start(t)
	c := srv.Client(t)
	keys := Keys{Cluster: "rt"}
	rev := acquire(t, c, keys, 3, "a", grant(t, c))
	l := openLog(t, c, keys, 3, rev, 1, func(o *LogOptions) { o.BatchRecordsMax = 16 })

	const total = 250
	var want [][]byte
	for i := range total {
		rec := endRecord(fmt.Sprintf("txn-%03d", i))
		b, _ := coordinator.EncodeRecord(rec)
		want = append(want, b)
		// Every tenth record asks for a sync, the others are lazy and ride along.
		if err := l.Append(rec, i%10 == 9); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "every record durable", func() bool { return l.Synced() == total })
	idx, got, next := readAll(t, c, keys, 3)
	if len(got) != total || next != total+1 {
		t.Fatalf("read %d records, next %d; want %d, %d", len(got), next, total, total+1)
	}
	for i := range got {
		if idx[i] != uint64(i+1) || !bytes.Equal(got[i], want[i]) {
			t.Fatalf("record %d at index %d: %s, want %s", i, idx[i], got[i], want[i])
		}
	}
	writes := testutilValue(l.metrics.Writes)
	if writes >= total || writes < total/16 {
		t.Fatalf("%v etcd transactions for %d records with batches of at most 16", writes, total)
	}
	if n := testutilValue(l.metrics.RecordsWritten); n != total {
		t.Fatalf("records written %v, want %d", n, total)
	}
	if l.fenced.Load() != nil {
		t.Fatal("fenced")
	}
}

// A second owner takes the shard (the first one's lease is gone): the first one's next
// write fails its compare, writes nothing, is counted, and fences the log, which
// reports nothing more durable and refuses further appends. The new owner reads
// exactly what the old one made durable.
func TestLogFencedWhenAnotherNodeOwnsTheShard(t *testing.T) {
	srv := etcdtest.Start(t)
	c := srv.Client(t)
	keys := Keys{Cluster: "fence"}
	leaseA := grant(t, c)
	revA := acquire(t, c, keys, 0, "a", leaseA)
	a := openLog(t, c, keys, 0, revA, 1, nil)
	for i := range 5 {
		if err := a.Append(endRecord(fmt.Sprintf("before-%d", i)), i == 4); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "a's records durable", func() bool { return a.Synced() == 5 })

	// a's lease is revoked (as when it expires): the owner key goes with it, and b takes
	// the shard.
	if _, err := c.Revoke(context.Background(), leaseA); err != nil {
		t.Fatal(err)
	}
	revB := acquire(t, c, keys, 0, "b", grant(t, c))
	if revB == revA {
		t.Fatal("the new owner key has the old revision")
	}

	if err := a.Append(endRecord("zombie"), true); err != nil {
		t.Fatal(err) // accepted: the log only learns it is fenced when etcd says so
	}
	waitFor(t, "a fenced", func() bool { return a.fenced.Load() != nil })
	if err := *a.fenced.Load(); !errors.Is(err, ErrFenced) {
		t.Fatalf("fenced with %v, want ErrFenced", err)
	}
	if got := testutilValue(a.metrics.FencedWrites); got != 1 {
		t.Fatalf("fenced writes %v, want 1", got)
	}
	if a.Synced() != 5 {
		t.Fatalf("a reports LSN %d durable after being fenced", a.Synced())
	}
	if err := a.Append(endRecord("later"), true); !errors.Is(err, ErrFenced) {
		t.Fatalf("append after fencing: %v, want ErrFenced", err)
	}

	_, recs, next := readAll(t, c, keys, 0)
	if len(recs) != 5 || next != 6 {
		t.Fatalf("b reads %d records (next %d), want a's 5", len(recs), next)
	}
	for _, r := range recs {
		if bytes.Contains(r, []byte("zombie")) {
			t.Fatal("the fenced write reached etcd")
		}
	}
	b := openLog(t, c, keys, 0, revB, next, nil)
	if err := b.Append(endRecord("b-1"), true); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "b's record durable", func() bool { return b.Synced() == 1 })
	if idx, _, _ := readAll(t, c, keys, 0); len(idx) != 6 || idx[5] != 6 {
		t.Fatalf("after b's write: indexes %v", idx)
	}
	// Fencing is also what happens when the owner key is merely deleted (the lease
	// expired and nobody has taken the shard yet).
	if _, err := c.Delete(context.Background(), keys.Owner(0)); err != nil {
		t.Fatal(err)
	}
	if err := b.Append(endRecord("b-2"), true); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "b fenced", func() bool { return b.fenced.Load() != nil })
}

// Fence (the node's lease is gone) stops the log at once: records pending are never
// written and never reported durable.
func TestLogFenceDropsPending(t *testing.T) {
	srv := etcdtest.Start(t)
	c := srv.Client(t)
	keys := Keys{Cluster: "drop"}
	rev := acquire(t, c, keys, 1, "a", grant(t, c))
	// A long lazy interval keeps lazy records pending until a sync or Fence.
	l := openLog(t, c, keys, 1, rev, 1, func(o *LogOptions) { o.LazyFlushInterval = time.Hour })
	if err := l.Append(endRecord("lazy"), false); err != nil {
		t.Fatal(err)
	}
	l.Fence(errors.New("lease lost"))
	if l.fenced.Load() == nil || !errors.Is(l.Fenced(), ErrFenced) {
		t.Fatal("Fence did not fence")
	}
	l.Stop()
	if l.Synced() != 0 {
		t.Fatal("a pending record reported durable")
	}
	if _, recs, _ := readAll(t, c, keys, 1); len(recs) != 0 {
		t.Fatalf("%d records written after Fence", len(recs))
	}
	if got := testutilValue(l.metrics.FencedWrites); got != 0 {
		t.Fatalf("fenced writes %v: Fence itself writes nothing", got)
	}
}

// Close writes what is pending (a graceful handoff), lazy records included.
func TestLogCloseFlushes(t *testing.T) {
	srv := etcdtest.Start(t)
	c := srv.Client(t)
	keys := Keys{Cluster: "close"}
	rev := acquire(t, c, keys, 2, "a", grant(t, c))
	l := openLog(t, c, keys, 2, rev, 1, func(o *LogOptions) { o.LazyFlushInterval = time.Hour })
	for i := range 3 {
		if err := l.Append(endRecord(fmt.Sprintf("lazy-%d", i)), false); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if l.Synced() != 3 {
		t.Fatalf("synced %d after Close, want 3", l.Synced())
	}
	if _, recs, _ := readAll(t, c, keys, 2); len(recs) != 3 {
		t.Fatalf("%d records after Close, want 3", len(recs))
	}
	if err := l.Append(endRecord("after"), true); !errors.Is(err, ErrLogClosed) {
		t.Fatalf("append after Close: %v", err)
	}
}

// ReadLog refuses a log with a gap or a record that does not decode, naming the key.
func TestReadLogRefusesGapsAndGarbage(t *testing.T) {
	srv := etcdtest.Start(t)
	c := srv.Client(t)
	keys := Keys{Cluster: "bad"}
	ctx := context.Background()
	good, _ := coordinator.EncodeRecord(endRecord("x"))
	for _, i := range []uint64{4, 5, 7} {
		if _, err := c.Put(ctx, keys.LogKey(0, i), string(good)); err != nil {
			t.Fatal(err)
		}
	}
	_, err := ReadLog(ctx, c, keys, 0, func(uint64, *coordinator.Record) error { return nil })
	if err == nil || !bytes.Contains([]byte(err.Error()), []byte("gap")) {
		t.Fatalf("gap: %v", err)
	}
	if _, err := c.Put(ctx, keys.LogKey(1, 1), "{not json"); err != nil {
		t.Fatal(err)
	}
	_, err = ReadLog(ctx, c, keys, 1, func(uint64, *coordinator.Record) error { return nil })
	if err == nil || !bytes.Contains([]byte(err.Error()), []byte(keys.LogKey(1, 1))) {
		t.Fatalf("garbage: %v", err)
	}
	// A log that starts after index 1 (an earlier checkpoint deleted its head) is fine.
	next, err := ReadLog(ctx, c, keys, 2, func(uint64, *coordinator.Record) error { return nil })
	if err != nil || next != 1 {
		t.Fatalf("empty log: next %d, %v", next, err)
	}
}

// While etcd does not answer, accepted records pile up to PendingRecordsMax; beyond it
// Append refuses with ErrLogBacklog, which the engine sees as ErrLogUnavailable (the
// API's 503). When etcd answers again, everything accepted is written, in order.
func TestLogBacklogRefusesThenDrains(t *testing.T) {
	srv := etcdtest.Start(t)
	proxy := etcdtest.NewProxy(t, srv.Endpoint[len("http://"):])
	c, err := clientv3.New(clientv3.Config{Endpoints: []string{proxy.URL()}, DialTimeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	keys := Keys{Cluster: "backlog"}
	rev := acquire(t, c, keys, 0, "a", grant(t, c))
	l := openLog(t, c, keys, 0, rev, 1, func(o *LogOptions) {
		o.BatchRecordsMax, o.PendingRecordsMax, o.WriteTimeout = 10, 20, 30*time.Second
	})
	proxy.Pause()
	accepted := 0
	for i := range 25 {
		err := l.Append(endRecord(fmt.Sprintf("r%02d", i)), true)
		if err != nil {
			if !errors.Is(err, ErrLogBacklog) || !errors.Is(err, coordinator.ErrLogUnavailable) {
				t.Fatalf("append %d: %v, want ErrLogBacklog", i, err)
			}
			continue
		}
		accepted++
	}
	if accepted != 20 {
		t.Fatalf("%d appends accepted with etcd unreachable, want PendingRecordsMax = 20", accepted)
	}
	if l.Synced() != 0 {
		t.Fatal("a record reported durable while etcd was unreachable")
	}
	proxy.Resume()
	waitFor(t, "the backlog written", func() bool { return l.Synced() == 20 })
	idx, _, _ := readAll(t, c, keys, 0)
	if len(idx) != 20 || idx[19] != 20 {
		t.Fatalf("indexes after the backlog drained: %v", idx)
	}
}
