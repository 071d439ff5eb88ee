package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/dtc-project/dtc/httpnet"
	"github.com/dtc-project/dtc/httpnet/apiserver"
	"github.com/dtc-project/dtc/internal/etcdrun"
	"github.com/dtc-project/dtc/protocol"
)

// EtcdOptions configure RunEtcdCluster: dtc's cluster mode against the single node
// over its local log, in one run, on this machine.
type EtcdOptions struct {
	// Nodes is the largest cluster measured: 1..Nodes nodes (default 3).
	Nodes int
	// Shards is the cluster's shard count (default 64, dtc serve's).
	Shards int
	// Concurrency is the clients in flight, spread over the nodes (default 32);
	// Duration how long each configuration is measured (default 5s).
	Concurrency int
	Duration    time.Duration
	// Kills is how many node deaths the takeover measure deals (default 20; 0 with
	// NoTakeover: none), in a cluster of Nodes nodes (at least 2) with TakeoverShards
	// shards (default 8) and LeaseTTL (default 2s, dtc serve's).
	Kills          int
	NoTakeover     bool
	TakeoverShards int
	LeaseTTL       time.Duration
	// Progress gets a line per step (nil: none).
	Progress io.Writer
}

func (o *EtcdOptions) setDefaults() {
	if o.Nodes == 0 {
		o.Nodes = 3
	}
	if o.Shards == 0 {
		o.Shards = 64
	}
	if o.Concurrency == 0 {
		o.Concurrency = 32
	}
	if o.Duration == 0 {
		o.Duration = 5 * time.Second
	}
	if o.Kills == 0 && !o.NoTakeover {
		o.Kills = 20
	}
	if o.NoTakeover {
		o.Kills = 0
	}
	if o.TakeoverShards == 0 {
		o.TakeoverShards = 8
	}
	if o.LeaseTTL == 0 {
		o.LeaseTTL = 2 * time.Second
	}
}

// Validate says which option is out of range.
func (o EtcdOptions) Validate() error {
	o.setDefaults()
	var errs []error
	if o.Nodes < 1 || o.Nodes > 9 {
		errs = append(errs, fmt.Errorf("nodes %d: must be 1..9", o.Nodes))
	}
	if o.Shards < 1 || o.Shards > 1024 || o.TakeoverShards < 1 || o.TakeoverShards > 1024 {
		errs = append(errs, errors.New("shards must be 1..1024"))
	}
	if o.Concurrency < 1 || o.Concurrency > 4096 {
		errs = append(errs, fmt.Errorf("concurrency %d: must be 1..4096", o.Concurrency))
	}
	if o.Duration < 100*time.Millisecond {
		errs = append(errs, fmt.Errorf("duration %v: at least 100ms", o.Duration))
	}
	if o.Kills < 0 || o.Kills > 1000 || (o.Kills > 0 && o.Nodes < 2) {
		errs = append(errs, fmt.Errorf("kills %d: 0..1000, and a takeover needs 2 nodes or more", o.Kills))
	}
	if o.LeaseTTL < time.Second || o.LeaseTTL%time.Second != 0 {
		errs = append(errs, fmt.Errorf("lease TTL %v: a whole number of seconds, at least 1s", o.LeaseTTL))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("bench: invalid cluster options: %w", err)
	}
	return nil
}

// EtcdResult is what RunEtcdCluster measured.
type EtcdResult struct {
	Options EtcdOptions `json:"options"`
	// LocalTPS is the single node over its local log; ClusterTPS[k] a cluster of k+1
	// nodes over etcd; Ratio[k] = ClusterTPS[k] / LocalTPS.
	LocalTPS   float64   `json:"local_tps"`
	ClusterTPS []float64 `json:"cluster_tps"`
	Ratio      []float64 `json:"cluster_to_local_ratio"`
	// Failed counts submissions that did not commit, over every configuration.
	Failed int64 `json:"failed"`
	// Takeover: from a node's abrupt death (no handoff, its lease left to expire) to
	// each of its shards answering again through another node, per shard; PerKill the
	// last of each kill's shards.
	Takeovers []time.Duration `json:"-"`
	PerKill   []time.Duration `json:"-"`
	Takeover  Percentiles     `json:"takeover_per_shard"`
	KillWorst Percentiles     `json:"takeover_per_kill"`
	Kills     int             `json:"kills"`
}

// Percentiles of a set of durations.
type Percentiles struct {
	N   int           `json:"n"`
	P50 time.Duration `json:"p50_ns"`
	P99 time.Duration `json:"p99_ns"`
	Max time.Duration `json:"max_ns"`
}

func percentiles(ds []time.Duration) Percentiles {
	if len(ds) == 0 {
		return Percentiles{}
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	at := func(p float64) time.Duration { return s[min(len(s)-1, int(p*float64(len(s))))] }
	return Percentiles{N: len(s), P50: at(0.5), P99: at(0.99), Max: s[len(s)-1]}
}

// RunEtcdCluster measures, in this process on 127.0.0.1: the throughput of the single
// node over its local log (a temporary directory), then of clusters of 1..Nodes nodes
// over one etcd embedded here, each transaction with two participants that answer at
// once without a disk (the coordinator's log is what is measured), clients submitting
// without ids round-robin over the nodes; then the takeover time over Kills node
// deaths. etcd, the nodes, the participants and the clients share this machine's cores.
func RunEtcdCluster(ctx context.Context, o EtcdOptions) (*EtcdResult, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	o.setDefaults()
	res := &EtcdResult{Options: o}
	progress := func(format string, args ...any) {
		if o.Progress != nil {
			fmt.Fprintf(o.Progress, format+"\n", args...)
		}
	}
	work, err := os.MkdirTemp("", "dtc-bench-cluster-")
	if err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	defer os.RemoveAll(work)
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	answer := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		switch r.URL.Path {
		case "/" + protocol.EndpointPrepare:
			_, _ = w.Write(protocol.VoteACKAnswer())
		case "/" + protocol.EndpointCommit:
			_, _ = w.Write(protocol.StateAnswer(protocol.StateCommitted))
		case "/" + protocol.EndpointRollback:
			_, _ = w.Write(protocol.StateAnswer(protocol.StateAborted))
		default:
			_, _ = w.Write(protocol.StateAnswer(protocol.StateUnknown))
		}
	})
	var parts []string
	for range 2 {
		s, err := startHTTP(answer)
		if err != nil {
			return nil, err
		}
		defer s.close()
		parts = append(parts, s.url)
	}
	body := []byte(fmt.Sprintf(`{"participants":["%s/prepare","%s/prepare"]}`, parts[0], parts[1]))
	var failed atomic.Int64
	load := func(urls []string) float64 {
		hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: o.Concurrency}, Timeout: 30 * time.Second}
		defer hc.CloseIdleConnections()
		var ok atomic.Int64
		var wg sync.WaitGroup
		end := time.Now().Add(o.Duration)
		for c := range o.Concurrency {
			wg.Go(func() {
				for i := 0; time.Now().Before(end) && ctx.Err() == nil; i++ {
					resp, err := hc.Post(urls[(c+i)%len(urls)]+"/v1/transactions", "application/json", bytes.NewReader(body))
					if err != nil {
						failed.Add(1)
						continue
					}
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode == http.StatusOK {
						ok.Add(1)
					} else {
						failed.Add(1)
					}
				}
			})
		}
		wg.Wait()
		return float64(ok.Load()) / o.Duration.Seconds()
	}

	// The single node over its local log.
	{
		n, err := startNode(ctx, httpnet.Options{DataDir: work + "/local", Logger: quiet}, nil)
		if err != nil {
			return nil, err
		}
		res.LocalTPS = load([]string{n.url})
		n.stop(false)
		progress("local log, 1 node: %.0f txn/s", res.LocalTPS)
	}

	etcd, err := etcdrun.Start(ctx, work+"/etcd")
	if err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	defer etcd.Close()
	newNode := func(cluster, id string, shards int, ttl time.Duration) (*benchNode, error) {
		ec, err := clientv3.New(clientv3.Config{Endpoints: []string{etcd.Endpoint}, DialTimeout: 10 * time.Second, Logger: zap.NewNop()})
		if err != nil {
			return nil, fmt.Errorf("bench: %w", err)
		}
		return startNode(ctx, httpnet.Options{Logger: quiet,
			Cluster: &httpnet.ClusterOptions{Client: ec, Name: cluster, NodeID: id, Shards: shards, LeaseTTL: ttl}}, ec)
	}
	balanced := func(nodes []*benchNode, shards int) error {
		return waitFor(ctx, time.Minute, "the shards balanced over the nodes", func() bool {
			total := 0
			for _, n := range nodes {
				owned := len(n.rt.Node().Owned())
				// Balancing leaves each node ceil(shards/nodes) at most, and may settle
				// one short of the floor of it.
				if owned < shards/len(nodes)-1 || !n.rt.Ready() {
					return false
				}
				total += owned
			}
			return total == shards
		})
	}
	for k := 1; k <= o.Nodes; k++ {
		var nodes []*benchNode
		var urls []string
		for i := range k {
			n, err := newNode(fmt.Sprintf("bench%d", k), fmt.Sprintf("n%d", i+1), o.Shards, 2*time.Second)
			if err != nil {
				return nil, err
			}
			defer n.stop(false)
			nodes = append(nodes, n)
			urls = append(urls, n.url)
		}
		if err := balanced(nodes, o.Shards); err != nil {
			return nil, err
		}
		tps := load(urls)
		res.ClusterTPS = append(res.ClusterTPS, tps)
		res.Ratio = append(res.Ratio, tps/res.LocalTPS)
		progress("cluster of %d node(s) over etcd, %d shards: %.0f txn/s (%.0f %% of the local log)", k, o.Shards, tps, 100*tps/res.LocalTPS)
		for _, n := range nodes {
			n.stop(false)
		}
	}
	res.Failed = failed.Load()
	if o.Kills == 0 {
		return res, nil
	}

	// Takeover: an id of every shard; a GET of it answers 404 once its owner runs it.
	shards := o.TakeoverShards
	ids := make([]string, shards)
	for i, found := 0, 0; found < shards; i++ {
		id := fmt.Sprintf("probe-%d", i)
		if n := httpnet.ShardOf(id, shards); ids[n] == "" {
			ids[n], found = id, found+1
		}
	}
	probe := &http.Client{Timeout: time.Second}
	served := func(via *benchNode, sh int) bool {
		resp, err := probe.Get(via.url + "/v1/transactions/" + ids[sh])
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusNotFound
	}
	nodes := make([]*benchNode, o.Nodes)
	for i := range nodes {
		if nodes[i], err = newNode("takeover", fmt.Sprintf("n%d", i+1), shards, o.LeaseTTL); err != nil {
			return nil, err
		}
	}
	defer func() {
		for _, n := range nodes {
			n.stop(false)
		}
	}()
	for k := range o.Kills {
		if err := balanced(nodes, shards); err != nil {
			return nil, err
		}
		v := k % len(nodes)
		victim := nodes[v]
		lost := victim.rt.Node().Owned()
		via := nodes[(v+1)%len(nodes)]
		t0 := time.Now()
		victim.stop(true)
		pending := slices.Clone(lost)
		var worst time.Duration
		err := waitFor(ctx, time.Minute, fmt.Sprintf("kill %d: shards %v served again", k+1, lost), func() bool {
			next := pending[:0]
			for _, sh := range pending {
				if served(via, sh) {
					d := time.Since(t0)
					res.Takeovers = append(res.Takeovers, d)
					worst = max(worst, d)
				} else {
					next = append(next, sh)
				}
			}
			pending = next
			return len(pending) == 0
		})
		if err != nil {
			return nil, err
		}
		res.PerKill = append(res.PerKill, worst)
		progress("kill %d of %d (%s, %d shards): its last shard answered again after %v", k+1, o.Kills, fmt.Sprintf("n%d", v+1), len(lost), worst.Round(time.Millisecond))
		if nodes[v], err = newNode("takeover", fmt.Sprintf("n%d-%d", v+1, k+1), shards, o.LeaseTTL); err != nil {
			return nil, err
		}
	}
	res.Kills = o.Kills
	res.Takeover, res.KillWorst = percentiles(res.Takeovers), percentiles(res.PerKill)
	return res, nil
}

// benchNode is one runtime serving dtc's API (a cluster node's, with forwarding, when
// it has an etcd client).
type benchNode struct {
	rt   *httpnet.Runtime
	ec   *clientv3.Client
	srv  *httpServer
	url  string
	once sync.Once
}

func startNode(ctx context.Context, o httpnet.Options, ec *clientv3.Client) (*benchNode, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	url := "http://" + ln.Addr().String()
	o.Transport.AdvertiseURL = url
	if o.Cluster != nil {
		o.Cluster.APIAddr = url
	}
	rt, err := httpnet.Open(o)
	if err != nil {
		ln.Close()
		return nil, fmt.Errorf("bench: %w", err)
	}
	api := apiserver.NewServer(rt, apiserver.ServerOptions{})
	var h http.Handler = api
	if ec != nil {
		h = apiserver.NewClusterHandler(rt, api, apiserver.ClusterHandlerOptions{})
	}
	n := &benchNode{rt: rt, ec: ec, srv: serveOn(ln, h), url: url}
	if ec == nil {
		if err := waitFor(ctx, time.Minute, "the local node ready", rt.Ready); err != nil {
			n.stop(false)
			return nil, err
		}
	}
	return n, nil
}

// stop closes the node; with crash, as an abrupt death: no handoff, its lease left to
// expire.
func (n *benchNode) stop(crash bool) {
	n.once.Do(func() {
		n.srv.close()
		if crash {
			n.rt.Crash()
		}
		_ = n.rt.Close()
		if n.ec != nil {
			_ = n.ec.Close()
		}
	})
}

// waitFor polls cond every 5ms until it holds; d guards against a hang.
func waitFor(ctx context.Context, d time.Duration, what string, cond func() bool) error {
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			return fmt.Errorf("bench: %s: not within %v", what, d)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
	}
	return nil
}
