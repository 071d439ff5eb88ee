package chaosreal

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/dtc-project/dtc/cluster"
	"github.com/dtc-project/dtc/internal/etcdrun"
)

// PauseResult is one SIGSTOP of a cluster node (Options.Cluster) and what the node's
// counters said after it was resumed.
type PauseResult struct {
	Node string        `json:"node"`
	At   int64         `json:"at"` // Unix ns of the SIGSTOP
	For  time.Duration `json:"for"`
	// FencedWrites is how many log writes etcd refused the node after the resume
	// (dtc_cluster_fenced_writes_total, after minus before): the zombie tried to write
	// to shards it no longer owned, and wrote nothing. LeasesLost is how many times it
	// found its lease lost (dtc_cluster_leases_lost_total, after minus before).
	FencedWrites int    `json:"fenced_writes"`
	LeasesLost   int    `json:"leases_lost"`
	Error        string `json:"error,omitempty"` // why the counters could not be read
}

// setupCluster starts etcd (unless EtcdEndpoints) and defines the nodes n1..nN of a
// cluster of a name of its own, one listening on each of addrs.
func (c *campaign) setupCluster(ctx context.Context, bins Binaries, work string, addrs, common []string) error {
	o := c.o
	eps := o.EtcdEndpoints
	if len(eps) == 0 {
		s, err := etcdrun.Start(ctx, filepath.Join(work, "etcd"))
		if err != nil {
			return fmt.Errorf("chaosreal: %w", err)
		}
		c.etcd = s
		eps = []string{s.Endpoint}
	}
	ec, err := clientv3.New(clientv3.Config{Endpoints: eps, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		return fmt.Errorf("chaosreal: connecting to etcd at %v: %w", eps, err)
	}
	c.etcdc = ec
	// A name of its own, so that a campaign against an etcd of the user's finds no
	// earlier campaign's shards.
	c.clusterName = fmt.Sprintf("chaos-%d-%d", o.Seed, time.Now().UnixNano()%1_000_000_000)
	for i, addr := range addrs {
		name := fmt.Sprintf("n%d", i+1)
		nodeEps := eps
		if !o.NoEtcdProxies {
			// The node's own way to the store, which the proxy faults delay, cut and
			// reset: a node partitioned from etcd loses its lease and must stop its
			// shards; another takes them over.
			px, err := NewProxy(name+"→etcd", hostPort(eps[0]), nil)
			if err != nil {
				return err
			}
			c.proxies = append(c.proxies, px)
			nodeEps = []string{"http://" + px.Addr()}
		}
		args := append([]string{"serve", "--listen", addr, "--cluster", c.clusterName,
			"--etcd-endpoints", strings.Join(nodeEps, ","), "--node-id", name,
			"--lease-ttl", o.LeaseTTL.String(), "--cluster-shards", strconv.Itoa(o.ClusterShards)}, common...)
		c.coords = append(c.coords, newProc(name, bins.DTC, append(args, o.CoordArgs...), filepath.Join(work, name+".log")))
	}
	return nil
}

// shardsUnowned says which shards have no live owner ("" if every one has): an owner
// key must be attached to the lease its node holds now (a node killed and restarted has
// a new lease; its old owner keys wait for the old one to expire).
func (c *campaign) shardsUnowned(ctx context.Context) string {
	k := cluster.Keys{Cluster: c.clusterName}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	resp, err := c.etcdc.Txn(ctx).Then(
		clientv3.OpGet(k.NodesPrefix(), clientv3.WithPrefix()),
		clientv3.OpGet(k.OwnersPrefix(), clientv3.WithPrefix()),
	).Commit()
	if err != nil {
		return "etcd: " + err.Error()
	}
	leaseOf := map[string]int64{}
	for _, kv := range resp.Responses[0].GetResponseRange().Kvs {
		leaseOf[strings.TrimPrefix(string(kv.Key), k.NodesPrefix())] = kv.Lease
	}
	owned := 0
	for _, kv := range resp.Responses[1].GetResponseRange().Kvs {
		if kv.Lease != 0 && leaseOf[string(kv.Value)] == kv.Lease {
			owned++
		}
	}
	if owned < c.o.ClusterShards {
		return fmt.Sprintf("%d of %d shards have a live owner", owned, c.o.ClusterShards)
	}
	return ""
}

// pauser deals the fault phase's SIGSTOPs, one at a time, at moments drawn uniformly
// over it: a running node (never the last one running) is stopped for PauseFor, past
// its lease, then resumed; then its counters are read until a refused write shows (or
// LeaseTTL + 3s have passed). The killer leaves a paused node alone until then.
func (c *campaign) pauser(ctx context.Context) {
	o := c.o
	if o.Pauses == 0 || len(c.coords) < 2 {
		return
	}
	start := time.Now()
	c.mu.Lock()
	at := make([]time.Duration, o.Pauses)
	span := max(o.Duration-o.PauseFor-500*time.Millisecond, time.Millisecond)
	for i := range at {
		at[i] = 250*time.Millisecond + time.Duration(c.rng.Int64N(int64(span)))
	}
	c.mu.Unlock()
	slices.Sort(at)
	for i, t := range at {
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Until(start.Add(t))):
		}
		// A node that is up, serving its metrics and owning shards (not one starting
		// again after a kill), while another one is up too.
		k := -1
		for try := 0; try < 20 && k < 0 && ctx.Err() == nil; try++ {
			c.mu.Lock()
			var up []int
			for j, p := range c.coords {
				if p.running() {
					up = append(up, j)
				}
			}
			if len(up) >= 2 {
				k = up[c.rng.IntN(len(up))]
				c.paused[c.coords[k]] = true
			}
			c.mu.Unlock()
			if k >= 0 {
				if cc, err := readClusterCounters(c.coordURLs[k]); err != nil || cc.owned == 0 {
					c.mu.Lock()
					delete(c.paused, c.coords[k])
					c.mu.Unlock()
					k = -1
				}
			}
			if k < 0 {
				sleepCtx(ctx, 100*time.Millisecond)
			}
		}
		if k < 0 {
			continue
		}
		c.pause(i, c.coords[k], c.coordURLs[k])
		c.mu.Lock()
		delete(c.paused, c.coords[k])
		c.mu.Unlock()
	}
}

// pause stops p for PauseFor, resumes it, and records what its counters say.
func (c *campaign) pause(i int, p *proc, base string) {
	o := c.o
	before, err := readClusterCounters(base)
	r := PauseResult{Node: p.name, At: now(), For: o.PauseFor}
	if err != nil {
		r.Error = "before the pause: " + err.Error()
	}
	pid, err := p.signal(pauseProcess)
	if err != nil {
		c.logf("%s: SIGSTOP: %v", p.name, err)
		return
	}
	c.fault(p.name, FaultPause, fmt.Sprintf("pid %d stopped for %v (lease %v), then resumed", pid, o.PauseFor, o.LeaseTTL), o.PauseFor)
	select {
	case <-time.After(o.PauseFor):
	case <-c.stopping:
	}
	if _, err := p.signal(resumeProcess); err != nil {
		c.logf("%s: SIGCONT: %v", p.name, err)
	}
	// Until the node has found its lease lost and, then, a refused write shows or a
	// second has passed (a write it had in hand is answered by then); or LeaseTTL + 3s.
	// A refused write alone does not end the wait: the node may write (and be refused)
	// before its keepalive finds the lease gone, and the count read then would say no
	// lease was lost.
	deadline := time.Now().Add(o.LeaseTTL + 3*time.Second)
	var lostAt time.Time
	for r.Error == "" {
		after, err := readClusterCounters(base)
		if err == nil {
			r.FencedWrites = int(after.fenced - before.fenced)
			r.LeasesLost = int(after.leasesLost - before.leasesLost)
			if r.LeasesLost > 0 && lostAt.IsZero() {
				lostAt = time.Now()
			}
		}
		if err == nil && !lostAt.IsZero() && (r.FencedWrites > 0 || time.Since(lostAt) > time.Second) {
			break
		}
		if time.Now().After(deadline) {
			if err != nil {
				r.Error = "after the resume: " + err.Error()
			}
			break
		}
		select {
		case <-time.After(100 * time.Millisecond):
		case <-c.stopping:
			r.Error = "the campaign stopped"
		}
	}
	c.logf("%s: pause %d: %d writes refused by etcd after the resume, %d leases lost %s", p.name, i+1, r.FencedWrites, r.LeasesLost, r.Error)
	c.mu.Lock()
	c.pauses = append(c.pauses, r)
	c.mu.Unlock()
}

// clusterCounters are a node's cluster counters, from its /metrics.
type clusterCounters struct{ fenced, leasesLost, owned float64 }

func readClusterCounters(base string) (clusterCounters, error) {
	var cc clusterCounters
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/metrics", nil)
	if err != nil {
		return cc, err
	}
	resp, err := harnessHTTP.Do(req)
	if err != nil {
		return cc, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return cc, fmt.Errorf("%s/metrics: HTTP %d", base, resp.StatusCode)
	}
	seen := 0
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		name, val, ok := strings.Cut(sc.Text(), " ")
		var dst *float64
		switch name {
		case "dtc_cluster_fenced_writes_total":
			dst = &cc.fenced
		case "dtc_cluster_leases_lost_total":
			dst = &cc.leasesLost
		case "dtc_cluster_shards_owned":
			dst = &cc.owned
		}
		if !ok || dst == nil {
			continue
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(val), 64)
		if err != nil {
			return cc, fmt.Errorf("%s/metrics: %s: %w", base, name, err)
		}
		*dst = v
		seen++
	}
	if err := sc.Err(); err != nil {
		return cc, err
	}
	if seen < 3 {
		return cc, fmt.Errorf("%s/metrics has no dtc_cluster counters: not a cluster node", base)
	}
	return cc, nil
}

// signal applies f to the running incarnation's process, and reports its pid.
func (p *proc) signal(f func(*os.Process) error) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	select {
	case <-p.done:
		return 0, fmt.Errorf("chaosreal: %s is not running", p.name)
	default:
	}
	return p.cmd.Process.Pid, f(p.cmd.Process)
}

// hostPort is the host:port of an etcd client URL ("http://127.0.0.1:2379").
func hostPort(endpoint string) string {
	if u, err := url.Parse(endpoint); err == nil && u.Host != "" {
		return u.Host
	}
	return endpoint
}
