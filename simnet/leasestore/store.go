package leasestore

import (
	"bytes"
	"context"
	"fmt"
	"sort"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// maxTxnOps is etcd's default --max-txn-ops: a transaction with more operations is
// refused.
const maxTxnOps = 128

// Write describes one accepted request that changed the store, for the simulator's
// online checks: who sent it, at which revision it applied, and the keys it put.
type Write struct {
	Client   string
	Revision int64
	Puts     []string
	Deletes  int
}

// Store is the model. Every method runs on the caller's goroutine; the simulator calls
// it from its single goroutine.
type Store struct {
	// mu makes the model safe to call from several goroutines (a unit test running
	// cluster.Log's own writer goroutine against it); the simulator has only one.
	mu        sync.Mutex
	now       func() time.Time
	rev       int64
	compacted int64
	keys      map[string][]version // every version of each key, oldest first
	leases    map[int64]*lease
	nextLease int64
	down      bool
	onWrite   func(Write)
	written   []Write // writes not yet told to onWrite: it is called without the lock held
	clients   map[string]*Client
}

// version is one revision of a key; kv nil means the key was deleted at rev.
type version struct {
	rev int64
	kv  *mvccpb.KeyValue
}

type lease struct {
	id       int64
	ttl      time.Duration
	deadline time.Time
	keys     map[string]bool
}

// New returns an empty store at revision 1 (etcd's first revision), whose leases expire
// by the clock now.
func New(now func() time.Time) *Store {
	return &Store{now: now, rev: 1, keys: map[string][]version{}, leases: map[int64]*lease{}, clients: map[string]*Client{}}
}

// OnWrite sets a function called after every request that changed the store (and
// after every lease expiry), once the store is unlocked: it may read the store.
func (s *Store) OnWrite(f func(Write)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.onWrite = f
}

// Revision is the store's current revision.
func (s *Store) Revision() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.rev
}

// SetDown makes the store unavailable (every request fails) or available again. When it
// comes back, every lease is renewed for its full TTL.
func (s *Store) SetDown(down bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.down && !down {
		for _, l := range s.leases {
			l.deadline = s.now().Add(l.ttl)
		}
	}
	s.down = down
}

// Down reports whether the store is unavailable.
func (s *Store) Down() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.down
}

// Current returns the key's current value, create revision and lease, after expiring
// the leases that are due (when the store is up). It is the model's own view, for
// checks; no client sends it.
func (s *Store) Current(key string) (kv *mvccpb.KeyValue, ok bool) {
	s.mu.Lock()
	defer s.end()
	s.expire()
	kv = s.at(key, s.rev)
	if kv == nil {
		return nil, false
	}
	return copyKV(kv), true
}

// Compact forgets the versions older than rev that a read at rev or later does not need.
func (s *Store) Compact(rev int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.compact(rev)
}

func (s *Store) compact(rev int64) {
	if rev <= s.compacted || rev > s.rev {
		return
	}
	for k, vs := range s.keys {
		i := sort.Search(len(vs), func(i int) bool { return vs[i].rev > rev }) - 1
		if i <= 0 {
			continue
		}
		vs = vs[i:]
		if len(vs) == 1 && vs[0].kv == nil {
			delete(s.keys, k)
			continue
		}
		s.keys[k] = vs
	}
	s.compacted = rev
}

// expire revokes every lease whose deadline has passed, in id order, each at its own
// revision, deleting its keys. Nothing expires while the store is down.
func (s *Store) expire() {
	if s.down {
		return
	}
	now := s.now()
	var due []int64
	for id, l := range s.leases {
		if !now.Before(l.deadline) {
			due = append(due, id)
		}
	}
	sort.Slice(due, func(i, j int) bool { return due[i] < due[j] })
	for _, id := range due {
		s.revoke(id, "lease expired")
	}
}

func (s *Store) revoke(id int64, who string) {
	l := s.leases[id]
	delete(s.leases, id)
	if len(l.keys) == 0 {
		return
	}
	keys := make([]string, 0, len(l.keys))
	for k := range l.keys {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	s.rev++
	for _, k := range keys {
		s.keys[k] = append(s.keys[k], version{rev: s.rev})
	}
	s.written = append(s.written, Write{Client: who, Revision: s.rev, Deletes: len(keys)})
}

// at returns key's value at revision rev, or nil.
func (s *Store) at(key string, rev int64) *mvccpb.KeyValue {
	vs := s.keys[key]
	i := sort.Search(len(vs), func(i int) bool { return vs[i].rev > rev }) - 1
	if i < 0 {
		return nil
	}
	return vs[i].kv
}

// rangeKeys returns the keys of [key, end) (or key alone if end is empty; from key on if
// end is "\x00") that have any version, sorted.
func (s *Store) rangeKeys(key, end []byte) []string {
	if len(end) == 0 {
		if _, ok := s.keys[string(key)]; ok {
			return []string{string(key)}
		}
		return nil
	}
	var out []string
	for k := range s.keys {
		kb := []byte(k)
		if bytes.Compare(kb, key) < 0 {
			continue
		}
		if !(len(end) == 1 && end[0] == 0) && bytes.Compare(kb, end) >= 0 {
			continue
		}
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func (s *Store) header() *etcdserverpb.ResponseHeader {
	return &etcdserverpb.ResponseHeader{ClusterId: 1, MemberId: 1, Revision: s.rev, RaftTerm: 1}
}

// --- the requests, as etcd applies them ---

func (s *Store) doRange(r *etcdserverpb.RangeRequest) (*etcdserverpb.RangeResponse, error) {
	if r.SortTarget != etcdserverpb.RangeRequest_KEY {
		return nil, status.Error(codes.Unimplemented, "leasestore: sorting on anything but the key is not modelled")
	}
	if r.MinModRevision != 0 || r.MaxModRevision != 0 || r.MinCreateRevision != 0 || r.MaxCreateRevision != 0 {
		return nil, status.Error(codes.Unimplemented, "leasestore: revision filters are not modelled")
	}
	rev := s.rev
	if r.Revision > 0 {
		if r.Revision > s.rev {
			return nil, rpctypes.ErrGRPCFutureRev
		}
		if r.Revision < s.compacted {
			return nil, rpctypes.ErrGRPCCompacted
		}
		rev = r.Revision
	}
	var kvs []*mvccpb.KeyValue
	for _, k := range s.rangeKeys(r.Key, r.RangeEnd) {
		if kv := s.at(k, rev); kv != nil {
			kvs = append(kvs, kv)
		}
	}
	if r.SortOrder == etcdserverpb.RangeRequest_DESCEND {
		for i, j := 0, len(kvs)-1; i < j; i, j = i+1, j-1 {
			kvs[i], kvs[j] = kvs[j], kvs[i]
		}
	}
	resp := &etcdserverpb.RangeResponse{Header: s.header(), Count: int64(len(kvs))}
	if r.CountOnly {
		return resp, nil
	}
	if r.Limit > 0 && int64(len(kvs)) > r.Limit {
		kvs = kvs[:r.Limit]
		resp.More = true
	}
	for _, kv := range kvs {
		c := copyKV(kv)
		if r.KeysOnly {
			c.Value = nil
		}
		resp.Kvs = append(resp.Kvs, c)
	}
	return resp, nil
}

// copyKV copies a stored version, so that a caller cannot change the store's history.
func copyKV(kv *mvccpb.KeyValue) *mvccpb.KeyValue {
	return &mvccpb.KeyValue{Key: kv.Key, Value: kv.Value, CreateRevision: kv.CreateRevision,
		ModRevision: kv.ModRevision, Version: kv.Version, Lease: kv.Lease}
}

// put applies a put at revision rev (already bumped).
func (s *Store) put(r *etcdserverpb.PutRequest, rev int64) (*etcdserverpb.PutResponse, error) {
	if r.IgnoreValue || r.IgnoreLease {
		return nil, status.Error(codes.Unimplemented, "leasestore: IgnoreValue and IgnoreLease are not modelled")
	}
	key := string(r.Key)
	prev := s.at(key, s.rev)
	kv := &mvccpb.KeyValue{Key: r.Key, Value: r.Value, CreateRevision: rev, ModRevision: rev, Version: 1, Lease: r.Lease}
	if prev != nil {
		kv.CreateRevision = prev.CreateRevision
		kv.Version = prev.Version + 1
		if l := s.leases[prev.Lease]; l != nil {
			delete(l.keys, key)
		}
	}
	if r.Lease != 0 {
		s.leases[r.Lease].keys[key] = true
	}
	s.keys[key] = append(s.keys[key], version{rev: rev, kv: kv})
	resp := &etcdserverpb.PutResponse{Header: s.header()}
	if r.PrevKv && prev != nil {
		resp.PrevKv = copyKV(prev)
	}
	return resp, nil
}

func (s *Store) deleteRange(r *etcdserverpb.DeleteRangeRequest, rev int64) *etcdserverpb.DeleteRangeResponse {
	resp := &etcdserverpb.DeleteRangeResponse{}
	for _, k := range s.rangeKeys(r.Key, r.RangeEnd) {
		kv := s.at(k, s.rev)
		if kv == nil {
			continue
		}
		if l := s.leases[kv.Lease]; l != nil {
			delete(l.keys, k)
		}
		s.keys[k] = append(s.keys[k], version{rev: rev})
		resp.Deleted++
		if r.PrevKv {
			resp.PrevKvs = append(resp.PrevKvs, copyKV(kv))
		}
	}
	resp.Header = s.header()
	return resp
}

// compare evaluates one compare against the current state, as etcd does: a missing key
// has version, create and mod revision 0, lease 0 and no value (a value compare on it
// fails).
func (s *Store) compare(c *etcdserverpb.Compare) (bool, error) {
	if len(c.RangeEnd) != 0 {
		return false, status.Error(codes.Unimplemented, "leasestore: compares over a key range are not modelled")
	}
	kv := s.at(string(c.Key), s.rev)
	var cmp int
	switch c.Target {
	case etcdserverpb.Compare_VALUE:
		if kv == nil {
			return false, nil
		}
		cmp = bytes.Compare(kv.Value, c.GetValue())
	default:
		var have, want int64
		if kv != nil {
			switch c.Target {
			case etcdserverpb.Compare_VERSION:
				have = kv.Version
			case etcdserverpb.Compare_CREATE:
				have = kv.CreateRevision
			case etcdserverpb.Compare_MOD:
				have = kv.ModRevision
			case etcdserverpb.Compare_LEASE:
				have = kv.Lease
			}
		}
		switch c.Target {
		case etcdserverpb.Compare_VERSION:
			want = c.GetVersion()
		case etcdserverpb.Compare_CREATE:
			want = c.GetCreateRevision()
		case etcdserverpb.Compare_MOD:
			want = c.GetModRevision()
		case etcdserverpb.Compare_LEASE:
			want = c.GetLease()
		}
		switch {
		case have < want:
			cmp = -1
		case have > want:
			cmp = 1
		}
	}
	switch c.Result {
	case etcdserverpb.Compare_EQUAL:
		return cmp == 0, nil
	case etcdserverpb.Compare_NOT_EQUAL:
		return cmp != 0, nil
	case etcdserverpb.Compare_GREATER:
		return cmp > 0, nil
	case etcdserverpb.Compare_LESS:
		return cmp < 0, nil
	}
	return false, status.Errorf(codes.InvalidArgument, "leasestore: unknown compare result %v", c.Result)
}

// checkTxn refuses what etcd refuses before applying anything: too many operations, a
// key put twice or put and deleted in one branch, a lease that does not exist.
func (s *Store) checkTxn(r *etcdserverpb.TxnRequest) error {
	if len(r.Compare) > maxTxnOps || len(r.Success) > maxTxnOps || len(r.Failure) > maxTxnOps {
		return rpctypes.ErrGRPCTooManyOps
	}
	for _, ops := range [][]*etcdserverpb.RequestOp{r.Success, r.Failure} {
		puts := map[string]bool{}
		var dels []*etcdserverpb.DeleteRangeRequest
		for _, op := range ops {
			switch {
			case op.GetRequestTxn() != nil:
				return status.Error(codes.Unimplemented, "leasestore: nested transactions are not modelled")
			case op.GetRequestPut() != nil:
				p := op.GetRequestPut()
				if puts[string(p.Key)] {
					return rpctypes.ErrGRPCDuplicateKey
				}
				puts[string(p.Key)] = true
				if p.Lease != 0 && s.leases[p.Lease] == nil {
					return rpctypes.ErrGRPCLeaseNotFound
				}
			case op.GetRequestDeleteRange() != nil:
				dels = append(dels, op.GetRequestDeleteRange())
			}
		}
		for _, d := range dels {
			for k := range puts {
				kb := []byte(k)
				in := bytes.Equal(kb, d.Key)
				if len(d.RangeEnd) > 0 {
					in = bytes.Compare(kb, d.Key) >= 0 && (len(d.RangeEnd) == 1 && d.RangeEnd[0] == 0 || bytes.Compare(kb, d.RangeEnd) < 0)
				}
				if in {
					return rpctypes.ErrGRPCDuplicateKey
				}
			}
		}
	}
	return nil
}

func (s *Store) txn(client string, r *etcdserverpb.TxnRequest) (*etcdserverpb.TxnResponse, error) {
	if err := s.checkTxn(r); err != nil {
		return nil, err
	}
	ok := true
	for _, c := range r.Compare {
		held, err := s.compare(c)
		if err != nil {
			return nil, err
		}
		ok = ok && held
	}
	ops := r.Failure
	if ok {
		ops = r.Success
	}
	// A transaction that changes anything changes it at one new revision; one whose
	// writes change nothing (a delete of no key) leaves the revision where it was.
	rev := s.rev + 1
	w := Write{Client: client}
	resp := &etcdserverpb.TxnResponse{Succeeded: ok}
	var err error
	for _, op := range ops {
		var ro etcdserverpb.ResponseOp
		switch {
		case op.GetRequestRange() != nil:
			var rr *etcdserverpb.RangeResponse
			rr, err = s.doRange(op.GetRequestRange())
			ro.Response = &etcdserverpb.ResponseOp_ResponseRange{ResponseRange: rr}
		case op.GetRequestPut() != nil:
			var pr *etcdserverpb.PutResponse
			pr, err = s.put(op.GetRequestPut(), rev)
			ro.Response = &etcdserverpb.ResponseOp_ResponsePut{ResponsePut: pr}
			w.Puts = append(w.Puts, string(op.GetRequestPut().Key))
		case op.GetRequestDeleteRange() != nil:
			dr := s.deleteRange(op.GetRequestDeleteRange(), rev)
			w.Deletes += int(dr.Deleted)
			ro.Response = &etcdserverpb.ResponseOp_ResponseDeleteRange{ResponseDeleteRange: dr}
		}
		if err != nil {
			// Checked up front, so only a request the model does not support gets here,
			// and only from a read: nothing was written yet at this revision.
			return nil, err
		}
		resp.Responses = append(resp.Responses, &ro)
	}
	if len(w.Puts) > 0 || w.Deletes > 0 {
		s.rev = rev
		w.Revision = rev
		s.written = append(s.written, w)
	}
	resp.Header = s.header()
	return resp, nil
}

// --- clients ---

// Client is one node's connection to the store.
type Client struct {
	s    *Store
	name string
	cut  bool
	kv   clientv3.KV
}

// Client returns the connection of the node called name (the same one each time).
func (s *Store) Client(name string) *Client {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c := s.clients[name]; c != nil {
		return c
	}
	c := &Client{s: s, name: name}
	c.kv = clientv3.NewKVFromKVClient(kvClient{c}, nil)
	s.clients[name] = c
	return c
}

// Name is the client's name.
func (c *Client) Name() string { return c.name }

// KV is the client's etcd KV API, etcd's own client code over the model.
func (c *Client) KV() clientv3.KV { return c.kv }

// SetCut cuts the client off from the store (every request fails as unavailable), or
// reconnects it.
func (c *Client) SetCut(cut bool) {
	c.s.mu.Lock()
	defer c.s.mu.Unlock()
	c.cut = cut
}

// errUnavailable is what a request gets while the store is down or the client cut off.
var errUnavailable = status.Error(codes.Unavailable, "leasestore: the store is unreachable")

// end releases the store's lock taken by begin (or by a model method), then tells
// onWrite what was written.
func (s *Store) end() {
	ws, f := s.written, s.onWrite
	s.written = nil
	s.mu.Unlock()
	if f == nil {
		return
	}
	for _, w := range ws {
		f(w)
	}
}

// begin runs before every request, which holds the store's lock from then on (the
// caller calls end): it fails if the store cannot be reached, and expires the leases
// that are due.
func (c *Client) begin() error {
	c.s.mu.Lock()
	if c.cut || c.s.down {
		return errUnavailable
	}
	c.s.expire()
	return nil
}

// Grant creates a lease of ttl.
func (c *Client) Grant(ttl time.Duration) (clientv3.LeaseID, error) {
	if ttl <= 0 {
		return 0, status.Error(codes.InvalidArgument, "leasestore: a lease's TTL must be positive")
	}
	err := c.begin()
	defer c.s.end()
	if err != nil {
		return 0, err
	}
	s := c.s
	s.nextLease++
	s.leases[s.nextLease] = &lease{id: s.nextLease, ttl: ttl, deadline: s.now().Add(ttl), keys: map[string]bool{}}
	return clientv3.LeaseID(s.nextLease), nil
}

// KeepAlive renews the lease for its full TTL; it fails with rpctypes.ErrLeaseNotFound
// (the error etcd's client returns) if the lease expired or was revoked.
func (c *Client) KeepAlive(id clientv3.LeaseID) error {
	err := c.begin()
	defer c.s.end()
	if err != nil {
		return err
	}
	l := c.s.leases[int64(id)]
	if l == nil {
		return rpctypes.ErrLeaseNotFound
	}
	l.deadline = c.s.now().Add(l.ttl)
	return nil
}

// Revoke ends the lease at once, deleting its keys.
func (c *Client) Revoke(id clientv3.LeaseID) error {
	err := c.begin()
	defer c.s.end()
	if err != nil {
		return err
	}
	if c.s.leases[int64(id)] == nil {
		return rpctypes.ErrLeaseNotFound
	}
	c.s.revoke(int64(id), c.name)
	return nil
}

// kvClient is etcdserverpb.KVClient over the model, for clientv3.NewKVFromKVClient.
type kvClient struct{ c *Client }

var _ etcdserverpb.KVClient = kvClient{}

func (k kvClient) Range(_ context.Context, r *etcdserverpb.RangeRequest, _ ...grpc.CallOption) (*etcdserverpb.RangeResponse, error) {
	err := k.c.begin()
	defer k.c.s.end()
	if err != nil {
		return nil, err
	}
	return k.c.s.doRange(r)
}

func (k kvClient) RangeStream(context.Context, *etcdserverpb.RangeRequest, ...grpc.CallOption) (grpc.ServerStreamingClient[etcdserverpb.RangeStreamResponse], error) {
	return nil, status.Error(codes.Unimplemented, "leasestore: range streams are not modelled")
}

func (k kvClient) Put(_ context.Context, r *etcdserverpb.PutRequest, _ ...grpc.CallOption) (*etcdserverpb.PutResponse, error) {
	resp, err := k.Txn(context.Background(), &etcdserverpb.TxnRequest{Success: []*etcdserverpb.RequestOp{
		{Request: &etcdserverpb.RequestOp_RequestPut{RequestPut: r}}}})
	if err != nil {
		return nil, err
	}
	pr := resp.Responses[0].GetResponsePut()
	pr.Header = resp.Header
	return pr, nil
}

func (k kvClient) DeleteRange(_ context.Context, r *etcdserverpb.DeleteRangeRequest, _ ...grpc.CallOption) (*etcdserverpb.DeleteRangeResponse, error) {
	resp, err := k.Txn(context.Background(), &etcdserverpb.TxnRequest{Success: []*etcdserverpb.RequestOp{
		{Request: &etcdserverpb.RequestOp_RequestDeleteRange{RequestDeleteRange: r}}}})
	if err != nil {
		return nil, err
	}
	dr := resp.Responses[0].GetResponseDeleteRange()
	dr.Header = resp.Header
	return dr, nil
}

func (k kvClient) Txn(_ context.Context, r *etcdserverpb.TxnRequest, _ ...grpc.CallOption) (*etcdserverpb.TxnResponse, error) {
	err := k.c.begin()
	defer k.c.s.end()
	if err != nil {
		return nil, err
	}
	return k.c.s.txn(k.c.name, r)
}

func (k kvClient) Compact(_ context.Context, r *etcdserverpb.CompactionRequest, _ ...grpc.CallOption) (*etcdserverpb.CompactionResponse, error) {
	err := k.c.begin()
	defer k.c.s.end()
	if err != nil {
		return nil, err
	}
	if r.Revision <= k.c.s.compacted {
		return nil, rpctypes.ErrGRPCCompacted
	}
	if r.Revision > k.c.s.rev {
		return nil, rpctypes.ErrGRPCFutureRev
	}
	k.c.s.compact(r.Revision)
	return &etcdserverpb.CompactionResponse{Header: k.c.s.header()}, nil
}

// String names the client, for traces.
func (c *Client) String() string { return fmt.Sprintf("store client %s", c.name) }
