// Package maxprocs sets how many goroutines run Go code at once (GOMAXPROCS) for a
// process that syncs a log to disk.
//
// A goroutine in fdatasync holds its P (scheduling slot) for the whole syscall — about
// 0.5 ms — before the runtime's sysmon hands the P to another thread. With GOMAXPROCS
// equal to the number of cores, a process with several logs (a coordinator and its
// participants, or several participants) thus leaves cores idle while there is work to
// run: with 3 logs on 2 cores, measured with the bench package, dtc lost about 0.4 cores
// this way. One P more than there are cores lets another goroutine run while a sync
// blocks; the extra P costs nothing while nothing syncs.
package maxprocs

import (
	"os"
	"runtime"
)

// Raise sets GOMAXPROCS to runtime.NumCPU()+1 unless the GOMAXPROCS environment
// variable is set (then the operator chose, and it is left alone), and returns a
// function that restores the previous value.
func Raise() (restore func()) {
	if _, set := os.LookupEnv("GOMAXPROCS"); set {
		return func() {}
	}
	old := runtime.GOMAXPROCS(runtime.NumCPU() + 1)
	return func() { runtime.GOMAXPROCS(old) }
}
