package chaossim

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/dtc-project/dtc/checker"
	"github.com/dtc-project/dtc/simnet"
)

// Options is a campaign or a replay as "chaos sim" was asked for it: its flags.
type Options struct {
	Seed         uint64
	Seeds        int
	From         uint64
	Duration     time.Duration
	Txns         int
	Participants int
	Clients      int
	Accounts     int
	Profile      string
	Trace        bool
	Breaks       string
	HTML         string
	Parallel     int
	Verbose      bool
	Shrink       bool
	Replay       string
	Progress     string
	// Cluster runs the coordinator as a cluster of this many nodes over a model of etcd
	// (0: one node, its local log), with a random cluster fault every ClusterEvery.
	Cluster      int
	ClusterEvery time.Duration
}

// Replay runs one seed with its trace, and ends with the trace's hash.
func Replay(o simnet.Options, f Options, stdout, stderr io.Writer) int {
	w := bufio.NewWriterSize(stdout, 64<<10)
	defer w.Flush()
	if f.Trace {
		o.Trace = w
	}
	res, err := simnet.Run(o)
	if err != nil {
		fmt.Fprintf(stderr, "chaos sim: %v\n", err)
		return 2
	}
	fmt.Fprintln(w, res.Summary())
	code := 0
	if !res.OK() {
		code = 1
		cmd := replayCommand(o, f)
		if f.Replay != "" {
			cmd = "go run ./cmd/chaos sim --replay " + f.Replay
		}
		fmt.Fprint(w, failureText(res, cmd))
		if f.HTML != "" {
			if err := os.MkdirAll(f.HTML, 0o755); err == nil && res.Report != nil {
				path := filepath.Join(f.HTML, fmt.Sprintf("seed-%d.html", res.Seed))
				if err := res.WriteHTML(path); err != nil {
					fmt.Fprintf(w, "html report: %v\n", err)
				} else {
					fmt.Fprintf(w, "html report: %s\n", path)
				}
			}
		}
	}
	fmt.Fprintf(w, "trace-sha256: %s\n", res.TraceSHA256)
	return code
}

// failureText is a failing run's report: its summary, knobs, violations, how to replay
// it, and the end of its trace.
func failureText(r *simnet.Result, replay string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s\nknobs: %v\n", r.Summary(), r.Knobs)
	for _, v := range r.Violations {
		fmt.Fprintf(&b, "  %s\n", v)
	}
	fmt.Fprintf(&b, "replay: %s\n", replay)
	fmt.Fprintf(&b, "last %d trace lines:\n", len(r.Tail))
	for _, l := range r.Tail {
		fmt.Fprintf(&b, "  %s\n", l)
	}
	return b.String()
}

// replayCommand is the command that replays seed o.Seed of a campaign run with f.
func replayCommand(o simnet.Options, f Options) string {
	cmd := fmt.Sprintf("go run ./cmd/chaos sim --seed %d --participants %d --clients %d --accounts %d --txns %d",
		o.Seed, f.Participants, f.Clients, f.Accounts, f.Txns)
	if f.Profile != "swarm" {
		cmd += " --profile " + f.Profile
	}
	if o.Break != 0 {
		cmd += " --break " + o.Break.String()
	}
	if o.Cluster != nil {
		cmd += fmt.Sprintf(" --cluster %d --cluster-fault-every %v", o.Cluster.Nodes, o.Cluster.FaultEvery)
	}
	return cmd
}

// seedRun is one seed of a campaign, as the campaign keeps it.
type seedRun struct {
	seed uint64
	res  *simnet.Result
	err  error
}

// Campaign runs many seeds in parallel: a progress bar while it runs, a summary table at
// the end, and for each failing seed its violations, replay command, shrunk schedule and
// HTML report; the campaign's own HTML report gathers it all.
func Campaign(base simnet.Options, prof Profile, f Options, stdout, stderr io.Writer) int {
	start := time.Now()
	var deadline time.Time
	if f.Duration > 0 {
		deadline = start.Add(f.Duration)
	}
	var (
		mu     sync.Mutex
		next   uint64 // index of the next seed to hand out
		done   = map[uint64]seedRun{}
		wg     sync.WaitGroup
		failed int
		ran    int
	)
	take := func() (uint64, bool) {
		mu.Lock()
		defer mu.Unlock()
		if (f.Seeds > 0 && next >= uint64(f.Seeds)) || (!deadline.IsZero() && time.Now().After(deadline)) {
			return 0, false
		}
		i := next
		next++
		return i, true
	}
	finished := make(chan struct{}, 1)
	for range max(f.Parallel, 1) {
		wg.Go(func() {
			for {
				i, ok := take()
				if !ok {
					return
				}
				o := base
				o.Seed = f.From + i
				o.Knobs = prof.Knobs(o.Seed)
				res, err := simnet.Run(o)
				mu.Lock()
				done[i] = seedRun{seed: o.Seed, res: res, err: err}
				ran++
				if err != nil || !res.OK() {
					failed++
				}
				mu.Unlock()
				select {
				case finished <- struct{}{}:
				default:
				}
			}
		})
	}
	bar := newProgress(stderr, f.Progress, f.Seeds, f.Duration, start)
	allDone := make(chan struct{})
	go func() { wg.Wait(); close(allDone) }()
	sum := newSimSummary(prof.name)
	var failures []failure
	var example *simnet.Result // the seed with the most faults, for the report's plots
	printed := uint64(0)
	flush := func() {
		for {
			mu.Lock()
			r, ok := done[printed]
			delete(done, printed)
			mu.Unlock()
			if !ok {
				return
			}
			printed++
			bar.clear()
			if r.err != nil {
				fmt.Fprintf(stderr, "chaos sim: seed %d: %v\n", r.seed, r.err)
				sum.errors++
				continue
			}
			sum.add(r.res)
			if f.Verbose {
				fmt.Fprintln(stdout, r.res.Summary())
				fmt.Fprintf(stdout, "  knobs: %v\n", r.res.Knobs)
			}
			if !r.res.OK() {
				failures = append(failures, failure{res: r.res})
				o := base
				o.Seed = r.seed
				o.Knobs = prof.Knobs(r.seed)
				fmt.Fprint(stdout, failureText(r.res, replayCommand(o, f)))
			} else if example == nil || r.res.Stats.Crashes+r.res.Stats.Partitions > example.Stats.Crashes+example.Stats.Partitions {
				example = r.res
			}
			if len(failures) > 20 { // keep memory bounded: later failures keep no history
				failures[len(failures)-1].res.History = checker.History{}
			}
		}
	}
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
loop:
	for {
		select {
		case <-allDone:
			break loop
		case <-finished:
		case <-tick.C:
		}
		flush()
		mu.Lock()
		n, bad := ran, failed
		mu.Unlock()
		bar.update(n, bad)
	}
	flush()
	bar.clear()
	wall := time.Since(start)

	dir := ""
	if f.HTML != "" {
		dir = filepath.Join(f.HTML, fmt.Sprintf("sim-%s-seeds-%d-%d", time.Now().Format("20060102-150405"), f.From, f.From+uint64(sum.seeds)-1))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			fmt.Fprintf(stderr, "chaos sim: %v\n", err)
			dir = ""
		}
	}
	for i := range failures {
		fl := &failures[i]
		res := fl.res
		fmt.Fprintf(stdout, "\nseed %d failed:\n", res.Seed)
		o := base
		o.Seed = res.Seed
		o.Knobs = prof.Knobs(res.Seed)
		fl.replay = replayCommand(o, f)
		fmt.Fprintf(stdout, "  replay: %s\n", fl.replay)
		if f.Shrink && res.History.Ops != nil {
			c, err := shrink(o, prof.name, res)
			if err != nil {
				fmt.Fprintf(stdout, "  could not shrink: %v\n", err)
			} else {
				path := ""
				if dir != "" {
					path = filepath.Join(dir, fmt.Sprintf("seed-%d.shrunk.json", res.Seed))
					if err := c.save(path); err != nil {
						fmt.Fprintf(stdout, "  %v\n", err)
						path = ""
					}
				}
				fl.shrunk, fl.shrunkPath = c.describe(path), path
				fmt.Fprint(stdout, "  "+fl.shrunk)
			}
		}
		if dir != "" && res.Report != nil && res.History.Ops != nil {
			fl.html = fmt.Sprintf("seed-%d.html", res.Seed)
			if err := res.WriteHTML(filepath.Join(dir, fl.html)); err != nil {
				fmt.Fprintf(stdout, "  html report: %v\n", err)
				fl.html = ""
			} else {
				fmt.Fprintf(stdout, "  html report: %s\n", filepath.Join(dir, fl.html))
			}
		}
	}
	fmt.Fprintln(stdout)
	sum.print(stdout, f.From, wall)
	if dir != "" {
		path, err := writeSimReport(dir, sum, failures, example, f, wall)
		if err != nil {
			fmt.Fprintf(stderr, "chaos sim: report: %v\n", err)
		} else {
			fmt.Fprintf(stdout, "campaign report: %s\n", path)
		}
	}
	if sum.failed > 0 || sum.errors > 0 {
		return 1
	}
	return 0
}

// failure is a failing seed of a campaign and what was made of it.
type failure struct {
	res        *simnet.Result
	replay     string
	shrunk     string
	shrunkPath string
	html       string
}

// simSummary adds up a campaign.
type simSummary struct {
	profile                                             string
	seeds, failed, errors                               int
	transfers, committed, aborted, unknown, unsubmitted int
	stats                                               simnet.Stats
	virtual                                             time.Duration
	kinds                                               map[string]int
	perSeed                                             []seedLine
}

type seedLine struct {
	seed                        uint64
	committed, aborted, unknown int
	crashes, partitions, lost   int
	syncErrs, diskFull          int
	violations                  int
}

func newSimSummary(profile string) *simSummary {
	return &simSummary{profile: profile, kinds: map[string]int{}}
}

func (s *simSummary) add(r *simnet.Result) {
	s.seeds++
	if !r.OK() {
		s.failed++
	}
	s.transfers += r.Transfers
	s.committed += r.Committed
	s.aborted += r.Aborted
	s.unknown += r.Unknown
	s.unsubmitted += r.Unsubmitted
	st := r.Stats
	s.stats.Crashes += st.Crashes
	s.stats.CoordCrashes += st.CoordCrashes
	s.stats.TornCrashes += st.TornCrashes
	s.stats.BitFlips += st.BitFlips
	s.stats.RotFlips += st.RotFlips
	s.stats.RotRefusals += st.RotRefusals
	s.stats.ShortCuts += st.ShortCuts
	s.stats.LossyCuts += st.LossyCuts
	s.stats.LostRenames += st.LostRenames
	s.stats.SyncErrors += st.SyncErrors
	s.stats.DiskFullErrors += st.DiskFullErrors
	s.stats.Partitions += st.Partitions
	s.stats.Messages += st.Messages
	s.stats.Dropped += st.Dropped
	s.stats.Duplicated += st.Duplicated
	s.stats.Timeouts += st.Timeouts
	s.stats.Restarts += st.Restarts
	s.stats.Takeovers += st.Takeovers
	s.stats.ShardsLost += st.ShardsLost
	s.stats.FencedWrites += st.FencedWrites
	s.stats.StoreWriteErrors += st.StoreWriteErrors
	s.stats.Pauses += st.Pauses
	s.stats.StoreOutages += st.StoreOutages
	s.stats.StoreCuts += st.StoreCuts
	s.stats.TakeoverGapMax = max(s.stats.TakeoverGapMax, st.TakeoverGapMax)
	s.virtual += r.VirtualTime
	for _, v := range r.Violations {
		s.kinds[v.Kind]++
	}
	s.perSeed = append(s.perSeed, seedLine{seed: r.Seed, committed: r.Committed, aborted: r.Aborted, unknown: r.Unknown,
		crashes: st.Crashes, partitions: st.Partitions, lost: st.Dropped, syncErrs: st.SyncErrors, diskFull: st.DiskFullErrors,
		violations: len(r.Violations)})
}

// rows is the summary as a table of name, value.
func (s *simSummary) rows(from uint64, wall time.Duration) [][2]string {
	st := s.stats
	rows := [][2]string{
		{"seeds", fmt.Sprintf("%d (%d..%d), profile %s: %d ok, %d failed", s.seeds, from, from+uint64(max(s.seeds, 1))-1, s.profile, s.seeds-s.failed, s.failed)},
		{"transactions", fmt.Sprintf("%d transfers: %d committed, %d aborted, %d unknown to their client, %d unsubmitted", s.transfers, s.committed, s.aborted, s.unknown, s.unsubmitted)},
		{"faults injected", ""},
		{"  crashes", fmt.Sprintf("%d (%d of the coordinator, %d torn)", st.Crashes, st.CoordCrashes, st.TornCrashes)},
		{"  partitions", fmt.Sprint(st.Partitions)},
		{"  messages lost", fmt.Sprintf("%d of %d", st.Dropped, st.Messages)},
		{"  messages duplicated", fmt.Sprint(st.Duplicated)},
		{"  fsync errors", fmt.Sprint(st.SyncErrors)},
		{"  disk-full refusals", fmt.Sprint(st.DiskFullErrors)},
		{"  bit flips", fmt.Sprint(st.BitFlips)},
		{"  rot", fmt.Sprintf("%d bits flipped in synced records", st.RotFlips)},
		{"  disk lies", fmt.Sprintf("%d segments cut short (%d where records may be lost), %d renames lost", st.ShortCuts, st.LossyCuts, st.LostRenames)},
		{"  refusals to start", fmt.Sprintf("%d, as they must (after rot or a lossy cut)", st.RotRefusals)},
		{"  call timeouts", fmt.Sprint(st.Timeouts)},
	}
	if st.Takeovers > 0 {
		rows = append(rows,
			[2]string{"  cluster faults", fmt.Sprintf("%d pauses past the lease, %d store outages, %d owners cut from the store", st.Pauses, st.StoreOutages, st.StoreCuts)},
			[2]string{"cluster", fmt.Sprintf("%d takeovers, %d shards given up by their node, %d log writes fenced, %d failed (store unreachable); longest unserved %v (virtual)",
				st.Takeovers, st.ShardsLost, st.FencedWrites, st.StoreWriteErrors, st.TakeoverGapMax.Round(time.Millisecond))})
	}
	v := "0"
	if len(s.kinds) > 0 {
		var kinds []string
		for k := range s.kinds {
			kinds = append(kinds, k)
		}
		slices.Sort(kinds)
		var parts []string
		total := 0
		for _, k := range kinds {
			parts = append(parts, fmt.Sprintf("%s %d", k, s.kinds[k]))
			total += s.kinds[k]
		}
		v = fmt.Sprintf("%d: %s", total, strings.Join(parts, ", "))
	}
	rows = append(rows, [2]string{"violations", v})
	if s.errors > 0 {
		rows = append(rows, [2]string{"runs that did not start", fmt.Sprint(s.errors)})
	}
	rate := float64(s.seeds) / wall.Minutes()
	rows = append(rows, [2]string{"time", fmt.Sprintf("wall %v, %.0f seeds/min, simulated/wall %.0fx", wall.Round(time.Millisecond), rate, s.virtual.Seconds()/wall.Seconds())})
	return rows
}

func (s *simSummary) print(w io.Writer, from uint64, wall time.Duration) {
	fmt.Fprintln(w, "summary:")
	for _, r := range s.rows(from, wall) {
		fmt.Fprintln(w, strings.TrimRight(fmt.Sprintf("  %-24s %s", r[0], r[1]), " "))
	}
	verdict := "OK: no violation"
	if s.failed > 0 {
		verdict = fmt.Sprintf("FAIL: %d of %d seeds broke a rule", s.failed, s.seeds)
	}
	fmt.Fprintf(w, "%d seeds (%d..%d), %d failed; %s\n", s.seeds, from, from+uint64(max(s.seeds, 1))-1, s.failed, verdict)
}

func BreakNames() string {
	var names []string
	for _, b := range simnet.Breakages {
		names = append(names, b.Name)
	}
	return strings.Join(names, ", ")
}

func ParseBreaks(s string) (simnet.Breakage, error) {
	var b simnet.Breakage
	if s == "" || s == "none" {
		return 0, nil
	}
next:
	for _, name := range strings.Split(s, ",") {
		name = strings.TrimSpace(name)
		for _, x := range simnet.Breakages {
			if x.Name == name {
				b |= x.Break
				continue next
			}
		}
		return 0, fmt.Errorf("unknown --break %q: want one of %s", name, BreakNames())
	}
	return b, nil
}
