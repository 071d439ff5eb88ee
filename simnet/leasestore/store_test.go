package leasestore

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/dtc-project/dtc/internal/etcdtest"
)

// clock is a virtual clock the tests move by hand.
type clock struct{ t time.Time }

func (c *clock) now() time.Time          { return c.t }
func (c *clock) advance(d time.Duration) { c.t = c.t.Add(d) }

func newStore() (*Store, *clock) {
	c := &clock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	return New(c.now), c
}

// script runs the same requests against a clientv3.KV and prints what each answered,
// revisions included, so that the model's answers can be compared with etcd's. Every
// key lives under prefix.
func script(kv clientv3.KV, leases leaser, prefix string) string {
	ctx := context.Background()
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	base := int64(0)
	rel := func(rev int64) int64 { // revisions relative to the first write
		if rev == 0 {
			return 0
		}
		return rev - base
	}
	errText := func(err error) string {
		if err == nil {
			return "ok"
		}
		return status.Code(err).String() + " " + rpctypes.ErrorDesc(err)
	}
	k := func(s string) string { return prefix + s }
	put, err := kv.Put(ctx, k("a"), "1")
	if err != nil {
		return "put: " + err.Error()
	}
	base = put.Header.Revision - 1
	for _, key := range []string{"b", "c", "a", "log/01", "log/02", "log/03"} {
		r, err := kv.Put(ctx, k(key), "v"+key)
		p("put %s: %s rev=%d", key, errText(err), rel(r.Header.Revision))
	}
	dump := func(what string, r *clientv3.GetResponse, err error) {
		if err != nil {
			p("%s: %s", what, errText(err))
			return
		}
		p("%s: rev=%d count=%d more=%v", what, rel(r.Header.Revision), r.Count, r.More)
		for _, x := range r.Kvs {
			p("  %s=%s create=%d mod=%d version=%d", strings.TrimPrefix(string(x.Key), prefix), x.Value, rel(x.CreateRevision), rel(x.ModRevision), x.Version)
		}
	}
	r, err := kv.Get(ctx, k("a"))
	dump("get a", r, err)
	r, err = kv.Get(ctx, k("log/"), clientv3.WithPrefix(), clientv3.WithLimit(2), clientv3.WithSort(clientv3.SortByKey, clientv3.SortAscend))
	dump("get log/ limit 2", r, err)
	past := base + 3
	r, err = kv.Get(ctx, k(""), clientv3.WithPrefix(), clientv3.WithRev(past))
	dump("get all at rev 3", r, err)
	r, err = kv.Get(ctx, k("log/02"), clientv3.WithRange(k("log/99")), clientv3.WithSort(clientv3.SortByKey, clientv3.SortDescend))
	dump("get log/02.. descending", r, err)
	// The owner-key pattern of cluster: create if absent, then write only while the
	// create revision holds.
	owner := k("owner")
	tr, err := kv.Txn(ctx).If(clientv3.Compare(clientv3.CreateRevision(owner), "=", 0)).Then(clientv3.OpPut(owner, "n1")).Commit()
	p("acquire: %s succeeded=%v rev=%d", errText(err), tr.Succeeded, rel(tr.Header.Revision))
	ownerRev := tr.Header.Revision
	tr, err = kv.Txn(ctx).If(clientv3.Compare(clientv3.CreateRevision(owner), "=", 0)).Then(clientv3.OpPut(owner, "n2")).Commit()
	p("acquire again: %s succeeded=%v rev=%d", errText(err), tr.Succeeded, rel(tr.Header.Revision))
	fenced := func(what string, rev int64) {
		tr, err := kv.Txn(ctx).If(clientv3.Compare(clientv3.CreateRevision(owner), "=", rev)).
			Then(clientv3.OpPut(k("log/04"), what), clientv3.OpDelete(k("log/"), clientv3.WithRange(k("log/02")))).
			Else(clientv3.OpGet(owner)).Commit()
		p("fenced write %s: %s succeeded=%v rev=%d", what, errText(err), tr.Succeeded, rel(tr.Header.Revision))
		if err == nil && !tr.Succeeded {
			g := tr.Responses[0].GetResponseRange()
			p("  else: owner %s create=%d", g.Kvs[0].Value, rel(g.Kvs[0].CreateRevision))
		}
	}
	fenced("owned", ownerRev)
	if _, err := kv.Delete(ctx, owner); err != nil {
		p("delete owner: %s", errText(err))
	}
	tr, err = kv.Txn(ctx).If(clientv3.Compare(clientv3.CreateRevision(owner), "=", 0)).Then(clientv3.OpPut(owner, "n2")).Commit()
	p("acquire by n2: %s succeeded=%v rev=%d", errText(err), tr.Succeeded, rel(tr.Header.Revision))
	fenced("zombie", ownerRev)
	r, err = kv.Get(ctx, k("log/"), clientv3.WithPrefix())
	dump("get log/", r, err)
	d, err := kv.Delete(ctx, k("nothing/"), clientv3.WithPrefix())
	p("delete nothing: %s deleted=%d rev=%d", errText(err), d.Deleted, rel(d.Header.Revision))
	d, err = kv.Delete(ctx, k("b"), clientv3.WithRange(k("d")), clientv3.WithPrevKV())
	p("delete b..d: %s deleted=%d rev=%d prev=%d", errText(err), d.Deleted, rel(d.Header.Revision), len(d.PrevKvs))
	_, err = kv.Txn(ctx).Then(clientv3.OpPut(k("x"), "1"), clientv3.OpPut(k("x"), "2")).Commit()
	p("put twice in a txn: %s", errText(err))
	_, err = kv.Txn(ctx).Then(clientv3.OpPut(k("log/05"), "1"), clientv3.OpDelete(k("log/"), clientv3.WithPrefix())).Commit()
	p("put and delete in a txn: %s", errText(err))
	tr, err = kv.Txn(ctx).If(clientv3.Compare(clientv3.Value(k("a")), "=", "va"), clientv3.Compare(clientv3.Version(k("a")), ">", 1),
		clientv3.Compare(clientv3.ModRevision(k("a")), "<", base+100)).Then(clientv3.OpPut(k("a"), "va2")).Commit()
	p("compares on a: %s succeeded=%v rev=%d", errText(err), tr.Succeeded, rel(tr.Header.Revision))
	tr, err = kv.Txn(ctx).If(clientv3.Compare(clientv3.Value(k("missing")), "=", "")).Then(clientv3.OpPut(k("a"), "va3")).Commit()
	p("value compare on a missing key: %s succeeded=%v", errText(err), tr.Succeeded)
	r, err = kv.Get(ctx, k(""), clientv3.WithPrefix(), clientv3.WithCountOnly())
	dump("count", r, err)
	// Leases: keys attached to a lease go with it, at one revision; a key put again
	// under another lease leaves the first.
	l1, err := leases.grant(60)
	p("grant l1: %s", errText(err))
	l2, err := leases.grant(60)
	p("grant l2: %s", errText(err))
	for _, key := range []string{"l/a", "l/b", "l/moved"} {
		_, err := kv.Put(ctx, k(key), "x", clientv3.WithLease(l1))
		p("put %s with l1: %s", key, errText(err))
	}
	_, err = kv.Put(ctx, k("l/moved"), "y", clientv3.WithLease(l2))
	p("put l/moved with l2: %s", errText(err))
	p("revoke l1: %s", errText(leases.revoke(l1)))
	r, err = kv.Get(ctx, k("l/"), clientv3.WithPrefix())
	dump("get l/ after revoking l1", r, err)
	_, err = kv.Put(ctx, k("l/c"), "x", clientv3.WithLease(l1))
	p("put with the revoked l1: %s", errText(err))
	p("revoke l1 again: %s", errText(leases.revoke(l1)))
	return b.String()
}

// leaser grants and revokes leases: the model's Client, or a real etcd client.
type leaser interface {
	grant(ttlSeconds int64) (clientv3.LeaseID, error)
	revoke(clientv3.LeaseID) error
}

type modelLeases struct{ c *Client }

func (m modelLeases) grant(ttl int64) (clientv3.LeaseID, error) {
	return m.c.Grant(time.Duration(ttl) * time.Second)
}
func (m modelLeases) revoke(id clientv3.LeaseID) error { return m.c.Revoke(id) }

type etcdLeases struct{ c *clientv3.Client }

func (e etcdLeases) grant(ttl int64) (clientv3.LeaseID, error) {
	r, err := e.c.Grant(context.Background(), ttl)
	if err != nil {
		return 0, err
	}
	return r.ID, nil
}
func (e etcdLeases) revoke(id clientv3.LeaseID) error {
	_, err := e.c.Revoke(context.Background(), id)
	return err
}

// TestScriptAgainstEtcd runs the script against the model and against a real embedded
// etcd: every answer, revision and error must be the same.
func TestScriptAgainstEtcd(t *testing.T) {
	s, _ := newStore()
	got := script(s.Client("n1").KV(), modelLeases{s.Client("n1")}, "/t/")
	srv := etcdtest.Start(t)
	c, err := clientv3.New(clientv3.Config{Endpoints: []string{srv.Endpoint}, DialTimeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	want := script(c, etcdLeases{c}, "/t/")
	if got != want {
		t.Errorf("the model answers differently from etcd.\nmodel:\n%s\netcd:\n%s", got, want)
	}
	if !strings.Contains(want, "fenced write zombie: ok succeeded=false") {
		t.Errorf("the script no longer shows a fenced write failing:\n%s", want)
	}
}

func TestLeaseExpiresInVirtualTime(t *testing.T) {
	s, clk := newStore()
	c := s.Client("n1")
	ctx := context.Background()
	id, err := c.Grant(2 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.KV().Put(ctx, "owner", "n1", clientv3.WithLease(id)); err != nil {
		t.Fatal(err)
	}
	clk.advance(1900 * time.Millisecond)
	if _, ok := s.Current("owner"); !ok {
		t.Fatal("the key is gone before its lease's TTL")
	}
	if err := c.KeepAlive(id); err != nil {
		t.Fatal(err)
	}
	clk.advance(1900 * time.Millisecond)
	if _, ok := s.Current("owner"); !ok {
		t.Fatal("the key is gone though its lease was kept alive")
	}
	rev := s.Revision()
	clk.advance(100 * time.Millisecond)
	if _, ok := s.Current("owner"); ok {
		t.Fatal("the key outlives its lease")
	}
	if s.Revision() != rev+1 {
		t.Errorf("the expiry deleted the key at revision %d, want %d", s.Revision(), rev+1)
	}
	if err := c.KeepAlive(id); !errors.Is(err, rpctypes.ErrLeaseNotFound) {
		t.Errorf("keepalive of an expired lease: %v, want lease not found", err)
	}
	if _, err := c.KV().Put(ctx, "k", "v", clientv3.WithLease(id)); rpctypes.Error(err) != rpctypes.ErrLeaseNotFound {
		t.Errorf("put with an expired lease: %v, want lease not found", err)
	}
}

func TestDownAndCut(t *testing.T) {
	s, clk := newStore()
	a, b := s.Client("a"), s.Client("b")
	ctx := context.Background()
	id, _ := a.Grant(time.Second)
	if _, err := a.KV().Put(ctx, "owner", "a", clientv3.WithLease(id)); err != nil {
		t.Fatal(err)
	}
	a.SetCut(true)
	if _, err := a.KV().Get(ctx, "owner"); status.Code(err) != codes.Unavailable {
		t.Errorf("a cut-off client: %v, want unavailable", err)
	}
	if err := a.KeepAlive(id); status.Code(err) != codes.Unavailable {
		t.Errorf("a cut-off client's keepalive: %v, want unavailable", err)
	}
	if _, err := b.KV().Get(ctx, "owner"); err != nil {
		t.Errorf("another client is not cut off: %v", err)
	}
	a.SetCut(false)
	s.SetDown(true)
	clk.advance(5 * time.Second)
	if _, err := b.KV().Get(ctx, "owner"); status.Code(err) != codes.Unavailable {
		t.Errorf("a request to a store that is down: %v, want unavailable", err)
	}
	s.SetDown(false) // every lease renewed for its TTL
	if _, ok := s.Current("owner"); !ok {
		t.Fatal("a lease expired while the store was down")
	}
	clk.advance(time.Second)
	if _, ok := s.Current("owner"); ok {
		t.Fatal("the lease outlives its TTL after the store came back")
	}
}

func TestCompactedRevisionIsRefused(t *testing.T) {
	s, _ := newStore()
	kv := s.Client("a").KV()
	ctx := context.Background()
	for i := range 5 {
		if _, err := kv.Put(ctx, "k", fmt.Sprint(i)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := kv.Compact(ctx, 4); err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Get(ctx, "k", clientv3.WithRev(3)); rpctypes.Error(err) != rpctypes.ErrCompacted {
		t.Errorf("read below the compaction: %v, want compacted", err)
	}
	r, err := kv.Get(ctx, "k", clientv3.WithRev(4))
	if err != nil || len(r.Kvs) != 1 || string(r.Kvs[0].Value) != "2" {
		t.Errorf("read at the compaction revision: %v %v, want k=2", r, err)
	}
}
