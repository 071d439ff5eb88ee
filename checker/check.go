package checker

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/anishathalye/porcupine"
)

// The kinds of Violation, in the order a Report lists them.
const (
	KindAtomicity       = "atomicity"
	KindValidity        = "validity"
	KindStability       = "stability"
	KindLiveness        = "liveness"
	KindLinearizability = "linearizability"
	KindBank            = "bank"
	// KindDurability: a log refused to start (or lost a record) with no rot or lossy cut injected:
	// the simulator reports it, the history cannot show it.
	KindDurability = "durability"
)

var kindOrder = []string{KindAtomicity, KindValidity, KindStability, KindLiveness, KindLinearizability, KindBank, KindDurability}

// Violation is one broken invariant. Detail is a complete sentence naming the
// transaction, who saw what and when.
type Violation struct {
	Kind   string `json:"kind"`
	Txn    string `json:"txn,omitempty"`
	Detail string `json:"detail"`
}

func (v Violation) String() string { return v.Kind + ": " + v.Detail }

// DefaultPorcupineTimeout bounds porcupine's search when Options leaves it zero.
const DefaultPorcupineTimeout = 10 * time.Second

// Options says what a run promises.
type Options struct {
	// CheckLiveness: the run had a heal phase, so every transaction must be decided at the
	// coordinator and no participant may be left prepared.
	CheckLiveness bool
	// PorcupineTimeout bounds the linearizability search (DefaultPorcupineTimeout if
	// zero). Running out of time makes the result unknown: neither OK nor a violation.
	PorcupineTimeout time.Duration
}

// Report is the verdict on one history.
type Report struct {
	Violations []Violation `json:"violations"`
	Txns       int         `json:"txns"`      // distinct transaction ids in the history
	Ops        int         `json:"ops"`       // client operations (Submit)
	ModelOps   int         `json:"model_ops"` // operations given to porcupine
	// Porcupine is porcupine's answer: Ok, Illegal (each illegal transaction is also a
	// "linearizability" violation) or Unknown (it ran out of PorcupineTimeout).
	Porcupine        porcupine.CheckResult `json:"porcupine"`
	PorcupineTimeout time.Duration         `json:"porcupine_timeout"`
}

// OK reports whether the history passed every check: no violation, and porcupine found
// a linearization (an Unknown porcupine result is not OK).
func (r *Report) OK() bool { return len(r.Violations) == 0 && r.Porcupine == porcupine.Ok }

// String is one line per violation (and one if porcupine ran out of time), or a one-line
// summary when the history passed.
func (r *Report) String() string {
	if r.OK() {
		return fmt.Sprintf("ok: %d txns, %d client ops, %d model ops, porcupine %s", r.Txns, r.Ops, r.ModelOps, r.Porcupine)
	}
	var b strings.Builder
	for _, v := range r.Violations {
		b.WriteString(v.String())
		b.WriteByte('\n')
	}
	if r.Porcupine == porcupine.Unknown {
		fmt.Fprintf(&b, "linearizability: porcupine found no answer within %s: result unknown (not a violation, not a pass)\n", r.PorcupineTimeout)
	}
	return strings.TrimSuffix(b.String(), "\n")
}

// Check checks a history against every invariant of DESIGN.md §6 (see the package doc).
func Check(h History, o Options) *Report {
	if o.PorcupineTimeout == 0 {
		o.PorcupineTimeout = DefaultPorcupineTimeout
	}
	txns := collect(h)
	rep := &Report{Txns: len(txns), Ops: len(h.Ops), PorcupineTimeout: o.PorcupineTimeout}
	for _, t := range txns {
		rep.Violations = append(rep.Violations, t.check(o)...)
	}
	ops := checkedOperations(h)
	rep.ModelOps = len(ops)
	res, info := porcupine.CheckOperationsVerbose(Model(), ops, o.PorcupineTimeout)
	rep.Porcupine = res
	if res == porcupine.Illegal {
		rep.Violations = append(rep.Violations, illegalPartitions(ops, info)...)
	}
	sortViolations(rep.Violations)
	return rep
}

func sortViolations(vs []Violation) {
	rank := func(kind string) int {
		if i := slices.Index(kindOrder, kind); i >= 0 {
			return i
		}
		return len(kindOrder)
	}
	slices.SortStableFunc(vs, func(a, b Violation) int {
		if c := rank(a.Kind) - rank(b.Kind); c != 0 {
			return c
		}
		if c := strings.Compare(a.Kind, b.Kind); c != 0 {
			return c
		}
		if c := strings.Compare(a.Txn, b.Txn); c != 0 {
			return c
		}
		return strings.Compare(a.Detail, b.Detail)
	})
}

// txnFacts is everything the history says about one transaction.
type txnFacts struct {
	id         string
	ops        []*Op
	events     []*Event // in time order
	finalParts []FinalState
	coord      string
	hasCoord   bool
}

// collect groups the history by transaction, in id order.
func collect(h History) []*txnFacts {
	byID := map[string]*txnFacts{}
	get := func(id string) *txnFacts {
		t := byID[id]
		if t == nil {
			t = &txnFacts{id: id}
			byID[id] = t
		}
		return t
	}
	for i := range h.Ops {
		t := get(h.Ops[i].Txn)
		t.ops = append(t.ops, &h.Ops[i])
	}
	for i := range h.Events {
		t := get(h.Events[i].Txn)
		t.events = append(t.events, &h.Events[i])
	}
	for _, f := range h.FinalParticipants {
		t := get(f.Txn)
		t.finalParts = append(t.finalParts, f)
	}
	for _, f := range h.FinalCoordinator {
		t := get(f.Txn)
		t.coord, t.hasCoord = f.State, true
	}
	out := make([]*txnFacts, 0, len(byID))
	for _, t := range byID {
		// A History read back from JSON or built by hand may be out of order.
		slices.SortStableFunc(t.events, func(a, b *Event) int { return cmpInt64(a.At, b.At) })
		slices.SortStableFunc(t.finalParts, func(a, b FinalState) int { return strings.Compare(a.Who, b.Who) })
		out = append(out, t)
	}
	slices.SortFunc(out, func(a, b *txnFacts) int { return strings.Compare(a.id, b.id) })
	return out
}

// source is where a piece of evidence about an outcome comes from.
type source uint8

const (
	srcReturn     source = iota // the submitting client's call returned it
	srcTold                     // it was reported to someone else
	srcApplied                  // a participant durably applied it
	srcFinalPart                // a participant holds it at the end of the run
	srcFinalCoord               // the coordinator holds it at the end of the run
)

// evidence is one observation of a final outcome.
type evidence struct {
	src     source
	who     string // participant or recipient; for srcReturn, "client N"
	outcome Outcome
	at      int64 // meaningless for final states, which come after everything
}

func (e evidence) timed() bool { return e.src != srcFinalPart && e.src != srcFinalCoord }

func (e evidence) when() string {
	if e.timed() {
		return "t=" + fmtTime(e.at)
	}
	return "final state"
}

// clause describes the evidence as a sentence fragment.
func (e evidence) clause() string {
	switch e.src {
	case srcReturn, srcTold:
		return fmt.Sprintf("%s was told %s (%s)", e.who, e.outcome, e.when())
	case srcApplied:
		return fmt.Sprintf("%s applied %s (%s)", e.who, e.outcome, e.when())
	case srcFinalPart:
		return fmt.Sprintf("%s ends %s", e.who, e.outcome)
	default:
		return fmt.Sprintf("the coordinator ends %s", e.outcome)
	}
}

// before orders evidence by time; final states come after everything timed.
func before(a, b evidence) bool {
	if a.timed() != b.timed() {
		return a.timed()
	}
	return a.timed() && a.at < b.at
}

// firstOf returns the earliest evidence with outcome o.
func firstOf(es []evidence, o Outcome) (evidence, bool) {
	var best evidence
	found := false
	for _, e := range es {
		if e.outcome == o && (!found || before(e, best)) {
			best, found = e, true
		}
	}
	return best, found
}

// split returns the first evidence of each outcome, earlier first, if es holds both.
func split(es []evidence) (x, y evidence, ok bool) {
	c, okc := firstOf(es, Committed)
	a, oka := firstOf(es, Aborted)
	if !okc || !oka {
		return x, y, false
	}
	if before(a, c) {
		return a, c, true
	}
	return c, a, true
}

// reports is what was told to anyone: the client, a status query, a phase-2 message, the
// coordinator's final view. parts is what participants applied or hold at the end.
func (t *txnFacts) evidence() (reports, parts []evidence) {
	for _, op := range t.ops {
		if op.Outcome.Final() {
			reports = append(reports, evidence{src: srcReturn, who: fmt.Sprintf("client %d", op.Client), outcome: op.Outcome, at: op.Return})
		}
	}
	for _, e := range t.events {
		switch {
		case e.Kind == EventTold && e.Outcome.Final():
			reports = append(reports, evidence{src: srcTold, who: e.Who, outcome: e.Outcome, at: e.At})
		case e.Kind == EventApplied && e.Outcome.Final():
			parts = append(parts, evidence{src: srcApplied, who: e.Who, outcome: e.Outcome, at: e.At})
		}
	}
	for _, f := range t.finalParts {
		if o := Outcome(f.State); o.Final() {
			parts = append(parts, evidence{src: srcFinalPart, who: f.Who, outcome: o})
		}
	}
	if o := Outcome(t.coord); t.hasCoord && o.Final() {
		reports = append(reports, evidence{src: srcFinalCoord, who: "coordinator", outcome: o})
	}
	return reports, parts
}

// participants is the transaction's participant list: what its first client op named,
// or, when no op was recorded, every participant seen voting, applying or holding it.
func (t *txnFacts) participants() (list []string, fromOp bool) {
	if len(t.ops) > 0 {
		return t.ops[0].Participants, true
	}
	seen := map[string]bool{}
	for _, e := range t.events {
		if e.Kind != EventTold && !seen[e.Who] {
			seen[e.Who] = true
			list = append(list, e.Who)
		}
	}
	for _, f := range t.finalParts {
		if !seen[f.Who] {
			seen[f.Who] = true
			list = append(list, f.Who)
		}
	}
	slices.Sort(list)
	return list, false
}

func (t *txnFacts) violation(kind, format string, args ...any) Violation {
	return Violation{Kind: kind, Txn: t.id, Detail: "txn " + t.id + " " + fmt.Sprintf(format, args...)}
}

func (t *txnFacts) check(o Options) []Violation {
	reports, parts := t.evidence()
	var vs []Violation

	// Atomicity: participants never disagree.
	partsSplit := false
	if x, y, ok := split(parts); ok {
		partsSplit = true
		vs = append(vs, t.violation(KindAtomicity, "%s at %s (%s) but %s at %s (%s)", x.outcome, x.who, x.when(), y.outcome, y.who, y.when()))
	}

	// Stability: every report says the same, and says what the participants did.
	if x, y, ok := split(reports); ok {
		vs = append(vs, t.violation(KindStability, "reported both outcomes: %s, but %s", x.clause(), y.clause()))
	} else if len(reports) > 0 && len(parts) > 0 && !partsSplit {
		r, p := reports[0], parts[0]
		for _, e := range reports {
			if before(e, r) {
				r = e
			}
		}
		for _, e := range parts {
			if before(e, p) {
				p = e
			}
		}
		if r.outcome != p.outcome {
			if before(p, r) {
				r, p = p, r
			}
			vs = append(vs, t.violation(KindStability, "was reported one way and done the other: %s, but %s", r.clause(), p.clause()))
		}
	}

	vs = append(vs, t.checkValidity(reports, parts)...)
	if o.CheckLiveness {
		vs = append(vs, t.checkLiveness(reports, parts)...)
	}
	return vs
}

// checkValidity: a commit anywhere needs an ACK from every participant, voted no later
// than the first sign of the commit, and nobody outside the participant list commits.
func (t *txnFacts) checkValidity(reports, parts []evidence) []Violation {
	all := append(slices.Clone(reports), parts...)
	first, committed := firstOf(all, Committed)
	if !committed {
		return nil
	}
	var vs []Violation
	list, fromOp := t.participants()
	for _, p := range list {
		var ack, nack *Event
		for _, e := range t.events {
			if e.Kind != EventVoted || e.Who != p {
				continue
			}
			if e.Vote == VoteACK && ack == nil {
				ack = e
			}
			if e.Vote != VoteACK && nack == nil {
				nack = e
			}
		}
		var why string
		switch {
		case ack != nil && (!first.timed() || ack.At <= first.at):
			continue
		case ack != nil:
			why = fmt.Sprintf("its ACK came later (t=%s)", fmtTime(ack.At))
		case nack != nil:
			why = fmt.Sprintf("it voted %s (t=%s)", nack.Vote, fmtTime(nack.At))
		default:
			why = "no vote from it was recorded"
		}
		vs = append(vs, t.violation(KindValidity, "committed without an ACK from %s: %s; first sign of the commit: %s", p, why, first.clause()))
	}
	if fromOp {
		for _, e := range parts {
			if e.outcome == Committed && !slices.Contains(list, e.who) {
				vs = append(vs, t.violation(KindValidity, "committed at %s, which is not one of its participants %v: %s", e.who, list, e.clause()))
			}
		}
	}
	return vs
}

// checkLiveness: after the heal phase the coordinator has decided (or forgotten) the
// transaction and every participant has resolved it.
func (t *txnFacts) checkLiveness(reports, parts []evidence) []Violation {
	var vs []Violation
	outcome := Outcome(t.coord)
	switch {
	case !t.hasCoord:
		vs = append(vs, t.violation(KindLiveness, "has no final coordinator state recorded"))
	case outcome.Final() || t.coord == StateNotFound:
	default:
		vs = append(vs, t.violation(KindLiveness, "is still %q at the coordinator after the heal phase", t.coord))
	}
	if !outcome.Final() {
		// Not decided at the coordinator (or forgotten): go by what anyone saw, earliest
		// first; with no evidence at all, presumed abort.
		outcome = Aborted
		all := append(slices.Clone(reports), parts...)
		if len(all) > 0 {
			e := all[0]
			for _, x := range all {
				if before(x, e) {
					e = x
				}
			}
			outcome = e.outcome
		}
	}
	final := map[string]string{}
	for _, f := range t.finalParts {
		final[f.Who] = f.State
	}
	list, _ := t.participants()
	for _, f := range t.finalParts {
		if !slices.Contains(list, f.Who) {
			list = append(list, f.Who)
		}
	}
	for _, p := range list {
		state, ok := final[p]
		switch {
		case !ok:
			vs = append(vs, t.violation(KindLiveness, "has no final state recorded for participant %s", p))
		case Outcome(state).Final():
			// Agreement is for atomicity and stability to judge.
		case state == StateUnknown && outcome == Aborted:
			// Never prepared, or aborted and forgotten.
		case state == StateUnknown && t.applied(p, Committed):
			// Committed and forgotten.
		case state == StateUnknown:
			vs = append(vs, t.violation(KindLiveness, "ends unknown at %s, which never applied the outcome %s", p, outcome))
		default:
			vs = append(vs, t.violation(KindLiveness, "is still %q at %s after the heal phase (the outcome is %s)", state, p, outcome))
		}
	}
	return vs
}

func (t *txnFacts) applied(p string, o Outcome) bool {
	for _, e := range t.events {
		if e.Kind == EventApplied && e.Who == p && e.Outcome == o {
			return true
		}
	}
	return false
}
