package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/pflag"

	"github.com/dtc-project/dtc/chaosreal"
	"github.com/dtc-project/dtc/faults"
)

const realUsage = `usage: chaos real [flags]

Builds dtc and the bank with their failpoints live, starts dtc and --participants banks on
127.0.0.1 (each with its own data directory), each bank behind a fault-injecting TCP proxy,
and drives a transfer workload for --duration while injecting faults. With --passive N,
N passive participants (examples/passive: they never ask about transactions in doubt,
and every other one has no status endpoint) join, each behind its proxy too, and half
the transfers also name one of them. With --sql N (or --participants sql: two), N SQL
participants join too, each a dtc-sql process behind its proxy, alternately over
PostgreSQL (--pg-dsn) and MariaDB (--mysql-dsn), with an account table of its own made for
the campaign (CHECK balance >= 0) and dropped at its end: half the transfers then move
money between a bank and a SQL participant, or between two SQL participants, whose leg is
an UPDATE (an overdraft breaks the CHECK: a NACK). The faults:

  kill -9 of the coordinator and of participants at random moments (--kills), each
  restarted on the same data directory;
  proxy faults between dtc and a participant: delay, dropped connections, blackhole
  (--proxy);
  failpoints at the durability points, armed in some process incarnations (--failpoints,
  --failpoint-actions, --failpoint-rate): panic (the process dies there), sleep, error.

With --cluster N, dtc runs as N nodes of one cluster (dtc serve --cluster) over an etcd
started inside this process (or --etcd-endpoints): clients spread their calls over every
node, the coordinator's kill -9s hit one node at a time, and --pauses nodes are stopped
(SIGSTOP) for --pause-for, past their lease (--lease-ttl), then resumed (SIGCONT). After
each resume the node's dtc_cluster_fenced_writes_total is read: the writes etcd refused
the zombie. Each node reaches etcd through a proxy of its own (n1→etcd, ...), which the
--proxy faults hit too: a node delayed, cut off from or reset by the store must lose its
shards to another node, never write after its lease (--no-etcd-proxies: direct). The
heal also waits until every shard has a live owner.

Then it heals (proxies pass, every process up without failpoints), waits until every
transaction is resolved, checks the history with the same checker as the simulator plus
the bank invariant on the banks' own balances (and the SQL participants', read straight
from the databases, where every account must also hold what the transactions dtc-sql
recorded as committed there add up to, and nothing of the campaign may be left prepared),
writes the HTML report, and stops every process it started (also on Ctrl-C). The seed
drives every choice; the processes' timing is real, so a seed replays the same plan, not
the same run.

Exit codes: 0 no violation, 1 violations, 2 bad flags or the campaign could not run.

flags:
`

type realFlags struct {
	duration                          time.Duration
	seed                              uint64
	participants                      participantsValue
	clients, accounts                 int
	passive, sql                      int
	pgDSN, mysqlDSN                   string
	kills                             int
	coordShare                        float64
	proxy                             []string
	failpoints, actions               []string
	failpointRate                     float64
	breakIt                           bool
	report, work, bin                 string
	keep, verbose                     bool
	healMax, clientTimeout            time.Duration
	prepareTimeout, recoveryTimeout   time.Duration
	restartMin, restartMax, proxyEvry time.Duration
	nodes, clusterShards, pauses      int
	leaseTTL, pauseFor                time.Duration
	etcdEndpoints                     []string
	noEtcdProxies                     bool
}

func runReal(args []string, stdout, stderr io.Writer) int {
	var f realFlags
	fs := pflag.NewFlagSet("chaos real", pflag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.DurationVar(&f.duration, "duration", time.Minute, "length of the fault phase (the heal phase follows)")
	fs.Uint64Var(&f.seed, "seed", 0, "seed of every choice the campaign makes (default: drawn from the clock, and printed)")
	f.participants = participantsValue{banks: 3}
	fs.Var(&f.participants, "participants", "bank processes; \"sql\" adds two SQL participants (as --sql 2), \"4,sql\" both")
	fs.IntVar(&f.passive, "passive", 0, "passive participant processes (never ask about transactions in doubt; every other one without a status endpoint)")
	fs.IntVar(&f.sql, "sql", 0, "SQL participant processes (dtc-sql): s1, s3, … over PostgreSQL, s2, s4, … over MariaDB")
	fs.StringVar(&f.pgDSN, "pg-dsn", chaosreal.DefaultPostgresDSN, "with --sql: the PostgreSQL database (max_prepared_transactions >= 16)")
	fs.StringVar(&f.mysqlDSN, "mysql-dsn", chaosreal.DefaultMySQLDSN, "with --sql: the MariaDB database")
	fs.IntVar(&f.clients, "clients", 4, "concurrent clients")
	fs.IntVar(&f.accounts, "accounts", 4, "accounts per bank")
	fs.IntVar(&f.kills, "kills", 0, "kill -9s in the fault phase (default one per 1.5s; 0 with --kills=0 given: none)")
	fs.Float64Var(&f.coordShare, "coord-kill-share", 0.4, "share of the kills aimed at the coordinator")
	fs.DurationVar(&f.restartMin, "restart-min", 50*time.Millisecond, "shortest wait before a killed process restarts")
	fs.DurationVar(&f.restartMax, "restart-max", 600*time.Millisecond, "longest wait before a killed process restarts")
	fs.StringSliceVar(&f.proxy, "proxy", []string{"delay", "drop", "blackhole"}, "proxy faults between dtc and the participants: delay, drop, blackhole, or none")
	fs.DurationVar(&f.proxyEvry, "proxy-every", 2*time.Second, "mean gap between two proxy faults")
	fs.StringSliceVar(&f.failpoints, "failpoints", []string{"all"}, "failpoints to arm: all, none, or names: "+failpointNames())
	fs.StringSliceVar(&f.actions, "failpoint-actions", []string{"panic", "sleep", "error"}, "what an armed failpoint does: panic, sleep, error")
	fs.Float64Var(&f.failpointRate, "failpoint-rate", 0.3, "share of process incarnations that start with a failpoint armed")
	fs.BoolVar(&f.breakIt, "break", false, "arm the deliberate bug coordlog/decisionNotSynced in the coordinator: the campaign must fail")
	fs.DurationVar(&f.healMax, "heal-max", 45*time.Second, "longest wait for everything to resolve after the faults stop")
	fs.DurationVar(&f.clientTimeout, "client-timeout", 3*time.Second, "client call timeout")
	fs.DurationVar(&f.prepareTimeout, "prepare-timeout", time.Second, "dtc serve --prepare-timeout")
	fs.DurationVar(&f.recoveryTimeout, "recovery-timeout", time.Second, "dtc serve --recovery-timeout")
	fs.StringVar(&f.report, "report", filepath.Join(os.TempDir(), "dtc-chaos"), "directory of the HTML report (a subdirectory per campaign)")
	fs.StringVar(&f.work, "work-dir", "", "directory for data and process logs (default: a temporary one, removed after a clean campaign)")
	fs.BoolVar(&f.keep, "keep", false, "keep the work directory after a clean campaign")
	fs.StringVar(&f.bin, "bin", "", "directory with prebuilt failpoint binaries dtc and bank, and passive and dtc-sql (default: build them)")
	fs.IntVar(&f.nodes, "cluster", 0, "run dtc as this many cluster nodes over etcd (0: one dtc with its local log)")
	fs.IntVar(&f.clusterShards, "cluster-shards", 8, "with --cluster: the cluster's shards")
	fs.DurationVar(&f.leaseTTL, "lease-ttl", time.Second, "with --cluster: the nodes' etcd lease (whole seconds)")
	fs.IntVar(&f.pauses, "pauses", 0, "with --cluster: SIGSTOPs of a node in the fault phase (default one per 10s; 0 with --pauses=0 given: none)")
	fs.DurationVar(&f.pauseFor, "pause-for", 0, "with --cluster: how long a node stays stopped (default --lease-ttl + 2s)")
	fs.StringSliceVar(&f.etcdEndpoints, "etcd-endpoints", nil, "with --cluster: an etcd of your own (client URLs; default: one embedded in this process)")
	fs.BoolVar(&f.noEtcdProxies, "no-etcd-proxies", false, "with --cluster: connect the nodes to etcd directly, without the fault proxies between")
	fs.BoolVarP(&f.verbose, "verbose", "v", false, "print every fault as it happens")
	fs.Usage = func() { fmt.Fprintf(stderr, "%s%s", realUsage, fs.FlagUsages()) }
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "chaos real: unexpected arguments %q\n", fs.Args())
		return 2
	}
	if !fs.Changed("seed") {
		f.seed = uint64(time.Now().UnixNano()) % 1_000_000
	}
	if !fs.Changed("sql") && f.participants.sql {
		f.sql = 2
	}
	o := chaosreal.Options{
		Seed: f.seed, Duration: f.duration, Participants: f.participants.banks, Passive: f.passive, Clients: f.clients, Accounts: f.accounts,
		SQL: f.sql, PostgresDSN: f.pgDSN, MySQLDSN: f.mysqlDSN,
		Kills: f.kills, NoKills: fs.Changed("kills") && f.kills == 0, CoordKillShare: f.coordShare,
		RestartMin: f.restartMin, RestartMax: f.restartMax, ProxyEvery: f.proxyEvry,
		FailpointRate: f.failpointRate, FailpointActions: f.actions, Break: f.breakIt,
		HealMax: f.healMax, ClientTimeout: f.clientTimeout, PrepareTimeout: f.prepareTimeout, RecoveryTimeout: f.recoveryTimeout,
		WorkDir: f.work, KeepWork: f.keep,
		Cluster: f.nodes, ClusterShards: f.clusterShards, LeaseTTL: f.leaseTTL, Pauses: f.pauses,
		NoPauses: fs.Changed("pauses") && f.pauses == 0, PauseFor: f.pauseFor, EtcdEndpoints: f.etcdEndpoints, NoEtcdProxies: f.noEtcdProxies,
	}
	if o.CoordKillShare == 0 {
		o.CoordKillShare = 1e-9 // "0" means the default; a tiny share means none
	}
	modes, err := chaosreal.ParseProxyFaults(f.proxy)
	if err != nil {
		fmt.Fprintf(stderr, "chaos real: --proxy: %v\n", err)
		return 2
	}
	o.ProxyFaults, o.NoProxyFaults = modes, len(modes) == 0
	switch {
	case len(f.failpoints) == 1 && f.failpoints[0] == "all":
	case len(f.failpoints) == 0 || (len(f.failpoints) == 1 && f.failpoints[0] == "none"):
		o.NoFailpoints = true
	default:
		o.Failpoints = f.failpoints
	}
	if f.bin != "" {
		o.Binaries = chaosreal.Binaries{DTC: filepath.Join(f.bin, "dtc"), Bank: filepath.Join(f.bin, "bank"), Passive: filepath.Join(f.bin, "passive"), SQL: filepath.Join(f.bin, "dtc-sql")}
		live, err := chaosreal.HasFailpoints(o.Binaries.DTC)
		if err != nil {
			fmt.Fprintf(stderr, "chaos real: --bin: %v\n", err)
			return 2
		}
		if !live {
			fmt.Fprintf(stderr, "chaos real: warning: %s was built without failpoints: armed failpoints will do nothing\n", o.Binaries.DTC)
		}
		o.Binaries.Failpoints = live
	}
	if err := o.Validate(); err != nil {
		fmt.Fprintf(stderr, "chaos real: %v\n", err)
		return 2
	}
	cmd := []string{"go run ./cmd/chaos real"}
	for _, a := range args {
		if strings.ContainsAny(a, " '\"$;&|") {
			a = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
		cmd = append(cmd, a)
	}
	if !fs.Changed("seed") {
		cmd = append(cmd, "--seed", fmt.Sprint(f.seed))
	}
	o.Command = strings.Join(cmd, " ")
	if f.report != "" {
		o.ReportDir = filepath.Join(f.report, fmt.Sprintf("real-seed-%d-%s", f.seed, time.Now().Format("20060102-150405")))
	}
	o.Progress = stdout
	if f.verbose {
		o.Log = stdout
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	coord := "one dtc"
	if f.nodes > 0 {
		coord = fmt.Sprintf("a cluster of %d dtc nodes", f.nodes)
	}
	parts := fmt.Sprintf("%d banks", o.Participants)
	if o.Passive > 0 {
		parts += fmt.Sprintf(", %d passive", o.Passive)
	}
	if o.SQL > 0 {
		parts += fmt.Sprintf(", %d SQL (PostgreSQL and MariaDB)", o.SQL)
	}
	fmt.Fprintf(stdout, "chaos real: seed %d, %v of faults, %s, %s, %d clients\n", f.seed, f.duration, coord, parts, f.clients)
	start := time.Now()
	res, err := chaosreal.Run(ctx, o)
	if res != nil {
		printRealSummary(stdout, res, time.Since(start))
	}
	if err != nil {
		fmt.Fprintf(stderr, "chaos real: %v\n", err)
		return 2
	}
	if !res.OK() {
		return 1
	}
	return 0
}

func failpointNames() string {
	var names []string
	for _, f := range faults.Failpoints {
		if !f.Broken {
			names = append(names, f.Name)
		}
	}
	return strings.Join(names, ", ")
}

// printRealSummary prints the campaign's summary table and verdict.
func printRealSummary(w io.Writer, r *chaosreal.Result, wall time.Duration) {
	o := r.Options
	fmt.Fprintf(w, "\nsummary (seed %d): fault phase %v, heal %v, wall %v\n", r.Seed, o.Duration, r.HealTook.Round(time.Millisecond), wall.Round(time.Second))
	fmt.Fprintf(w, "  %-34s %d (%d calls): %d committed, %d aborted, %d unknown to their client\n", "transactions", r.Txns, r.Calls, r.Committed, r.Aborted, r.Unknown)
	fmt.Fprintf(w, "  %-34s %d\n", "kill -9", r.Kills())
	for _, k := range []string{chaosreal.FaultKillCoord, chaosreal.FaultKillParticipant, chaosreal.FaultFailpointDeath, chaosreal.FaultFailpointError,
		chaosreal.FaultDied, chaosreal.FaultUnhealthy, chaosreal.FaultArmed, chaosreal.FaultProxyDelay, chaosreal.FaultProxyDrop,
		chaosreal.FaultProxyBlackhole, chaosreal.FaultHealRestart, chaosreal.FaultPause} {
		if n := r.Faults[k]; n > 0 {
			fmt.Fprintf(w, "    %-32s %d\n", k, n)
		}
	}
	for _, p := range r.Pauses {
		fmt.Fprintf(w, "    %-32s %s for %v: %d writes refused by etcd after the resume, %d leases lost %s\n",
			"pause", p.Node, p.For, p.FencedWrites, p.LeasesLost, p.Error)
	}
	if r.Report != nil {
		fmt.Fprintf(w, "  %-34s %d txns, %d client ops, %d model ops, porcupine %s\n", "history", r.Report.Txns, r.Report.Ops, r.Report.ModelOps, r.Report.Porcupine)
	}
	if r.SQLStates != nil {
		fmt.Fprintf(w, "  %-34s %d committed, %d aborted, %d unknown (NACKed or cut short), %d prepared\n", "SQL participants' transactions",
			r.SQLStates["committed"], r.SQLStates["aborted"], r.SQLStates["unknown"], r.SQLStates["prepared"])
	}
	if r.Balances != nil {
		var total int64
		for _, b := range r.Balances {
			total += b
		}
		what := "bank total"
		if o.SQL > 0 {
			what = "bank and SQL total"
		}
		fmt.Fprintf(w, "  %-34s %d cents across %d accounts (want %d)\n", what, total, len(r.Balances), r.WantTotal)
	}
	if r.Report != nil {
		fmt.Fprintf(w, "  %-34s %d\n", "violations", len(r.Violations))
	}
	for _, v := range r.Violations {
		fmt.Fprintf(w, "    %s\n", v)
	}
	if r.ReportPath != "" {
		fmt.Fprintf(w, "html report: %s\n", r.ReportPath)
	}
	if r.WorkDir != "" {
		fmt.Fprintf(w, "data and process logs: %s\n", r.WorkDir)
	}
	if !r.OK() {
		fmt.Fprintf(w, "replay the plan: %s\n", r.ReplayCommand())
	}
	verdict := "OK: no violation"
	if r.Report == nil {
		verdict = "INTERRUPTED: the history was not checked"
	} else if !r.OK() {
		verdict = fmt.Sprintf("FAIL: %d violation(s)", len(r.Violations))
	}
	fmt.Fprintln(w, verdict)
}

// participantsValue is --participants: a number of banks, "sql" (two SQL participants
// alongside the default banks, as --sql 2), or both, "4,sql".
type participantsValue struct {
	banks int
	sql   bool
}

func (v *participantsValue) String() string {
	s := strconv.Itoa(v.banks)
	if v.sql {
		s += ",sql"
	}
	return s
}

func (v *participantsValue) Set(s string) error {
	for _, part := range strings.Split(s, ",") {
		switch part = strings.TrimSpace(part); part {
		case "sql":
			v.sql = true
		default:
			n, err := strconv.Atoi(part)
			if err != nil {
				return fmt.Errorf("%q: want a number of banks, sql, or both (4,sql)", part)
			}
			v.banks = n
		}
	}
	return nil
}

func (v *participantsValue) Type() string { return "banks[,sql]" }
