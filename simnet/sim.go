package simnet

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"time"

	"github.com/dtc-project/dtc/checker"
	"github.com/dtc-project/dtc/coordinator"
	"github.com/dtc-project/dtc/faults"
	"github.com/dtc-project/dtc/participant"
)

// epoch is virtual time zero, as the engine's clock shows it.
var epoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// Node 0 is the coordinator, 1..N the participants, N+1..N+K the clients.
const coordID = 0

// PCG stream constants: each part of the run draws from its own stream of the seed, so
// that a change in how often one part draws does not reshuffle the others.
const (
	streamNet    = 0x6e6574   // network latencies, drops, duplicates
	streamChaos  = 0x6368616f // which faults happen when
	streamDisk   = 0x6469736b // fsync latencies and errors, torn writes
	streamEngine = 0x656e67   // the engine's Rand (ids are client-chosen; backoff jitter)
	streamWork   = 0x776f726b // the generated workload and client think times
)

// sim is one run. Everything happens on the goroutine that calls Run.
type sim struct {
	o     Options
	knobs faults.Knobs

	now    int64 // virtual nanoseconds since epoch
	seq    uint64
	q      queue
	events int
	after_ []func() // run after the current event (crashes take effect at event boundaries)

	netRng, chaosRng, diskRng, workRng, engineRng *rand.Rand

	names []string // by node id
	up    []bool
	inc   []int // incarnation: bumped by every crash, so a dead process's callbacks do nothing
	cut   [][]int

	coord   *coordNode
	cl      *clusterSim // cluster mode, or nil
	parts   []*partNode // index i is node i+1
	byURL   map[string]*partNode
	clients []*clientNode

	tr  *tracer
	rec *checker.Recorder

	faultPhase bool
	healAt     int64
	doneAt     int64
	stopped    bool

	sched []*pendingFault // explicit faults waiting for their point

	coordCfg coordinator.Config
	partCfg  participant.Config

	// online checks: what each participant answered, for the fencing promise.
	rolledBack map[string]bool // "p1 txn" → the participant answered a rollback with aborted
	// presumedAborted: ids the coordinator answered "not found" for, and when.
	presumedAborted map[string]int64
	// incarnations: every transaction id (client id and nonce) a participant was sent.
	incarnations  map[string]bool
	simViolations []checker.Violation
	// Lock-wait checks (waitcheck.go): the priority each transaction id was prepared
	// with, and the wait edges the coordinator was told of while detection is on.
	priorities map[string]int64
	waitEdges  map[string]map[string]bool
	badWounds  map[string]bool // "wounder victim" pairs already reported
	// Serializability under lock policies (serial.go): what each transaction id read
	// at its first ACKs, and the runs by client id.
	serial map[string]*serialReads
	runs   map[string]*txnRun
	// rotted: nodes whose synced records rot was injected into; their log must refuse
	// to open. rotStop: a log refused, as it had to; the run ends there, and nothing
	// after it (liveness, balances) can be asked of it.
	// rotDown: the rot was injected while the node was down, so nothing can have
	// removed the record before the node's next start.
	rotted, rotDown map[int]bool
	rotStop         bool

	stats Stats
}

// Stats count what happened in a run.
type Stats struct {
	Events         int
	Messages       int
	Dropped        int
	Duplicated     int
	Crashes        int
	CoordCrashes   int
	TornCrashes    int
	BitFlips       int // bits flipped in torn frames (garbage the log repairs)
	RotFlips       int // bits flipped in synced records (rot the log must refuse)
	RotRefusals    int // starts refused, as they must be, after rot or a lossy cut was injected
	ShortCuts      int // segment files cut short by a disk lie (lossy: records may be lost)
	LossyCuts      int
	LostRenames    int // segment renames undone by a disk lie
	SyncErrors     int
	DiskFullErrors int
	Partitions     int
	Restarts       int
	RestartsFailed int
	Timeouts       int
	TornRepaired   int // restarts whose log had a torn tail, repaired
	Checkpoints    int // coordinator checkpoints written
	Compactions    int // times the coordinator removed segments a checkpoint made obsolete
	// Phase-2 batching: batch requests sent and the ops they carried, batches refused
	// (4xx: batching stopped for a while), ops answered with an error inside a batch.
	Batches, BatchOps, BatchesRefused, BatchOpsFailed int
	// Cluster mode: shard takeovers, shards given up by their node (lease gone, not
	// renewed, write fenced), log writes the store fenced (a zombie's included), log
	// writes that failed (store unreachable), pauses, store outages, store cuts.
	Takeovers, ShardsLost, FencedWrites, StoreWriteErrors, Pauses, StoreOutages, StoreCuts int
	// TakeoverGapMax is the longest virtual time the shard went unserved: from its
	// owner's crash, pause or giving up to the next node owning it.
	TakeoverGapMax time.Duration
	// Lock waits (issue 16): wait reports and wounds sent by participants, cycles the
	// coordinator's detector found.
	WaitReports, Wounds, Deadlocks int
	// Conflicts: NACKs with cause conflict (a lock held under no-wait or occ, a wait
	// that ended); StaleReads: those of them under occ for a version read that had
	// changed by the prepare.
	Conflicts, StaleReads int
}

var (
	errTimeout  = errors.New("timeout: no answer")
	errRefused  = errors.New("connection refused")
	errReset    = errors.New("connection reset: the coordinator crashed")
	errCrashed  = errors.New("simnet: the process crashed")
	errNotFinal = errors.New("simnet: no final answer")
)

func newSim(o Options) *sim {
	s := &sim{o: o}
	if o.Knobs != nil {
		s.knobs = *o.Knobs
	} else {
		s.knobs = faults.Draw(o.Seed)
	}
	s.netRng = rand.New(rand.NewPCG(o.Seed, streamNet))
	s.chaosRng = rand.New(rand.NewPCG(o.Seed, streamChaos))
	s.diskRng = rand.New(rand.NewPCG(o.Seed, streamDisk))
	s.workRng = rand.New(rand.NewPCG(o.Seed, streamWork))
	s.engineRng = rand.New(rand.NewPCG(o.Seed, streamEngine))
	n := 1 + o.Participants + o.Clients
	s.names = make([]string, n)
	s.names[coordID] = "coord"
	for i := 1; i <= o.Participants; i++ {
		s.names[i] = fmt.Sprintf("p%d", i)
	}
	for i := 0; i < o.Clients; i++ {
		s.names[1+o.Participants+i] = fmt.Sprintf("c%d", i+1)
	}
	s.up = make([]bool, n)
	s.inc = make([]int, n)
	s.cut = make([][]int, n)
	for i := range s.cut {
		s.cut[i] = make([]int, n)
	}
	s.tr = newTracer(o.Trace, o.TraceTail, 5)
	s.rec = checker.NewRecorder()
	s.rolledBack = map[string]bool{}
	s.presumedAborted = map[string]int64{}
	s.incarnations = map[string]bool{}
	s.priorities = map[string]int64{}
	s.serial = map[string]*serialReads{}
	s.rotted, s.rotDown = map[int]bool{}, map[int]bool{}

	s.coordCfg = coordinator.DefaultConfig()
	s.coordCfg.PrepareTimeout = s.knobs.PrepareTimeout
	s.coordCfg.DoneRetention = s.knobs.DoneRetention
	s.coordCfg.RecoveryTimeout = 2 * time.Second
	s.coordCfg.RequestTimeout = time.Second
	s.coordCfg.RetryBackoffMin = 20 * time.Millisecond
	s.coordCfg.RetryBackoffMax = time.Second
	s.coordCfg.InflightMax = 256
	if o.Coordinator != nil {
		o.Coordinator(&s.coordCfg)
	}
	s.partCfg = participant.DefaultConfig()
	s.partCfg.InDoubtAfter = s.knobs.InDoubtAfter
	s.partCfg.CheckpointAfterRecords = 64
	s.partCfg.CheckpointAfterBytes = 8 << 10
	if o.Participant != nil {
		o.Participant(&s.partCfg)
	}
	if o.Cluster != nil {
		s.cl = newClusterSim(s)
	}
	return s
}

// Run runs one simulation and checks its history.
func Run(o Options) (res *Result, err error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	o = o.withDefaults()
	if err := checkNames(o); err != nil {
		return nil, err
	}
	s := newSim(o)
	defer func() {
		if v := recover(); v != nil {
			res = panicked(o, v)
			res.Knobs = s.knobs
			res.Tail = s.tr.tail()
			res.TraceSHA256 = s.tr.sum()
			res.VirtualTime = time.Duration(s.now)
			res.Stats = s.stats
			err = nil
		}
	}()
	if err := s.setup(); err != nil {
		return nil, err
	}
	s.loop()
	return s.finish(), nil
}

func checkNames(o Options) error {
	for i, t := range o.Workload {
		for _, l := range t.Legs {
			var n int
			if _, err := fmt.Sscanf(l.Participant, "p%d", &n); err != nil || n < 1 || n > o.Participants || fmt.Sprintf("p%d", n) != l.Participant {
				return fmt.Errorf("simnet: Workload[%d]: no participant %q (there are p1..p%d)", i, l.Participant, o.Participants)
			}
		}
	}
	for i, f := range o.Schedule {
		for _, n := range []string{f.Do.Node, f.Do.Peer} {
			if n != "" && !validNode(o, n) {
				return fmt.Errorf("simnet: Schedule[%d] (%v): no node %q", i, f, n)
			}
		}
		if f.On != nil && !validNode(o, f.On.Node) {
			return fmt.Errorf("simnet: Schedule[%d] (%v): no node %q", i, f, f.On.Node)
		}
	}
	return nil
}

func validNode(o Options, name string) bool {
	if name == "coord" {
		return true
	}
	var n int
	if _, err := fmt.Sscanf(name, "p%d", &n); err == nil && n >= 1 && n <= o.Participants && fmt.Sprintf("p%d", n) == name {
		return true
	}
	if _, err := fmt.Sscanf(name, "c%d", &n); err == nil && n >= 1 && n <= o.Clients && fmt.Sprintf("c%d", n) == name {
		return true
	}
	return false
}

func (s *sim) node(name string) int {
	for i, n := range s.names {
		if n == name {
			return i
		}
	}
	panic("simnet: no node " + name)
}

func (s *sim) isClient(id int) bool { return id > s.o.Participants }

// at schedules fn at virtual time t (not before now).
func (s *sim) at(t int64, fn func()) {
	if t < s.now {
		t = s.now
	}
	s.seq++
	s.q.push(event{at: t, seq: s.seq, fn: fn})
}

// after schedules fn d from now.
func (s *sim) after(d time.Duration, fn func()) { s.at(s.now+int64(d), fn) }

// atBoundary runs fn once the current event is over: crashes take effect there.
func (s *sim) atBoundary(fn func()) { s.after_ = append(s.after_, fn) }

func (s *sim) time() time.Time { return epoch.Add(time.Duration(s.now)) }

func (s *sim) tracef(node int, format string, args ...any) {
	s.tr.line(s.now, s.names[node], format, args...)
}

func (s *sim) note(node int, format string, args ...any) {
	what := fmt.Sprintf(format, args...)
	s.tracef(node, "%s", what)
	s.rec.Note(s.now, s.names[node]+": "+what)
}

// loop runs events until the run is over.
func (s *sim) loop() {
	for len(s.q) > 0 && !s.stopped {
		e := s.q.pop()
		s.now = e.at
		s.events++
		e.fn()
		for len(s.after_) > 0 {
			fns := s.after_
			s.after_ = nil
			for _, fn := range fns {
				fn()
			}
		}
	}
}

// uniform draws a duration in [lo, hi].
func uniform(r *rand.Rand, lo, hi time.Duration) time.Duration {
	if hi <= lo {
		return lo
	}
	return lo + time.Duration(r.Int64N(int64(hi-lo)+1))
}

// exponential draws a duration with the given mean.
func exponential(r *rand.Rand, mean time.Duration) time.Duration {
	d := time.Duration(r.ExpFloat64() * float64(mean))
	return max(d, time.Microsecond)
}

// --- network ---

// send carries one message from one node to another: it may be lost, delayed, or
// delivered twice; a partition at either end of its flight loses it.
func (s *sim) send(from, to int, deliver func()) {
	s.stats.Messages++
	if s.cut[from][to] > 0 {
		s.tracef(from, "  → %s lost: partitioned", s.names[to])
		s.stats.Dropped++
		return
	}
	k := &s.knobs
	copies := 1
	if s.faultPhase {
		if k.DropRate > 0 && s.netRng.Float64() < k.DropRate {
			s.tracef(from, "  → %s dropped", s.names[to])
			s.stats.Dropped++
			return
		}
		if k.DupRate > 0 && s.netRng.Float64() < k.DupRate {
			copies = 2
			s.stats.Duplicated++
		}
	}
	for c := 0; c < copies; c++ {
		lat := uniform(s.netRng, k.LatencyMin, k.LatencyMax)
		if s.faultPhase && k.LatencyTailRate > 0 && s.netRng.Float64() < k.LatencyTailRate {
			lat *= 10
		}
		s.after(lat, func() {
			if s.cut[from][to] > 0 {
				s.tracef(to, "  ← %s lost in flight: partitioned", s.names[from])
				return
			}
			deliver()
		})
	}
}

// call is a request and its answer, as an HTTP client makes it: exactly one of the
// answer, a refusal (the server is down) or a timeout reaches done.
func (s *sim) call(from, to int, timeout time.Duration, what string, serve func(reply func(resp any, err error)), done func(resp any, err error)) {
	s.callDelayed(from, to, 0, timeout, what, serve, done)
}

// callDelayed is call with the request held delay before it leaves (the timeout runs
// from now).
func (s *sim) callDelayed(from, to int, delay, timeout time.Duration, what string, serve func(reply func(resp any, err error)), done func(resp any, err error)) {
	finished := false
	finish := func(resp any, err error) {
		if !finished {
			finished = true
			done(resp, err)
		}
	}
	request := func() {
		s.send(from, to, func() {
			if !s.up[to] {
				s.tracef(to, "← %s %s: refused, down", s.names[from], what)
				s.send(to, from, func() { finish(nil, errRefused) })
				return
			}
			inc := s.inc[to]
			serve(func(resp any, err error) {
				if s.inc[to] != inc || !s.up[to] {
					return // the server crashed before it answered
				}
				s.send(to, from, func() { finish(resp, err) })
			})
		})
	}
	if delay > 0 {
		s.after(delay, request)
	} else {
		request()
	}
	s.after(timeout, func() {
		if !finished {
			s.stats.Timeouts++
			s.tracef(from, "%s → %s timed out after %v", what, s.names[to], timeout)
			finish(nil, errTimeout)
		}
	})
}

// --- phases ---

// setup builds the nodes and schedules the workload and the faults.
func (s *sim) setup() error {
	s.tracef(coordID, "seed=%d participants=%d clients=%d knobs: %v", s.o.Seed, s.o.Participants, s.o.Clients, s.knobs)
	if s.o.Break != 0 {
		s.tracef(coordID, "deliberate bugs: %v", s.o.Break)
	}
	s.coord = newCoordNode(s)
	s.byURL = map[string]*partNode{}
	for i := 1; i <= s.o.Participants; i++ {
		p := newPartNode(s, i)
		s.parts = append(s.parts, p)
		s.byURL[p.url] = p
	}
	if err := s.coord.start(); err != nil {
		return fmt.Errorf("simnet: coordinator does not start on an empty disk: %w", err)
	}
	for _, p := range s.parts {
		if err := p.start(); err != nil {
			return fmt.Errorf("simnet: %s does not start on an empty disk: %w", p.name, err)
		}
	}
	s.faultPhase = true
	s.setupClients()
	s.setupFaults()
	if s.cl != nil {
		s.setupClusterFaults()
	}
	s.after(100*time.Millisecond, s.watch)
	return nil
}

// watch ends the fault phase once the workload is done and the schedule is over, and
// the run once everything is resolved after the heal (or the heal phase is over).
func (s *sim) watch() {
	switch {
	case s.faultPhase:
		schedEnd := int64(s.o.Schedule.End())
		if (s.clientsDone() && s.now >= schedEnd) || s.now >= int64(s.o.FaultPhaseMax) {
			s.heal()
		}
	case s.quiet():
		s.tracef(coordID, "quiet: every transaction decided and every participant resolved")
		s.stopped = true
		return
	case s.now >= s.healAt+int64(s.o.HealMax):
		s.tracef(coordID, "heal phase over after %v and still not quiet", s.o.HealMax)
		s.stopped = true
		return
	}
	s.after(100*time.Millisecond, s.watch)
}

// heal ends the fault phase: every fault stops, every partition heals, every disk has
// room, every crashed node restarts.
func (s *sim) heal() {
	s.faultPhase = false
	s.healAt = s.now
	s.note(coordID, "heal: faults stop, partitions heal, crashed nodes restart")
	for i := range s.cut {
		clear(s.cut[i])
	}
	s.coord.disk.heal()
	if s.cl != nil {
		s.healCluster()
	}
	for _, p := range s.parts {
		p.disk.heal()
	}
	if !s.up[coordID] {
		s.coord.restart()
	}
	for _, p := range s.parts {
		if !s.up[p.id] {
			p.restart()
		}
	}
}

// quiet reports whether there is nothing left to resolve: clients done, every node up,
// the coordinator holds no transaction in flight and no participant a prepared one.
func (s *sim) quiet() bool {
	if !s.clientsDone() || !s.up[coordID] || !s.coord.eng.Ready() || s.coord.eng.Stats().Inflight > 0 {
		return false
	}
	for _, p := range s.parts {
		if !s.up[p.id] {
			return false
		}
		st := p.core.Stats()
		if st.Prepared > 0 || st.Inflight > 0 {
			return false
		}
	}
	return true
}

// violation records a broken promise the simulator checks itself, as it happens.
func (s *sim) violation(kind, txn, format string, args ...any) {
	v := checker.Violation{Kind: kind, Txn: txn, Detail: fmt.Sprintf(format, args...)}
	s.tracef(coordID, "VIOLATION %s", v)
	s.simViolations = append(s.simViolations, v)
}

// maxTime is a virtual time no run reaches.
const maxTime = math.MaxInt64

// clientID is the client's id of a transaction, given the id its participants see.
func clientID(txnID string) string {
	id, _, _ := coordinator.SplitTxnID(txnID)
	return id
}
