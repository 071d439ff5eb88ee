package httpnet_test

import (
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strconv"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/dtc-project/dtc/httpnet"
	"github.com/dtc-project/dtc/httpnet/apiserver"
	"github.com/dtc-project/dtc/internal/etcdtest"
)

// TestMeasureClusterTakeover measures, over DTC_MEASURE_TAKEOVER kills (skipped when
// unset), the time from the abrupt death of a node (Runtime.Crash: no handoff, its
// lease left to expire) to each of its shards answering again through another node:
// GET /v1/transactions/{id} of an id of that shard answers 404 (its new owner has
// replayed the shard's log and runs it) instead of 503. It asserts nothing about the
// durations: it prints them. Three nodes, 8 shards, LEASE_TTL from
// DTC_MEASURE_LEASE_TTL (default 2s, the daemon's default).
func TestMeasureClusterTakeover(t *testing.T) {
	kills, _ := strconv.Atoi(os.Getenv("DTC_MEASURE_TAKEOVER"))
	if kills <= 0 {
		t.Skip("set DTC_MEASURE_TAKEOVER=<kills> to measure takeover times")
	}
	ttl := 2 * time.Second
	if v := os.Getenv("DTC_MEASURE_LEASE_TTL"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			t.Fatal(err)
		}
		ttl = d
	}
	srv := etcdtest.Start(t)
	const shards = 8
	ids := make([]string, shards) // an id of each shard
	for i, found := 0, 0; found < shards; i++ {
		id := fmt.Sprintf("probe-%d", i)
		if n := httpnet.ShardOf(id, shards); ids[n] == "" {
			ids[n], found = id, found+1
		}
	}
	type mnode struct {
		rt  *httpnet.Runtime
		srv *httptest.Server
		ec  *clientv3.Client
	}
	start := func(id string) *mnode {
		ec, err := clientv3.New(clientv3.Config{Endpoints: []string{srv.Endpoint}, DialTimeout: 10 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		m := &mnode{ec: ec}
		m.srv = httptest.NewUnstartedServer(nil)
		url := "http://" + m.srv.Listener.Addr().String()
		o := httpnet.Options{
			Logger:  slog.New(slog.NewTextHandler(io.Discard, nil)),
			Cluster: &httpnet.ClusterOptions{Client: ec, Name: "measure", NodeID: id, APIAddr: url, Shards: shards, LeaseTTL: ttl},
		}
		o.Transport.AdvertiseURL = url
		if m.rt, err = httpnet.Open(o); err != nil {
			t.Fatal(err)
		}
		m.srv.Config.Handler = apiserver.NewClusterHandler(m.rt, apiserver.NewServer(m.rt, apiserver.ServerOptions{}), apiserver.ClusterHandlerOptions{})
		m.srv.Start()
		return m
	}
	stop := func(m *mnode, crash bool) {
		m.srv.CloseClientConnections()
		m.srv.Close()
		if crash {
			m.rt.Crash()
		}
		_ = m.rt.Close()
		_ = m.ec.Close()
	}
	nodes := []*mnode{start("n0"), start("n1"), start("n2")}
	defer func() {
		for _, m := range nodes {
			stop(m, false)
		}
	}()
	served := func(via *mnode, sh int) bool {
		resp, err := http.Get(via.srv.URL + "/v1/transactions/" + ids[sh])
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusNotFound
	}
	balanced := func() bool {
		total := 0
		for _, m := range nodes {
			o := len(m.rt.Node().Owned())
			if o < shards/len(nodes) {
				return false
			}
			total += o
		}
		return total == shards
	}
	var all, perKill []time.Duration
	for k := range kills {
		waitUntil(t, "balanced", balanced)
		v := k % len(nodes)
		victim := nodes[v]
		lost := victim.rt.Node().Owned()
		via := nodes[(v+1)%len(nodes)]
		t0 := time.Now()
		stop(victim, true)
		pending := slices.Clone(lost)
		var worst time.Duration
		for len(pending) > 0 {
			if time.Since(t0) > time.Minute {
				t.Fatalf("kill %d: shards %v not served after a minute", k, pending)
			}
			next := pending[:0]
			for _, sh := range pending {
				if served(via, sh) {
					d := time.Since(t0)
					all = append(all, d)
					worst = max(worst, d)
				} else {
					next = append(next, sh)
				}
			}
			pending = next
			time.Sleep(5 * time.Millisecond)
		}
		perKill = append(perKill, worst)
		nodes[v] = start(fmt.Sprintf("n%d-%d", v, k+1))
	}
	pct := func(ds []time.Duration, p float64) time.Duration {
		s := slices.Clone(ds)
		slices.Sort(s)
		return s[min(len(s)-1, int(p*float64(len(s))))]
	}
	t.Logf("lease TTL %v, %d kills, %d shard takeovers", ttl, kills, len(all))
	t.Logf("per shard:  p50 %v  p99 %v  max %v", pct(all, 0.5).Round(time.Millisecond), pct(all, 0.99).Round(time.Millisecond), pct(all, 1).Round(time.Millisecond))
	t.Logf("per kill (its last shard): p50 %v  p99 %v  max %v", pct(perKill, 0.5).Round(time.Millisecond), pct(perKill, 0.99).Round(time.Millisecond), pct(perKill, 1).Round(time.Millisecond))
}

// waitUntil polls cond; the deadline guards against a hang.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
