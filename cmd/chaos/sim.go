package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/spf13/pflag"

	"github.com/dtc-project/dtc/simnet"
)

type simFlags struct {
	seed         uint64
	seeds        int
	from         uint64
	txns         int
	participants int
	clients      int
	accounts     int
	trace        bool
	breaks       string
	html         string
	parallel     int
	verbose      bool
}

// runSim is "chaos sim".
func runSim(args []string, stdout, stderr io.Writer) int {
	var f simFlags
	fs := pflag.NewFlagSet("chaos sim", pflag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Uint64Var(&f.seed, "seed", 0, "replay this one seed (prints its trace)")
	fs.IntVar(&f.seeds, "seeds", 0, "run this many seeds, from --from on (a swarm campaign)")
	fs.Uint64Var(&f.from, "from", 1, "first seed of --seeds")
	fs.IntVar(&f.txns, "txns", 200, "transfers per run")
	fs.IntVar(&f.participants, "participants", 3, "bank participants per run")
	fs.IntVar(&f.clients, "clients", 3, "concurrent clients per run")
	fs.IntVar(&f.accounts, "accounts", 4, "accounts per participant (fewer: hotter)")
	fs.BoolVar(&f.trace, "trace", false, "print the trace of every run (default: on for --seed, off for --seeds)")
	fs.StringVar(&f.breaks, "break", "", "enable deliberate bugs, comma-separated: "+breakNames())
	fs.StringVar(&f.html, "html", filepath.Join(os.TempDir(), "dtc-chaos"), "directory for the HTML reports of failing seeds")
	fs.IntVar(&f.parallel, "parallel", runtime.GOMAXPROCS(0), "seeds run at once in a campaign")
	fs.BoolVarP(&f.verbose, "verbose", "v", false, "with --seeds: print the knobs and every violation of each seed")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: chaos sim (--seed N | --seeds K [--from F]) [flags]\n\n%s", fs.FlagUsages())
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
	if single == (f.seeds > 0) {
		fmt.Fprintln(stderr, "chaos sim: give either --seed N or --seeds K")
		fs.Usage()
		return 2
	}
	if !fs.Changed("trace") {
		f.trace = single
	}
	for _, c := range []struct {
		name string
		v    int
	}{{"txns", f.txns}, {"participants", f.participants}, {"clients", f.clients}, {"accounts", f.accounts}} {
		if c.v < 1 {
			fmt.Fprintf(stderr, "chaos sim: --%s must be at least 1, got %d\n", c.name, c.v)
			return 2
		}
	}
	brk, err := parseBreaks(f.breaks)
	if err != nil {
		fmt.Fprintf(stderr, "chaos sim: %v\n", err)
		return 2
	}
	base := simnet.Options{Txns: f.txns, Participants: f.participants, Clients: f.clients, Accounts: f.accounts, Break: brk}
	if err := base.Validate(); err != nil {
		fmt.Fprintf(stderr, "chaos sim: %v\n", err)
		return 2
	}
	if single {
		return replay(base, f, stdout, stderr)
	}
	return campaign(base, f, stdout, stderr)
}

// replay runs one seed with its trace, and ends with the trace's hash.
func replay(o simnet.Options, f simFlags, stdout, stderr io.Writer) int {
	w := bufio.NewWriterSize(stdout, 64<<10)
	defer w.Flush()
	o.Seed = f.seed
	if f.trace {
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
		report(w, res, f)
	}
	fmt.Fprintf(w, "trace-sha256: %s\n", res.TraceSHA256)
	return code
}

// campaign runs many seeds, in parallel, printing one line per seed in seed order.
func campaign(base simnet.Options, f simFlags, stdout, stderr io.Writer) int {
	start := time.Now()
	type outcome struct {
		res   *simnet.Result
		trace string
		err   error
	}
	results := make([]chan outcome, f.seeds)
	for i := range results {
		results[i] = make(chan outcome, 1)
	}
	next := make(chan int)
	var wg sync.WaitGroup
	for range max(f.parallel, 1) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				o := base
				o.Seed = f.from + uint64(i)
				var tb strings.Builder
				if f.trace {
					o.Trace = &tb
				}
				res, err := simnet.Run(o)
				results[i] <- outcome{res, tb.String(), err}
			}
		}()
	}
	go func() {
		defer close(next)
		for i := range f.seeds {
			next <- i
		}
	}()
	failed := 0
	var virtual time.Duration
	for i := range results {
		out := <-results[i]
		if out.err != nil {
			fmt.Fprintf(stderr, "chaos sim: seed %d: %v\n", f.from+uint64(i), out.err)
			failed++
			continue
		}
		res := out.res
		virtual += res.VirtualTime
		fmt.Fprint(stdout, out.trace)
		fmt.Fprintln(stdout, res.Summary())
		if f.verbose {
			fmt.Fprintf(stdout, "  knobs: %v\n", res.Knobs)
		}
		if !res.OK() {
			failed++
			report(stdout, res, f)
		}
	}
	wg.Wait()
	wall := time.Since(start)
	fmt.Fprintf(stdout, "%d seeds (%d..%d), %d failed; wall %v, %.0f seeds/min, simulated/wall %.0fx\n",
		f.seeds, f.from, f.from+uint64(f.seeds)-1, failed, wall.Round(time.Millisecond),
		float64(f.seeds)/wall.Minutes(), virtual.Seconds()/wall.Seconds())
	if failed > 0 {
		return 1
	}
	return 0
}

// report prints a failing run's violations, how to replay it and where its HTML is.
func report(w io.Writer, res *simnet.Result, f simFlags) {
	fmt.Fprint(w, res.Failure())
	if f.html == "" {
		return
	}
	if err := os.MkdirAll(f.html, 0o755); err != nil {
		fmt.Fprintf(w, "html report: %v\n", err)
		return
	}
	path := filepath.Join(f.html, fmt.Sprintf("seed-%d.html", res.Seed))
	if res.Report == nil {
		return
	}
	if err := res.WriteHTML(path); err != nil {
		fmt.Fprintf(w, "html report: %v\n", err)
		return
	}
	fmt.Fprintf(w, "html report: %s\n", path)
}

func breakNames() string {
	var names []string
	for _, b := range simnet.Breakages {
		names = append(names, b.Name)
	}
	return strings.Join(names, ", ")
}

func parseBreaks(s string) (simnet.Breakage, error) {
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
		return 0, fmt.Errorf("unknown --break %q: want one of %s", name, breakNames())
	}
	return b, nil
}
