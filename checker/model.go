package checker

import (
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/anishathalye/porcupine"
)

// opKind is what a model operation stands for.
type opKind uint8

const (
	opSubmit     opKind = iota + 1 // a client's call, from Submit to Return
	opTold                         // an outcome reported to someone (instantaneous)
	opApplied                      // a participant applied an outcome (instantaneous)
	opVoted                        // a participant voted (instantaneous; no effect on the model)
	opFinalPart                    // a participant's final state (at the end of the run)
	opFinalCoord                   // the coordinator's final state (at the end of the run)
)

// modelInput is a model operation's input. Everything the descriptions need is here, so
// that the visualization reads without the lane numbers.
type modelInput struct {
	Kind   opKind
	Txn    string
	Who    string // participant or recipient
	Client int    // opSubmit
	OpID   int    // opSubmit: the op's handle
	GaveUp int64  // opSubmit with an open end: when the client stopped waiting (its call if never)
	Vote   string // opVoted
}

// undecided is the model state before any outcome is linearized.
const undecided Outcome = ""

// Model is porcupine's model of one transaction's outcome, partitioned by transaction
// id. The state is the outcome: undecided, then committed or aborted for good. An
// operation's output is the outcome it observed; Unknown (an open-ended client call, a
// vote) is always allowed and changes nothing; a final output decides an undecided
// transaction and must equal a decided one.
func Model() porcupine.Model {
	return porcupine.Model{
		Partition:      partition,
		PartitionEvent: partitionEvent,
		Init:           func() any { return undecided },
		Step:           step,
		Equal:          func(a, b any) bool { return a.(Outcome) == b.(Outcome) },
		Hash: func(s any) uint64 {
			switch s.(Outcome) {
			case Committed:
				return 1
			case Aborted:
				return 2
			}
			return 0
		},
		DescribeOperation: describeOperation,
		DescribeState:     describeState,
	}
}

func step(state, input, output any) (bool, any) {
	s, out := state.(Outcome), output.(Outcome)
	switch {
	case !out.Final():
		return true, s
	case s == undecided:
		return true, out
	default:
		return s == out, s
	}
}

func describeState(state any) string {
	if s := state.(Outcome); s != undecided {
		return string(s)
	}
	return "undecided"
}

func describeOperation(input, output any) string {
	in, out := input.(modelInput), output.(Outcome)
	switch in.Kind {
	case opSubmit:
		if !out.Final() {
			return fmt.Sprintf("txn %s: client %d submit → %s (open end)", in.Txn, in.Client, Unknown)
		}
		return fmt.Sprintf("txn %s: client %d submit → %s", in.Txn, in.Client, out)
	case opTold:
		return fmt.Sprintf("txn %s: %s told %s", in.Txn, in.Who, out)
	case opApplied:
		return fmt.Sprintf("txn %s: %s applied %s", in.Txn, in.Who, out)
	case opVoted:
		return fmt.Sprintf("txn %s: %s voted %s", in.Txn, in.Who, in.Vote)
	case opFinalPart:
		return fmt.Sprintf("txn %s: %s ends %s", in.Txn, in.Who, out)
	case opFinalCoord:
		return fmt.Sprintf("txn %s: coordinator ends %s", in.Txn, out)
	}
	return fmt.Sprintf("txn %s: %v → %s", in.Txn, in, out)
}

// partition splits a history by transaction id, in id order.
func partition(history []porcupine.Operation) [][]porcupine.Operation {
	byTxn := map[string][]porcupine.Operation{}
	for _, op := range history {
		txn := op.Input.(modelInput).Txn
		byTxn[txn] = append(byTxn[txn], op)
	}
	out := make([][]porcupine.Operation, 0, len(byTxn))
	for _, txn := range sortedKeys(byTxn) {
		out = append(out, byTxn[txn])
	}
	return out
}

// partitionEvent splits an event history by transaction id, in id order. A return
// event belongs with the call event of the same Id.
func partitionEvent(history []porcupine.Event) [][]porcupine.Event {
	txnOf := map[int]string{}
	byTxn := map[string][]porcupine.Event{}
	for _, e := range history {
		if e.Kind == porcupine.CallEvent {
			txnOf[e.Id] = e.Value.(modelInput).Txn
		}
		txn, ok := txnOf[e.Id]
		if !ok {
			panic(fmt.Sprintf("checker: return event %d has no call event before it", e.Id))
		}
		byTxn[txn] = append(byTxn[txn], e)
	}
	out := make([][]porcupine.Event, 0, len(byTxn))
	for _, txn := range sortedKeys(byTxn) {
		out = append(out, byTxn[txn])
	}
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// openEnd is the return time of an operation whose outcome the caller never learned: it
// is concurrent with everything after its call.
const openEnd = math.MaxInt64

// Operations turns a history into porcupine operations for Model. Client calls span
// Submit to Return (to openEnd if the outcome is Unknown or the call never returned);
// told, applied and voted events are instantaneous; final states committed/aborted are
// instantaneous at the end of the run (one past the latest recorded time).
//
// Lanes (porcupine client ids) are dense: the clients in id order, then one lane per
// participant or recipient in name order, then one for the coordinator.
func Operations(h History) []porcupine.Operation {
	end := endTime(h)
	clients := map[int]int{}
	for _, op := range h.Ops {
		clients[op.Client] = 0
	}
	ids := make([]int, 0, len(clients))
	for c := range clients {
		ids = append(ids, c)
	}
	slices.Sort(ids)
	for i, c := range ids {
		clients[c] = i
	}
	names := map[string]int{}
	for _, e := range h.Events {
		names[e.Who] = 0
	}
	for _, f := range h.FinalParticipants {
		names[f.Who] = 0
	}
	for i, n := range sortedKeys(names) {
		names[n] = len(ids) + i
	}
	coordLane := len(ids) + len(names)

	ops := make([]porcupine.Operation, 0, len(h.Ops)+len(h.Events)+len(h.FinalParticipants)+len(h.FinalCoordinator))
	for _, op := range h.Ops {
		ret, out := int64(openEnd), Unknown
		in := modelInput{Kind: opSubmit, Txn: op.Txn, Client: op.Client, OpID: op.ID, GaveUp: op.Call}
		if op.Outcome != "" {
			in.GaveUp = max(op.Return, op.Call)
		}
		if !op.open() {
			ret, out = max(op.Return, op.Call), op.Outcome
		}
		ops = append(ops, porcupine.Operation{
			ClientId: clients[op.Client],
			Input:    in,
			Call:     op.Call,
			Output:   out,
			Return:   ret,
			Metadata: fmt.Sprintf("op %d: client %d, participants %s", op.ID, op.Client, strings.Join(op.Participants, " ")),
		})
	}
	for _, e := range h.Events {
		in := modelInput{Txn: e.Txn, Who: e.Who}
		out := e.Outcome
		switch e.Kind {
		case EventTold:
			in.Kind = opTold
		case EventApplied:
			in.Kind = opApplied
		case EventVoted:
			in.Kind, in.Vote, out = opVoted, e.Vote, Unknown
		default:
			continue
		}
		if !out.Final() {
			out = Unknown
		}
		ops = append(ops, porcupine.Operation{ClientId: names[e.Who], Input: in, Call: e.At, Output: out, Return: e.At})
	}
	for _, f := range h.FinalParticipants {
		if o := Outcome(f.State); o.Final() {
			in := modelInput{Kind: opFinalPart, Txn: f.Txn, Who: f.Who}
			ops = append(ops, porcupine.Operation{ClientId: names[f.Who], Input: in, Call: end, Output: o, Return: end})
		}
	}
	for _, f := range h.FinalCoordinator {
		if o := Outcome(f.State); o.Final() {
			in := modelInput{Kind: opFinalCoord, Txn: f.Txn, Who: "coordinator"}
			ops = append(ops, porcupine.Operation{ClientId: coordLane, Input: in, Call: end, Output: o, Return: end})
		}
	}
	return ops
}

// checkedOperations is Operations(h) as Check and WriteHTML give it to porcupine. In a
// transaction whose final outputs conflict, porcupine must search exhaustively, and k
// open-ended operations, each placeable anywhere after its call, make that search 2^k
// (18 open ops: seconds; 20: past the timeout). There the open ends are closed at the
// time the client gave up (its call, if it never returned). An operation whose output is
// Unknown changes nothing and is allowed in every state, so it fits anywhere in any
// interval: the verdict is the same, only the picture of those calls is shorter.
func checkedOperations(h History) []porcupine.Operation {
	ops := Operations(h)
	seen := map[string]Outcome{}
	conflict := map[string]bool{}
	for _, op := range ops {
		out, txn := op.Output.(Outcome), op.Input.(modelInput).Txn
		if !out.Final() {
			continue
		}
		if prev, ok := seen[txn]; ok && prev != out {
			conflict[txn] = true
		}
		seen[txn] = out
	}
	if len(conflict) == 0 {
		return ops
	}
	for i, op := range ops {
		if in := op.Input.(modelInput); op.Return == openEnd && conflict[in.Txn] {
			ops[i].Return = in.GaveUp
		}
	}
	return ops
}

// endTime is one past the latest time recorded in h: when final states are observed.
func endTime(h History) int64 {
	var end int64
	for _, op := range h.Ops {
		end = max(end, op.Call)
		if op.Outcome != "" {
			end = max(end, op.Return)
		}
	}
	for _, e := range h.Events {
		end = max(end, e.At)
	}
	for _, n := range h.Notes {
		end = max(end, n.At)
	}
	if end == openEnd {
		return end
	}
	return end + 1
}

// illegalPartitions names each transaction whose operations porcupine could not
// linearize, with the longest legal prefix it found and an operation that cannot follow.
func illegalPartitions(ops []porcupine.Operation, info porcupine.LinearizationInfo) []Violation {
	parts := partition(ops)
	partials := info.PartialLinearizations()
	var vs []Violation
	for i, part := range parts {
		if i >= len(partials) {
			break
		}
		// The longest partial linearization; ties broken by ids so the message is stable.
		var best []int
		for _, p := range partials[i] {
			if len(p) > len(best) || (len(p) == len(best) && slices.Compare(p, best) < 0) {
				best = p
			}
		}
		if len(best) == len(part) {
			continue
		}
		state := any(undecided)
		placed := make([]bool, len(part))
		for _, id := range best {
			_, state = step(state, part[id].Input, part[id].Output)
			placed[id] = true
		}
		// The earliest unplaced operation that contradicts the state, or else the earliest.
		contradicts := func(id int) bool { ok, _ := step(state, part[id].Input, part[id].Output); return !ok }
		culprit := -1
		for id := range part {
			switch {
			case placed[id]:
			case culprit < 0, contradicts(id) && !contradicts(culprit):
				culprit = id
			case contradicts(id) == contradicts(culprit) && part[id].Call < part[culprit].Call:
				culprit = id
			}
		}
		op := part[culprit]
		in := op.Input.(modelInput)
		when := "t=" + fmtTime(op.Call)
		if in.Kind == opFinalPart || in.Kind == opFinalCoord {
			when = "final state"
		}
		vs = append(vs, Violation{
			Kind: KindLinearizability,
			Txn:  in.Txn,
			Detail: fmt.Sprintf("txn %s has no linearization of its %d operations in the outcome model: after %d of them the outcome is %s, and %q (%s) cannot follow",
				in.Txn, len(part), len(best), describeState(state), describeOperation(op.Input, op.Output), when),
		})
	}
	return vs
}
