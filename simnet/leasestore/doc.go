// Package leasestore is a deterministic model of the part of etcd that dtc's cluster
// mode stands on, for the simulator: a linearizable key-value store with revisions
// (each key's create and mod revision and version, one store revision per write),
// multi-version reads at a past revision, transactions with compares, range reads and
// range deletes, and leases that expire in virtual time.
//
// The model implements etcd's KV gRPC client interface (etcdserverpb.KVClient), and
// Client.KV wraps it with clientv3.NewKVFromKVClient: the code under test talks to a
// real clientv3.KV, and the requests it builds (clientv3.Op, Cmp, options) are turned
// into etcd's protobuf requests by etcd's own client code.
//
// Determinism: the model starts no goroutine and never reads the wall clock. Time is
// what the Now function given to New says (the simulator's virtual clock); a lease
// whose deadline has passed is revoked at the start of the next request to the store,
// all its keys deleted at one revision, leases in id order — exactly as if the store's
// lessor had revoked it between the two requests.
//
// Faults: the whole store can be down (SetDown: every request fails with
// codes.Unavailable), and one client can be cut off from it (Client.SetCut). While the
// store is down no lease expires; when it comes back every lease is renewed for its full
// TTL, as etcd's lessor does when a new leader promotes itself.
//
// Not modelled (and refused with codes.Unimplemented or InvalidArgument, so that a
// caller relying on them finds out): watches, range streams, compares over a key
// range, sorting on anything but the key, and nested transactions.
package leasestore
