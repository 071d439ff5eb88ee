package faults

import (
	"fmt"
	"strings"
	"time"
)

// Schedule is the explicit faults of a scenario. Each Fault fires at most once.
type Schedule []Fault

// Fault is one thing to break, and when. It fires at virtual time At (since the start of
// the run) or, if On is set, the On.Nth time its point is reached at or after At. If
// Until is positive (set with For), the fault is undone that long after it fired (the
// node restarts, the partition heals, the disk has room again); otherwise it lasts until
// the heal phase undoes every fault (a crashed node restarts after Knobs.RestartMin).
//
// Build one as a sentence:
//
//	faults.At(2*time.Second).Crash("coord").For(time.Second)
//	faults.When("coord", faults.SendCommit).Crash("coord")
//	faults.When("p2", faults.Ack).Txn("t1").Crash("p2")
//	faults.At(0).Partition("p2", "coord").For(3*time.Second)
//	faults.At(0).FailSyncs("coord", 1)
type Fault struct {
	At    time.Duration
	On    *Point
	Do    Action
	Until time.Duration // how long the fault lasts; 0: until the heal phase
}

// Point is a moment of the protocol, as seen by one node.
type Point struct {
	Node  string
	Event Event
	Txn   string // only this transaction; "" for any
	To    string // send points: only messages to this node; "" for any
	Nth   int    // the Nth time (from 1); 0 means the first
}

// Event names a point of the protocol.
type Event string

// The points simnet reports. "coord" points are the engine's actions as its adapters see
// them; participant points are the participant's answers as they leave.
const (
	// The coordinator appends a record (before it is durable).
	AppendBegin    Event = "append begin"
	AppendDecision Event = "append decision"
	AppendEnd      Event = "append end"
	// The coordinator's decision is durable and about to be told (phase 2 starts).
	Decided Event = "decided"
	// The coordinator sends a request to a participant. The fault fires before the
	// message leaves: a crash here means the message is never sent.
	SendPrepare  Event = "send prepare"
	SendCommit   Event = "send commit"
	SendRollback Event = "send rollback"
	SendStatus   Event = "send status"
	// The coordinator restarts and has replayed its log.
	Recovered Event = "recovered"
	// The coordinator answers a participant's query about a transaction in doubt; the
	// point belongs to the participant that asked. Drop and Delay act on the answer.
	QueryAnswered Event = "query answered"
	// A participant receives a request (before handling it).
	RecvPrepare  Event = "recv prepare"
	RecvCommit   Event = "recv commit"
	RecvRollback Event = "recv rollback"
	// A participant's answer leaves it: a vote, or the durable result of phase 2. A
	// crash here happens after the state is durable and before the answer is sent.
	Ack        Event = "ack"
	Nack       Event = "nack"
	Committed  Event = "committed"
	RolledBack Event = "rolled back"
	// A participant appends its prepare record (before it is durable).
	AppendPrepare Event = "append prepare"
	// A client submits a transaction.
	Submit Event = "submit"
)

// ActionKind says what a Fault does.
type ActionKind uint8

// The actions.
const (
	ActCrash       ActionKind = iota + 1 // crash Node (For: restart after; default RestartMin)
	ActPartition                         // cut Node from Peer ("" = everyone), both ways unless OneWay
	ActFailSync                          // the next Count fsyncs of Node fail
	ActDiskFull                          // Node's disk refuses writes
	ActFlipBit                           // flip a bit in the last durable record of Node's log (Anywhere: any synced record)
	ActDrop                              // drop the message at the point (a send point or QueryAnswered)
	ActDelay                             // delay the message at the point by Until
	ActCutShort                          // cut Node's newest segment holding records at its last record (Anywhere: among the zeros after them)
	ActLoseRenames                       // undo the renames of Node's newest segments, from the last holding records on
)

// Action is what a Fault does to whom.
type Action struct {
	Kind   ActionKind
	Node   string
	Peer   string // ActPartition: the other side; "" for everyone
	OneWay bool   // ActPartition: only Node → Peer is cut
	Torn   bool   // ActCrash: keep a torn prefix of the unsynced log tail
	Count  int    // ActFailSync: how many fsyncs fail (at least 1)
	// ActFlipBit: the record is drawn among every synced record of the log, not the
	// last durable one. ActCutShort: the cut falls among the zeros after the records,
	// losing nothing, not at the start of the last one.
	Anywhere bool
}

// At starts a fault that fires at virtual time d.
func At(d time.Duration) Fault { return Fault{At: d} }

// When starts a fault that fires when node reaches event.
func When(node string, event Event) Fault {
	return Fault{On: &Point{Node: node, Event: event}}
}

// Txn narrows a When fault to one transaction.
func (f Fault) Txn(id string) Fault {
	f.mustPoint("Txn")
	p := *f.On
	p.Txn = id
	f.On = &p
	return f
}

// To narrows a When fault at a send point to the messages sent to node.
func (f Fault) To(node string) Fault {
	f.mustPoint("To")
	p := *f.On
	p.To = node
	f.On = &p
	return f
}

// Nth makes a When fault fire the nth time its point is reached.
func (f Fault) Nth(n int) Fault {
	f.mustPoint("Nth")
	p := *f.On
	p.Nth = n
	f.On = &p
	return f
}

// After makes a When fault wait until virtual time d before it counts its point.
func (f Fault) After(d time.Duration) Fault { f.At = d; return f }

func (f Fault) mustPoint(what string) {
	if f.On == nil {
		panic("faults: " + what + " needs a fault built with When")
	}
}

// Crash crashes node: whatever it had not synced is lost.
func (f Fault) Crash(node string) Fault { f.Do = Action{Kind: ActCrash, Node: node}; return f }

// CrashTorn crashes node, keeping a torn prefix of its unsynced log tail.
func (f Fault) CrashTorn(node string) Fault {
	f.Do = Action{Kind: ActCrash, Node: node, Torn: true}
	return f
}

// Partition cuts a and b apart, both ways.
func (f Fault) Partition(a, b string) Fault {
	f.Do = Action{Kind: ActPartition, Node: a, Peer: b}
	return f
}

// Cut cuts the messages from one node to another, not the other way.
func (f Fault) Cut(from, to string) Fault {
	f.Do = Action{Kind: ActPartition, Node: from, Peer: to, OneWay: true}
	return f
}

// Isolate cuts node from everyone, both ways.
func (f Fault) Isolate(node string) Fault {
	f.Do = Action{Kind: ActPartition, Node: node}
	return f
}

// FailSyncs makes node's next n fsyncs fail.
func (f Fault) FailSyncs(node string, n int) Fault {
	f.Do = Action{Kind: ActFailSync, Node: node, Count: max(n, 1)}
	return f
}

// FillDisk makes node's disk refuse every write.
func (f Fault) FillDisk(node string) Fault { f.Do = Action{Kind: ActDiskFull, Node: node}; return f }

// FlipBit flips a bit in the payload of the last durable record of node's log (a
// decision already told, a prepare already ACKed): rot, which must stop the node from
// starting next time, with an error naming the segment and offset. Nothing may be
// truncated away as if it were a torn tail.
func (f Fault) FlipBit(node string) Fault { f.Do = Action{Kind: ActFlipBit, Node: node}; return f }

// FlipBitAnywhere is FlipBit in a synced record drawn among all of node's log.
func (f Fault) FlipBitAnywhere(node string) Fault {
	f.Do = Action{Kind: ActFlipBit, Node: node, Anywhere: true}
	return f
}

// CutShort cuts the newest segment file of node's log that holds records at the start
// of its last record, durably: the disk lost the end of a file it had reported synced,
// and with it a record reported durable. The cut falls on a frame boundary, so what is
// left reads as a clean log; the log must see from the segment's recorded size that it
// is short and refuse to start, rather than start without the record.
func (f Fault) CutShort(node string) Fault { f.Do = Action{Kind: ActCutShort, Node: node}; return f }

// CutShortAfterRecords cuts that segment halfway through the zeros after its records'
// end marker: only zeros are lost, and the log must start with every record.
func (f Fault) CutShortAfterRecords(node string) Fault {
	f.Do = Action{Kind: ActCutShort, Node: node, Anywhere: true}
	return f
}

// LoseRenames undoes, durably, the renames of node's newest segment files from the
// last one holding records on: a directory fsync that reported them durable and lost
// them. The log must finish the renames and start with every synced record.
func (f Fault) LoseRenames(node string) Fault {
	f.Do = Action{Kind: ActLoseRenames, Node: node}
	return f
}

// Drop loses the message being sent at the fault's point.
func (f Fault) Drop() Fault {
	f.mustPoint("Drop")
	f.Do = Action{Kind: ActDrop, Node: f.On.Node}
	return f
}

// Delay holds the message being sent at the fault's point for d more than its latency.
func (f Fault) Delay(d time.Duration) Fault {
	f.mustPoint("Delay")
	f.Do = Action{Kind: ActDelay, Node: f.On.Node}
	f.Until = d
	return f
}

// For undoes the fault after d.
func (f Fault) For(d time.Duration) Fault { f.Until = d; return f }

// Validate reports a fault that cannot be carried out.
func (f Fault) Validate() error {
	switch f.Do.Kind {
	case ActCrash, ActPartition, ActFailSync, ActDiskFull, ActFlipBit, ActCutShort, ActLoseRenames:
	case ActDrop, ActDelay:
		if f.On == nil || !(strings.HasPrefix(string(f.On.Event), "send ") || f.On.Event == QueryAnswered) {
			return fmt.Errorf("faults: %v: Drop and Delay need a When at a send point or QueryAnswered", f)
		}
		if f.Do.Kind == ActDelay && f.Until <= 0 {
			return fmt.Errorf("faults: %v: Delay needs a positive duration", f)
		}
	default:
		return fmt.Errorf("faults: %v: no action", f)
	}
	if f.Do.Node == "" {
		return fmt.Errorf("faults: %v: no node", f)
	}
	if f.At < 0 || f.Until < 0 {
		return fmt.Errorf("faults: %v: negative time", f)
	}
	return nil
}

// String says the fault as a sentence.
func (f Fault) String() string {
	var b strings.Builder
	if f.On != nil {
		fmt.Fprintf(&b, "when %s reaches %q", f.On.Node, f.On.Event)
		if f.On.Txn != "" {
			fmt.Fprintf(&b, " for %s", f.On.Txn)
		}
		if f.On.To != "" {
			fmt.Fprintf(&b, " to %s", f.On.To)
		}
		if f.On.Nth > 1 {
			fmt.Fprintf(&b, " (time %d)", f.On.Nth)
		}
		if f.At > 0 {
			fmt.Fprintf(&b, " after %v", f.At)
		}
	} else {
		fmt.Fprintf(&b, "at %v", f.At)
	}
	b.WriteString(", ")
	a := f.Do
	switch a.Kind {
	case ActCrash:
		if a.Torn {
			fmt.Fprintf(&b, "crash %s tearing its log tail", a.Node)
		} else {
			fmt.Fprintf(&b, "crash %s", a.Node)
		}
	case ActPartition:
		switch {
		case a.Peer == "":
			fmt.Fprintf(&b, "isolate %s", a.Node)
		case a.OneWay:
			fmt.Fprintf(&b, "cut %s → %s", a.Node, a.Peer)
		default:
			fmt.Fprintf(&b, "partition %s from %s", a.Node, a.Peer)
		}
	case ActFailSync:
		fmt.Fprintf(&b, "fail the next %d fsync(s) of %s", a.Count, a.Node)
	case ActDiskFull:
		fmt.Fprintf(&b, "fill the disk of %s", a.Node)
	case ActFlipBit:
		if a.Anywhere {
			fmt.Fprintf(&b, "flip a bit in a synced record of the log of %s", a.Node)
		} else {
			fmt.Fprintf(&b, "flip a bit in the last durable record of the log of %s", a.Node)
		}
	case ActCutShort:
		if a.Anywhere {
			fmt.Fprintf(&b, "cut the newest segment of %s short after its records", a.Node)
		} else {
			fmt.Fprintf(&b, "cut the newest segment of %s short at its last record", a.Node)
		}
	case ActLoseRenames:
		fmt.Fprintf(&b, "lose the renames of the newest segments of %s", a.Node)
	case ActDrop:
		b.WriteString("drop the message")
	case ActDelay:
		fmt.Fprintf(&b, "delay the message by %v", f.Until)
		return b.String()
	default:
		b.WriteString("do nothing")
	}
	if f.Until > 0 {
		fmt.Fprintf(&b, " for %v", f.Until)
	}
	return b.String()
}

// Validate reports the first fault of s that cannot be carried out.
func (s Schedule) Validate() error {
	for i, f := range s {
		if err := f.Validate(); err != nil {
			return fmt.Errorf("faults: schedule[%d]: %w", i, err)
		}
	}
	return nil
}

// End is the latest virtual time at which a time-triggered fault of s fires or is
// undone: the fault phase lasts at least that long.
func (s Schedule) End() time.Duration {
	var end time.Duration
	for _, f := range s {
		if f.On == nil && f.Do.Kind != ActDelay {
			end = max(end, f.At+f.Until)
		}
	}
	return end
}
