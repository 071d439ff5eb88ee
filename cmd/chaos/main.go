// Command chaos runs fault campaigns against dtc.
//
//	chaos sim --seed 42                 replay one seed of the simulator, with its trace
//	chaos sim --seeds 500 --from 1      a swarm campaign: one line per seed
//
// A simulated run is deterministic: the same seed and the same code give the same trace,
// byte for byte, and the last line of a replay is its SHA-256 ("trace-sha256: …"). A
// failing seed prints its violations, the command that replays it, and the path of the
// HTML report (porcupine's visualization of the history).
package main

import (
	"fmt"
	"io"
	"os"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

const usage = `usage: chaos <command> [flags]

commands:
  sim    run the deterministic simulator: one seed (--seed) or a swarm (--seeds)
  real   a fault campaign against real dtc and bank processes on 127.0.0.1

Run "chaos <command> --help" for the flags of a command.
`

// run is main without the process: it returns the exit code.
func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch args[0] {
	case "sim":
		return runSim(args[1:], stdout, stderr)
	case "real":
		return runReal(args[1:], stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	}
	fmt.Fprintf(stderr, "chaos: unknown command %q\n\n%s", args[0], usage)
	return 2
}
