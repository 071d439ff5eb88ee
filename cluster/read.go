package cluster

import (
	"context"
	"fmt"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/dtc-project/dtc/coordinator"
)

// readPageRecords bounds the records one range request returns while a log is read.
const readPageRecords = 512

// ReadLog reads shard n's records in index order, all at one etcd revision, decodes each
// and hands it to fn with its index. It returns the index the next record must be written
// at (1 for a shard without records). The indexes must be consecutive: a gap, a key that
// is not a log key, or a record that does not decode stops the read with an error that
// names the key; guessing is not safe.
//
// Read the log only after acquiring the shard: from then on the previous owner's writes
// fail their compare, so what ReadLog returns is everything that shard will ever hold
// from before this node's ownership.
func ReadLog(ctx context.Context, kv clientv3.KV, keys Keys, n int, fn func(index uint64, rec *coordinator.Record) error) (next uint64, err error) {
	from := keys.LogKey(n, 0)
	end := prefixEnd(keys.LogPrefix(n))
	var rev int64
	next = 0
	for {
		opts := []clientv3.OpOption{clientv3.WithRange(end), clientv3.WithLimit(readPageRecords),
			clientv3.WithSort(clientv3.SortByKey, clientv3.SortAscend)}
		if rev != 0 {
			opts = append(opts, clientv3.WithRev(rev))
		}
		resp, err := kv.Get(ctx, from, opts...)
		if err != nil {
			return 0, fmt.Errorf("cluster: reading the log of shard %d: %w", n, err)
		}
		if rev == 0 {
			rev = resp.Header.Revision
		}
		for _, kvp := range resp.Kvs {
			key := string(kvp.Key)
			i, err := keys.logIndex(n, key)
			if err != nil {
				return 0, err
			}
			if next != 0 && i != next {
				return 0, fmt.Errorf("cluster: the log of shard %d has a gap: %s follows index %d", n, key, next-1)
			}
			rec, err := coordinator.DecodeRecord(kvp.Value)
			if err != nil {
				return 0, fmt.Errorf("cluster: record %s: %w", key, err)
			}
			if err := fn(i, rec); err != nil {
				return 0, err
			}
			next = i + 1
		}
		if !resp.More || len(resp.Kvs) == 0 {
			break
		}
		from = string(resp.Kvs[len(resp.Kvs)-1].Key) + "\x00"
	}
	if next == 0 {
		next = 1
	}
	return next, nil
}
