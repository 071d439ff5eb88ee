package apiserver

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/dtc-project/dtc/httpnet"
)

// HeaderForwarded marks a request one node forwarded to another (its value is the
// forwarding node's id). A node never forwards such a request again: one hop at most,
// so a stale view of the owners cannot make a loop.
const HeaderForwarded = "Dtc-Forwarded-By"

// CodeNotOwner is the API's code (503) for a request about a shard this node does not
// run and could not forward.
const CodeNotOwner = "not_owner"

// ClusterHandlerOptions configure NewClusterHandler. Zero values mean the defaults.
type ClusterHandlerOptions struct {
	// ForwardTimeout bounds a forwarded request, answer included. It must cover a
	// submission that waits for its decision: the prepare timeout and some. Default 60s.
	ForwardTimeout time.Duration
	// BodyMaxBytes bounds the body read to find a transaction's id; a larger one goes
	// to the API, which refuses it (413). Default 4 MiB, as ServerOptions.
	BodyMaxBytes int64
	// ListTimeout bounds the other nodes' answers to a cluster-wide listing
	// (GET /v1/transactions); a node that has not answered by then is named in the
	// listing as unreachable. Default 5s.
	ListTimeout time.Duration
}

// ClusterHandler is the API of a cluster node: requests about a transaction whose
// shard this node runs go to its Server; the others are forwarded to the shard's owner
// (one hop, with a timeout). A submission without an id is always served here (the
// runtime draws an id of a local shard) unless the node runs no shard. A listing
// (GET /v1/transactions) asks every owner and merges their pages (cluster_list.go).
type ClusterHandler struct {
	rt        *httpnet.Runtime
	api       *Server
	o         ClusterHandlerOptions
	client    *http.Client
	forwarded *prometheus.CounterVec // result: ok, error, refused
}

// NewClusterHandler wraps api, the Server of rt, a runtime opened with Options.Cluster.
func NewClusterHandler(rt *httpnet.Runtime, api *Server, o ClusterHandlerOptions) *ClusterHandler {
	if rt.Node() == nil {
		panic("httpnet: NewClusterHandler needs a runtime opened with Options.Cluster")
	}
	if o.ForwardTimeout <= 0 {
		o.ForwardTimeout = 60 * time.Second
	}
	if o.BodyMaxBytes <= 0 {
		o.BodyMaxBytes = 4 << 20
	}
	if o.ListTimeout <= 0 {
		o.ListTimeout = 5 * time.Second
	}
	h := &ClusterHandler{
		rt: rt, api: api, o: o,
		client: &http.Client{Timeout: o.ForwardTimeout},
		forwarded: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "dtc_cluster_forwarded_requests_total",
			Help: "API requests forwarded to the node that owns their shard, by result: ok (an answer came back), error (the owner did not answer), refused (no owner known, or the request had been forwarded once already). A cluster-wide listing counts once per node it asks; the deadlock detector counts each lookup or abort of another node's transaction; a wait report counts when it goes to the detector on another node.",
		}, []string{"result"}),
	}
	rt.Metrics().Registry().MustRegister(h.forwarded)
	rt.SetRemoteTxns(h)
	return h
}

// ServeHTTP routes by the transaction's shard.
func (h *ClusterHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch {
	case r.URL.Path == "/v1/transactions" && r.Method == http.MethodPost:
		body, err := io.ReadAll(io.LimitReader(r.Body, h.o.BodyMaxBytes+1))
		if err != nil {
			h.api.fail(w, http.StatusBadRequest, CodeMalformedJSON, "reading the body: "+err.Error())
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		var idOnly struct {
			ID string `json:"id"`
		}
		if int64(len(body)) > h.o.BodyMaxBytes || json.Unmarshal(body, &idOnly) != nil {
			h.api.ServeHTTP(w, r) // the API says what is wrong with it
			return
		}
		if idOnly.ID == "" {
			if len(h.rt.Node().Owned()) > 0 || r.Header.Get(HeaderForwarded) != "" {
				h.api.ServeHTTP(w, r)
				return
			}
			id := httpnet.NewTxnID() // no shard here: forward to the owner of a random one
			h.forward(w, r, body, h.rt.ClusterShardOf(id))
			return
		}
		h.route(w, r, body, idOnly.ID)
	case r.URL.Path == "/v1/transactions" && r.Method == http.MethodGet && r.Header.Get(HeaderForwarded) == "":
		h.listCluster(w, r) // a forwarded listing is answered for this node's shards only
	case r.URL.Path == "/v1/waits" && r.Method == http.MethodPost:
		// One node keeps the cluster's wait-for graph (cluster_deadlock.go).
		body, err := io.ReadAll(io.LimitReader(r.Body, h.o.BodyMaxBytes+1))
		if err != nil {
			h.api.fail(w, http.StatusBadRequest, CodeMalformedJSON, "reading the body: "+err.Error())
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		var rep httpnet.WaitReport
		if int64(len(body)) > h.o.BodyMaxBytes || json.Unmarshal(body, &rep) != nil || rep.Waiter == "" || len(rep.Waiter) > 1024 {
			h.api.ServeHTTP(w, r)
			return
		}
		h.serveWaits(w, r, body)
	case strings.HasPrefix(r.URL.Path, "/v1/transactions/") && strings.HasSuffix(r.URL.Path, "/abort") && r.Method == http.MethodPost:
		id := strings.TrimSuffix(strings.TrimPrefix(r.URL.Path, "/v1/transactions/"), "/abort")
		if id == "" || strings.Contains(id, "/") || len(id) > 1024 {
			h.api.ServeHTTP(w, r)
			return
		}
		body, err := io.ReadAll(io.LimitReader(r.Body, h.o.BodyMaxBytes+1))
		if err != nil {
			h.api.fail(w, http.StatusBadRequest, CodeMalformedJSON, "reading the body: "+err.Error())
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		h.route(w, r, body, id)
	case strings.HasPrefix(r.URL.Path, "/v1/transactions/") && (r.Method == http.MethodGet || r.Method == http.MethodHead):
		id := strings.TrimPrefix(r.URL.Path, "/v1/transactions/")
		if id == "" || strings.Contains(id, "/") || len(id) > 1024 {
			h.api.ServeHTTP(w, r)
			return
		}
		h.route(w, r, nil, id)
	default:
		h.api.ServeHTTP(w, r)
	}
}

func (h *ClusterHandler) route(w http.ResponseWriter, r *http.Request, body []byte, id string) {
	n := h.rt.ClusterShardOf(id)
	if h.rt.RunsShard(n) {
		h.api.ServeHTTP(w, r)
		return
	}
	h.forward(w, r, body, n)
}

// forward sends r to the owner of shard n and copies its answer back.
func (h *ClusterHandler) forward(w http.ResponseWriter, r *http.Request, body []byte, n int) {
	refuse := func(msg string) {
		h.forwarded.WithLabelValues("refused").Inc()
		w.Header().Set("Retry-After", h.api.retryAfter())
		h.api.fail(w, http.StatusServiceUnavailable, CodeNotOwner, msg)
	}
	if by := r.Header.Get(HeaderForwarded); by != "" {
		refuse(fmt.Sprintf("shard %d is not run by node %s (the request was forwarded by %s, and is not forwarded twice): retry", n, h.rt.NodeID(), by))
		return
	}
	owner, addr, ok := h.rt.Node().OwnerAddr(n)
	if !ok || owner == h.rt.NodeID() {
		refuse(fmt.Sprintf("shard %d has no owner that answers right now (its owner died or it is moving): retry", n))
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), h.o.ForwardTimeout)
	defer cancel()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, r.Method, strings.TrimSuffix(addr, "/")+r.URL.RequestURI(), rd)
	if err != nil {
		refuse(fmt.Sprintf("shard %d's owner %s has a bad address %q: %v", n, owner, addr, err))
		return
	}
	for _, k := range []string{"Content-Type", "Accept", "Authorization", HeaderAbortCause} {
		if v := r.Header.Get(k); v != "" {
			req.Header.Set(k, v)
		}
	}
	req.Header.Set(HeaderForwarded, h.rt.NodeID())
	resp, err := h.client.Do(req)
	if err != nil {
		h.forwarded.WithLabelValues("error").Inc()
		w.Header().Set("Retry-After", h.api.retryAfter())
		h.api.fail(w, http.StatusServiceUnavailable, CodeNotOwner,
			fmt.Sprintf("shard %d's owner %s did not answer: %v", n, owner, err))
		return
	}
	defer resp.Body.Close()
	h.forwarded.WithLabelValues("ok").Inc()
	for _, k := range []string{"Content-Type", "Retry-After", "Location"} {
		if v := resp.Header.Get(k); v != "" {
			w.Header().Set(k, v)
		}
	}
	w.WriteHeader(resp.StatusCode)
	_, _ = io.Copy(w, resp.Body)
}
