package cluster

import (
	"context"
	"fmt"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// Acquire takes shard n for node if nobody owns it: in one etcd transaction it creates
// the shard's owner key (holding node's id) attached to lease, only if the key does not
// exist. It returns the owner key's create revision, the revision every write of the
// shard's log will compare against, and ok = false if another node owns the shard.
func Acquire(ctx context.Context, kv clientv3.KV, keys Keys, n int, node string, lease clientv3.LeaseID) (rev int64, ok bool, err error) {
	key := keys.Owner(n)
	resp, err := kv.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(key), "=", 0)).
		Then(clientv3.OpPut(key, node, clientv3.WithLease(lease))).
		Commit()
	if err != nil {
		return 0, false, fmt.Errorf("cluster: acquiring shard %d: %w", n, err)
	}
	if !resp.Succeeded {
		return 0, false, nil
	}
	return resp.Header.Revision, true, nil
}

// Release gives shard n up: it deletes the owner key if it still has create revision
// rev (the one this node acquired). It reports whether the key was still this node's.
func Release(ctx context.Context, kv clientv3.KV, keys Keys, n int, rev int64) (bool, error) {
	key := keys.Owner(n)
	resp, err := kv.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(key), "=", rev)).
		Then(clientv3.OpDelete(key)).
		Commit()
	if err != nil {
		return false, fmt.Errorf("cluster: releasing shard %d: %w", n, err)
	}
	return resp.Succeeded, nil
}
