package chaosreal

import (
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/dtc-project/dtc/faults"
)

// Options describe one real-process campaign. The zero value of a field means its
// default. The seed drives every choice the campaign makes (the workload, which process
// is killed when, which proxy misbehaves how, which failpoint is armed); the processes'
// own timing is real, so the same seed gives the same plan, not the same run.
type Options struct {
	Seed uint64
	// Duration is the fault phase (default 60s); the heal phase follows.
	Duration time.Duration

	Participants int // banks p1..pN (default 3)
	// Passive is how many passive participants q1..qM join the banks (default 0):
	// examples/passive, which never asks about transactions in doubt; the even-numbered
	// ones have no status endpoint either. With any, half the transfers also name one
	// of them (one in twenty with a payload that makes it vote NACK), so only dtc's
	// recovery can resolve what they hold. They are killed like the banks.
	Passive int
	// SQL is how many SQL participants s1..sN join the banks (default 0): each a dtc-sql
	// process in front of a database of its own kind, PostgreSQL for s1, s3, …
	// (PostgresDSN) and MariaDB for s2, s4, … (MySQLDSN), with an account table of its
	// own (accounts a0..aK-1, InitialBalance each, CHECK balance >= 0) made for the
	// campaign and dropped at its end. With any, half the transfers move money between
	// a bank and a SQL participant, or between two SQL participants: their SQL leg is an
	// UPDATE of the payload, and an overdraft breaks the CHECK, a NACK. They are killed
	// like the banks; the check reads their balances and what they committed from the
	// databases themselves.
	SQL            int
	PostgresDSN    string // default postgres://postgres@127.0.0.1:5432/test?sslmode=disable
	MySQLDSN       string // default mysql://root@127.0.0.1:3306/test
	Clients        int    // concurrent clients (default 4)
	Accounts       int    // accounts per bank, a0..aK-1 (default 4)
	InitialBalance int64  // cents in each account at the start (default 1000)

	// Kills is how many kill -9s the fault phase deals, at moments drawn uniformly over
	// it (default: one per 1.5s). NoKills turns them off. CoordKillShare is the share
	// aimed at the coordinator (default 0.4); the others hit a participant. A killed
	// process restarts after a delay in [RestartMin, RestartMax] (default 50ms..600ms).
	Kills          int
	NoKills        bool
	CoordKillShare float64
	RestartMin     time.Duration
	RestartMax     time.Duration

	// ProxyFaults are the faults the proxy between dtc and each participant injects:
	// Delay, Drop and Blackhole (default all three; NoProxyFaults: none). One starts on
	// average every ProxyEvery (default 2s) and lasts up to ProxyForMax (default 1.5s).
	ProxyFaults   []ProxyMode
	NoProxyFaults bool
	ProxyEvery    time.Duration
	ProxyForMax   time.Duration

	// Failpoints are the names (faults.Failpoints) a process incarnation may start with
	// armed (default: every one that is not Broken; NoFailpoints: none), with one of
	// FailpointActions (default all). FailpointRate is the share of incarnations that
	// start with one armed (default 0.3).
	Failpoints       []string
	NoFailpoints     bool
	FailpointActions []string
	FailpointRate    float64

	// Break arms the deliberate bug coordlog/decisionNotSynced in every coordinator
	// incarnation: the campaign must then report violations. CoordFailpoints is a raw
	// GO_FAILPOINTS list added to every coordinator incarnation.
	Break           bool
	CoordFailpoints string
	// CoordArgs are extra flags for dtc serve (they win over the campaign's own).
	CoordArgs []string

	// Cluster, when positive, runs the coordinator as that many nodes n1..nN of one
	// cluster (dtc serve --cluster) instead of one dtc with a local log: the shards'
	// logs live in an etcd started inside the campaign's process (or EtcdEndpoints),
	// clients spread their calls over every node, a kill -9 aimed at the coordinator
	// hits one node, and Pauses nodes are stopped (SIGSTOP) for PauseFor, past their
	// lease, then resumed (SIGCONT): a zombie that still believes it owns its shards.
	// After each resume the campaign reads the node's dtc_cluster_fenced_writes_total
	// (Result.FencedWrites): the writes etcd refused it. Each node reaches etcd through
	// a Proxy of its own ("n1→etcd"), which the ProxyFaults hit like the participants'
	// proxies: a node delayed, cut off from or reset by the store (unless
	// NoEtcdProxies). Break cannot be combined.
	Cluster       int
	ClusterShards int           // dtc serve --cluster-shards (default 8)
	LeaseTTL      time.Duration // dtc serve --lease-ttl (default 1s)
	// Pauses is how many SIGSTOPs the fault phase deals (default: one per 10s of
	// Duration, at least one; NoPauses: none); PauseFor is how long each lasts
	// (default LeaseTTL + 2s; more than LeaseTTL).
	Pauses   int
	NoPauses bool
	PauseFor time.Duration
	// EtcdEndpoints is an etcd of your own (client URLs); default: an embedded one.
	EtcdEndpoints []string
	// NoEtcdProxies connects the nodes to etcd directly, with no fault proxy between.
	NoEtcdProxies bool

	// ClientTimeout bounds one client call (default 3s); a call that ends without an
	// answer is tried again with the same id up to ClientRetries times (default 2).
	ClientTimeout time.Duration
	ClientRetries int
	// PrepareTimeout and RecoveryTimeout configure dtc (default 1s each).
	PrepareTimeout  time.Duration
	RecoveryTimeout time.Duration
	// HealMax bounds the heal phase (default 45s): by then every transaction must be
	// decided and every participant resolved.
	HealMax time.Duration

	// Binaries are prebuilt programs; zero: build them with failpoints live from the
	// module at ModuleDir (default: the module of the working directory).
	Binaries  Binaries
	ModuleDir string
	// WorkDir holds the data directories and the processes' logs (default: a new
	// temporary directory, removed after a campaign without violations unless KeepWork).
	WorkDir  string
	KeepWork bool
	// ReportDir is where the HTML report goes ("" for none).
	ReportDir string
	// Command is the command line that replays this campaign's plan, for the report
	// (default: one made of the seed and the duration).
	Command string
	// Progress receives a line every few seconds, and Log one per fault (nil: none).
	Progress io.Writer
	Log      io.Writer
}

func (o Options) withDefaults() Options {
	def := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	defDur := func(v *time.Duration, d time.Duration) {
		if *v == 0 {
			*v = d
		}
	}
	defDur(&o.Duration, 60*time.Second)
	def(&o.Participants, 3)
	def(&o.Clients, 4)
	if o.PostgresDSN == "" {
		o.PostgresDSN = DefaultPostgresDSN
	}
	if o.MySQLDSN == "" {
		o.MySQLDSN = DefaultMySQLDSN
	}
	def(&o.Accounts, 4)
	if o.InitialBalance == 0 {
		o.InitialBalance = 1000
	}
	if o.Kills == 0 && !o.NoKills {
		o.Kills = max(1, int(o.Duration/(1500*time.Millisecond)))
	}
	if o.NoKills {
		o.Kills = 0
	}
	if o.CoordKillShare == 0 {
		o.CoordKillShare = 0.4
	}
	defDur(&o.RestartMin, 50*time.Millisecond)
	defDur(&o.RestartMax, 600*time.Millisecond)
	if o.ProxyFaults == nil && !o.NoProxyFaults {
		o.ProxyFaults = []ProxyMode{Delay, Drop, Blackhole}
	}
	if o.NoProxyFaults {
		o.ProxyFaults = nil
	}
	defDur(&o.ProxyEvery, 2*time.Second)
	defDur(&o.ProxyForMax, 1500*time.Millisecond)
	if o.Failpoints == nil && !o.NoFailpoints {
		for _, f := range faults.Failpoints {
			if !f.Broken {
				o.Failpoints = append(o.Failpoints, f.Name)
			}
		}
	}
	if o.NoFailpoints {
		o.Failpoints = nil
	}
	if o.FailpointActions == nil {
		o.FailpointActions = []string{faults.ActionPanic, faults.ActionSleep, faults.ActionError}
	}
	if o.FailpointRate == 0 {
		o.FailpointRate = 0.3
	}
	defDur(&o.ClientTimeout, 3*time.Second)
	if o.ClientRetries == 0 {
		o.ClientRetries = 2
	}
	defDur(&o.PrepareTimeout, time.Second)
	defDur(&o.RecoveryTimeout, time.Second)
	defDur(&o.HealMax, 45*time.Second)
	if o.Cluster > 0 {
		def(&o.ClusterShards, 8)
		defDur(&o.LeaseTTL, time.Second)
		if o.Pauses == 0 && !o.NoPauses {
			o.Pauses = max(1, int(o.Duration/(10*time.Second)))
		}
		defDur(&o.PauseFor, o.LeaseTTL+2*time.Second)
	}
	if o.NoPauses || o.Cluster == 0 {
		o.Pauses = 0
	}
	return o
}

// The databases of the SQL participants unless Options say otherwise: those of make
// test (.ci/databases).
const (
	DefaultPostgresDSN = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
	DefaultMySQLDSN    = "mysql://root@127.0.0.1:3306/test"
)

// Validate reports options that cannot be run.
func (o Options) Validate() error {
	o = o.withDefaults()
	var errs []error
	if o.Duration < time.Second {
		errs = append(errs, fmt.Errorf("Duration %v: at least 1s", o.Duration))
	}
	if o.Participants < 2 || o.Participants > 16 {
		errs = append(errs, fmt.Errorf("Participants %d: must be 2..16 (a transfer spans two banks)", o.Participants))
	}
	if o.Passive < 0 || o.Passive > 16 {
		errs = append(errs, fmt.Errorf("Passive %d: must be 0..16", o.Passive))
	}
	if o.SQL < 0 || o.SQL > 8 {
		errs = append(errs, fmt.Errorf("SQL %d: must be 0..8", o.SQL))
	}
	if o.SQL > 0 {
		if !strings.HasPrefix(o.PostgresDSN, "postgres://") && !strings.HasPrefix(o.PostgresDSN, "postgresql://") {
			errs = append(errs, fmt.Errorf("PostgresDSN %q: want postgres://…", o.PostgresDSN))
		}
		if !strings.HasPrefix(o.MySQLDSN, "mysql://") && !strings.HasPrefix(o.MySQLDSN, "mariadb://") {
			errs = append(errs, fmt.Errorf("MySQLDSN %q: want mysql://…", o.MySQLDSN))
		}
	}
	if o.Clients < 1 || o.Clients > 64 {
		errs = append(errs, fmt.Errorf("Clients %d: must be 1..64", o.Clients))
	}
	if o.Accounts < 1 || o.Accounts > 1000 {
		errs = append(errs, fmt.Errorf("Accounts %d: must be 1..1000", o.Accounts))
	}
	if o.InitialBalance < 1 {
		errs = append(errs, fmt.Errorf("InitialBalance %d: must be positive", o.InitialBalance))
	}
	if o.Kills < 0 || o.Kills > 10000 {
		errs = append(errs, fmt.Errorf("Kills %d: must be 0..10000", o.Kills))
	}
	if o.CoordKillShare < 0 || o.CoordKillShare > 1 || o.FailpointRate < 0 || o.FailpointRate > 1 {
		errs = append(errs, errors.New("CoordKillShare and FailpointRate must be within [0, 1]"))
	}
	if o.RestartMin < 0 || o.RestartMax < o.RestartMin {
		errs = append(errs, fmt.Errorf("RestartMin %v and RestartMax %v are not a range", o.RestartMin, o.RestartMax))
	}
	for _, m := range o.ProxyFaults {
		if m != Delay && m != Drop && m != Blackhole {
			errs = append(errs, fmt.Errorf("proxy fault %v: want delay, drop or blackhole", m))
		}
	}
	if o.ProxyEvery <= 0 || o.ProxyForMax < 100*time.Millisecond {
		errs = append(errs, errors.New("ProxyEvery must be positive and ProxyForMax at least 100ms"))
	}
	for _, name := range o.Failpoints {
		f, ok := faults.FailpointNamed(name)
		if !ok {
			errs = append(errs, fmt.Errorf("no failpoint %q (see faults.Failpoints)", name))
			continue
		}
		if f.Broken {
			errs = append(errs, fmt.Errorf("failpoint %q is a deliberate bug: arm it with Break", name))
		}
	}
	for _, a := range o.FailpointActions {
		if !slices.Contains([]string{faults.ActionPanic, faults.ActionSleep, faults.ActionError}, a) {
			errs = append(errs, fmt.Errorf("failpoint action %q: want panic, sleep or error", a))
		}
	}
	if o.ClientTimeout < 100*time.Millisecond || o.ClientRetries < 0 {
		errs = append(errs, errors.New("ClientTimeout must be at least 100ms and ClientRetries not negative"))
	}
	if o.Cluster < 0 || o.Cluster > 9 {
		errs = append(errs, fmt.Errorf("Cluster %d: must be 0 (one dtc, local log) to 9 nodes", o.Cluster))
	}
	if o.Cluster > 0 {
		if o.Break {
			errs = append(errs, errors.New("Break arms a bug of the local log: it cannot be combined with Cluster"))
		}
		if o.ClusterShards < 1 || o.ClusterShards > 1024 {
			errs = append(errs, fmt.Errorf("ClusterShards %d: must be 1..1024", o.ClusterShards))
		}
		if o.LeaseTTL < time.Second || o.LeaseTTL%time.Second != 0 {
			errs = append(errs, fmt.Errorf("LeaseTTL %v: a whole number of seconds, at least 1s", o.LeaseTTL))
		}
		if o.Pauses < 0 || o.Pauses > 1000 {
			errs = append(errs, fmt.Errorf("Pauses %d: must be 0..1000", o.Pauses))
		}
		if o.PauseFor <= o.LeaseTTL || o.PauseFor > time.Minute {
			errs = append(errs, fmt.Errorf("PauseFor %v: must exceed LeaseTTL %v (a pause past the lease), at most 1m", o.PauseFor, o.LeaseTTL))
		}
	}
	if o.HealMax < time.Second {
		errs = append(errs, fmt.Errorf("HealMax %v: at least 1s", o.HealMax))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("chaosreal: invalid options: %w", err)
	}
	return nil
}

// ParseProxyFaults reads "delay,drop,blackhole" ("none" or "": none).
func ParseProxyFaults(list []string) ([]ProxyMode, error) {
	var out []ProxyMode
	for _, s := range list {
		switch s {
		case "delay":
			out = append(out, Delay)
		case "drop":
			out = append(out, Drop)
		case "blackhole":
			out = append(out, Blackhole)
		case "none", "":
		default:
			return nil, fmt.Errorf("proxy fault %q: want delay, drop, blackhole or none", s)
		}
	}
	return out, nil
}
