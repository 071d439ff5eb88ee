package scenarios

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dtc-project/dtc/checker"
	"github.com/dtc-project/dtc/simnet"
)

// world is one finished scenario run, with assertions that read as sentences.
type world struct {
	t   *testing.T
	res *simnet.Result
}

// simulate runs o (seed 1 and calm knobs unless it says otherwise) and fails the test if
// the options are wrong. The trace goes to $DTC_SCENARIO_TRACES/<test>.txt if set.
func simulate(t *testing.T, o simnet.Options) *world {
	t.Helper()
	if o.Seed == 0 {
		o.Seed = 1
	}
	if o.Knobs == nil {
		o.Knobs = Calm()
	}
	if dir := os.Getenv("DTC_SCENARIO_TRACES"); dir != "" {
		f, err := os.Create(filepath.Join(dir, strings.ReplaceAll(t.Name(), "/", "_")+".txt"))
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		o.Trace = f
	}
	res, err := simnet.Run(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Log(res.Summary())
	return &world{t: t, res: res}
}

// noViolations: the checker, the bank and the simulator found nothing wrong.
func (w *world) noViolations() *world {
	w.t.Helper()
	if !w.res.OK() {
		w.t.Fatalf("expected no violation:\n%s", w.res.Failure())
	}
	return w
}

func (w *world) outcome(txn string) simnet.TxnOutcome {
	w.t.Helper()
	o, ok := w.res.Outcomes[txn]
	if !ok {
		w.t.Fatalf("txn %s was never submitted", txn)
	}
	return o
}

// committedEverywhere: the coordinator and every participant of txn hold it committed.
func (w *world) committedEverywhere(txn string) *world {
	w.t.Helper()
	o := w.outcome(txn)
	if o.Coordinator != "committed" {
		w.t.Fatalf("txn %s: coordinator holds %q, want committed\n%s", txn, o.Coordinator, w.res.Failure())
	}
	for p, st := range o.Participants {
		if st != "committed" {
			w.t.Fatalf("txn %s: %s holds %q, want committed\n%s", txn, p, st, w.res.Failure())
		}
	}
	return w
}

// abortedEverywhere: the coordinator aborted txn (or presumes it aborted, having no
// record) and no participant holds it prepared or committed.
func (w *world) abortedEverywhere(txn string) *world {
	w.t.Helper()
	o := w.outcome(txn)
	if o.Coordinator != "aborted" && o.Coordinator != checker.StateNotFound {
		w.t.Fatalf("txn %s: coordinator holds %q, want aborted\n%s", txn, o.Coordinator, w.res.Failure())
	}
	for p, st := range o.Participants {
		if st != "aborted" && st != "unknown" {
			w.t.Fatalf("txn %s: %s holds %q, want aborted\n%s", txn, p, st, w.res.Failure())
		}
	}
	return w
}

// clientLearned: what txn's client was last told.
func (w *world) clientLearned(txn string, want checker.Outcome) *world {
	w.t.Helper()
	if got := w.outcome(txn).Client; got != want {
		w.t.Fatalf("txn %s: the client learned %q, want %q\n%s", txn, got, want, w.res.Failure())
	}
	return w
}

// violation: the run broke a rule of kind, and the message says so clearly.
func (w *world) violation(kind string) checker.Violation {
	w.t.Helper()
	for _, v := range w.res.Violations {
		if v.Kind == kind {
			w.t.Logf("found, as expected: %s", v)
			return v
		}
	}
	w.t.Fatalf("expected a %s violation, got:\n%s", kind, w.res.Failure())
	return checker.Violation{}
}

// noted: a note of the history (crashes, restarts, faults) mentions what.
func (w *world) noted(what string) *world {
	w.t.Helper()
	for _, n := range w.res.History.Notes {
		if strings.Contains(n.What, what) {
			return w
		}
	}
	w.t.Fatalf("no note mentions %q\n%s", what, w.res.Failure())
	return w
}

// happened checks a counter of what the run did.
func (w *world) happened(what string, n int) *world {
	w.t.Helper()
	if n == 0 {
		w.t.Fatalf("the run was supposed to have %s, and had none\n%s", what, w.res.Failure())
	}
	return w
}
