//go:build unix

package bench

import (
	"syscall"
	"time"
)

// usage is what the process has used so far, all threads: CPU time (user + system)
// and context switches (voluntary: a thread blocked, e.g. an idle P parking in a
// futex or a syscall; involuntary: preempted).
func usage() procUsage {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return procUsage{}
	}
	return procUsage{
		cpu:   time.Duration(ru.Utime.Nano() + ru.Stime.Nano()),
		vcsw:  int64(ru.Nvcsw),
		ivcsw: int64(ru.Nivcsw),
	}
}
