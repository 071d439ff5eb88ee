package httpnet_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/dtc-project/dtc/client"
	"github.com/dtc-project/dtc/httpnet"
	"github.com/dtc-project/dtc/httpnet/apiserver"
	"github.com/dtc-project/dtc/internal/etcdtest"
)

func clusterStats(t *testing.T, n *cnode) httpnet.StatsResponse {
	t.Helper()
	st, body := get(t, n.url+"/v1/stats")
	var s httpnet.StatsResponse
	if err := json.Unmarshal([]byte(body), &s); st != 200 || err != nil || s.Cluster == nil {
		t.Fatalf("GET /v1/stats of %s: %d %v %s", n.id, st, err, body)
	}
	return s
}

func shardList(l []int) string {
	if len(l) == 0 {
		return "none"
	}
	s := make([]string, len(l))
	for i, n := range l {
		s[i] = fmt.Sprint(n)
	}
	return strings.Join(s, ", ")
}

// The admin page of a cluster node: /v1/stats names the node and lists every node with
// the shards it owns and its lease time; the page says whose counts it shows, links to
// the other nodes' pages, and its transaction list covers the whole cluster.
func TestClusterAdminPage(t *testing.T) {
	ctx, consoleErrs := browser(t)
	srv := etcdtest.Start(t)
	valid := func(h http.Handler) http.Handler { return validated(t, h) }
	var nodes []*cnode
	for _, id := range []string{"n1", "n2", "n3"} {
		nodes = append(nodes, startClusterNodeWith(t, srv, "ui", id, "", apiserver.ClusterHandlerOptions{}, valid))
	}
	eventually(t, "every shard owned, three ways", func() bool {
		c, ok := ownedBy(nodes...)
		return c == clusterShards && ok && len(nodes[0].rt.Node().Owned()) >= clusterShards/3 &&
			len(nodes[1].rt.Node().Owned()) >= clusterShards/3 && len(nodes[2].rt.Node().Owned()) >= clusterShards/3
	})
	a, b := twoBanks(t)
	var ids []string
	for i := range 6 {
		id := fmt.Sprintf("ui-%d", i)
		eventually(t, "submitted "+id, func() bool {
			_, err := nodes[i%3].cli.Submit(context.Background(), client.Request{ID: id, Participants: transfer(a, b, 1)})
			return err == nil
		})
		ids = append(ids, id)
	}

	// The JSON the page draws from.
	eventually(t, "n1's stats list every node with the shards it owns", func() bool {
		c := clusterStats(t, nodes[0]).Cluster
		if c.NodeID != "n1" || c.Name != "ui" || c.Shards != clusterShards || len(c.Nodes) != 3 || len(c.Unowned) != 0 ||
			!slices.Equal(c.Owned, nodes[0].rt.Node().Owned()) {
			return false
		}
		for i, n := range c.Nodes {
			if n.ID != nodes[i].id || n.Addr != nodes[i].url || !slices.Equal(n.Shards, nodes[i].rt.Node().Owned()) ||
				n.LeaseLeftSeconds == nil || *n.LeaseLeftSeconds <= 0 {
				return false
			}
		}
		return true
	})

	// The page: whose counts, the other nodes' pages, the whole cluster's list.
	run(t, ctx, "opening n1's page", chromedp.Navigate(nodes[0].url+"/ui/"))
	waitText(t, ctx, "#node", "the header names n1", func(s string) bool { return strings.HasPrefix(s, "node n1 of cluster ui") })
	waitText(t, ctx, "#cluster-scope", "the counts are said to be n1's", func(s string) bool {
		return strings.Contains(s, fmt.Sprintf("node n1's own (its %d of %d shards)", len(nodes[0].rt.Node().Owned()), clusterShards))
	})
	for _, n := range nodes {
		row := fmt.Sprintf(`#table-cluster tr[data-node=%q]`, n.id)
		waitText(t, ctx, row, n.id+"'s row", func(s string) bool {
			return strings.Contains(s, shardList(n.rt.Node().Owned())) && (n.id == "n1") == strings.Contains(s, "this page")
		})
		if n.id == "n1" {
			continue
		}
		var href string
		var ok bool
		run(t, ctx, "reading "+n.id+"'s link", chromedp.AttributeValue(row+" a", "href", &href, &ok, chromedp.ByQuery))
		if href != n.url+"/ui/" {
			t.Errorf("%s's link is %q, want %q", n.id, href, n.url+"/ui/")
		}
	}
	run(t, ctx, "opening the list", chromedp.Navigate(nodes[0].url+"/ui/#/list"))
	waitText(t, ctx, "#table-list tbody", "n1 lists every node's transactions", func(s string) bool {
		for _, id := range ids {
			if !strings.Contains(s, id) {
				return false
			}
		}
		return true
	})
	run(t, ctx, "following the link to n2", chromedp.Navigate(nodes[0].url+"/ui/"),
		chromedp.Click(`#table-cluster tr[data-node="n2"] a`, chromedp.ByQuery, chromedp.NodeVisible))
	waitText(t, ctx, "#node", "n2's page names n2", func(s string) bool { return strings.HasPrefix(s, "node n2 of cluster ui") })
	if errs := consoleErrs(); len(errs) > 0 {
		t.Errorf("the page logged errors:\n%s", strings.Join(errs, "\n"))
	}
}
