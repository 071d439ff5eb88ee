package waitfor_test

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dtc-project/dtc/coordinator"
	"github.com/dtc-project/dtc/waitfor"
)

// The two-service deadlock of issue 16, in a deterministic world: the real engine, the
// real detector, lock-holding participants, a network of fixed latency and a log that
// syncs after a fixed delay, all on one virtual clock. Nothing here reads the wall clock,
// so the times it checks are exact virtual times, the same on every run.

const (
	netDelay  = time.Millisecond       // one way, every message
	syncDelay = 500 * time.Microsecond // from a sync request to LogSynced
	deadline  = 2 * time.Second        // the prepare deadline
)

type event struct {
	at  time.Duration
	seq int
	fn  func()
}

type world struct {
	t      *testing.T
	now    time.Duration
	seq    int
	queue  []event
	e      *coordinator.Engine
	g      *waitfor.Graph // nil: detection off
	lsn    uint64
	parts  map[string]*lockPart
	closed time.Duration // when the report that closed a cycle reached the coordinator
	decide map[string]time.Duration
}

var epoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func (w *world) after(d time.Duration, fn func()) {
	w.seq++
	w.queue = append(w.queue, event{at: w.now + d, seq: w.seq, fn: fn})
}

func (w *world) run(until time.Duration) {
	for len(w.queue) > 0 {
		slices.SortFunc(w.queue, func(a, b event) int {
			if a.at != b.at {
				return int(a.at - b.at)
			}
			return a.seq - b.seq
		})
		ev := w.queue[0]
		if ev.at > until {
			return
		}
		w.queue = w.queue[1:]
		w.now = ev.at
		ev.fn()
	}
}

// The engine's environment.
type clock struct{ w *world }

func (c clock) Now() time.Time { return epoch.Add(c.w.now) }
func (c clock) SetTimer(d time.Duration, tm coordinator.Timer) {
	c.w.after(d, func() { c.w.e.Step(coordinator.TimerFired{Timer: tm}) })
}

type logger struct{ w *world }

func (l logger) Append(rec *coordinator.Record, sync bool) error {
	l.w.lsn++
	lsn := l.w.lsn
	l.w.after(syncDelay, func() { l.w.e.Step(coordinator.LogSynced{Through: lsn}) })
	return nil
}

type net struct{ w *world }

func (n net) Send(m coordinator.Message) {
	p := n.w.parts[m.URL]
	d := netDelay
	if m.Kind == coordinator.MsgPrepare && m.Participant == 1 {
		d += secondDelay
	}
	n.w.after(d, func() {
		p.handle(m, func(r coordinator.Reply) {
			r.Txn, r.Participant, r.Seq, r.Kind, r.Asks = m.Txn, m.Participant, m.Seq, m.Kind, true
			n.w.after(netDelay, func() { n.w.e.Step(r) })
		})
	})
}

type seqRand struct{ n uint64 }

func (r *seqRand) Uint64() uint64 { r.n += 0x9e3779b97f4a7c15; return r.n }

type observer struct{ w *world }

func (o observer) Observe(n coordinator.Note) {
	if n.Kind == coordinator.NoteDecided {
		o.w.decide[n.Txn] = o.w.now
		if o.w.g != nil {
			o.w.g.Remove(n.Txn)
		}
	}
}

// lockPart holds the key its payload names from prepare to phase 2; a prepare that
// finds it held waits, and reports the wait to the coordinator (after netDelay).
type lockPart struct {
	w       *world
	name    string
	holder  map[string]string                  // key -> wire txn id
	waiting map[string][]func()                // key -> prepares waiting for it
	aborted map[string]bool                    // wire txn ids rolled back
	answer  map[string]func(coordinator.Reply) // wire txn id -> its waiting prepare's answer
}

func (p *lockPart) handle(m coordinator.Message, reply func(coordinator.Reply)) {
	switch m.Kind {
	case coordinator.MsgPrepare:
		var pay struct{ Key string }
		if err := json.Unmarshal(m.Payload, &pay); err != nil {
			p.w.t.Fatal(err)
		}
		p.prepare(m.Txn, pay.Key, m.Priority, reply)
	case coordinator.MsgCommit, coordinator.MsgRollback:
		st := coordinator.PCommitted
		if m.Kind == coordinator.MsgRollback {
			st = coordinator.PAborted
			p.aborted[m.Txn] = true
			if ans := p.answer[m.Txn]; ans != nil {
				delete(p.answer, m.Txn)
				ans(coordinator.Reply{Vote: coordinator.VoteNACK, Reason: "rolled back while waiting"})
			}
		}
		for k, h := range p.holder {
			if h == m.Txn {
				delete(p.holder, k)
				ws := p.waiting[k]
				delete(p.waiting, k)
				for _, f := range ws {
					f()
				}
			}
		}
		reply(coordinator.Reply{State: st})
	default:
		reply(coordinator.Reply{State: coordinator.PUnknown})
	}
}

func (p *lockPart) prepare(id, key string, prio int64, reply func(coordinator.Reply)) {
	if p.aborted[id] {
		reply(coordinator.Reply{Vote: coordinator.VoteNACK, Reason: "fenced"})
		return
	}
	h := p.holder[key]
	if h == "" || h == id {
		p.holder[key] = id
		delete(p.answer, id)
		reply(coordinator.Reply{Vote: coordinator.VoteACK})
		return
	}
	p.answer[id] = reply
	p.waiting[key] = append(p.waiting[key], func() {
		if p.answer[id] != nil {
			p.prepare(id, key, prio, reply)
		}
	})
	w := p.w
	w.after(netDelay, func() { w.report(id, h) }) // POST /v1/waits
}

// report is the coordinator's side of POST /v1/waits: what httpnet's detector does.
func (w *world) report(waiter, holder string) {
	if w.g == nil {
		return
	}
	live := func(id string) (waitfor.Txn, bool) {
		v, err := w.e.Get(id)
		return waitfor.Txn{ID: v.ID, Priority: v.Priority}, err == nil && v.State == coordinator.StatePreparing
	}
	wt, ok1 := live(waiter)
	ht, ok2 := live(holder)
	if !ok1 || !ok2 {
		return
	}
	cycles, err := w.g.Add(wt, []waitfor.Txn{ht})
	if err != nil {
		w.t.Fatal(err)
	}
	for _, c := range cycles {
		w.closed = w.now
		if _, err := w.e.Abort(c.Victim.ID, coordinator.CauseDeadlock, "cycle "+c.String(), nil); err != nil {
			w.t.Fatal(err)
		}
	}
}

func newWorld(t *testing.T, detect bool) *world {
	w := &world{t: t, parts: map[string]*lockPart{}, decide: map[string]time.Duration{}}
	if detect {
		w.g = waitfor.New(0)
	}
	for _, n := range []string{"a", "b"} {
		w.parts["http://"+n+"/prepare"] = &lockPart{w: w, name: n, holder: map[string]string{},
			waiting: map[string][]func(){}, aborted: map[string]bool{}, answer: map[string]func(coordinator.Reply){}}
	}
	cfg := coordinator.DefaultConfig()
	cfg.PrepareTimeout = deadline
	e, err := coordinator.New(cfg, coordinator.Env{Clock: clock{w}, Transport: net{w}, Log: logger{w}, Rand: &seqRand{}, Observer: observer{w}})
	if err != nil {
		t.Fatal(err)
	}
	e.Start()
	w.e = e
	return w
}

// submitDeadlock begins T1 (x at a, y at b) and, 100µs later, T2 (y at b, x at a). A
// prepare to a transaction's second participant travels secondDelay longer, so both
// first locks are taken before either second prepare arrives: T1 holds x and waits for
// y, T2 holds y and waits for x.
func (w *world) submitDeadlock() {
	spec := func(first, firstKey, second, secondKey string) []coordinator.ParticipantSpec {
		return []coordinator.ParticipantSpec{
			{URL: "http://" + first + "/prepare", Payload: json.RawMessage(fmt.Sprintf(`{"key":%q}`, firstKey))},
			{URL: "http://" + second + "/prepare", Payload: json.RawMessage(fmt.Sprintf(`{"key":%q}`, secondKey))},
		}
	}
	if _, err := w.e.Submit(coordinator.Request{ID: "t1", Participants: spec("a", "x", "b", "y")}, nil); err != nil {
		w.t.Fatal(err)
	}
	w.after(100*time.Microsecond, func() {
		if _, err := w.e.Submit(coordinator.Request{ID: "t2", Participants: spec("b", "y", "a", "x")}, nil); err != nil {
			w.t.Fatal(err)
		}
	})
}

const secondDelay = 10 * time.Millisecond

func view(t *testing.T, w *world, id string) coordinator.View {
	t.Helper()
	v, err := w.e.Get(id)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// With the detector, the younger T2 is aborted the moment the closing report arrives
// (its abort is durable one log sync later), and T1 commits; both are done long before
// the deadline.
func TestDeterministicDeadlockIsBrokenAtOnce(t *testing.T) {
	w := newWorld(t, true)
	w.submitDeadlock()
	w.run(time.Minute)
	v1, v2 := view(t, w, "t1"), view(t, w, "t2")
	if v1.State != coordinator.StateCommitted || v2.State != coordinator.StateAborted || v2.AbortCause != coordinator.CauseDeadlock {
		t.Fatalf("t1 %s, t2 %s (%s): %s", v1.State, v2.State, v2.AbortCause, v2.Reason)
	}
	if !strings.Contains(v2.Reason, "cycle t2 -> t1 -> t2, victim t2 (youngest)") {
		t.Fatalf("reason %q", v2.Reason)
	}
	if w.closed == 0 || w.decide["t2"] != w.closed+syncDelay {
		t.Fatalf("closing report at %v, t2's abort durable at %v: want exactly one sync (%v) later", w.closed, w.decide["t2"], syncDelay)
	}
	if w.decide["t1"] >= deadline/10 {
		t.Fatalf("t1 committed at %v", w.decide["t1"])
	}
	t.Logf("virtual times: closing report %v, victim's abort durable %v, t1 committed %v", w.closed, w.decide["t2"], w.decide["t1"])
	if w.g.Edges() != 0 {
		t.Fatalf("%d edges left", w.g.Edges())
	}
}

// Without it, both wait for each other until the prepare deadline and abort with cause
// timeout.
func TestDeterministicDeadlockWithoutDetectionWaitsForTheDeadline(t *testing.T) {
	w := newWorld(t, false)
	w.submitDeadlock()
	w.run(time.Minute)
	for _, id := range []string{"t1", "t2"} {
		v := view(t, w, id)
		if v.State != coordinator.StateAborted || v.AbortCause != coordinator.CauseTimeout || w.decide[id] < deadline {
			t.Fatalf("%s: %s (%s) at %v", id, v.State, v.AbortCause, w.decide[id])
		}
	}
}
