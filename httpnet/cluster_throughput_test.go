package httpnet_test

import (
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/dtc-project/dtc/httpnet"
	"github.com/dtc-project/dtc/httpnet/apiserver"
	"github.com/dtc-project/dtc/internal/etcdtest"
)

// TestMeasureClusterThroughput measures (when DTC_MEASURE_THROUGHPUT is set; skipped
// otherwise) transactions per second of a cluster of 1, 2 and 3 in-process nodes over
// one embedded etcd, against the single node over its local log, in the same run.
// Everything (etcd, nodes, participants, client) shares this machine's cores. The
// participants answer at once without a disk (so the coordinator's log is what is
// measured); each transaction has two of them; 32 clients submit without ids, spread
// over the nodes round-robin. It prints the figures and asserts nothing about them.
func TestMeasureClusterThroughput(t *testing.T) {
	if os.Getenv("DTC_MEASURE_THROUGHPUT") == "" {
		t.Skip("set DTC_MEASURE_THROUGHPUT=1 to measure cluster throughput")
	}
	answer := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		switch r.URL.Path {
		case "/prepare":
			_, _ = io.WriteString(w, `{"vote":"ACK"}`)
		case "/commit":
			_, _ = io.WriteString(w, `{"state":"committed"}`)
		case "/rollback":
			_, _ = io.WriteString(w, `{"state":"aborted"}`)
		default:
			_, _ = io.WriteString(w, `{"state":"unknown"}`)
		}
	})
	p1, p2 := httptest.NewServer(answer), httptest.NewServer(answer)
	defer p1.Close()
	defer p2.Close()
	body := []byte(fmt.Sprintf(`{"participants":["%s/prepare","%s/prepare"]}`, p1.URL, p2.URL))
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	const (
		clients  = 32
		duration = 3 * time.Second
	)
	run := func(urls []string) float64 {
		hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: clients}}
		var ok, bad atomic.Int64
		var wg sync.WaitGroup
		end := time.Now().Add(duration)
		for c := range clients {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; time.Now().Before(end); i++ {
					resp, err := hc.Post(urls[(c+i)%len(urls)]+"/v1/transactions", "application/json", bytes.NewReader(body))
					if err != nil {
						continue
					}
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode == http.StatusOK {
						ok.Add(1)
					} else if bad.Add(1) == 1 {
						t.Logf("first failure: HTTP %d", resp.StatusCode)
					}
				}
			}()
		}
		wg.Wait()
		return float64(ok.Load()) / duration.Seconds()
	}

	// The single node over its local log.
	{
		srv := httptest.NewUnstartedServer(nil)
		url := "http://" + srv.Listener.Addr().String()
		o := httpnet.Options{DataDir: t.TempDir(), Logger: quiet}
		o.Transport.AdvertiseURL = url
		rt, err := httpnet.Open(o)
		if err != nil {
			t.Fatal(err)
		}
		srv.Config.Handler = apiserver.NewServer(rt, apiserver.ServerOptions{})
		srv.Start()
		waitUntil(t, "ready", rt.Ready)
		t.Logf("local log, 1 node: %.0f txn/s", run([]string{url}))
		srv.Close()
		_ = rt.Close()
	}

	etcd := etcdtest.Start(t)
	for n := 1; n <= 3; n++ {
		name := fmt.Sprintf("tp%d", n)
		var urls []string
		var stops []func()
		var rts []*httpnet.Runtime
		for i := range n {
			ec, err := clientv3.New(clientv3.Config{Endpoints: []string{etcd.Endpoint}, DialTimeout: 10 * time.Second})
			if err != nil {
				t.Fatal(err)
			}
			srv := httptest.NewUnstartedServer(nil)
			url := "http://" + srv.Listener.Addr().String()
			o := httpnet.Options{Logger: quiet, Cluster: &httpnet.ClusterOptions{Client: ec, Name: name, NodeID: fmt.Sprintf("n%d", i), APIAddr: url}}
			o.Transport.AdvertiseURL = url
			rt, err := httpnet.Open(o)
			if err != nil {
				t.Fatal(err)
			}
			srv.Config.Handler = apiserver.NewClusterHandler(rt, apiserver.NewServer(rt, apiserver.ServerOptions{}), apiserver.ClusterHandlerOptions{})
			srv.Start()
			urls = append(urls, url)
			rts = append(rts, rt)
			stops = append(stops, func() { srv.Close(); _ = rt.Close(); _ = ec.Close() })
		}
		waitUntil(t, "balanced", func() bool {
			total := 0
			for _, rt := range rts {
				o := len(rt.Node().Owned())
				if o < 64/n-1 {
					return false
				}
				total += o
			}
			return total == 64
		})
		t.Logf("cluster, %d node(s), 64 shards: %.0f txn/s", n, run(urls))
		for _, s := range stops {
			s()
		}
	}
}
