package httpnet

import (
	"context"
	"slices"
	"strings"
	"time"

	"github.com/dtc-project/dtc/cluster"
)

// The cluster part of GET /v1/stats: which node answered, and the cluster as etcd
// holds it (nodes, their shards and lease time left), so that the admin page can say
// whose counts it shows and link to the other nodes' pages. The counts of /v1/stats are
// always the answering node's own.

// clusterStatusTimeout bounds the read of the cluster's status from etcd.
const clusterStatusTimeout = time.Second

// StatsCluster is the cluster a node belongs to, as GET /v1/stats shows it.
type StatsCluster struct {
	Name string `json:"name"`
	// NodeID is the node that answered: the counts of the answer are its own.
	NodeID string `json:"node_id"`
	Shards int    `json:"shards"`
	// Owned are the shards the answering node runs.
	Owned []int `json:"owned"`
	// Nodes are the cluster's live nodes, by id.
	Nodes []StatsClusterNode `json:"nodes"`
	// Unowned are the shards that have no owner right now (moving, or their owner died).
	Unowned []int `json:"unowned"`
	// Error is set when etcd could not be read: Nodes are then this node's last view
	// of the cluster, without lease times.
	Error string `json:"error,omitempty"`
}

// StatsClusterNode is one node of the cluster.
type StatsClusterNode struct {
	ID string `json:"id"`
	// Addr is the node's API address; its admin page is Addr + "/ui/".
	Addr      string    `json:"addr"`
	StartedAt time.Time `json:"started_at"`
	// LeaseLeftSeconds is the time left on the node's lease as etcd counts it (whole
	// seconds); absent when it was not read.
	LeaseLeftSeconds *float64 `json:"lease_left_seconds,omitempty"`
	// Shards are the shards it owns.
	Shards []int `json:"shards"`
}

// stats reads the cluster's status from etcd, or falls back to the node's last view.
func (cs *clusterState) stats(ctx context.Context) *StatsCluster {
	out := &StatsCluster{Name: cs.o.Name, NodeID: cs.o.NodeID, Shards: len(cs.slots), Owned: []int{}, Nodes: []StatsClusterNode{}, Unowned: []int{}}
	for n := range cs.slots {
		if cs.local(n) != nil {
			out.Owned = append(out.Owned, n)
		}
	}
	ctx, cancel := context.WithTimeout(ctx, clusterStatusTimeout)
	defer cancel()
	st, err := cluster.ReadStatus(ctx, cs.o.Client, cs.o.Name)
	if err != nil {
		out.Error = "reading the cluster's status from etcd: " + err.Error() + " (nodes as this node last saw them)"
		owners, nodes := cs.node.Peers()
		st = cluster.Status{Shards: len(cs.slots), Owners: make([]string, len(cs.slots))}
		for n, id := range owners {
			if n < len(st.Owners) {
				st.Owners[n] = id
			}
		}
		for id, info := range nodes {
			st.Nodes = append(st.Nodes, cluster.NodeStatus{ID: id, Addr: info.Addr, Started: info.Started})
		}
		slices.SortFunc(st.Nodes, func(a, b cluster.NodeStatus) int { return strings.Compare(a.ID, b.ID) })
	}
	shards := map[string][]int{}
	for n, id := range st.Owners {
		if id == "" {
			out.Unowned = append(out.Unowned, n)
			continue
		}
		shards[id] = append(shards[id], n)
	}
	for _, ns := range st.Nodes {
		cn := StatsClusterNode{ID: ns.ID, Addr: ns.Addr, StartedAt: time.UnixMilli(ns.Started).UTC(), Shards: shards[ns.ID]}
		if cn.Shards == nil {
			cn.Shards = []int{}
		}
		if err == nil {
			left := ns.LeaseLeft.Seconds()
			cn.LeaseLeftSeconds = &left
		}
		out.Nodes = append(out.Nodes, cn)
	}
	return out
}
