// Package maxprocs sets how many goroutines run Go code at once (GOMAXPROCS) for a
// process that syncs logs to disk.
//
// A goroutine in fdatasync holds its P (scheduling slot) while the syscall blocks,
// until the runtime's sysmon hands the P to another thread. With GOMAXPROCS equal to
// the number of cores, a process that syncs a log thus leaves cores idle while there
// is work to run: with 3 logs on 2 cores, measured with the bench package, dtc lost
// about 0.4 cores this way. One P more per log that may be syncing lets other
// goroutines run while its sync blocks; the extra P costs nothing while nothing syncs.
package maxprocs

import (
	"os"
	"runtime"
)

// ForLogs is the GOMAXPROCS of a process that syncs logs logs: the number of cores plus
// one per log, and at least one more than the cores.
func ForLogs(logs int) int { return runtime.NumCPU() + max(logs, 1) }

// Set sets GOMAXPROCS to n unless the GOMAXPROCS environment variable is set (then the
// operator chose, and it is left alone), and returns a function that restores the
// previous value.
func Set(n int) (restore func()) {
	if _, set := os.LookupEnv("GOMAXPROCS"); set {
		return func() {}
	}
	old := runtime.GOMAXPROCS(n)
	return func() { runtime.GOMAXPROCS(old) }
}

// Raise is Set(ForLogs(1)), for a process with one log: dtc serve, a bank.
func Raise() (restore func()) { return Set(ForLogs(1)) }
