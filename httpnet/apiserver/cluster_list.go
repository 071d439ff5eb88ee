package apiserver

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/dtc-project/dtc/coordinator"
)

// GET /v1/transactions on a cluster node lists the whole cluster: the node answers for
// its own shards and asks every other owner, once and in parallel (the request marked
// forwarded, so the owner answers for its shards only), within the fan-out timeout.
// The pages are merged by id. A node that does not answer, and a shard that has no
// owner right now, are named in the answer (partial, unreachable): a listing never
// leaves part of the cluster out silently.

// ListUnreachable is a part of the cluster a listing could not cover.
type ListUnreachable struct {
	// Node is the owner that did not answer; empty for shards that had no owner.
	Node string `json:"node,omitempty"`
	// Addr is the API address the node was asked at.
	Addr string `json:"addr,omitempty"`
	// Shards are the shards left out.
	Shards []int `json:"shards"`
	// Error says why, for people.
	Error string `json:"error"`
}

// nodePage is the answer of one node to a listing.
type nodePage struct {
	node  string
	addr  string
	page  ListResponse
	err   error
	shard []int
}

// mergeListPages merges pages that each list, in id order, the first limit
// transactions after the same cursor on a disjoint part of the cluster: the answer is
// the first limit of their union, in id order, and a cursor when any page had more or
// the union was cut. A transaction listed twice (its shard moved between two answers)
// is kept once, as the first page in the order given lists it.
func mergeListPages(pages []ListResponse, limit int) ListResponse {
	var all []coordinator.View
	more := false
	for _, p := range pages {
		all = append(all, p.Transactions...)
		more = more || p.Next != ""
	}
	slices.SortStableFunc(all, func(a, b coordinator.View) int { return strings.Compare(a.ID, b.ID) })
	all = slices.CompactFunc(all, func(a, b coordinator.View) bool { return a.ID == b.ID })
	if len(all) > limit {
		all, more = all[:limit], true
	}
	out := ListResponse{Transactions: all}
	if out.Transactions == nil {
		out.Transactions = []coordinator.View{}
	}
	if more && len(all) > 0 {
		out.Next = all[len(all)-1].ID
	}
	return out
}

// listCluster answers GET /v1/transactions for the whole cluster.
func (h *ClusterHandler) listCluster(w http.ResponseWriter, r *http.Request) {
	// This node's own shards first, through its API: it checks the query and the
	// caller's rights, and its refusal is the answer.
	rec := &bufferedResponse{header: http.Header{}}
	h.api.ServeHTTP(rec, r)
	switch rec.code {
	case 0:
		return // nothing was written: the client went away
	case http.StatusOK:
	default:
		rec.copyTo(w)
		return
	}
	var local ListResponse
	if err := json.Unmarshal(rec.body.Bytes(), &local); err != nil {
		h.api.fail(w, http.StatusInternalServerError, CodeInternal, "listing this node's shards: "+err.Error())
		return
	}
	limit := listLimitDefault
	if v := r.URL.Query().Get("limit"); v != "" {
		limit, _ = strconv.Atoi(v) // checked by the API above
	}

	// Every other shard, grouped by its owner as this node last saw the owners.
	node := h.rt.Node()
	byOwner := map[string]*nodePage{}
	var unowned []int
	for n := range node.Shards() {
		if h.rt.RunsShard(n) {
			continue
		}
		owner, addr, ok := node.OwnerAddr(n)
		if !ok || owner == h.rt.NodeID() {
			unowned = append(unowned, n) // no owner, or ours but not running yet
			continue
		}
		p := byOwner[owner]
		if p == nil {
			p = &nodePage{node: owner, addr: addr}
			byOwner[owner] = p
		}
		p.shard = append(p.shard, n)
	}
	remote := make([]*nodePage, 0, len(byOwner))
	for _, p := range byOwner {
		remote = append(remote, p)
	}
	slices.SortFunc(remote, func(a, b *nodePage) int { return strings.Compare(a.node, b.node) })

	ctx, cancel := context.WithTimeout(r.Context(), h.o.ListTimeout)
	defer cancel()
	var wg sync.WaitGroup
	for _, p := range remote {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p.page, p.err = h.askList(ctx, r, p.addr)
		}()
	}
	wg.Wait()
	if r.Context().Err() != nil {
		return // the client went away
	}

	pages := []ListResponse{local}
	var missing []ListUnreachable
	for _, p := range remote {
		if p.err != nil {
			h.forwarded.WithLabelValues("error").Inc()
			missing = append(missing, ListUnreachable{Node: p.node, Addr: p.addr, Shards: p.shard, Error: p.err.Error()})
			continue
		}
		h.forwarded.WithLabelValues("ok").Inc()
		pages = append(pages, p.page)
	}
	if len(unowned) > 0 {
		missing = append(missing, ListUnreachable{Shards: unowned,
			Error: "no node runs these shards right now (an owner died or they are moving): retry"})
	}
	out := mergeListPages(pages, limit)
	out.Partial = len(missing) > 0
	out.Unreachable = missing
	writeJSON(w, http.StatusOK, out)
}

// askList asks the node at addr for its own shards' page of the listing r asks for.
func (h *ClusterHandler) askList(ctx context.Context, r *http.Request, addr string) (ListResponse, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(addr, "/")+r.URL.RequestURI(), nil)
	if err != nil {
		return ListResponse{}, fmt.Errorf("bad address %q: %v", addr, err)
	}
	for _, k := range []string{"Accept", "Authorization"} {
		if v := r.Header.Get(k); v != "" {
			req.Header.Set(k, v)
		}
	}
	req.Header.Set(HeaderForwarded, h.rt.NodeID())
	resp, err := h.client.Do(req)
	if err != nil {
		return ListResponse{}, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, listBodyMax))
	if err != nil {
		return ListResponse{}, fmt.Errorf("reading its answer: %v", err)
	}
	if resp.StatusCode != http.StatusOK {
		var e ErrorBody
		if json.Unmarshal(body, &e) == nil && e.Error.Code != "" {
			return ListResponse{}, fmt.Errorf("answered %d %s: %s", resp.StatusCode, e.Error.Code, e.Error.Message)
		}
		return ListResponse{}, fmt.Errorf("answered %d", resp.StatusCode)
	}
	var page ListResponse
	if err := json.Unmarshal(body, &page); err != nil {
		return ListResponse{}, fmt.Errorf("its answer does not parse: %v", err)
	}
	return page, nil
}

// listBodyMax bounds a node's answer to a listing: ListLimitMax views, generously.
const listBodyMax = 64 << 20

// bufferedResponse keeps an answer in memory: this node's part of a listing.
type bufferedResponse struct {
	header http.Header
	code   int
	body   bytes.Buffer
}

func (b *bufferedResponse) Header() http.Header { return b.header }

func (b *bufferedResponse) WriteHeader(code int) {
	if b.code == 0 {
		b.code = code
	}
}

func (b *bufferedResponse) Write(p []byte) (int, error) {
	if b.code == 0 {
		b.code = http.StatusOK
	}
	return b.body.Write(p)
}

// copyTo writes the kept answer to w.
func (b *bufferedResponse) copyTo(w http.ResponseWriter) {
	for k, vs := range b.header {
		w.Header()[k] = vs
	}
	w.WriteHeader(b.code)
	_, _ = w.Write(b.body.Bytes())
}
