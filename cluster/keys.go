package cluster

import (
	"fmt"
	"strconv"
	"strings"
)

// Keys names the etcd keys of one cluster. Everything lives under /dtc/<cluster>/:
//
//	/dtc/<cluster>/config/shards            number of shards, written once when the cluster is created
//	/dtc/<cluster>/nodes/<node id>          a live node's API address, attached to its lease
//	/dtc/<cluster>/owners/<n>               the id of the node that owns shard n, attached to its lease
//	/dtc/<cluster>/shards/<n>/log/<index>   the shard's log records, index zero-padded to 20 digits
//
// Shard numbers are written in decimal without padding; log indexes are padded so that
// etcd's byte order is index order.
type Keys struct {
	Cluster string
}

// CheckName reports whether s may name a cluster or a node: 1 to 64 characters of
// letters, digits, '-', '_' and '.', so that it is one path element of a key.
func CheckName(what, s string) error {
	if s == "" || len(s) > 64 {
		return fmt.Errorf("cluster: %s must be 1 to 64 characters, got %q", what, s)
	}
	for _, c := range s {
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.'
		if !ok {
			return fmt.Errorf("cluster: %s %q may hold only letters, digits, '-', '_' and '.'", what, s)
		}
	}
	if s == "." || s == ".." {
		return fmt.Errorf("cluster: %s must not be %q", what, s)
	}
	return nil
}

func (k Keys) root() string { return "/dtc/" + k.Cluster + "/" }

// ShardCount is the key holding the number of shards.
func (k Keys) ShardCount() string { return k.root() + "config/shards" }

// NodesPrefix is the prefix of the node registrations.
func (k Keys) NodesPrefix() string { return k.root() + "nodes/" }

// Node is the registration key of one node.
func (k Keys) Node(id string) string { return k.NodesPrefix() + id }

// ShardsPrefix is the prefix of every shard's keys.
func (k Keys) ShardsPrefix() string { return k.root() + "shards/" }

// OwnersPrefix is the prefix of the shards' owner keys: one range read lists every
// owner, without the logs.
func (k Keys) OwnersPrefix() string { return k.root() + "owners/" }

// Owner is the owner key of shard n.
func (k Keys) Owner(n int) string { return k.OwnersPrefix() + strconv.Itoa(n) }

// LogPrefix is the prefix of shard n's log records.
func (k Keys) LogPrefix(n int) string { return k.ShardsPrefix() + strconv.Itoa(n) + "/log/" }

// LogKey is the key of shard n's record at index i.
func (k Keys) LogKey(n int, i uint64) string { return k.LogPrefix(n) + fmt.Sprintf("%020d", i) }

// logIndex parses the index out of a log key of shard n.
func (k Keys) logIndex(n int, key string) (uint64, error) {
	s, ok := strings.CutPrefix(key, k.LogPrefix(n))
	if !ok || len(s) != 20 {
		return 0, fmt.Errorf("cluster: %q is not a log key of shard %d", key, n)
	}
	i, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("cluster: %q is not a log key of shard %d: %w", key, n, err)
	}
	return i, nil
}

// shardOfOwnerKey returns n for the owner key of shard n.
func (k Keys) shardOfOwnerKey(key string) (int, bool) {
	s, ok := strings.CutPrefix(key, k.OwnersPrefix())
	if !ok {
		return 0, false
	}
	n, err := strconv.Atoi(s)
	return n, err == nil && n >= 0
}

// prefixEnd is the end of the key range of every key starting with prefix (etcd's
// clientv3.GetPrefixRangeEnd, for a prefix that never ends in 0xff).
func prefixEnd(prefix string) string {
	b := []byte(prefix)
	b[len(b)-1]++
	return string(b)
}
