package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"

	"github.com/spf13/pflag"
)

// Exit codes shared by the commands.
const (
	exitOK    = 0
	exitNo    = 1 // submit: aborted; get: not found; serve and log dump: failed
	exitError = 2 // usage errors, unreachable coordinator, unexpected answers
)

// command is one subcommand of dtc.
type command struct {
	name    string
	summary string // one line for the command list
	// run parses args (after the command name) and returns the exit code.
	run func(ctx context.Context, args []string, stdout, stderr io.Writer) int
}

func commands() []command {
	return []command{
		{"serve", "run the coordinator daemon (HTTP API, log, recovery)", runServe},
		{"submit", "run one transaction across participants and print its outcome", runSubmit},
		{"get", "show one transaction", runGet},
		{"list", "list transactions (in doubt, heuristic, by state)", runList},
		{"abort", "abort a transaction that is not decided yet", runAbort},
		{"forget", "end a decided transaction whose participant is gone for good (admin)", runForget},
		{"log", "inspect the coordinator's log (log dump)", runLog},
		{"token", "make a bearer token for an API client and its tokens-file line", runToken},
		{"bench", "measure throughput and latency against this machine's floor", runBench},
		{"cluster", "show a cluster's nodes, shards and owners (cluster status)", runCluster},
		{"version", "print the version", runVersion},
		{"help", "show help for a command", nil},
	}
}

const mainUsage = `dtc — a distributed transaction coordinator.

dtc makes a change that spans several HTTP services atomic: all of them commit, or all
of them roll back, whatever crashes happen in between (two-phase commit, presumed abort,
a durable log of every decision).

Usage:
  dtc <command> [flags] [arguments]

Commands:
%s
Examples:
  dtc serve --listen 127.0.0.1:7070 --data-dir ./data
  dtc submit http://127.0.0.1:9001/prepare='{"account":"alice","amount":-10}' \
             http://127.0.0.1:9002/prepare='{"account":"bob","amount":10}'
  dtc list --state in-doubt
  dtc log dump --data-dir ./data | jq .

Every flag can also be set through an environment variable named after it:
DTC_ and the flag name in capitals with - turned into _ (e.g. --data-dir is
DTC_DATA_DIR). A flag given on the command line wins over the environment.

Run 'dtc <command> --help' for what a command does, its flags and its exit codes.
`

func usage(w io.Writer) {
	var b strings.Builder
	for _, c := range commands() {
		fmt.Fprintf(&b, "  %-8s %s\n", c.name, c.summary)
	}
	fmt.Fprintf(w, mainUsage, b.String())
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stderr)
		return exitError
	}
	name := args[0]
	switch name {
	case "-h", "--help", "help":
		if name == "help" && len(args) > 1 {
			return run(ctx, []string{args[1], "--help"}, stdout, stderr)
		}
		usage(stdout)
		return exitOK
	case "-v", "--version":
		return runVersion(ctx, nil, stdout, stderr)
	}
	for _, c := range commands() {
		if c.name == name && c.run != nil {
			return c.run(ctx, args[1:], stdout, stderr)
		}
	}
	fmt.Fprintf(stderr, "dtc: unknown command %q\n\n", name)
	usage(stderr)
	return exitError
}

// newFlags returns a flag set that returns errors instead of exiting.
func newFlags(name string) *pflag.FlagSet {
	fs := pflag.NewFlagSet(name, pflag.ContinueOnError)
	fs.SortFlags = false
	fs.SetOutput(io.Discard) // parse reports errors itself, with the help text
	fs.Usage = func() {}
	return fs
}

// parse parses args, filling flags not given on the command line from their DTC_…
// environment variables (all flags if env is nil, else those named). It returns false
// and the exit code when the command must stop: help was asked for (exit 0, help on
// stdout) or the arguments are wrong (exit 2, the error and the help on stderr).
func parse(fs *pflag.FlagSet, help string, args []string, env []string, stdout, stderr io.Writer) (bool, int) {
	withEnv := func(name string) bool {
		if env == nil {
			return true
		}
		for _, n := range env {
			if n == name {
				return true
			}
		}
		return false
	}
	fs.VisitAll(func(f *pflag.Flag) {
		if withEnv(f.Name) && f.Name != "help" {
			f.Usage += " [env " + envName(f.Name) + "]"
		}
	})
	var helpFlag bool
	fs.BoolVarP(&helpFlag, "help", "h", false, "show this help")
	printHelp := func(w io.Writer) {
		fmt.Fprint(w, help)
		fmt.Fprintf(w, "\nFlags:\n%s", fs.FlagUsages())
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			printHelp(stdout)
			return false, exitOK
		}
		fmt.Fprintf(stderr, "dtc %s: %v\n\n", fs.Name(), err)
		printHelp(stderr)
		return false, exitError
	}
	if helpFlag {
		printHelp(stdout)
		return false, exitOK
	}
	var envErr error
	var names []string
	fs.VisitAll(func(f *pflag.Flag) { names = append(names, f.Name) })
	sort.Strings(names)
	for _, name := range names {
		if name == "help" || !withEnv(name) || fs.Changed(name) {
			continue
		}
		v, ok := os.LookupEnv(envName(name))
		if !ok {
			continue
		}
		if err := fs.Set(name, v); err != nil && envErr == nil {
			envErr = fmt.Errorf("environment variable %s=%q (for --%s): %v", envName(name), v, name, err)
		}
	}
	if envErr != nil {
		fmt.Fprintf(stderr, "dtc %s: %v\n", fs.Name(), envErr)
		return false, exitError
	}
	return true, exitOK
}

// envName is the environment variable of a flag: --data-dir is DTC_DATA_DIR.
func envName(flag string) string {
	return "DTC_" + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
}

// usageError reports a wrong argument and points to the help.
func usageError(stderr io.Writer, cmd, format string, args ...any) int {
	fmt.Fprintf(stderr, "dtc %s: %s\nRun 'dtc %s --help' for usage.\n", cmd, fmt.Sprintf(format, args...), cmd)
	return exitError
}
