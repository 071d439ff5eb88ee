package simnet

import (
	"errors"
	"fmt"
	"runtime/debug"
	"slices"
	"strings"
	"time"

	"github.com/dtc-project/dtc/checker"
	"github.com/dtc-project/dtc/coordinator"
	"github.com/dtc-project/dtc/faults"
	"github.com/dtc-project/dtc/participant"
)

// Result is what one run did and what the checker found.
type Result struct {
	Seed         uint64
	Knobs        faults.Knobs
	Break        Breakage
	Participants int
	Clients      int
	Accounts     int
	Transfers    int // transfers in the workload
	// Swarm is set when everything about the run came from its seed and the sizes (no
	// explicit knobs, schedule, workload or configuration): chaos sim can replay it.
	Swarm bool

	TraceSHA256 string
	TraceLines  int
	Events      int
	VirtualTime time.Duration // virtual time when the run ended
	HealAt      time.Duration // virtual time when the fault phase ended
	Quiet       bool          // everything resolved before the heal phase ran out
	// RotStop is set when the run ended at a log that refused to start after injected
	// rot, as it must: liveness and the final balances are not checked (a node is down
	// until an operator steps in); safety is, on the history up to there.
	RotStop bool

	// Committed, Aborted and Unknown count the transfers by what their client last
	// learned; Unsubmitted were never submitted (the fault phase ran out first).
	Committed, Aborted, Unknown, Unsubmitted int
	Stats                                    Stats

	History    checker.History
	Report     *checker.Report
	Violations []checker.Violation // the report's, the bank's, and the simulator's own
	Balances   map[string]int64    // "p1/a0" → balance at the end
	// Outcomes is, for each submitted transaction, what everyone holds at the end.
	Outcomes map[string]TxnOutcome
	// Tail is the last lines of the trace.
	Tail []string
}

// TxnOutcome is one transaction at the end of a run.
type TxnOutcome struct {
	Client       checker.Outcome   // what its client last learned
	Coordinator  string            // the engine's view state, "not-found", or "down"
	Participants map[string]string // participant → "committed", "aborted", "prepared", "unknown", "down"
}

// OK reports whether the run broke no rule.
func (r *Result) OK() bool { return len(r.Violations) == 0 }

// Summary is one line: the seed, what happened and the verdict.
func (r *Result) Summary() string {
	verdict := "ok"
	if r.RotStop {
		verdict = "ok (stopped: a log refused to start after rot, as it must)"
	}
	if !r.OK() {
		verdict = fmt.Sprintf("%d violation(s)", len(r.Violations))
	}
	return fmt.Sprintf("seed %d: %d transfers: %d committed, %d aborted, %d unknown to their client; %d crashes, %d partitions, %d msgs (%d lost); virtual %v; %s",
		r.Seed, r.Transfers, r.Committed, r.Aborted, r.Unknown, r.Stats.Crashes, r.Stats.Partitions,
		r.Stats.Messages, r.Stats.Dropped, r.VirtualTime.Round(time.Millisecond), verdict)
}

// ReplayCommand is the command that replays this run's seed, or "" if the run is not a
// swarm run (its knobs, schedule or workload came from the caller: rerun the caller).
func (r *Result) ReplayCommand() string {
	if !r.Swarm {
		return ""
	}
	cmd := fmt.Sprintf("go run ./cmd/chaos sim --seed %d --participants %d --clients %d --accounts %d --txns %d",
		r.Seed, r.Participants, r.Clients, r.Accounts, r.Transfers)
	if r.Break != 0 {
		cmd += " --break " + r.Break.String()
	}
	return cmd
}

// Failure is the report of a failed run: the violations, the knobs, how to replay it
// and the end of the trace.
func (r *Result) Failure() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s\nknobs: %v\n", r.Summary(), r.Knobs)
	for _, v := range r.Violations {
		fmt.Fprintf(&b, "  %s\n", v)
	}
	if cmd := r.ReplayCommand(); cmd != "" {
		fmt.Fprintf(&b, "replay: %s\n", cmd)
	} else {
		fmt.Fprintf(&b, "replay: rerun the test that made this run with seed %d (its knobs, schedule or workload are its own)\n", r.Seed)
	}
	fmt.Fprintf(&b, "last %d trace lines:\n", len(r.Tail))
	for _, l := range r.Tail {
		fmt.Fprintf(&b, "  %s\n", l)
	}
	return b.String()
}

// WriteHTML writes porcupine's visualization of the history, with the report.
func (r *Result) WriteHTML(path string) error {
	return checker.WriteHTML(path, r.History, r.Report)
}

// finish records what every node holds at the end, and checks the history.
func (s *sim) finish() *Result {
	r := &Result{
		Seed: s.o.Seed, Knobs: s.knobs, Break: s.o.Break,
		Participants: s.o.Participants, Clients: s.o.Clients, Accounts: s.o.Accounts,
		Swarm: s.o.Knobs == nil && s.o.Schedule == nil && s.o.Workload == nil && s.o.Coordinator == nil &&
			s.o.Participant == nil && s.o.SegmentSizeBytes == defaultSegmentSizeBytes && s.o.InitialBalance == defaultInitialBalance,
		HealAt: time.Duration(s.healAt), Quiet: s.stopped && s.quiet(), RotStop: s.rotStop,
		Outcomes: map[string]TxnOutcome{},
	}
	if s.faultPhase {
		r.HealAt = time.Duration(s.now)
	}
	var runs []*txnRun
	for _, c := range s.clients {
		runs = append(runs, c.queue...)
	}
	r.Transfers = len(runs)
	partsOf := map[string][]string{} // by client id
	for _, run := range runs {
		id := run.t.ID
		if run.attempts == 0 {
			r.Unsubmitted++
			continue
		}
		partsOf[id] = run.parts
		// A call that never learned its outcome is judged with the incarnation the
		// coordinator holds for its id now, if any (its open end allows every outcome);
		// otherwise under the client's id, where nothing was recorded and the presumed
		// outcome is abort.
		wire := id
		if v, err := s.coordGet(id); err == nil {
			wire = v.TxnID
		}
		for _, op := range run.openOps {
			s.rec.Rebind(op, wire)
		}
		if wire == id {
			s.rec.FinalCoordinator(id, s.coordState(id))
			for _, name := range run.parts {
				s.rec.FinalParticipant(id, name, string(participant.StateUnknown))
			}
		}
		switch run.outcome {
		case checker.Committed:
			r.Committed++
		case checker.Aborted:
			r.Aborted++
		default:
			r.Unknown++
		}
		if _, dup := r.Outcomes[id]; dup {
			continue
		}
		o := TxnOutcome{Client: run.outcome, Coordinator: s.coordState(id), Participants: map[string]string{}}
		for _, name := range run.parts {
			o.Participants[name] = s.partState(name, wire)
		}
		r.Outcomes[id] = o
	}
	// What every incarnation any participant heard of ended as, everywhere.
	wires := make([]string, 0, len(s.incarnations))
	for w := range s.incarnations {
		wires = append(wires, w)
	}
	slices.Sort(wires)
	for _, w := range wires {
		s.rec.FinalCoordinator(w, s.coordState(w))
		for _, name := range partsOf[clientID(w)] {
			s.rec.FinalParticipant(w, name, s.partState(name, w))
		}
	}
	s.tracef(coordID, "end: %d events; checking the history", s.events)

	r.History = s.rec.History()
	r.Report = checker.Check(r.History, checker.Options{CheckLiveness: !s.rotStop})
	r.Violations = append(r.Violations, r.Report.Violations...)
	if r.Report.Violations == nil && !r.Report.OK() {
		r.Violations = append(r.Violations, checker.Violation{Kind: checker.KindLinearizability, Detail: r.Report.String()})
	}
	if s.rotStop {
		// A node is down for good: its balances cannot be read.
	} else if bal, err := s.balances(); err != nil {
		r.Violations = append(r.Violations, checker.Violation{Kind: checker.KindBank, Detail: "balances cannot be read at the end: " + err.Error()})
	} else {
		r.Balances = bal
		total := int64(s.o.Participants) * int64(s.o.Accounts) * s.o.InitialBalance
		r.Violations = append(r.Violations, checker.CheckBank(total, bal)...)
		r.Violations = append(r.Violations, s.checkSerializable(r.History)...)
	}
	if !r.Quiet && !s.rotStop {
		r.Violations = append(r.Violations, checker.Violation{Kind: checker.KindLiveness,
			Detail: fmt.Sprintf("not resolved %v after the heal began: %s", s.o.HealMax, s.unresolved())})
	}
	r.Violations = append(r.Violations, s.checkServed()...)
	r.Violations = append(r.Violations, s.simViolations...)
	for _, v := range r.Violations {
		s.tracef(coordID, "VIOLATION %s", v)
	}
	r.Stats = s.stats
	r.Stats.Events = s.events
	r.Events = s.events
	r.VirtualTime = time.Duration(s.now)
	r.TraceSHA256 = s.tr.sum()
	r.TraceLines = s.tr.lines
	r.Tail = s.tr.tail()
	return r
}

// coordState is what the coordinator says of txn at the end.
// partState is what participant name holds for txnID now ("down" if it is not running).
func (s *sim) partState(name, txnID string) string {
	if p := s.parts[s.node(name)-1]; s.up[p.id] && p.core != nil {
		return string(p.core.Status(txnID))
	}
	return "down"
}

// coordGet asks the running coordinator about id.
func (s *sim) coordGet(id string) (coordinator.View, error) {
	if !s.up[coordID] || s.coord.eng == nil {
		return coordinator.View{}, errors.New("coordinator down")
	}
	return s.coord.eng.Get(id)
}

func (s *sim) coordState(id string) string {
	if !s.up[coordID] || s.coord.eng == nil {
		return "down"
	}
	v, err := s.coord.eng.Get(id)
	switch {
	case errors.Is(err, coordinator.ErrNotFound):
		return checker.StateNotFound
	case err != nil:
		return "error: " + err.Error()
	}
	return v.State
}

// unresolved says what is still pending, for a liveness failure.
func (s *sim) unresolved() string {
	var what []string
	if !s.clientsDone() {
		what = append(what, "clients still busy")
	}
	switch {
	case !s.up[coordID]:
		what = append(what, "the coordinator is down")
	case !s.coord.eng.Ready():
		what = append(what, "the coordinator is still recovering")
	default:
		if st := s.coord.eng.Stats(); st.Inflight > 0 {
			views, _, _ := s.coord.eng.List(coordinator.FilterInDoubt, "", 5)
			var ids []string
			for _, v := range views {
				ids = append(ids, v.ID+"="+v.State)
			}
			what = append(what, fmt.Sprintf("the coordinator holds %d transactions in flight (%s)", st.Inflight, strings.Join(ids, ", ")))
		}
	}
	for _, p := range s.parts {
		if !s.up[p.id] {
			what = append(what, p.name+" is down")
			continue
		}
		if st := p.core.Stats(); st.Prepared > 0 {
			ids := p.bank.Prepared()
			what = append(what, fmt.Sprintf("%s holds %d prepared (%s)", p.name, st.Prepared, strings.Join(ids[:min(len(ids), 5)], ", ")))
		}
	}
	return strings.Join(what, "; ")
}

// panicked turns a panic inside the run (a component's assertion) into a violation.
func panicked(o Options, v any) *Result {
	return &Result{
		Seed: o.Seed, Break: o.Break, Participants: o.Participants, Clients: o.Clients,
		Violations: []checker.Violation{{Kind: "panic", Detail: fmt.Sprintf("the run panicked: %.600s\n%s", fmt.Sprint(v), debug.Stack())}},
	}
}
