package httpnet_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dtc-project/dtc/client"
	"github.com/dtc-project/dtc/httpnet/apiserver"
	"github.com/dtc-project/dtc/internal/etcdtest"
)

// listAll pages through GET /v1/transactions at base, limit ids a page.
func listAll(t *testing.T, base string, limit int) (ids []string, last apiserver.ListResponse) {
	t.Helper()
	after := ""
	for range 100 {
		q := url.Values{"limit": {fmt.Sprint(limit)}}
		if after != "" {
			q.Set("after", after)
		}
		st, body := get(t, base+"/v1/transactions?"+q.Encode())
		var page apiserver.ListResponse
		if err := json.Unmarshal([]byte(body), &page); st != 200 || err != nil {
			t.Fatalf("list %s: %d %v %s", base, st, err, body)
		}
		for _, v := range page.Transactions {
			ids = append(ids, v.ID)
		}
		last = page
		if page.Next == "" {
			return ids, last
		}
		after = page.Next
	}
	t.Fatal("more than 100 pages")
	return nil, last
}

// A listing on any node covers the whole cluster, in id order across pages; a node
// that does not answer within the fan-out timeout is named in the answer with its
// shards, and the rest is still listed.
func TestClusterListsEveryNode(t *testing.T) {
	srv := etcdtest.Start(t)
	var hold atomic.Bool // n3 keeps listings asked by other nodes waiting
	holdLists := func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if hold.Load() && r.Method == http.MethodGet && r.URL.Path == "/v1/transactions" && r.Header.Get(apiserver.HeaderForwarded) != "" {
				<-r.Context().Done()
				return
			}
			h.ServeHTTP(w, r)
		})
	}
	ho := apiserver.ClusterHandlerOptions{ListTimeout: 2 * time.Second} // n2 answers well within it, however loaded the machine
	valid := func(h http.Handler) http.Handler { return validated(t, h) }
	nodes := []*cnode{
		startClusterNodeWith(t, srv, "lst", "n1", "", ho, valid),
		startClusterNodeWith(t, srv, "lst", "n2", "", ho, valid),
		startClusterNodeWith(t, srv, "lst", "n3", "", ho, func(h http.Handler) http.Handler { return holdLists(validated(t, h)) }),
	}
	eventually(t, "every shard owned, three ways", func() bool {
		c, ok := ownedBy(nodes...)
		return c == clusterShards && ok && len(nodes[0].rt.Node().Owned()) >= clusterShards/3 &&
			len(nodes[1].rt.Node().Owned()) >= clusterShards/3 && len(nodes[2].rt.Node().Owned()) >= clusterShards/3
	})
	a, b := twoBanks(t)
	var want []string
	for i := range 12 {
		id := fmt.Sprintf("lst-%02d", i)
		eventually(t, "submitted "+id, func() bool {
			_, err := nodes[i%3].cli.Submit(context.Background(), client.Request{ID: id, Participants: transfer(a, b, 1)})
			return err == nil
		})
		want = append(want, id)
	}
	for _, n := range nodes {
		eventually(t, "the listing on "+n.id+" covers the cluster", func() bool {
			ids, last := listAll(t, n.url, 5)
			return slices.Equal(ids, want) && !last.Partial && len(last.Unreachable) == 0
		})
	}

	if st, body := get(t, nodes[0].url+"/v1/transactions?limit=0"); st != http.StatusBadRequest {
		t.Fatalf("a bad limit: %d %s, want the API's 400", st, body)
	}

	// n3 does not answer: n1 lists the rest and names n3 and its shards.
	var onN3 []string
	for _, id := range want {
		req, _ := http.NewRequest(http.MethodGet, nodes[2].url+"/v1/transactions/"+id, nil)
		req.Header.Set(apiserver.HeaderForwarded, "test") // n3's own shards only
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			onN3 = append(onN3, id)
		}
	}
	hold.Store(true)
	ids, last := listAll(t, nodes[0].url, 100)
	if !last.Partial || len(last.Unreachable) != 1 || last.Unreachable[0].Node != "n3" ||
		!slices.Equal(last.Unreachable[0].Shards, nodes[2].rt.Node().Owned()) {
		t.Fatalf("with n3 silent the listing is not marked partial naming n3 and its shards %v: %+v", nodes[2].rt.Node().Owned(), last)
	}
	if wantRest := slices.DeleteFunc(slices.Clone(want), func(id string) bool { return slices.Contains(onN3, id) }); !slices.Equal(ids, wantRest) {
		t.Fatalf("with n3 silent: listed %v, want %v (n3 runs %v)", ids, wantRest, onN3)
	}
	if p, err := nodes[0].cli.List(context.Background(), client.ListOptions{}); err != nil || !p.Partial ||
		len(p.Unreachable) != 1 || p.Unreachable[0].Node != "n3" {
		t.Fatalf("the Go client's page does not say it is partial: %+v %v", p, err)
	}
	t.Logf("n3 runs %d of the 12; unreachable: %+v", len(onN3), last.Unreachable)
}
