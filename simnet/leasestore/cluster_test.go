package leasestore

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/dtc-project/dtc/cluster"
	"github.com/dtc-project/dtc/coordinator"
)

// The real cluster.Log (its own writer goroutine, as in the daemon) writes over the
// model; cluster.ReadLog reads its records back; once another node holds the owner
// key, the first node's write fails its compare and fences the log.
func TestClusterLogOverTheModel(t *testing.T) {
	s, clk := newStore()
	keys := cluster.Keys{Cluster: "m"}
	ctx := context.Background()
	a, b := s.Client("a"), s.Client("b")
	la, _ := a.Grant(2 * time.Second)
	rev, ok, err := cluster.Acquire(ctx, a.KV(), keys, 0, "a", la)
	if err != nil || !ok {
		t.Fatalf("acquire: %v %v", ok, err)
	}
	fenced := make(chan error, 1)
	l, err := cluster.OpenLog(cluster.LogOptions{KV: a.KV(), Keys: keys, Shard: 0, OwnerRevision: rev, NextIndex: 1,
		OnFenced: func(err error) { fenced <- err }})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Stop()
	const n = 30
	for i := range n {
		rec := &coordinator.Record{Type: coordinator.RecEnd, Txn: fmt.Sprintf("t%02d", i), TimeUnixMs: 1}
		if err := l.Append(rec, i == n-1); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(30 * time.Second) // a guard against a hang
	for l.Synced() != n {
		if time.Now().After(deadline) {
			t.Fatal("the records never became durable")
		}
		time.Sleep(time.Millisecond)
	}
	var txns []string
	next, err := cluster.ReadLog(ctx, b.KV(), keys, 0, func(_ uint64, rec *coordinator.Record) error {
		txns = append(txns, rec.Txn)
		return nil
	})
	if err != nil || next != n+1 || len(txns) != n || txns[0] != "t00" || txns[n-1] != fmt.Sprintf("t%02d", n-1) {
		t.Fatalf("read back %v (next %d, err %v)", txns, next, err)
	}
	// a's lease expires in virtual time; b takes the shard.
	clk.advance(2 * time.Second)
	lb, _ := b.Grant(2 * time.Second)
	if _, ok, err := cluster.Acquire(ctx, b.KV(), keys, 0, "b", lb); err != nil || !ok {
		t.Fatalf("b's acquire after a's lease expired: %v %v", ok, err)
	}
	if err := l.Append(&coordinator.Record{Type: coordinator.RecEnd, Txn: "late", TimeUnixMs: 1}, true); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-fenced:
		if !errors.Is(err, cluster.ErrFenced) {
			t.Fatalf("fenced with %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the zombie's write was never fenced")
	}
	if kv, _ := s.Current(keys.LogKey(0, n+1)); kv != nil {
		t.Fatalf("the zombie's record was written: %s", kv.Value)
	}
}

// cluster.WriteBatch and cluster.ReadLog over the model, synchronously as the
// simulator calls them: more records than one page of ReadLog (it reads the later pages
// at the first page's revision), and a checkpoint's closing write deleting the records
// before its opening one.
func TestClusterWriteBatchAndReadLogPages(t *testing.T) {
	s, _ := newStore()
	keys := cluster.Keys{Cluster: "p"}
	ctx := context.Background()
	c := s.Client("a")
	lease, _ := c.Grant(time.Minute)
	rev, ok, err := cluster.Acquire(ctx, c.KV(), keys, 2, "a", lease)
	if err != nil || !ok {
		t.Fatalf("acquire: %v %v", ok, err)
	}
	const n = 1100
	rec := func(i int) []byte {
		b, err := coordinator.EncodeRecord(&coordinator.Record{Type: coordinator.RecEnd, Txn: fmt.Sprintf("t%04d", i), TimeUnixMs: 1})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	for from := 1; from <= n; from += 100 {
		var batch []cluster.BatchRecord
		for i := from; i < from+100; i++ {
			batch = append(batch, cluster.BatchRecord{Index: uint64(i), Data: rec(i)})
		}
		if written, err := cluster.WriteBatch(ctx, c.KV(), keys, 2, rev, batch); err != nil || !written {
			t.Fatalf("write from %d: %v %v", from, written, err)
		}
	}
	read := func() (first string, count int, next uint64) {
		next, err := cluster.ReadLog(ctx, c.KV(), keys, 2, func(i uint64, r *coordinator.Record) error {
			if count == 0 {
				first = r.Txn
			}
			count++
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		return first, count, next
	}
	if first, count, next := read(); first != "t0001" || count != n || next != n+1 {
		t.Fatalf("read %d records from %s, next %d; want %d from t0001, next %d", count, first, next, n, n+1)
	}
	// A closing checkpoint record at n+1 whose opening one is at 1000.
	end := cluster.BatchRecord{Index: n + 1, Data: rec(n + 1), DeleteBefore: 1000}
	if written, err := cluster.WriteBatch(ctx, c.KV(), keys, 2, rev, []cluster.BatchRecord{end}); err != nil || !written {
		t.Fatalf("checkpoint write: %v %v", written, err)
	}
	if first, count, next := read(); first != "t1000" || count != n+1-999 || next != n+2 {
		t.Fatalf("after the checkpoint: %d records from %s, next %d; want %d from t1000, next %d", count, first, next, n+1-999, n+2)
	}
}
