package httpnet_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/dtc-project/dtc/client"
	"github.com/dtc-project/dtc/coordinator"
	"github.com/dtc-project/dtc/httpnet"
	"github.com/dtc-project/dtc/httpnet/apiserver"
	"github.com/dtc-project/dtc/internal/etcdtest"
	"github.com/dtc-project/dtc/locks"
)

// metricValue reads a counter of the node's registry: name with label value (or the
// unlabelled one when label is ""), 0 if absent.
func (n *cnode) metricValue(t *testing.T, name, label, value string) float64 {
	t.Helper()
	mfs, err := n.rt.Metrics().Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.Metric {
			if label == "" {
				return m.Counter.GetValue()
			}
			for _, l := range m.Label {
				if l.GetName() == label && l.GetValue() == value {
					return m.Counter.GetValue()
				}
			}
		}
	}
	return 0
}

// idOwnedBy returns a client id with prefix whose shard n runs.
func idOwnedBy(t *testing.T, n *cnode, prefix string) string {
	t.Helper()
	for i := range 1000 {
		id := fmt.Sprintf("%s-%d", prefix, i)
		if n.rt.RunsShard(n.rt.ClusterShardOf(id)) {
			return id
		}
	}
	t.Fatalf("no id with prefix %s routes to a shard of %s (it runs %v)", prefix, n.id, n.rt.Node().Owned())
	return ""
}

// The deadlock of issue 16 across nodes: T1 lives on a shard of one node, T2 on a shard
// of the other (the victim is the detector's own transaction in one run, the other
// node's in the other); two library banks (lock policy wait) report their waits to the node
// that is NOT the detector (the owner of shard 0), which forwards them to it. The
// detector looks the other node's transaction up through its owner, finds the cycle,
// and aborts the younger (T2) with cause deadlock long before the 30s prepare deadline;
// T1 commits and neither bank is left with a wait or a prepared transaction. With
// authentication on, the banks report without a token (by the ids they were told) and
// the nodes' calls to each other carry none of their own: the same outcome.
func TestClusterDeadlockAcrossNodes(t *testing.T) {
	t.Run("open", func(t *testing.T) { clusterDeadlockAcrossNodes(t, false) })
	t.Run("auth", func(t *testing.T) { clusterDeadlockAcrossNodes(t, true) })
}

func clusterDeadlockAcrossNodes(t *testing.T, auth bool) {
	srv := etcdtest.Start(t)
	var so apiserver.ServerOptions
	var token string
	if auth {
		creds, tok := testCreds(t, "submit alice", "admin ops")
		so.Auth, token = apiserver.NewAuth(creds), tok["alice"]
	}
	start := func(id string) *cnode {
		return startClusterNodeAPI(t, srv, "xdl", id, "", apiserver.ClusterHandlerOptions{}, nil, so, token)
	}
	n1, n2 := start("n1"), start("n2")
	eventually(t, "every shard owned, two ways", func() bool {
		c, ok := ownedBy(n1, n2)
		return c == clusterShards && ok && len(n1.rt.Node().Owned()) > 0 && len(n2.rt.Node().Owned()) > 0
	})
	det, other := n1, n2
	if n2.rt.RunsShard(httpnet.DetectorShard) {
		det, other = n2, n1
	}
	if !det.rt.RunsShard(httpnet.DetectorShard) {
		t.Fatalf("nobody runs shard %d", httpnet.DetectorShard)
	}
	// The banks report to the node that does not keep the graph.
	a := newLibBank(t, other.url, locks.PolicyWait, map[string]int64{"x": 1000})
	b := newLibBank(t, other.url, locks.PolicyWait, map[string]int64{"y": 1000})
	// T2, the victim, lives on the detector's node without authentication and on the
	// other with it (looked up and aborted through its owner); T1 on the other one.
	on1, on2 := other, det
	if auth {
		on1, on2 = det, other
	}
	t1, t2 := idOwnedBy(t, on1, "xt1"), idOwnedBy(t, on2, "xt2")
	a.order.mu.Lock()
	a.order.after[t2] = t1
	a.order.mu.Unlock()
	b.order.mu.Lock()
	b.order.after[t1] = t2
	b.order.mu.Unlock()
	op := func(account string, amount int) json.RawMessage {
		return json.RawMessage(fmt.Sprintf(`{"ops":[{"account":%q,"amount":%d}]}`, account, amount))
	}
	const prepareTimeout = 30 * time.Second
	ctx := context.Background()
	submit := func(n *cnode, id string, parts []client.Participant) {
		eventually(t, "submitted "+id, func() bool {
			_, err := n.cli.SubmitAsync(ctx, client.Request{ID: id, PrepareTimeout: prepareTimeout, Participants: parts})
			var apiErr *client.Error
			if errors.As(err, &apiErr) && apiErr.Code == apiserver.CodeNotOwner {
				return false
			}
			if err != nil {
				t.Fatalf("submitting %s: %v", id, err)
			}
			return true
		})
	}
	submit(on1, t1, []client.Participant{{URL: a.url(), Payload: op("x", -1)}, {URL: b.url(), Payload: op("y", 1)}})
	submit(on2, t2, []client.Participant{{URL: b.url(), Payload: op("y", -1)}, {URL: a.url(), Payload: op("x", 1)}})
	final := func(n *cnode, id string) client.View {
		var v client.View
		eventually(t, id+" decided", func() bool {
			var err error
			v, err = n.cli.Get(ctx, id)
			return err == nil && v.Final()
		})
		return v
	}
	v1, v2 := final(on1, t1), final(on2, t2)
	if v1.State != client.StateCommitted || v2.State != client.StateAborted || v2.AbortCause != coordinator.CauseDeadlock {
		t.Fatalf("t1 %s (%s: %s), t2 %s (%s: %s)", v1.State, v1.AbortCause, v1.Reason, v2.State, v2.AbortCause, v2.Reason)
	}
	if !strings.Contains(v2.Reason, "victim "+t2) || !strings.Contains(v2.Reason, t1) {
		t.Fatalf("t2's reason %q does not name the cycle %s, %s with victim %s", v2.Reason, t1, t2, t2)
	}
	if v1.Priority >= v2.Priority {
		t.Fatalf("t1 (begun first) has priority %d, t2 %d", v1.Priority, v2.Priority)
	}
	took := v2.DecidedAt.Sub(closedAt(t, a, b, t1, t2))
	sinceBegin := v2.DecidedAt.Sub(v2.BeganAt)
	t.Logf("across nodes (t1 on %s, t2 on %s, detector %s): closing prepare in -> victim's abort decided %v; t2 began -> aborted %v (prepare timeout %v)",
		on1.id, on2.id, det.id, took, sinceBegin, prepareTimeout)
	if sinceBegin >= 10*time.Second {
		t.Fatalf("t2 aborted %v after it began: the deadlock was not broken by the detector", sinceBegin)
	}
	eventually(t, "no bank has a wait or a prepared transaction", func() bool {
		sa, sb := a.p.Stats(), b.p.Stats()
		return sa.LockWaiting == 0 && sa.Prepared == 0 && sb.LockWaiting == 0 && sb.Prepared == 0
	})
	if got := det.metricValue(t, "dtc_deadlocks_total", "", ""); got != 1 {
		t.Errorf("detector %s: dtc_deadlocks_total %v, want 1", det.id, got)
	}
	if got := other.metricValue(t, "dtc_deadlocks_total", "", ""); got != 0 {
		t.Errorf("%s (not the detector): dtc_deadlocks_total %v, want 0", other.id, got)
	}
	if det.metricValue(t, "dtc_wait_reports_total", "result", "added") == 0 {
		t.Errorf("detector %s added no report to its graph", det.id)
	}
	if other.fwdOK(t) == 0 || other.metricValue(t, "dtc_wait_reports_total", "result", "added") != 0 {
		t.Errorf("%s kept reports instead of forwarding them to the detector", other.id)
	}
}

// When the detector's node dies, the owner of shard 0 after it starts with an empty
// graph that the participants' re-told reports fill again: a deadlock across the two
// surviving nodes, whose first wait was reported to the dead detector and whose closing
// wait forms after it died, is still broken long before its 30s deadline.
func TestClusterDeadlockAfterTheDetectorMoves(t *testing.T) {
	srv := etcdtest.Start(t)
	nodes := []*cnode{startClusterNode(t, srv, "xmv", "n1"), startClusterNode(t, srv, "xmv", "n2"), startClusterNode(t, srv, "xmv", "n3")}
	eventually(t, "every shard owned, three ways", func() bool {
		c, ok := ownedBy(nodes...)
		return c == clusterShards && ok && len(nodes[0].rt.Node().Owned()) > 0 &&
			len(nodes[1].rt.Node().Owned()) > 0 && len(nodes[2].rt.Node().Owned()) > 0
	})
	var det *cnode
	var rest []*cnode
	for _, n := range nodes {
		if n.rt.RunsShard(httpnet.DetectorShard) {
			det = n
		} else {
			rest = append(rest, n)
		}
	}
	if det == nil || len(rest) != 2 {
		t.Fatalf("no single owner of shard %d", httpnet.DetectorShard)
	}
	on1, on2 := rest[0], rest[1]
	// The banks report to on1, which survives.
	a := newLibBank(t, on1.url, locks.PolicyWait, map[string]int64{"x": 1000})
	b := newLibBank(t, on1.url, locks.PolicyWait, map[string]int64{"y": 1000})
	t1, t2 := idOwnedBy(t, on1, "mt1"), idOwnedBy(t, on2, "mt2")
	// T1 takes x at a; T2 takes y at b; T1 then waits for y at b. T2's prepare at a
	// (which closes the cycle) is held until the test lets it in.
	const gate = "gate"
	a.order.mu.Lock()
	a.order.after[t2] = gate
	a.order.mu.Unlock()
	b.order.mu.Lock()
	b.order.after[t1] = t2
	b.order.mu.Unlock()
	op := func(account string, amount int) json.RawMessage {
		return json.RawMessage(fmt.Sprintf(`{"ops":[{"account":%q,"amount":%d}]}`, account, amount))
	}
	ctx := context.Background()
	for _, s := range []struct {
		n     *cnode
		id    string
		parts []client.Participant
	}{
		{on1, t1, []client.Participant{{URL: a.url(), Payload: op("x", -1)}, {URL: b.url(), Payload: op("y", 1)}}},
		{on2, t2, []client.Participant{{URL: b.url(), Payload: op("y", -1)}, {URL: a.url(), Payload: op("x", 1)}}},
	} {
		if _, err := s.n.cli.SubmitAsync(ctx, client.Request{ID: s.id, PrepareTimeout: 30 * time.Second, Participants: s.parts}); err != nil {
			t.Fatalf("submitting %s: %v", s.id, err)
		}
	}
	eventually(t, "T1's wait at b reported to the detector", func() bool {
		return b.p.Stats().LockWaiting == 1 && det.metricValue(t, "dtc_wait_reports_total", "result", "added") > 0
	})
	det.kill()
	eventually(t, "shard 0 run by a surviving node", func() bool {
		return on1.rt.RunsShard(httpnet.DetectorShard) || on2.rt.RunsShard(httpnet.DetectorShard)
	})
	opened := time.Now()
	a.order.mu.Lock()
	close(a.order.ackedCh(gate))
	a.order.mu.Unlock()
	final := func(n *cnode, id string) client.View {
		var v client.View
		eventually(t, id+" decided", func() bool {
			var err error
			v, err = n.cli.Get(ctx, id)
			return err == nil && v.Final()
		})
		return v
	}
	v1, v2 := final(on1, t1), final(on2, t2)
	if v1.State != client.StateCommitted || v2.State != client.StateAborted || v2.AbortCause != coordinator.CauseDeadlock {
		t.Fatalf("t1 %s (%s: %s), t2 %s (%s: %s)", v1.State, v1.AbortCause, v1.Reason, v2.State, v2.AbortCause, v2.Reason)
	}
	took := v2.DecidedAt.Sub(opened)
	t.Logf("detector %s killed; the cycle closed after shard 0 moved; closing prepare let in -> victim's abort decided %v", det.id, took)
	if took >= 10*time.Second {
		t.Fatalf("t2 aborted %v after the cycle closed: not broken by the new detector", took)
	}
	eventually(t, "no bank has a wait or a prepared transaction", func() bool {
		sa, sb := a.p.Stats(), b.p.Stats()
		return sa.LockWaiting == 0 && sa.Prepared == 0 && sb.LockWaiting == 0 && sb.Prepared == 0
	})
}
