package httpnet_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/dtc-project/dtc/client"
	"github.com/dtc-project/dtc/cluster"
	"github.com/dtc-project/dtc/httpnet"
	"github.com/dtc-project/dtc/httpnet/apiserver"
	"github.com/dtc-project/dtc/internal/etcdtest"
	"github.com/dtc-project/dtc/participant"
)

// cnode is one cluster node in the test process: a Runtime opened with
// Options.Cluster, its API behind a ClusterHandler on a loopback port, and its etcd
// traffic through a proxy that the test can pause (as SIGSTOP would hold it).
type cnode struct {
	t     *testing.T
	id    string
	rt    *httpnet.Runtime
	srv   *httptest.Server
	url   string
	cli   *client.Client
	etcd  *clientv3.Client
	proxy *etcdtest.Proxy
	down  bool
}

const clusterShards = 8

func startClusterNode(t *testing.T, srv *etcdtest.Server, name, id string) *cnode {
	return startClusterNodeBehind(t, srv, name, id, "")
}

// startClusterNodeBehind starts a node that tells participants lb (the cluster's
// shared address) instead of its own URL, so that a participant in doubt reaches a
// live node whichever node prepared it.
func startClusterNodeBehind(t *testing.T, srv *etcdtest.Server, name, id, lb string) *cnode {
	t.Helper()
	return startClusterNodeWith(t, srv, name, id, lb, apiserver.ClusterHandlerOptions{}, nil)
}

// startClusterNodeWith starts a node with handler options ho, its API served through
// wrap when wrap is not nil.
func startClusterNodeWith(t *testing.T, srv *etcdtest.Server, name, id, lb string, ho apiserver.ClusterHandlerOptions, wrap func(http.Handler) http.Handler) *cnode {
	t.Helper()
	return startClusterNodeAPI(t, srv, name, id, lb, ho, wrap, apiserver.ServerOptions{}, "")
}

// startClusterNodeAPI starts a node whose API has options so (its logger the node's),
// its client sending token.
func startClusterNodeAPI(t *testing.T, srv *etcdtest.Server, name, id, lb string, ho apiserver.ClusterHandlerOptions, wrap func(http.Handler) http.Handler, so apiserver.ServerOptions, token string) *cnode {
	t.Helper()
	n := &cnode{t: t, id: id}
	n.proxy = etcdtest.NewProxy(t, srv.Endpoint[len("http://"):])
	ec, err := clientv3.New(clientv3.Config{Endpoints: []string{n.proxy.URL()}, DialTimeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	n.etcd = ec
	addr := freeAddr(t)
	n.url = "http://" + addr
	o := httpnet.Options{
		Engine:  testEngineConfig(),
		Logger:  testLogger(t).With("node", id),
		OnFatal: func(err error) { t.Errorf("fatal: %v", err) },
		Cluster: &httpnet.ClusterOptions{
			Client: ec, Name: name, NodeID: id, APIAddr: n.url, Shards: clusterShards, LeaseTTL: time.Second,
			// Long enough for a write held by a paused proxy to come back with etcd's
			// verdict instead of a client-side timeout.
			Log: cluster.LogOptions{WriteTimeout: 30 * time.Second, LazyFlushInterval: 5 * time.Millisecond},
		},
	}
	o.Transport.AdvertiseURL = n.url
	if lb != "" {
		o.Transport.AdvertiseURL = lb
	}
	rt, err := httpnet.Open(o)
	if err != nil {
		t.Fatalf("Open %s: %v", id, err)
	}
	n.rt = rt
	so.Logger = o.Logger
	api := apiserver.NewServer(rt, so)
	var h http.Handler = apiserver.NewClusterHandler(rt, api, ho)
	if wrap != nil {
		h = wrap(h)
	}
	n.srv = httptest.NewUnstartedServer(h)
	n.srv.Listener.Close()
	n.srv.Listener = listen(t, addr)
	n.srv.Start()
	n.cli, err = client.New(n.url, client.Options{MaxRetries: -1, Token: token})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(n.close)
	return n
}

// kill stops the node abruptly: no handoff, its API gone, its lease left to expire.
func (n *cnode) kill() {
	n.down = true
	n.srv.CloseClientConnections()
	n.srv.Close()
	n.rt.Crash()
}

func (n *cnode) close() {
	n.proxy.Resume()
	if !n.down {
		n.srv.CloseClientConnections()
		n.srv.Close()
	}
	_ = n.rt.Close()
	_ = n.etcd.Close()
}

func counterValue(t *testing.T, c prometheus.Counter) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.Counter.GetValue()
}

// ownedBy returns how many shards the live nodes own between them, each counted once,
// and whether no shard is claimed twice.
func ownedBy(nodes ...*cnode) (int, bool) {
	seen := map[int]bool{}
	for _, n := range nodes {
		for _, sh := range n.rt.Node().Owned() {
			if seen[sh] {
				return len(seen), false
			}
			seen[sh] = true
		}
	}
	return len(seen), true
}

// Any node answers: a transaction with a client-chosen id sent to one node is run by
// its shard's owner (forwarded once), and any node tells its outcome.
func TestClusterForwardsToTheOwner(t *testing.T) {
	srv := etcdtest.Start(t)
	nodes := []*cnode{
		startClusterNode(t, srv, "fwd", "n1"),
		startClusterNode(t, srv, "fwd", "n2"),
		startClusterNode(t, srv, "fwd", "n3"),
	}
	eventually(t, "every shard owned, three ways", func() bool {
		c, ok := ownedBy(nodes...)
		return c == clusterShards && ok && len(nodes[0].rt.Node().Owned()) >= clusterShards/3 &&
			len(nodes[1].rt.Node().Owned()) >= clusterShards/3 && len(nodes[2].rt.Node().Owned()) >= clusterShards/3
	})
	a, b := twoBanks(t)
	ctx := context.Background()
	for i := range 12 {
		id := fmt.Sprintf("fwd-%02d", i)
		entry := nodes[i%3]
		var v client.View
		eventually(t, "submitted "+id, func() bool {
			var err error
			v, err = entry.cli.Submit(ctx, client.Request{ID: id, Participants: transfer(a, b, 1)})
			return err == nil
		})
		if v.State != client.StateCommitted {
			t.Fatalf("%s: %s", id, v.State)
		}
		for _, n := range nodes {
			var got client.View
			var err error
			// 503 not_owner (with Retry-After) while a node's view of the owners is a
			// balance interval old is an answer to retry, not an error.
			eventually(t, id+" from "+n.id, func() bool {
				got, err = n.cli.Get(ctx, id)
				var apiErr *client.Error
				return !errors.As(err, &apiErr) || apiErr.Code != apiserver.CodeNotOwner
			})
			if err != nil || got.State != client.StateCommitted || got.TxnID != v.TxnID {
				t.Fatalf("%s from %s: %+v %v", id, n.id, got, err)
			}
		}
	}
	var forwarded float64
	for _, n := range nodes {
		forwarded += n.fwdOK(t)
	}
	if forwarded == 0 {
		t.Fatal("no request was forwarded: the test routed nothing across nodes")
	}
}

// fwdOK reads dtc_cluster_forwarded_requests_total{result="ok"} from the node's registry.
func (n *cnode) fwdOK(t *testing.T) float64 {
	mfs, err := n.rt.Metrics().Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "dtc_cluster_forwarded_requests_total" {
			continue
		}
		for _, m := range mf.Metric {
			for _, l := range m.Label {
				if l.GetName() == "result" && l.GetValue() == "ok" {
					return m.Counter.GetValue()
				}
			}
		}
	}
	return 0
}

// Three nodes under a load spread over all of them; one is killed mid-load, another is
// cut off from etcd past its lease and then let back. Every transaction's participants
// agree with the outcome the cluster reports, no participant is left prepared, money
// is conserved, and the cut-off node's writes after it lost its lease were refused by
// etcd (counted).
func TestClusterSurvivesKillAndPause(t *testing.T) {
	if testing.Short() {
		t.Skip("starts etcd and three nodes")
	}
	srv := etcdtest.Start(t)
	lb := &failover{}
	lbSrv := httptest.NewServer(lb)
	t.Cleanup(lbSrv.Close)
	nodes := []*cnode{
		startClusterNodeBehind(t, srv, "chaos", "n1", lbSrv.URL),
		startClusterNodeBehind(t, srv, "chaos", "n2", lbSrv.URL),
		startClusterNodeBehind(t, srv, "chaos", "n3", lbSrv.URL),
	}
	lb.set(nodes[0].url, nodes[1].url, nodes[2].url)
	eventually(t, "every shard owned, the three nodes balanced", func() bool {
		c, ok := ownedBy(nodes...)
		for _, n := range nodes {
			if len(n.rt.Node().Owned()) < clusterShards/3 {
				return false
			}
		}
		return c == clusterShards && ok
	})
	const accounts = 1_000_000
	// The participants ask the cluster's address about what they hold in doubt: the
	// transactions a killed node began and never made durable are unknown to the node
	// that takes its shard over, and only the participants' question resolves them
	// (404: presumed abort).
	pcfg := participant.DefaultConfig()
	pcfg.InDoubtAfter = time.Second
	var banks []*bankNode
	rctx, stopResolvers := context.WithCancel(context.Background())
	var resolvers sync.WaitGroup
	t.Cleanup(func() { stopResolvers(); resolvers.Wait() })
	for range 3 {
		b := newBankNodeConfig(t, map[string]int64{"x": accounts}, pcfg)
		banks = append(banks, b)
		res, err := participant.NewResolver(b.p, participant.ResolverOptions{Interval: 200 * time.Millisecond, QueryTimeout: 2 * time.Second, Logger: testLogger(t)})
		if err != nil {
			t.Fatal(err)
		}
		resolvers.Add(1)
		go func() { defer resolvers.Done(); res.Run(rctx) }()
	}
	total := func() int64 {
		var s int64
		for _, b := range banks {
			s += b.balance("x")
		}
		return s
	}
	before := total()

	const (
		workers       = 4
		perWorker     = 40
		attemptsMax   = 200
		killAfter     = workers * perWorker / 4
		pauseAfter    = workers * perWorker / 2
		submitTimeout = 20 * time.Second
	)
	var (
		done     atomic.Int64
		mu       sync.Mutex
		ids      []string
		gaveUp   []string
		entry    atomic.Int64
		killed   = make(chan struct{})
		paused   = make(chan struct{})
		killOnce sync.Once
		pausOnce sync.Once
		// pausedOwned is how many shards the paused node owned when it was paused.
		pausedOwned atomic.Int64
	)
	// A write of the paused node's that is surely in flight across the pause, whatever
	// the load does then: see fencedTxn.
	fenced := newFencedTxn(t)
	live := func(i int) bool { return !(i == 1 && isClosed(killed)) }
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range perWorker {
				id := fmt.Sprintf("w%d-%03d", w, i)
				from, to := banks[(w+i)%3], banks[(w+i+1)%3]
				req := client.Request{ID: id, Participants: []client.Participant{
					{URL: from.prepareURL(), Payload: op("x", -1)},
					{URL: to.prepareURL(), Payload: op("x", 1)},
				}}
				ok := false
				for a := 0; a < attemptsMax && !ok; a++ {
					k := int(entry.Add(1)) % 3
					if !live(k) {
						continue
					}
					ctx, cancel := context.WithTimeout(context.Background(), submitTimeout)
					_, err := nodes[k].cli.Submit(ctx, req)
					cancel()
					ok = err == nil
					if !ok {
						time.Sleep(20 * time.Millisecond) // a node is down or a shard is moving: next node
					}
				}
				mu.Lock()
				ids = append(ids, id)
				if !ok {
					gaveUp = append(gaveUp, id)
				}
				mu.Unlock()
				switch n := done.Add(1); {
				case n == killAfter:
					killOnce.Do(func() { nodes[1].kill(); close(killed) })
				case n == pauseAfter:
					pausOnce.Do(func() {
						pausedOwned.Store(int64(len(nodes[2].rt.Node().Owned())))
						fence := fenced.begin(nodes[2])
						nodes[2].proxy.Pause()
						fence.release()
						close(paused)
					})
				}
			}
		}()
	}
	// The paused node stops its shards once its lease may have expired; node 1 takes
	// over everything; then node 2 is let back.
	<-paused
	eventually(t, "the paused node stopped its shards", func() bool { return len(nodes[2].rt.Node().Owned()) == 0 })
	if pausedOwned.Load() == 0 {
		t.Fatal("the paused node owned no shard when it was paused: the test shows nothing")
	}
	eventually(t, "n1 owns every shard", func() bool { return len(nodes[0].rt.Node().Owned()) == clusterShards })
	nodes[2].proxy.Resume()
	wg.Wait()
	if len(gaveUp) > 0 {
		t.Logf("%d transactions never got an answer: %v (their outcome is checked below)", len(gaveUp), gaveUp)
	}

	survivors := []*cnode{nodes[0], nodes[2]}
	eventually(t, "every shard owned by the survivors", func() bool { c, ok := ownedBy(survivors...); return c == clusterShards && ok })
	eventually(t, "no participant left prepared", func() bool {
		for _, b := range banks {
			if len(b.holds()) > 0 {
				return false
			}
		}
		return true
	})
	ctx := context.Background()
	committed, aborted, unknown := 0, 0, 0
	for _, id := range ids {
		var v client.View
		var err error
		eventually(t, "an answer about "+id, func() bool {
			v, err = survivors[len(id)%2].cli.Get(ctx, id)
			var apiErr *client.Error
			return err == nil || (errors.As(err, &apiErr) && apiErr.Code == apiserver.CodeNotFound)
		})
		if err != nil { // never begun durably: presumed aborted, nobody may have committed it
			unknown++
			continue
		}
		eventually(t, id+" decided", func() bool {
			v, err = survivors[0].cli.Get(ctx, id)
			return err == nil && (v.State == client.StateCommitted || v.State == client.StateAborted)
		})
		want := participant.StateAborted
		if v.State == client.StateCommitted {
			want = participant.StateCommitted
			committed++
		} else {
			aborted++
		}
		for _, p := range v.Participants {
			for _, b := range banks {
				if b.prepareURL() != p.URL {
					continue
				}
				got := b.status(v.TxnID)
				if got != want && !(want == participant.StateAborted && got == participant.StateUnknown) {
					t.Errorf("atomicity: %s is %s, but participant %s says %s", id, v.State, p.URL, got)
				}
			}
		}
	}
	if after := total(); after != before {
		t.Errorf("money not conserved: %d before, %d after", before, after)
	}
	fencedWrites := counterValue(t, nodes[2].rt.ClusterMetrics().FencedWrites)
	t.Logf("%d transactions: %d committed, %d aborted, %d unknown to the cluster; paused node: %v fenced writes",
		len(ids), committed, aborted, unknown, fencedWrites)
	if committed == 0 {
		t.Error("nothing committed: the load did not run")
	}
	if fencedWrites < 1 {
		t.Error("the paused node had no write refused by etcd: nothing shows it was fenced")
	}
	// The same counter, as /metrics exports it.
	resp, err := http.Get(nodes[2].url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if want := fmt.Sprintf("dtc_cluster_fenced_writes_total %v\n", fencedWrites); !bytes.Contains(body, []byte(want)) {
		t.Errorf("/metrics of the paused node lacks %q", want)
	}
}

// fencedTxn is a transaction begun at a node on a shard it owns, whose one participant
// holds its prepare until release: called just after the node's etcd traffic is
// paused, its decision's log write then waits at the proxy until the node is let back,
// past its lease, and etcd refuses it (FencedWrites). Without it, the load alone left
// the paused node no write in flight in one of five CI runs on 2026-12-06 (0 fenced
// writes: as it seems, its submits during the pause all came after it found its
// lease lost). Its participant answers
// every later call (the new owner's status question, then its commit or rollback), and
// holds no money.
type fencedTxn struct {
	t        *testing.T
	srv      *httptest.Server
	got      chan struct{} // the prepare arrived
	hold     chan struct{} // closed by release
	holdOnce sync.Once
	submit   sync.WaitGroup // the submit begin sent, awaited at cleanup
}

func newFencedTxn(t *testing.T) *fencedTxn {
	f := &fencedTxn{t: t, got: make(chan struct{}, 1), hold: make(chan struct{})}
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case strings.HasSuffix(r.URL.Path, "/prepare"):
			select {
			case f.got <- struct{}{}:
			default:
			}
			select {
			case <-f.hold:
			case <-r.Context().Done():
			}
			fmt.Fprint(w, `{"vote":"ACK"}`)
		case strings.HasSuffix(r.URL.Path, "/commit"):
			fmt.Fprint(w, `{"state":"committed"}`)
		case strings.HasSuffix(r.URL.Path, "/rollback"):
			fmt.Fprint(w, `{"state":"aborted"}`)
		default: // status
			fmt.Fprint(w, `{"state":"prepared"}`)
		}
	}))
	t.Cleanup(func() { f.release(); f.submit.Wait(); f.srv.Close() })
	return f
}

// begin submits the transaction to n, on a shard n runs, and returns once its prepare
// is held (its begin record durable: the participant does not say it asks).
func (f *fencedTxn) begin(n *cnode) *fencedTxn {
	owned := n.rt.Node().Owned()
	var id string
	for i := 0; id == "" && i < 10_000; i++ {
		if c := fmt.Sprintf("fence-%d", i); slices.Contains(owned, n.rt.ClusterShardOf(c)) {
			id = c
		}
	}
	if id == "" {
		f.t.Errorf("no transaction id of the %d shards %s runs", len(owned), n.id)
		return f
	}
	f.submit.Go(func() { // answered once begun: its prepare is held, not its answer
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		_, _ = n.cli.SubmitAsync(ctx, client.Request{ID: id, PrepareTimeout: time.Minute,
			Participants: []client.Participant{{URL: f.srv.URL + "/prepare"}}})
	})
	select {
	case <-f.got:
	case <-time.After(30 * time.Second):
		f.t.Errorf("the prepare of %s did not reach its participant", id)
	}
	return f
}

func (f *fencedTxn) release() { f.holdOnce.Do(func() { close(f.hold) }) }

func isClosed(c chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

// failover is the cluster's shared address in these tests, as a load balancer or a DNS
// name would be: it sends each request to the nodes in turn until one answers.
type failover struct {
	mu    sync.Mutex
	nodes []string
	next  int
}

func (f *failover) set(urls ...string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.nodes = urls
}

func (f *failover) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	f.mu.Lock()
	nodes, start := f.nodes, f.next
	f.next++
	f.mu.Unlock()
	for i := range nodes {
		u := nodes[(start+i)%len(nodes)]
		req, err := http.NewRequestWithContext(r.Context(), r.Method, u+r.URL.RequestURI(), bytes.NewReader(body))
		if err != nil {
			continue
		}
		req.Header = r.Header.Clone()
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			continue // that node is down: the next one
		}
		for k, vs := range resp.Header {
			w.Header()[k] = vs
		}
		w.WriteHeader(resp.StatusCode)
		_, _ = io.Copy(w, resp.Body)
		resp.Body.Close()
		return
	}
	http.Error(w, "no node answers", http.StatusBadGateway)
}

// etcd goes away for longer than the nodes' leases, then comes back on the same data:
// the nodes stop their shards (503 meanwhile), take them over again when etcd is back,
// and a transaction submitted during the outage ends decided (or unknown, presumed
// aborted) with no participant left prepared and the money conserved.
func TestClusterRidesOutAnEtcdOutage(t *testing.T) {
	if testing.Short() {
		t.Skip("starts etcd twice and two nodes")
	}
	srv := etcdtest.Start(t)
	lb := &failover{}
	lbSrv := httptest.NewServer(lb)
	t.Cleanup(lbSrv.Close)
	nodes := []*cnode{
		startClusterNodeBehind(t, srv, "outage", "n1", lbSrv.URL),
		startClusterNodeBehind(t, srv, "outage", "n2", lbSrv.URL),
	}
	lb.set(nodes[0].url, nodes[1].url)
	eventually(t, "every shard owned", func() bool { c, ok := ownedBy(nodes...); return c == clusterShards && ok })
	pcfg := participant.DefaultConfig()
	pcfg.InDoubtAfter = time.Second
	rctx, stopResolvers := context.WithCancel(context.Background())
	var resolvers sync.WaitGroup
	t.Cleanup(func() { stopResolvers(); resolvers.Wait() })
	var banks []*bankNode
	for range 2 {
		b := newBankNodeConfig(t, map[string]int64{"x": 1000}, pcfg)
		banks = append(banks, b)
		res, err := participant.NewResolver(b.p, participant.ResolverOptions{Interval: 200 * time.Millisecond, QueryTimeout: 2 * time.Second, Logger: testLogger(t)})
		if err != nil {
			t.Fatal(err)
		}
		resolvers.Add(1)
		go func() { defer resolvers.Done(); res.Run(rctx) }()
	}
	transfer := func(id string) client.Request {
		return client.Request{ID: id, Participants: []client.Participant{
			{URL: banks[0].prepareURL(), Payload: op("x", -1)},
			{URL: banks[1].prepareURL(), Payload: op("x", 1)},
		}}
	}
	ctx := context.Background()
	if v, err := nodes[0].cli.Submit(ctx, transfer("before")); err != nil || v.State != client.StateCommitted {
		t.Fatalf("before the outage: %+v %v", v, err)
	}

	srv.Stop()
	during := make(chan error, 1)
	go func() {
		sctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		defer cancel()
		_, err := nodes[0].cli.Submit(sctx, transfer("during"))
		during <- err
	}()
	eventually(t, "both nodes stopped their shards", func() bool {
		return len(nodes[0].rt.Node().Owned()) == 0 && len(nodes[1].rt.Node().Owned()) == 0
	})
	if _, err := nodes[1].cli.Get(ctx, "before"); err == nil {
		t.Fatal("a node answered for a shard while its lease may be gone")
	}
	srv.Restart(t)
	eventually(t, "every shard owned again", func() bool { c, ok := ownedBy(nodes...); return c == clusterShards && ok })
	t.Logf("the submission during the outage answered: %v", <-during)
	eventually(t, "after the outage", func() bool {
		v, err := nodes[1].cli.Submit(ctx, transfer("after"))
		return err == nil && v.State == client.StateCommitted
	})
	eventually(t, "no participant left prepared", func() bool {
		return len(banks[0].holds()) == 0 && len(banks[1].holds()) == 0
	})
	if got := banks[0].balance("x") + banks[1].balance("x"); got != 2000 {
		t.Fatalf("money not conserved: %d", got)
	}
	for _, id := range []string{"before", "after"} {
		v, err := getPastNotOwner(t, nodes[0], id)
		if err != nil || v.State != client.StateCommitted {
			t.Fatalf("%s after the outage: %+v %v", id, v, err)
		}
	}
	var v client.View
	var err error
	eventually(t, "the outage's transaction decided or unknown", func() bool {
		v, err = nodes[0].cli.Get(ctx, "during")
		var apiErr *client.Error
		return (err == nil && (v.State == client.StateCommitted || v.State == client.StateAborted)) ||
			(errors.As(err, &apiErr) && apiErr.Code == apiserver.CodeNotFound)
	})
	if err == nil {
		for _, b := range banks {
			got := b.status(v.TxnID)
			want := participant.StateAborted
			if v.State == client.StateCommitted {
				want = participant.StateCommitted
			}
			if got != want && !(want == participant.StateAborted && got == participant.StateUnknown) {
				t.Errorf("atomicity: during is %s, a participant says %s", v.State, got)
			}
		}
	}
	t.Logf("the outage's transaction: %s %v", v.State, err)
}

// getPastNotOwner gets a transaction, retrying while the node answers 503 not_owner
// (its view of the owners is catching up after a move).
func getPastNotOwner(t *testing.T, n *cnode, id string) (client.View, error) {
	t.Helper()
	var v client.View
	var err error
	eventually(t, id+" from "+n.id, func() bool {
		v, err = n.cli.Get(context.Background(), id)
		var apiErr *client.Error
		return !errors.As(err, &apiErr) || apiErr.Code != apiserver.CodeNotOwner
	})
	return v, err
}
