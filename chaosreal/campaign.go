package chaosreal

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/dtc-project/dtc/checker"
	"github.com/dtc-project/dtc/client"
	"github.com/dtc-project/dtc/coordinator"
	"github.com/dtc-project/dtc/faults"
	"github.com/dtc-project/dtc/internal/etcdrun"
	"github.com/dtc-project/dtc/protocol"
)

// Fault kinds, as counted in Result.Faults and drawn on the timeline.
const (
	FaultKillCoord       = "kill -9 coord"
	FaultKillParticipant = "kill -9 participant"
	FaultFailpointDeath  = "failpoint panic"
	FaultFailpointError  = "failpoint error"
	FaultDied            = "died on its own"
	FaultUnhealthy       = "unhealthy: restarted"
	FaultArmed           = "failpoint armed"
	FaultProxyDelay      = "proxy delay"
	FaultProxyDrop       = "proxy drop"
	FaultProxyBlackhole  = "proxy blackhole"
	FaultHealRestart     = "heal: restart without failpoints"
	FaultPause           = "SIGSTOP node"
)

// FaultEvent is one fault on the timeline.
type FaultEvent struct {
	At     int64         `json:"at"` // Unix ns
	For    time.Duration `json:"for,omitempty"`
	Target string        `json:"target"` // coord, p1, …
	Kind   string        `json:"kind"`
	Detail string        `json:"detail,omitempty"`
}

// Sample is one client call, for the plots.
type Sample struct {
	At      int64           `json:"at"` // when it was submitted
	Latency time.Duration   `json:"latency"`
	Outcome checker.Outcome `json:"outcome"`
}

// Result is what a campaign did and what the checker found.
type Result struct {
	Seed          uint64
	Options       Options // with the defaults filled in
	Start, HealAt int64   // Unix ns: the start, the end of the fault phase
	End           int64
	HealTook      time.Duration
	Quiet         bool   // everything was resolved within HealMax
	Unresolved    string // what was not, otherwise

	// Txns counts client transaction ids; Calls the calls made for them (retries
	// included). Committed, Aborted and Unknown count ids by what their client last
	// learned.
	Txns, Calls                 int
	Committed, Aborted, Unknown int
	// Faults counts what was injected, by kind (the Fault* constants).
	Faults   map[string]int
	Timeline []FaultEvent
	Samples  []Sample

	History    checker.History
	Report     *checker.Report
	Violations []checker.Violation
	Balances   map[string]int64 // "p1/a0" → cents at the end
	WantTotal  int64
	// PassiveStates counts, by state, the transactions the passive participants hold
	// at the end (Options.Passive): none may be "prepared".
	PassiveStates map[string]int
	// SQLStates counts, by state, the transactions the SQL participants' databases hold
	// at the end (Options.SQL), read from the databases: committed and aborted from
	// dtc-sql's table, prepared if the database still holds the transaction prepared
	// (none may be), unknown otherwise (a NACK, or a prepare cut short).
	SQLStates map[string]int
	// FencedWrites (Options.Cluster) sums, over the pauses, the writes etcd refused the
	// paused node after it resumed (its dtc_cluster_fenced_writes_total); Pauses lists
	// each pause's figure.
	FencedWrites int
	Pauses       []PauseResult

	WorkDir    string // kept if the campaign failed or KeepWork
	ReportPath string // the HTML report, if written
}

// OK reports whether the campaign found no violation.
func (r *Result) OK() bool { return len(r.Violations) == 0 }

// ReplayCommand is the command that runs this campaign's plan again.
func (r *Result) ReplayCommand() string {
	if r.Options.Command != "" {
		return r.Options.Command
	}
	cmd := fmt.Sprintf("go run ./cmd/chaos real --seed %d --duration %v", r.Seed, r.Options.Duration)
	if r.Options.Break {
		cmd += " --break"
	}
	if r.Options.Cluster > 0 {
		cmd += fmt.Sprintf(" --cluster %d", r.Options.Cluster)
	}
	if r.Options.SQL > 0 {
		cmd += fmt.Sprintf(" --sql %d", r.Options.SQL)
	}
	return cmd
}

// Kills is how many kill -9s the fault phase dealt.
func (r *Result) Kills() int { return r.Faults[FaultKillCoord] + r.Faults[FaultKillParticipant] }

// txnInfo is one client transaction id across its calls.
type txnInfo struct {
	parts   []string
	ops     []int // recorder handles of calls that ended without an outcome
	outcome checker.Outcome
	wires   []string // incarnations named in the coordinator's answers
	// sqlLegs are the legs of the SQL participants it names, by participant: what a
	// commit there adds to its accounts.
	sqlLegs map[string][]leg
}

// campaign is one run.
type campaign struct {
	o   Options
	rec *checker.Recorder

	mu       sync.Mutex
	rng      *rand.Rand
	faults   map[string]int
	timeline []FaultEvent
	samples  []Sample
	txns     map[string]*txnInfo
	order    []string // client ids in submission order
	calls    int
	wires    map[string]bool            // every incarnation a participant was asked to prepare
	acked    map[string]map[string]bool // wire → participants that ACKed and were not seen applying
	healing  bool

	coords      []*proc // dtc, or the cluster's nodes n1..nN
	banks       []*proc
	passives    []*proc // examples/passive: never asks about transactions in doubt
	sqls        []*proc // dtc-sql: s1..sN
	sqlNodes    []*sqlNode
	proxies     []*Proxy
	coordURLs   []string
	etcd        *etcdrun.Server  // the embedded etcd of a cluster campaign, if any
	etcdc       *clientv3.Client // the campaign's own client of the cluster's etcd
	clusterName string
	paused      map[*proc]bool // stopped by SIGSTOP: the killer leaves them alone
	pauses      []PauseResult
	bankURLs    []string // direct, for the harness's own reads
	passiveURLs []string // likewise
	sqlURLs     []string // likewise
	partURLs    []string // through the proxies: what dtc is given; the banks, the passive ones, the SQL ones
	restart     map[*proc]time.Duration

	stopping chan struct{}
	sup      sync.WaitGroup
}

// Run runs one campaign: it builds (unless given) and starts dtc and the banks, drives
// the workload while injecting faults, heals, checks the history and the banks'
// balances, writes the report, and stops every process it started, also when ctx ends
// early (the result then says so in Unresolved, and err is ctx's).
func Run(ctx context.Context, o Options) (*Result, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	o = o.withDefaults()
	c := &campaign{
		o: o, rec: checker.NewRecorder(),
		rng:    rand.New(rand.NewPCG(o.Seed, 0x7265616c)), // "real"
		faults: map[string]int{}, txns: map[string]*txnInfo{}, wires: map[string]bool{},
		acked: map[string]map[string]bool{}, restart: map[*proc]time.Duration{}, paused: map[*proc]bool{},
		stopping: make(chan struct{}),
	}
	res := &Result{Seed: o.Seed, Options: o}
	work := o.WorkDir
	if work == "" {
		d, err := os.MkdirTemp("", "dtc-chaos-real-")
		if err != nil {
			return nil, fmt.Errorf("chaosreal: %w", err)
		}
		work = d
	} else if err := os.MkdirAll(work, 0o755); err != nil {
		return nil, fmt.Errorf("chaosreal: %w", err)
	}
	res.WorkDir = work
	bins := o.Binaries
	if bins.DTC == "" {
		dir := o.ModuleDir
		if dir == "" {
			wd, _ := os.Getwd()
			m, err := ModuleDir(ctx, wd)
			if err != nil {
				return nil, err
			}
			dir = m
		}
		c.logf("building dtc, the participants and dtc-sql with failpoints live (GOCACHE %s)", CacheDir())
		b, err := Build(ctx, dir, filepath.Join(work, "bin"))
		if err != nil {
			return nil, err
		}
		bins = b
	}
	if o.SQL > 0 && bins.SQL == "" {
		return nil, fmt.Errorf("chaosreal: SQL participants need the dtc-sql binary (Binaries.SQL)")
	}
	defer c.closeSQL(ctx) // after shutdown: dtc-sql must be stopped first
	defer c.shutdown()
	if err := c.setup(ctx, bins, work); err != nil {
		return nil, err
	}
	res.Start = now()
	c.rec.Note(res.Start, "campaign starts: seed "+strconv.FormatUint(o.Seed, 10))

	faultCtx, stopFaults := context.WithTimeout(ctx, o.Duration)
	defer stopFaults()
	var wg sync.WaitGroup
	for i := range o.Clients {
		wg.Go(func() { c.client(faultCtx, i) })
	}
	var nem sync.WaitGroup
	nem.Go(func() { c.killer(faultCtx) })
	for i := range c.proxies {
		nem.Go(func() { c.proxyFaults(faultCtx, i) })
	}
	nem.Go(func() { c.pauser(faultCtx) })
	nem.Go(func() { c.healthWatch(faultCtx) })
	progressDone := make(chan struct{})
	go c.progress(faultCtx, res.Start, progressDone)
	<-faultCtx.Done()
	nem.Wait()
	<-progressDone
	res.HealAt = now()

	c.heal()
	wg.Wait() // clients finish their calls in flight (each bounded by ClientTimeout)
	var runErr error
	if ctx.Err() != nil {
		runErr = ctx.Err()
		res.Unresolved = "interrupted"
	} else {
		res.Quiet, res.Unresolved = c.waitQuiet(ctx)
	}
	res.HealTook = time.Duration(now() - res.HealAt)
	c.logf("heal phase: %v, quiet=%v %s", res.HealTook.Round(time.Millisecond), res.Quiet, res.Unresolved)
	if ctx.Err() == nil {
		c.collect(ctx, res)
	}
	res.End = now()
	c.mu.Lock()
	res.Faults = c.faults
	res.Timeline = slices.Clone(c.timeline)
	res.Samples = slices.Clone(c.samples)
	res.Pauses = slices.Clone(c.pauses)
	for _, p := range c.pauses {
		res.FencedWrites += p.FencedWrites
	}
	res.Calls = c.calls
	res.Txns = len(c.txns)
	for _, t := range c.txns {
		switch t.outcome {
		case checker.Committed:
			res.Committed++
		case checker.Aborted:
			res.Aborted++
		default:
			res.Unknown++
		}
	}
	c.mu.Unlock()
	if ctx.Err() == nil {
		res.History = c.rec.History()
		res.Report = checker.Check(res.History, checker.Options{CheckLiveness: true})
		res.Violations = append(res.Violations, res.Report.Violations...)
		if res.Report.Violations == nil && !res.Report.OK() {
			res.Violations = append(res.Violations, checker.Violation{Kind: checker.KindLinearizability, Detail: res.Report.String()})
		}
		res.WantTotal = int64(o.Participants+o.SQL) * int64(o.Accounts) * o.InitialBalance
		if res.Balances != nil {
			res.Violations = append(res.Violations, checker.CheckBank(res.WantTotal, res.Balances)...)
		}
		if !res.Quiet {
			res.Violations = append(res.Violations, checker.Violation{Kind: checker.KindLiveness,
				Detail: fmt.Sprintf("not resolved %v after the heal began: %s", o.HealMax, res.Unresolved)})
		}
	}
	c.shutdown()
	if o.ReportDir != "" && ctx.Err() == nil {
		p, err := WriteReport(o.ReportDir, res)
		if err != nil {
			c.logf("report: %v", err)
		}
		res.ReportPath = p
	}
	if res.OK() && runErr == nil && !o.KeepWork && o.WorkDir == "" {
		_ = os.RemoveAll(work)
		res.WorkDir = ""
	}
	return res, runErr
}

func (c *campaign) logf(format string, args ...any) {
	if c.o.Log != nil {
		fmt.Fprintf(c.o.Log, "%s  %s\n", time.Now().Format("15:04:05.000"), fmt.Sprintf(format, args...))
	}
}

// fault records a fault on the timeline, in the history's notes and in the log.
func (c *campaign) fault(target, kind, detail string, d time.Duration) {
	at := now()
	c.mu.Lock()
	c.faults[kind]++
	c.timeline = append(c.timeline, FaultEvent{At: at, For: d, Target: target, Kind: kind, Detail: detail})
	c.mu.Unlock()
	what := target + ": " + kind
	if detail != "" {
		what += " (" + detail + ")"
	}
	c.rec.Note(at, what)
	c.logf("%s", what)
}

// freePort reserves a loopback port for a process that restarts on it again and again.
func freePort() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

func (c *campaign) setup(ctx context.Context, bins Binaries, work string) error {
	o := c.o
	nodes := max(1, o.Cluster)
	coordAddrs := make([]string, nodes)
	for i := range coordAddrs {
		a, err := freePort()
		if err != nil {
			return fmt.Errorf("chaosreal: %w", err)
		}
		coordAddrs[i] = a
		c.coordURLs = append(c.coordURLs, "http://"+a)
	}
	accounts := make([]string, o.Accounts)
	for i := range accounts {
		accounts[i] = fmt.Sprintf("a%d=%d", i, o.InitialBalance)
	}
	for i := range o.Participants {
		name := fmt.Sprintf("p%d", i+1)
		addr, err := freePort()
		if err != nil {
			return fmt.Errorf("chaosreal: %w", err)
		}
		p := newProc(name, bins.Bank, []string{
			"--listen", addr, "--data-dir", filepath.Join(work, name),
			"--accounts", strings.Join(accounts, ","), "--coordinator", c.coordURLs[0],
			"--in-doubt-after", "1s", "--resolve-interval", "250ms", "--log-level", "warn",
		}, filepath.Join(work, name+".log"))
		c.banks = append(c.banks, p)
		c.bankURLs = append(c.bankURLs, "http://"+addr)
		px, err := NewProxy(name, addr, func() *tapConn { return newTapConn(name, c.tapped) })
		if err != nil {
			return err
		}
		c.proxies = append(c.proxies, px)
		c.partURLs = append(c.partURLs, "http://"+px.Addr()+"/prepare")
	}
	for i := range o.Passive {
		name := fmt.Sprintf("q%d", i+1)
		addr, err := freePort()
		if err != nil {
			return fmt.Errorf("chaosreal: %w", err)
		}
		args := []string{"--listen", addr, "--data", filepath.Join(work, name+".data")}
		if i%2 == 1 {
			args = append(args, "--no-status")
		}
		p := newProc(name, bins.Passive, args, filepath.Join(work, name+".log"))
		c.passives = append(c.passives, p)
		c.passiveURLs = append(c.passiveURLs, "http://"+addr)
		px, err := NewProxy(name, addr, func() *tapConn { return newTapConn(name, c.tapped) })
		if err != nil {
			return err
		}
		c.proxies = append(c.proxies, px)
		c.partURLs = append(c.partURLs, "http://"+px.Addr()+"/prepare")
	}
	seq := campaignSeq.Add(1)
	for i := range o.SQL {
		n, err := openSQLNode(ctx, o, seq, i)
		if err != nil {
			return err
		}
		c.sqlNodes = append(c.sqlNodes, n)
		addr, err := freePort()
		if err != nil {
			return fmt.Errorf("chaosreal: %w", err)
		}
		p := newProc(n.name, bins.SQL, []string{
			"--listen", addr, "--dsn", n.dsn, "--name", n.partName, "--table", n.txns,
			"--coordinator", c.coordURLs[0], "--max-prepared", "16",
			"--in-doubt-after", "1s", "--resolve-interval", "250ms",
			"--statement-timeout", "2s", "--prepare-timeout", "5s", "--log-level", "warn",
		}, filepath.Join(work, n.name+".log"))
		c.sqls = append(c.sqls, p)
		c.sqlURLs = append(c.sqlURLs, "http://"+addr)
		px, err := NewProxy(n.name, addr, func() *tapConn { return newTapConn(n.name, c.tapped) })
		if err != nil {
			return err
		}
		c.proxies = append(c.proxies, px)
		c.partURLs = append(c.partURLs, "http://"+px.Addr()+"/prepare")
	}
	common := []string{
		"--prepare-timeout", o.PrepareTimeout.String(), "--recovery-timeout", o.RecoveryTimeout.String(),
		"--request-timeout", "1s", "--retry-backoff-max", "300ms",
		"--shutdown-grace", "1s", "--log-level", "warn",
	}
	if o.Cluster == 0 {
		args := append([]string{"serve", "--listen", coordAddrs[0], "--data-dir", filepath.Join(work, "coord"),
			"--shards", "2", "--segment-size", "256KiB"}, common...)
		c.coords = []*proc{newProc("coord", bins.DTC, append(args, o.CoordArgs...), filepath.Join(work, "coord.log"))}
	} else if err := c.setupCluster(ctx, bins, work, coordAddrs, common); err != nil {
		return err
	}
	for _, p := range c.procs() {
		if err := p.start(c.drawFailpoints(p, false)); err != nil {
			return err
		}
	}
	direct := append(append(slices.Clone(c.bankURLs), c.passiveURLs...), c.sqlURLs...)
	for i, p := range c.participants() {
		if err := waitOK(ctx, direct[i]+"/healthz", 15*time.Second); err != nil {
			return fmt.Errorf("chaosreal: %s does not start: %w; %v", p.name, err, p.lastExit().lastLines)
		}
	}
	for i, p := range c.coords {
		if err := waitOK(ctx, c.coordURLs[i]+"/healthz", 15*time.Second); err != nil {
			return fmt.Errorf("chaosreal: %s does not start: %w; %v", p.name, err, p.lastExit().lastLines)
		}
	}
	for _, p := range c.procs() {
		c.sup.Go(func() { c.supervise(p) })
	}
	return nil
}

// participants are every participant process: the banks, the passive ones, the SQL ones.
func (c *campaign) participants() []*proc {
	return append(append(slices.Clone(c.banks), c.passives...), c.sqls...)
}

// procs are every process: the participants, then dtc.
func (c *campaign) procs() []*proc { return append(c.participants(), c.coords...) }

func (c *campaign) isCoord(p *proc) bool { return slices.Contains(c.coords, p) }

func (c *campaign) isPassive(p *proc) bool { return slices.Contains(c.passives, p) }

func (c *campaign) isSQL(p *proc) bool { return slices.Contains(c.sqls, p) }

// closeSQL rolls back whatever the SQL participants' databases still hold prepared of
// the campaign, and drops its tables. The processes must be stopped.
func (c *campaign) closeSQL(ctx context.Context) {
	for _, n := range c.sqlNodes {
		if left := n.close(ctx); len(left) > 0 {
			c.logf("%s: rolled back %d transactions left prepared in the database", n.name, len(left))
		}
	}
}

// waitOK polls url until it answers 200, within d.
func waitOK(ctx context.Context, u string, d time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	for {
		if err := getOK(ctx, u); err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s: no 200 within %v", u, d)
		case <-time.After(25 * time.Millisecond):
		}
	}
}

var harnessHTTP = &http.Client{Timeout: 2 * time.Second}

func getOK(ctx context.Context, u string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	resp, err := harnessHTTP.Do(req)
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: HTTP %d", u, resp.StatusCode)
	}
	return nil
}

func getJSON(ctx context.Context, u string, out any) error {
	body, err := get200(ctx, u)
	if err != nil {
		return err
	}
	return json.Unmarshal(body, out)
}

// get200 GETs u and returns the body of its 200 answer; any other status is an error.
func get200(ctx context.Context, u string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	resp, err := harnessHTTP.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s: HTTP %d: %.200s", u, resp.StatusCode, body)
	}
	return body, nil
}

// drawFailpoints picks the GO_FAILPOINTS of a new incarnation of p: maybe one failpoint
// of its kind, armed with one of the allowed actions; the coordinator's always carry
// Break and CoordFailpoints. While healing: none of the drawn ones.
func (c *campaign) drawFailpoints(p *proc, healing bool) string {
	var terms []string
	isCoord := c.isCoord(p)
	if isCoord {
		if c.o.Break {
			f, _ := faults.FailpointNamed("coordlog/decisionNotSynced")
			terms = append(terms, f.Path()+"=return(true)")
		}
		if c.o.CoordFailpoints != "" {
			terms = append(terms, c.o.CoordFailpoints)
		}
		if c.o.Cluster > 0 && c.o.Pauses > 0 {
			// Every batch of a shard's log waits a moment before it leaves, so that a
			// SIGSTOP often lands with a write in hand: sent after the resume, past the
			// lease, it shows the owner compare refusing the zombie.
			f, _ := faults.FailpointNamed("cluster/beforeLogWrite")
			terms = append(terms, f.Path()+"=sleep(250)")
		}
	}
	if healing || c.isPassive(p) || c.isSQL(p) { // the passive and SQL participants have no failpoints
		return strings.Join(terms, ";")
	}
	kind := "participant"
	if isCoord {
		kind = "coord"
	}
	c.mu.Lock()
	var cands []faults.Failpoint
	for _, name := range c.o.Failpoints {
		if f, ok := faults.FailpointNamed(name); ok && f.Process == kind {
			cands = append(cands, f)
		}
	}
	var term, desc string
	if len(cands) > 0 && c.rng.Float64() < c.o.FailpointRate {
		f := cands[c.rng.IntN(len(cands))]
		var acts []string
		for _, a := range f.Actions {
			if slices.Contains(c.o.FailpointActions, a) {
				acts = append(acts, a)
			}
		}
		if len(acts) > 0 {
			a := acts[c.rng.IntN(len(acts))]
			percent, sleep := 1+c.rng.IntN(5), 0 // panic, error: about one in 20..100 evaluations
			if a == faults.ActionSleep {
				percent, sleep = 10+c.rng.IntN(91), 20+c.rng.IntN(281)
			}
			t, err := f.Term(a, percent, sleep)
			if err == nil {
				term, desc = t, strings.TrimPrefix(t, faults.Module+"/")
			}
		}
	}
	c.mu.Unlock()
	if term != "" {
		terms = append(terms, term)
		c.fault(p.name, FaultArmed, desc, 0)
	}
	return strings.Join(terms, ";")
}

// supervise restarts p whenever an incarnation exits, until the campaign stops: after
// the delay its killer chose, or at once while healing, or after a short pause if it
// died on its own (a failpoint, a failed log), as a service manager would.
func (c *campaign) supervise(p *proc) {
	for {
		select {
		case <-p.exited():
		case <-c.stopping:
			return
		}
		select {
		case <-c.stopping:
			return
		default:
		}
		e := p.lastExit()
		c.mu.Lock()
		delay, healing := c.restart[p], c.healing
		delete(c.restart, p)
		c.mu.Unlock()
		if !e.killed {
			kind, detail := FaultDied, e.status
			for _, l := range e.failpoints {
				switch {
				case strings.Contains(l, ": panic"):
					kind, detail = FaultFailpointDeath, l
				case strings.Contains(l, "injected error") && kind != FaultFailpointDeath:
					kind, detail = FaultFailpointError, l
				}
			}
			if kind == FaultDied {
				detail += "; last lines: " + strings.Join(e.lastLines, " | ")
			}
			c.fault(p.name, kind, detail, 0)
			delay = 100 * time.Millisecond
		}
		if healing {
			delay = 0
		}
		select {
		case <-time.After(delay):
		case <-c.stopping:
			return
		}
		for attempt := 0; ; attempt++ {
			c.mu.Lock()
			healing = c.healing
			c.mu.Unlock()
			err := p.start(c.drawFailpoints(p, healing))
			if err == nil {
				break
			}
			c.logf("%s: restart failed: %v", p.name, err)
			select {
			case <-time.After(200 * time.Millisecond):
			case <-c.stopping:
				return
			}
		}
	}
}

// killer deals the fault phase's kill -9s at moments drawn uniformly over it.
func (c *campaign) killer(ctx context.Context) {
	o := c.o
	if o.Kills == 0 {
		return
	}
	start := time.Now()
	c.mu.Lock()
	at := make([]time.Duration, o.Kills)
	span := o.Duration - 500*time.Millisecond
	for i := range at {
		at[i] = 250*time.Millisecond + time.Duration(c.rng.Int64N(int64(span)))
	}
	c.mu.Unlock()
	slices.Sort(at)
	for _, t := range at {
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Until(start.Add(t))):
		}
		c.mu.Lock()
		var target *proc
		if c.rng.Float64() < o.CoordKillShare {
			target = c.coords[c.rng.IntN(len(c.coords))]
		} else {
			parts := c.participants()
			target = parts[c.rng.IntN(len(parts))]
		}
		if !target.running() || c.paused[target] { // down or paused already: take another that is up
			var up []*proc
			for _, p := range c.procs() {
				if p.running() && !c.paused[p] {
					up = append(up, p)
				}
			}
			target = nil
			if len(up) > 0 {
				target = up[c.rng.IntN(len(up))]
			}
		}
		d := o.RestartMin + time.Duration(c.rng.Int64N(int64(o.RestartMax-o.RestartMin)+1))
		if target != nil {
			c.restart[target] = d
		}
		c.mu.Unlock()
		if target == nil {
			continue
		}
		if pid := target.kill(); pid != 0 {
			kind := FaultKillParticipant
			if c.isCoord(target) {
				kind = FaultKillCoord
			}
			c.fault(target.name, kind, fmt.Sprintf("pid %d, restart after %v", pid, d.Round(time.Millisecond)), d)
		}
	}
}

// proxyFaults makes proxy i misbehave now and then during the fault phase.
func (c *campaign) proxyFaults(ctx context.Context, i int) {
	o := c.o
	if len(o.ProxyFaults) == 0 {
		return
	}
	px := c.proxies[i]
	n := len(c.proxies)
	for {
		c.mu.Lock()
		wait := time.Duration(c.rng.ExpFloat64() * float64(o.ProxyEvery) * float64(n))
		mode := o.ProxyFaults[c.rng.IntN(len(o.ProxyFaults))]
		d := 100*time.Millisecond + time.Duration(c.rng.Int64N(int64(o.ProxyForMax-100*time.Millisecond)+1))
		delay := 10*time.Millisecond + time.Duration(c.rng.Int64N(int64(290*time.Millisecond)))
		c.mu.Unlock()
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		kind, detail := FaultProxyBlackhole, "dtc → "+px.name+" partitioned"
		if strings.Contains(px.name, "→") { // a node's way to etcd
			detail = px.name + " partitioned"
		}
		switch mode {
		case Delay:
			kind, detail = FaultProxyDelay, fmt.Sprintf("every chunk held %v", delay.Round(time.Millisecond))
		case Drop:
			kind, detail = FaultProxyDrop, "connections reset, new ones refused"
		}
		px.Set(mode, delay)
		c.fault(px.name, kind, detail+fmt.Sprintf(" for %v", d.Round(time.Millisecond)), d)
		select {
		case <-ctx.Done():
		case <-time.After(d):
		}
		px.Set(Pass, 0)
		if ctx.Err() != nil {
			return
		}
	}
}

// healthWatch restarts a bank whose participant stopped answering (its log failed but
// the process lives on), as a liveness probe would: two failed /healthz in a row.
func (c *campaign) healthWatch(ctx context.Context) {
	bad := make([]int, len(c.banks))
	t := time.NewTicker(300 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		for i, p := range c.banks {
			if !p.running() {
				bad[i] = 0
				continue
			}
			if err := getOK(ctx, c.bankURLs[i]+"/healthz"); err != nil && strings.Contains(err.Error(), "HTTP 503") {
				bad[i]++
			} else {
				bad[i] = 0
			}
			if bad[i] >= 2 {
				bad[i] = 0
				c.mu.Lock()
				c.restart[p] = 0
				c.mu.Unlock()
				if pid := p.kill(); pid != 0 {
					c.fault(p.name, FaultUnhealthy, fmt.Sprintf("/healthz 503: kill -9 pid %d and restart", pid), 0)
				}
			}
		}
	}
}

// progress prints a line every few seconds of the fault phase.
func (c *campaign) progress(ctx context.Context, start int64, done chan<- struct{}) {
	defer close(done)
	if c.o.Progress == nil {
		return
	}
	t := time.NewTicker(5 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		c.mu.Lock()
		var com, ab, unk int
		for _, s := range c.samples {
			switch s.Outcome {
			case checker.Committed:
				com++
			case checker.Aborted:
				ab++
			default:
				unk++
			}
		}
		kills := c.faults[FaultKillCoord] + c.faults[FaultKillParticipant]
		proxy := c.faults[FaultProxyDelay] + c.faults[FaultProxyDrop] + c.faults[FaultProxyBlackhole]
		fp := c.faults[FaultFailpointDeath] + c.faults[FaultFailpointError]
		c.mu.Unlock()
		el := time.Duration(now() - start).Round(time.Second)
		fmt.Fprintf(c.o.Progress, "[%5v/%v] calls: %d committed, %d aborted, %d unknown | kill -9: %d | proxy faults: %d | failpoints fired: %d\n",
			el, c.o.Duration, com, ab, unk, kills, proxy, fp)
	}
}

// heal ends the fault phase: the proxies pass everything, and every process runs
// without failpoints (a process started with one armed is killed and restarted clean).
func (c *campaign) heal() {
	c.mu.Lock()
	c.healing = true
	c.mu.Unlock()
	for _, px := range c.proxies {
		px.Set(Pass, 0)
	}
	c.rec.Note(now(), "heal: faults stop, proxies pass, processes run without failpoints")
	for _, p := range c.procs() {
		p.mu.Lock()
		armed := p.failpoint != c.drawFailpoints(p, true)
		p.mu.Unlock()
		if armed && p.running() {
			c.mu.Lock()
			c.restart[p] = 0
			c.mu.Unlock()
			if pid := p.kill(); pid != 0 {
				c.fault(p.name, FaultHealRestart, fmt.Sprintf("pid %d", pid), 0)
			}
		}
	}
}

// waitQuiet waits until everything is resolved: every process up, dtc ready with no
// transaction unfinished, no bank holding a prepared transaction.
func (c *campaign) waitQuiet(ctx context.Context) (bool, string) {
	deadline := time.Now().Add(c.o.HealMax)
	var cls []*client.Client // one per node: in a cluster each lists only its own shards
	for _, u := range c.coordURLs {
		cl, _ := client.New(u, client.Options{MaxRetries: -1, HTTPClient: harnessHTTP})
		cls = append(cls, cl)
	}
	why := ""
	for {
		why = c.unresolved(ctx, cls)
		if why == "" {
			return true, ""
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return false, why
		}
		select {
		case <-ctx.Done():
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func (c *campaign) unresolved(ctx context.Context, cls []*client.Client) string {
	var what []string
	for _, p := range c.procs() {
		if !p.running() {
			what = append(what, p.name+" is down")
		}
	}
	for i, cl := range cls {
		name := c.coords[i].name
		if err := cl.Ready(ctx); err != nil {
			return strings.Join(append(what, name+" is not ready: "+err.Error()), "; ")
		}
		for _, st := range []string{"preparing", "committing", "aborting", "in-doubt"} {
			page, err := cl.List(ctx, client.ListOptions{State: st, Limit: 5})
			if err != nil {
				what = append(what, name+" list: "+err.Error())
				break
			}
			if len(page.Transactions) > 0 {
				var ids []string
				for _, v := range page.Transactions {
					ids = append(ids, v.ID)
				}
				what = append(what, fmt.Sprintf("%s holds %s transactions (%s)", name, st, strings.Join(ids, ", ")))
			}
		}
	}
	if c.o.Cluster > 0 {
		if why := c.shardsUnowned(ctx); why != "" {
			what = append(what, why)
		}
	}
	for i, u := range c.bankURLs {
		var acc struct {
			Accounts []struct {
				Name               string
				Reserved, Incoming int64
			} `json:"accounts"`
		}
		if err := getJSON(ctx, u+"/accounts", &acc); err != nil {
			what = append(what, c.banks[i].name+": "+err.Error())
			continue
		}
		for _, a := range acc.Accounts {
			if a.Reserved != 0 || a.Incoming != 0 {
				what = append(what, fmt.Sprintf("%s holds prepared transactions (account %s: %d reserved, %d incoming)", c.banks[i].name, a.Name, a.Reserved, a.Incoming))
				break
			}
		}
	}
	for i, u := range c.passiveURLs {
		states := map[string]string{}
		if err := getJSON(ctx, u+"/states", &states); err != nil {
			what = append(what, c.passives[i].name+": "+err.Error())
			continue
		}
		var prepared []string
		for id, st := range states {
			if st == "prepared" {
				prepared = append(prepared, id)
			}
		}
		if len(prepared) > 0 {
			slices.Sort(prepared)
			what = append(what, fmt.Sprintf("%s holds %d prepared transactions (%s)", c.passives[i].name, len(prepared), strings.Join(prepared[:min(3, len(prepared))], ", ")))
		}
	}
	for _, n := range c.sqlNodes {
		gids, err := n.prepared(ctx)
		switch {
		case err != nil:
			what = append(what, n.name+": "+err.Error())
		case len(gids) > 0:
			what = append(what, fmt.Sprintf("%s's database holds %d prepared transactions (%s)", n.name, len(gids), strings.Join(gids[:min(3, len(gids))], ", ")))
		}
	}
	return strings.Join(what, "; ")
}

// shutdown stops every process and proxy; it may be called more than once.
func (c *campaign) shutdown() {
	select {
	case <-c.stopping:
		return
	default:
	}
	close(c.stopping)
	c.sup.Wait()
	var wg sync.WaitGroup
	for _, p := range c.procs() {
		if p != nil {
			wg.Go(func() { p.stop(2 * time.Second) })
		}
	}
	wg.Wait()
	for _, px := range c.proxies {
		px.Close()
	}
	if c.etcdc != nil {
		_ = c.etcdc.Close()
	}
	if c.etcd != nil {
		c.etcd.Close()
	}
}

// clientIDOf is the client's id of a participant-visible transaction id.
func clientIDOf(wire string) string {
	id, _, _ := coordinator.SplitTxnID(wire)
	return id
}

func statusURL(bank, wire string) string {
	return bank + "/" + protocol.EndpointStatus + "?" + protocol.StatusQuery(wire)
}
