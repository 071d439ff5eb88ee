package coordinator

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sort"
	"testing"
	"time"
)

// world is a tiny deterministic universe for the engine: a virtual clock, an in-memory
// log that knows which records are durable, a network that holds messages until the test
// delivers them, and model participants that follow the protocol. Tests drive it step by
// step, so every interleaving they exercise is written down in the test.
type world struct {
	t   testing.TB
	cfg Config
	now time.Time
	rnd *rand.Rand

	e      *Engine
	log    memLog
	base   int       // records in the log before the current engine started
	net    []Message // sent, not yet delivered
	timers []timerAt
	parts  map[string]*modelPart
	notes  []Note

	// told is every outcome reported to anyone (a client callback, a phase-2 message),
	// by the id participants see: outcomes must never change once told.
	told map[string]string
	// wires maps a client's id to the id participants saw for it (its latest incarnation).
	wires map[string]string
	// clientViews is the last view each client callback got, by transaction.
	clientViews map[string]View
}

type timerAt struct {
	at time.Time
	tm Timer
}

// memLog keeps every accepted record; the first durable of them survive a crash.
type memLog struct {
	recs    []*Record
	durable int
	refuse  error // if set, Append fails with it
	syncs   int
}

func (l *memLog) Append(rec *Record, sync bool) error {
	if l.refuse != nil {
		return l.refuse
	}
	cp := *rec
	l.recs = append(l.recs, &cp)
	return nil
}

func testConfig() Config {
	c := DefaultConfig()
	c.PrepareTimeout = time.Second
	c.RecoveryTimeout = 2 * time.Second
	c.RetryBackoffMin = 100 * time.Millisecond
	c.RetryBackoffMax = time.Second
	c.DoneRetention = time.Minute
	return c
}

func newWorld(t testing.TB, seed uint64) *world {
	w := &world{
		t:           t,
		cfg:         testConfig(),
		now:         time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC),
		rnd:         rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
		parts:       map[string]*modelPart{},
		told:        map[string]string{},
		wires:       map[string]string{},
		clientViews: map[string]View{},
	}
	w.start()
	return w
}

// start builds an engine from the durable part of the log, as a restart would.
func (w *world) start() {
	w.t.Helper()
	w.log.recs = w.log.recs[:w.log.durable]
	e, err := New(w.cfg, Env{Clock: (*worldClock)(w), Transport: (*worldNet)(w), Log: &w.log, Rand: w.rnd, Observer: (*worldObs)(w)})
	if err != nil {
		w.t.Fatal(err)
	}
	for _, rec := range w.log.recs {
		if err := e.Replay(rec); err != nil {
			w.t.Fatalf("replay: %v", err)
		}
	}
	// The model participants of the usual URLs ask about transactions in doubt, and a
	// long-running engine would have learnt so from their answers long ago: teach it,
	// so that tests of them see lazy begins as in production. Passive participants
	// (other URLs) start unknown, as any participant does.
	for _, u := range []string{pA, pB, pC} {
		e.askers.learn(u, true)
	}
	w.e = e
	// Appends by the new engine continue the same log; LSNs restart at 1 for the new
	// engine, so remember where its records begin.
	w.log.durable = len(w.log.recs)
	w.base = len(w.log.recs)
	e.Start()
}

// crash loses everything the engine held in memory, every message in flight (or, if
// deliverLate, hands them to their participants with nobody to hear the answer), every
// timer, and every record that was not yet durable; then restarts.
func (w *world) crash(deliverLate bool) {
	if deliverLate {
		for _, m := range w.net {
			w.part(m.URL).handle(m)
		}
	}
	w.net, w.timers = nil, nil
	w.start()
}

type worldClock world

func (c *worldClock) Now() time.Time { return c.now }
func (c *worldClock) SetTimer(d time.Duration, tm Timer) {
	c.timers = append(c.timers, timerAt{at: c.now.Add(d), tm: tm})
}

type worldNet world

func (n *worldNet) Send(m Message) {
	w := (*world)(n)
	if m.Kind == MsgCommit || m.Kind == MsgRollback {
		w.tell(m.Txn, map[MsgKind]string{MsgCommit: StateCommitted, MsgRollback: StateAborted}[m.Kind])
	}
	n.net = append(n.net, m)
}

type worldObs world

func (o *worldObs) Observe(n Note) { o.notes = append(o.notes, n) }

func (w *world) tell(id, outcome string) {
	if prev, ok := w.told[id]; ok && prev != outcome {
		w.t.Fatalf("txn %s: outcome %s told, then %s", id, prev, outcome)
	}
	w.told[id] = outcome
}

func (w *world) part(url string) *modelPart {
	p := w.parts[url]
	if p == nil {
		p = &modelPart{url: url, state: map[string]PState{}, acked: map[string]bool{}}
		w.parts[url] = p
	}
	return p
}

// submit begins a transaction over the given participant URLs.
func (w *world) submit(id string, urls ...string) (View, error) {
	req := Request{ID: id}
	for _, u := range urls {
		req.Participants = append(req.Participants, ParticipantSpec{URL: u, Payload: []byte(`{"x":1}`)})
	}
	return w.e.Submit(req, func(v View) {
		if !v.Final() {
			w.t.Fatalf("client told non-final state %s for %s", v.State, v.ID)
		}
		w.tell(v.TxnID, v.State)
		w.clientViews[v.ID] = v
	})
}

// wire returns the id the participants know client id id by.
func (w *world) wire(id string) string {
	if x, ok := w.wires[id]; ok {
		return x
	}
	return id
}

func (w *world) mustSubmit(id string, urls ...string) string {
	w.t.Helper()
	v, err := w.submit(id, urls...)
	if err != nil {
		w.t.Fatalf("submit %s: %v", id, err)
	}
	w.wires[v.ID] = v.TxnID
	return v.ID
}

// deliver hands the i-th message in flight to its participant and the answer back to
// the engine.
func (w *world) deliver(i int) {
	m := w.net[i]
	w.net = slices.Delete(w.net, i, i+1)
	w.e.Step(w.part(m.URL).handle(m))
}

// deliverAll delivers messages until none are in flight.
func (w *world) deliverAll() {
	for len(w.net) > 0 {
		w.deliver(0)
	}
}

// fail answers the i-th message with a transport error instead of delivering it.
func (w *world) fail(i int) {
	m := w.net[i]
	w.net = slices.Delete(w.net, i, i+1)
	w.e.Step(Reply{Txn: m.Txn, Participant: m.Participant, Seq: m.Seq, Kind: m.Kind, Err: errors.New("connection refused")})
}

// sync makes every accepted record durable and tells the engine.
func (w *world) sync() {
	if w.log.durable == len(w.log.recs) {
		return
	}
	w.log.durable = len(w.log.recs)
	w.log.syncs++
	w.e.Step(LogSynced{Through: uint64(w.log.durable - w.base)})
}

// advance moves the clock forward by d, firing every timer that comes due, in order.
func (w *world) advance(d time.Duration) {
	end := w.now.Add(d)
	for {
		sort.SliceStable(w.timers, func(i, j int) bool { return w.timers[i].at.Before(w.timers[j].at) })
		if len(w.timers) == 0 || w.timers[0].at.After(end) {
			break
		}
		ta := w.timers[0]
		w.timers = w.timers[1:]
		w.now = ta.at
		w.e.Step(TimerFired{Timer: ta.tm})
	}
	w.now = end
}

// settle runs the world until nothing is left to do: it syncs, delivers and advances
// time until every transaction is done. Participants in doubt about a transaction the
// engine no longer knows ask it, as the participant library does.
func (w *world) settle() {
	w.t.Helper()
	for i := 0; i < 10_000; i++ {
		w.sync()
		w.deliverAll()
		w.sync()
		if len(w.net) == 0 && w.e.Stats().Inflight == 0 {
			w.resolveInDoubt()
			return
		}
		w.advance(w.cfg.RetryBackoffMax)
	}
	w.t.Fatalf("world did not settle: %+v", w.e.Stats())
}

// resolveInDoubt lets every participant still prepared ask the coordinator.
func (w *world) resolveInDoubt() {
	w.t.Helper()
	for _, url := range w.partURLs() {
		p := w.parts[url]
		if p.passive {
			continue // it never asks: only the coordinator can resolve what it holds
		}
		for _, id := range p.preparedIDs() {
			v, err := w.e.Get(id)
			switch {
			case errors.Is(err, ErrNotFound):
				p.state[id] = PAborted
			case err != nil:
				w.t.Fatalf("in-doubt query for %s: %v", id, err)
			case v.State == StateCommitted:
				p.state[id] = PCommitted
			case v.State == StateAborted:
				p.state[id] = PAborted
			}
		}
	}
}

func (w *world) partURLs() []string {
	urls := make([]string, 0, len(w.parts))
	for u := range w.parts {
		urls = append(urls, u)
	}
	slices.Sort(urls)
	return urls
}

// checkAtomic asserts that every transaction is committed at all of its participants or
// at none, that a commit had every participant's ACK, and that it matches what was told:
// for the given client ids, and for every transaction id any participant has seen.
func (w *world) checkAtomic(ids ...string) {
	w.t.Helper()
	all := map[string]bool{}
	for _, id := range ids {
		all[w.wire(id)] = true
	}
	for _, p := range w.parts {
		for id := range p.state {
			all[id] = true
		}
	}
	wires := make([]string, 0, len(all))
	for id := range all {
		wires = append(wires, id)
	}
	slices.Sort(wires)
	for _, id := range wires {
		var committed, other []string
		for _, url := range w.partURLs() {
			p := w.parts[url]
			st, ok := p.state[id]
			if !ok {
				continue
			}
			if st == PCommitted {
				committed = append(committed, url)
				if !p.acked[id] {
					w.t.Fatalf("txn %s committed at %s, which never voted ACK", id, url)
				}
			} else {
				if st == PPrepared {
					w.t.Fatalf("txn %s still prepared at %s after settling", id, url)
				}
				other = append(other, url)
			}
		}
		if len(committed) > 0 && len(other) > 0 {
			w.t.Fatalf("txn %s not atomic: committed at %v, not at %v", id, committed, other)
		}
		if told, ok := w.told[id]; ok {
			if (told == StateCommitted) != (len(committed) > 0) {
				w.t.Fatalf("txn %s told %s, but committed at %v", id, told, committed)
			}
		}
	}
}

// modelPart is a participant that follows the protocol of DESIGN §3 with perfectly
// durable state: it is what the engine is tested against, not the participant package.
type modelPart struct {
	url   string
	state map[string]PState
	acked map[string]bool // voted ACK
	nack  bool            // vote NACK on every prepare
	// passive: it never asks the coordinator about transactions in doubt, and says so
	// (no Reply.Asks); noStatus: it has no status endpoint either (answers "cannot tell").
	passive, noStatus bool
}

func (p *modelPart) handle(m Message) Reply {
	r := Reply{Txn: m.Txn, Participant: m.Participant, Seq: m.Seq, Kind: m.Kind, Asks: !p.passive}
	st, known := p.state[m.Txn]
	switch m.Kind {
	case MsgPrepare:
		switch {
		case known && st == PAborted:
			r.Vote, r.Reason = VoteNACK, "fenced"
		case known:
			r.Vote = VoteACK // a duplicate prepare
		case p.nack:
			r.Vote, r.Reason = VoteNACK, "insufficient funds"
		default:
			p.state[m.Txn] = PPrepared
			p.acked[m.Txn] = true
			r.Vote = VoteACK
		}
	case MsgCommit:
		if st == PPrepared || st == PCommitted {
			p.state[m.Txn] = PCommitted
			r.State = PCommitted
		} else {
			r.State, r.Conflict = orUnknown(st, known), true
		}
	case MsgRollback:
		if st == PCommitted {
			r.State, r.Conflict = PCommitted, true
		} else {
			p.state[m.Txn] = PAborted
			r.State = PAborted
		}
	case MsgStatus:
		r.State = orUnknown(st, known)
		if p.noStatus {
			r.State, r.Reason = PUnknown, "cannot tell: HTTP 404"
		}
	}
	return r
}

func orUnknown(st PState, known bool) PState {
	if !known {
		return PUnknown
	}
	return st
}

func (p *modelPart) preparedIDs() []string {
	var ids []string
	for id, st := range p.state {
		if st == PPrepared {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	return ids
}

// recordTypes lists the types of the records the log holds, for assertions.
func (w *world) recordTypes() []string {
	var out []string
	for _, r := range w.log.recs {
		s := string(r.Type)
		if r.Type == RecDecision {
			s += ":" + string(r.Decision)
		}
		out = append(out, s)
	}
	return out
}

func (w *world) String() string {
	return fmt.Sprintf("now=%s log=%d/%d net=%d timers=%d", w.now.Format(time.TimeOnly), w.log.durable, len(w.log.recs), len(w.net), len(w.timers))
}
