// Package fp is what dtc's failpoint markers do when a chaos build arms them.
//
// The markers (failpoint.Inject calls in coordlog, httpnet and participant) are no-ops in
// a normal build: failpoint.Inject is an empty function. A chaos build rewrites them
// (go build -toolexec failpoint-toolexec, see chaosreal) into a check of the
// GO_FAILPOINTS environment variable, which a campaign sets per process, e.g.
//
//	GO_FAILPOINTS='github.com/dtc-project/dtc/coordlog/beforeDecisionSync=5%return("panic")'
//
// A term's value says what the marker does, through Act:
//
//	return("panic")   the process dies at that point, at once: it sends itself SIGKILL, so
//	                  that no deferred function, no recover (net/http recovers panics in
//	                  handlers) and no graceful shutdown softens it: a kill -9 at exactly
//	                  the durability point
//	return("error")   the operation fails with ErrInjected (what that means is the
//	                  marker's: a refused log write, a failed sync, a failed send)
//	sleep(N)          failpoint's own term: the marker waits N ms, then carries on
//
// faults.Failpoints lists every marker, the process it lives in and the actions it takes.
package fp

import (
	"errors"
	"fmt"
	"os"

	"github.com/pingcap/failpoint"
)

// ErrInjected is the error of a failpoint armed with return("error").
var ErrInjected = errors.New("failpoint: injected error")

// The values a term may return.
const (
	Panic = "panic"
	Error = "error"
)

// Act carries out the value of an armed failpoint: it kills the process for "panic",
// returns ErrInjected for "error", and returns nil for anything else (a sleep term has
// already slept and returns no value).
func Act(name string, v failpoint.Value) error {
	switch v {
	case Panic:
		fmt.Fprintf(os.Stderr, "failpoint %s: panic: killing the process\n", name)
		die()
	case Error:
		fmt.Fprintf(os.Stderr, "failpoint %s: injected error\n", name)
		return fmt.Errorf("%w at %s", ErrInjected, name)
	}
	return nil
}
