// Command demo runs dtc end to end on this machine, as a first look at it: it starts the
// coordinator (bin/dtc serve) and three example banks (bin/bank), runs a short scripted
// workload through the coordinator's API (transfers that commit, one that a bank refuses,
// one whose bank answers too late), prints every outcome and the balances before and
// after, and keeps everything running until Ctrl-C so that you can try your own
// transactions. `make run` builds the binaries and runs it.
//
//	demo [--exit] [--fresh=false] [--dtc-port 7070] [--bank-ports 9001,9002,9003]
//	     [--run-dir .run] [--logs files|terminal] [--bin-dir bin]
//
// The coordinator keeps its log in RUN/dtc and bank N in RUN/bankN; what they write on
// stderr goes to RUN/dtc.log and RUN/bankN.log, or with --logs terminal to the terminal,
// each line prefixed with its name. The children run in their own process group, so that
// Ctrl-C reaches only the demo, which stops them with SIGTERM (SIGKILL after
// --stop-grace, or at a second Ctrl-C); on Linux they also get SIGTERM if the demo dies
// without stopping them.
//
// Exit codes: 0 the workload ended as expected with money conserved, and (without
// --exit) the demo was stopped by SIGINT or SIGTERM; 1 something went wrong (a child did
// not start or died, an unexpected outcome, money not conserved, a child that did not
// stop cleanly); 2 bad flags; 130 interrupted before the workload was done.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"syscall"
	"time"

	"github.com/spf13/pflag"
)

const (
	exitOK          = 0
	exitFailed      = 1
	exitUsage       = 2
	exitInterrupted = 130
)

// config is what the flags say.
type config struct {
	binDir         string
	runDir         string
	fresh          bool
	exit           bool
	host           string
	dtcPort        int
	bankPorts      []int
	prepareTimeout time.Duration
	logs           string // "files" or "terminal"
	startTimeout   time.Duration
	stopGrace      time.Duration
}

const usageText = `Usage: demo [flags]

Starts dtc and three example banks on this machine, runs a few transactions through
the coordinator's API (three that commit, one a bank refuses, one that times out),
prints the outcomes and the balances before and after, then keeps everything running
until Ctrl-C. 'make run' builds the binaries and runs this.

Flags:
`

func main() {
	// The children are started from this goroutine. Locked to the main thread, which
	// lives as long as the process, their parent-death signal (Linux) fires only when the
	// demo itself dies, not when some other thread of it exits.
	runtime.LockOSThread()
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func parseFlags(args []string, stdout, stderr io.Writer) (*config, int) {
	fs := pflag.NewFlagSet("demo", pflag.ContinueOnError)
	fs.SortFlags = false
	fs.SetOutput(io.Discard)
	c := &config{host: "127.0.0.1"}
	fs.BoolVar(&c.exit, "exit", false, "run the workload, stop everything and exit instead of waiting for Ctrl-C")
	fs.BoolVar(&c.fresh, "fresh", true, "wipe --run-dir first, so that every run starts from the same balances")
	fs.StringVar(&c.runDir, "run-dir", ".run", "directory for the data and logs of dtc and the banks")
	fs.StringVar(&c.binDir, "bin-dir", "", "directory holding the dtc and bank binaries (default: the demo's own directory if they are there, else bin)")
	fs.IntVar(&c.dtcPort, "dtc-port", 7070, "port of the coordinator's API on 127.0.0.1")
	fs.IntSliceVar(&c.bankPorts, "bank-ports", []int{9001, 9002, 9003}, "ports of the three banks on 127.0.0.1")
	fs.DurationVar(&c.prepareTimeout, "prepare-timeout", 2*time.Second, "the coordinator's default prepare deadline (dtc serve --prepare-timeout)")
	fs.StringVar(&c.logs, "logs", "files", "where the children's logs go: files (RUN-DIR/NAME.log) or terminal (stderr, each line prefixed with its name)")
	fs.DurationVar(&c.startTimeout, "start-timeout", 20*time.Second, "how long to wait for dtc and the banks to become ready")
	fs.DurationVar(&c.stopGrace, "stop-grace", 10*time.Second, "how long a child may take to stop after SIGTERM before it is killed")
	help := func(w io.Writer) { fmt.Fprintf(w, "%s%s", usageText, fs.FlagUsages()) }
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			help(stdout)
			return nil, exitOK
		}
		fmt.Fprintf(stderr, "demo: %v\n\n", err)
		help(stderr)
		return nil, exitUsage
	}
	bad := func(format string, a ...any) (*config, int) {
		fmt.Fprintf(stderr, "demo: "+format+"\nRun 'demo --help' for usage.\n", a...)
		return nil, exitUsage
	}
	switch {
	case fs.NArg() > 0:
		return bad("unexpected argument %q", fs.Arg(0))
	case len(c.bankPorts) != len(banks):
		return bad("--bank-ports: give %d ports, got %d", len(banks), len(c.bankPorts))
	case c.logs != "files" && c.logs != "terminal":
		return bad("--logs %q: use files or terminal", c.logs)
	case c.runDir == "":
		return bad("--run-dir must not be empty")
	case c.prepareTimeout <= 0 || c.startTimeout <= 0 || c.stopGrace <= 0:
		return bad("--prepare-timeout, --start-timeout and --stop-grace must be positive")
	}
	seen := map[int]string{}
	ports := append([]int{c.dtcPort}, c.bankPorts...)
	for i, p := range ports {
		if p < 1 || p > 65535 {
			return bad("port %d out of range 1..65535", p)
		}
		if prev, dup := seen[p]; dup {
			return bad("port %d is given twice (%s and %s)", p, prev, portOwner(i))
		}
		seen[p] = portOwner(i)
	}
	if c.binDir == "" {
		c.binDir = defaultBinDir()
	}
	return c, exitOK
}

func portOwner(i int) string {
	if i == 0 {
		return "dtc"
	}
	return banks[i-1].name
}

// defaultBinDir is the demo's own directory when dtc and bank sit next to it (bin/demo),
// else bin.
func defaultBinDir() string {
	if exe, err := os.Executable(); err == nil {
		dir := filepath.Dir(exe)
		if isFile(filepath.Join(dir, "dtc")) && isFile(filepath.Join(dir, "bank")) {
			return dir
		}
	}
	return "bin"
}

func isFile(path string) bool {
	st, err := os.Stat(path)
	return err == nil && st.Mode().IsRegular()
}

// signals turns SIGINT and SIGTERM into two channels: first is closed at the first
// signal, second at the next one.
type signals struct {
	first, second chan struct{}
	stop          func()
}

func notifySignals() *signals {
	ch := make(chan os.Signal, 2)
	signal.Notify(ch, os.Interrupt, syscall.SIGTERM)
	s := &signals{first: make(chan struct{}), second: make(chan struct{})}
	quit := make(chan struct{})
	s.stop = func() { signal.Stop(ch); close(quit) }
	go func() {
		for _, c := range []chan struct{}{s.first, s.second} {
			select {
			case <-ch:
				close(c)
			case <-quit:
				return
			}
		}
	}()
	return s
}

// hurry is closed by the next signal: a signal that arrives while the children are
// being stopped means "stop waiting".
func (s *signals) hurry() <-chan struct{} {
	select {
	case <-s.first:
		return s.second
	default:
		return s.first
	}
}

func run(args []string, stdout, stderr io.Writer) int {
	cfg, code := parseFlags(args, stdout, stderr)
	if cfg == nil {
		return code
	}
	sig := notifySignals()
	defer sig.stop()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-sig.first:
			cancel()
		case <-ctx.Done():
		}
	}()

	d := &demo{cfg: cfg, stdout: stdout, stderr: stderr}
	err := d.run(ctx)
	code = exitOK
	switch {
	case err == nil:
	case errors.Is(err, errInterrupted) || (ctx.Err() != nil && errors.Is(err, context.Canceled)):
		fmt.Fprintln(stderr, "\ndemo: interrupted before the workload was done")
		code = exitInterrupted
	default:
		// Said before stopping the children, next to what went wrong.
		fmt.Fprintf(stderr, "demo: %v\n", err)
		code = exitFailed
	}
	if d.procs != nil {
		if err := d.procs.stopAll(cfg.stopGrace, sig.hurry()); err != nil {
			fmt.Fprintf(stderr, "demo: %v\n", err)
			if code == exitOK {
				code = exitFailed
			}
		}
	}
	return code
}

var errInterrupted = errors.New("interrupted")
