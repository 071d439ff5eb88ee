package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"time"

	"github.com/spf13/pflag"

	"github.com/dtc-project/dtc/chaossim"
	"github.com/dtc-project/dtc/simnet"
)

// runSim is "chaos sim".
func runSim(args []string, stdout, stderr io.Writer) int {
	var f chaossim.Options
	fs := pflag.NewFlagSet("chaos sim", pflag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Uint64Var(&f.Seed, "seed", 0, "replay this one seed (prints its trace, ending with its trace-sha256)")
	fs.IntVar(&f.Seeds, "seeds", 0, "run this many seeds, from --from on (a campaign)")
	fs.Uint64Var(&f.From, "from", 1, "first seed of a campaign")
	fs.DurationVar(&f.Duration, "duration", 0, "run seeds from --from on for this long (a campaign; with --seeds, whichever ends first)")
	fs.IntVar(&f.Txns, "txns", 200, "transfers per run")
	fs.IntVar(&f.Participants, "participants", 3, "bank participants per run")
	fs.IntVar(&f.Clients, "clients", 3, "concurrent clients per run")
	fs.IntVar(&f.Accounts, "accounts", 4, "accounts per participant (fewer: hotter)")
	fs.StringVar(&f.Profile, "profile", "swarm", "fault profile: "+chaossim.ProfileNames())
	fs.BoolVar(&f.Trace, "trace", false, "print the trace of every run (default: on for --seed and --replay, off in a campaign)")
	fs.StringVar(&f.Breaks, "break", "", "enable deliberate bugs, comma-separated: "+chaossim.BreakNames())
	fs.StringVar(&f.HTML, "html", filepath.Join(os.TempDir(), "dtc-chaos"), "directory for HTML reports and shrunk cases (\"\": none)")
	fs.IntVar(&f.Parallel, "parallel", runtime.GOMAXPROCS(0), "seeds run at once in a campaign")
	fs.BoolVarP(&f.Verbose, "verbose", "v", false, "in a campaign: print every seed's summary and knobs")
	fs.BoolVar(&f.Shrink, "shrink", true, "shrink each failing seed to its fewest faults and transfers")
	fs.StringVar(&f.Replay, "replay", "", "replay a shrunk case saved by a campaign (a .shrunk.json file)")
	fs.IntVar(&f.Cluster, "cluster", 0, "run the coordinator as a cluster of this many nodes over a model of etcd (0: one node, its local log)")
	fs.DurationVar(&f.ClusterEvery, "cluster-fault-every", 3*time.Second, "with --cluster: mean time between random cluster faults (a pause past the lease, a store outage, the owner cut from the store; 0: none)")
	fs.StringVar(&f.Progress, "progress", "auto", "progress bar on stderr: auto (when stderr is a terminal), always, never")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: chaos sim (--seed N | --seeds K [--from F] | --duration D [--from F] | --replay FILE) [flags]\n\n%s", fs.FlagUsages())
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "chaos sim: unexpected arguments %q\n", fs.Args())
		return 2
	}
	single := fs.Changed("seed")
	modes := 0
	for _, on := range []bool{single, f.Seeds > 0 || f.Duration > 0, f.Replay != ""} {
		if on {
			modes++
		}
	}
	if modes != 1 {
		fmt.Fprintln(stderr, "chaos sim: give one of --seed N, --seeds K (and/or --duration D), --replay FILE")
		fs.Usage()
		return 2
	}
	if !fs.Changed("trace") {
		f.Trace = single || f.Replay != ""
	}
	if f.Seeds < 0 || f.Duration < 0 {
		fmt.Fprintln(stderr, "chaos sim: --seeds and --duration must not be negative")
		return 2
	}
	if f.Progress != "auto" && f.Progress != "always" && f.Progress != "never" {
		fmt.Fprintf(stderr, "chaos sim: --progress %q: want auto, always or never\n", f.Progress)
		return 2
	}
	prof, err := chaossim.FindProfile(f.Profile)
	if err != nil {
		fmt.Fprintf(stderr, "chaos sim: %v\n", err)
		return 2
	}
	if f.Replay != "" {
		c, err := chaossim.LoadShrunk(f.Replay)
		if err != nil {
			fmt.Fprintf(stderr, "chaos sim: --replay: %v\n", err)
			return 2
		}
		return chaossim.Replay(c.Options(), f, stdout, stderr)
	}
	for _, c := range []struct {
		name string
		v    int
	}{{"txns", f.Txns}, {"participants", f.Participants}, {"clients", f.Clients}, {"accounts", f.Accounts}} {
		if c.v < 1 {
			fmt.Fprintf(stderr, "chaos sim: --%s must be at least 1, got %d\n", c.name, c.v)
			return 2
		}
	}
	brk, err := chaossim.ParseBreaks(f.Breaks)
	if err != nil {
		fmt.Fprintf(stderr, "chaos sim: %v\n", err)
		return 2
	}
	if f.Cluster < 0 || f.ClusterEvery < 0 {
		fmt.Fprintln(stderr, "chaos sim: --cluster and --cluster-fault-every must not be negative")
		return 2
	}
	base := simnet.Options{Txns: f.Txns, Participants: f.Participants, Clients: f.Clients, Accounts: f.Accounts, Break: brk}
	if f.Cluster > 0 {
		base.Cluster = &simnet.ClusterOptions{Nodes: f.Cluster, FaultEvery: f.ClusterEvery}
	}
	if err := base.Validate(); err != nil {
		fmt.Fprintf(stderr, "chaos sim: %v\n", err)
		return 2
	}
	if single {
		o := base
		o.Seed = f.Seed
		o.Knobs = prof.Knobs(f.Seed)
		return chaossim.Replay(o, f, stdout, stderr)
	}
	return chaossim.Campaign(base, prof, f, stdout, stderr)
}
