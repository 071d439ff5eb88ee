package cluster

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// Status is a cluster as etcd holds it (dtc cluster status).
type Status struct {
	Cluster string       `json:"cluster"`
	Shards  int          `json:"shards"`
	Nodes   []NodeStatus `json:"nodes"`
	// Owners[n] is the id of the node that owns shard n, "" for none.
	Owners []string `json:"owners"`
}

// NodeStatus is one live node.
type NodeStatus struct {
	ID      string `json:"id"`
	Addr    string `json:"addr"`
	Started int64  `json:"started_ms"`
	// LeaseLeft is the time left on the node's lease, as etcd counts it (whole seconds).
	LeaseLeft time.Duration `json:"lease_left_ns"`
}

// ReadStatus reads the cluster's shard count, nodes and owners at one revision, and
// the time left on each node's lease.
func ReadStatus(ctx context.Context, c *clientv3.Client, name string) (Status, error) {
	k := Keys{Cluster: name}
	resp, err := c.Txn(ctx).Then(
		clientv3.OpGet(k.ShardCount()),
		clientv3.OpGet(k.NodesPrefix(), clientv3.WithPrefix()),
		clientv3.OpGet(k.OwnersPrefix(), clientv3.WithPrefix()),
	).Commit()
	if err != nil {
		return Status{}, fmt.Errorf("cluster: reading cluster %q: %w", name, err)
	}
	count := resp.Responses[0].GetResponseRange().Kvs
	if len(count) == 0 {
		return Status{}, fmt.Errorf("cluster: there is no cluster %q in this etcd", name)
	}
	shards, err := strconv.Atoi(string(count[0].Value))
	if err != nil || shards < 1 || shards > ShardsMax {
		return Status{}, fmt.Errorf("cluster: %s holds %q, not a shard count", k.ShardCount(), count[0].Value)
	}
	st := Status{Cluster: name, Shards: shards, Owners: make([]string, shards), Nodes: []NodeStatus{}}
	for _, kv := range resp.Responses[1].GetResponseRange().Kvs {
		var info NodeInfo
		_ = json.Unmarshal(kv.Value, &info)
		ns := NodeStatus{ID: string(kv.Key[len(k.NodesPrefix()):]), Addr: info.Addr, Started: info.Started}
		if kv.Lease != 0 {
			if ttl, err := c.TimeToLive(ctx, clientv3.LeaseID(kv.Lease)); err == nil && ttl.TTL > 0 {
				ns.LeaseLeft = time.Duration(ttl.TTL) * time.Second
			}
		}
		st.Nodes = append(st.Nodes, ns)
	}
	slices.SortFunc(st.Nodes, func(a, b NodeStatus) int {
		switch {
		case a.ID < b.ID:
			return -1
		case a.ID > b.ID:
			return 1
		}
		return 0
	})
	for _, kv := range resp.Responses[2].GetResponseRange().Kvs {
		if n, ok := k.shardOfOwnerKey(string(kv.Key)); ok && n < shards {
			st.Owners[n] = string(kv.Value)
		}
	}
	return st, nil
}
