package simnet

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/dtc-project/dtc/checker"
	"github.com/dtc-project/dtc/coordinator"
	"github.com/dtc-project/dtc/coordlog"
	"github.com/dtc-project/dtc/faults"
	"github.com/dtc-project/dtc/protocol"
	"github.com/dtc-project/dtc/waitfor"
	"github.com/dtc-project/dtc/wal"
)

// coordURL is the coordinator's base URL as participants are told it.
const coordURL = "http://coord.sim"

// coordNode is the coordinator process: the real engine over the real coordlog over the
// real wal over a simulated disk. Everything of one incarnation dies with a crash; the
// disk stays.
type coordNode struct {
	s    *sim
	disk *disk

	// One incarnation:
	inc  int
	wlog *wal.Log
	sink *coordlog.SyncSink
	slog *coordlog.ShardLog
	eng  *coordinator.Engine

	syncAt   int64 // when the next scheduled sync runs; maxTime if none
	lsn      uint64
	decision []lsnTxn         // decision records not yet durable, in LSN order
	requests []*clientRequest // client calls waiting for a decision
	// incarnation: the participants' id of each begun transaction, by client id; kept
	// only under BreakClientToldBeforeLog, whose early answer must name it.
	incarnation map[string]string
	walDied     error // the wal failed: the process must crash
	restarts    int
	attempts    map[string]int // BreakPhase2GivesUp: phase-2 sends per "txn participant"
	// batchPeers: the participants that offer phase-2 batching, by prepare URL (batch.go).
	batchPeers map[string]*batchPeer
	// cs: in cluster mode, the shard as this incarnation owns it (cluster.go).
	cs *clusterShard
	// graph is the wait-for graph (waits.go); nil when Options.DeadlockDetection is off.
	graph *waitfor.Graph
}

type lsnTxn struct {
	lsn uint64
	txn string
}

type clientRequest struct {
	txn      string
	answered bool
	reply    func(resp any, err error)
}

func newCoordNode(s *sim) *coordNode {
	return &coordNode{s: s, disk: newDisk(s, coordID, "/coord"), syncAt: maxTime, incarnation: map[string]string{}}
}

func (c *coordNode) walOptions() wal.Options {
	return wal.Options{FS: c.disk.fs, Dir: c.disk.dir, SegmentSizeBytes: c.s.o.SegmentSizeBytes}
}

// start opens the log, replays it into a new engine and starts it.
func (c *coordNode) start() error {
	s := c.s
	c.inc = s.inc[coordID]
	c.lsn, c.decision, c.requests, c.walDied, c.syncAt = 0, nil, nil, nil, maxTime
	c.batchPeers = map[string]*batchPeer{}
	c.graph = nil
	if s.o.DeadlockDetection {
		c.graph = waitfor.New(waitfor.DefaultEdgesMax)
	}
	s.resetWaits()
	if c.s.cl != nil {
		return c.startCluster()
	}
	env := coordinator.Env{
		Clock:     coordClock{c, c.inc},
		Transport: coordTransport{c, c.inc},
		Rand:      s.engineRng,
		Observer:  coordObserver{c, c.inc},
	}
	var replayed int
	var eng *coordinator.Engine
	var err error
	eng, err = coordinator.New(s.coordCfg, coordinator.Env{Clock: env.Clock, Transport: env.Transport, Rand: env.Rand, Observer: env.Observer, Log: (*coordLog)(c)})
	if err != nil {
		return err
	}
	wlog, err := coordlog.Replay(c.walOptions(), func(_ wal.Pos, rec *coordinator.Record) error {
		replayed++
		return eng.Replay(rec)
	})
	if err != nil {
		return err
	}
	c.wlog = wlog
	c.sink = coordlog.NewSyncSink(wlog)
	c.slog = coordlog.NewShardLog((*coordSink)(c), nil)
	c.eng = eng
	s.up[coordID] = true
	if at, reason, torn := wlog.TornTail(); torn {
		s.stats.TornRepaired++
		s.tracef(coordID, "log: torn tail at segment %d offset %d repaired (%s)", at.Segment, at.Offset, reason)
	}
	s.tracef(coordID, "starts: %d records replayed", replayed)
	eng.Start()
	c.point(faults.Recovered, "")
	c.kick()
	c.scheduleCheckpoint(c.inc)
	return nil
}

// checkpointInterval is how often the coordinator checkpoints, as the daemon does, so
// that its log's old segments can go.
const checkpointInterval = 700 * time.Millisecond

// scheduleCheckpoint writes a checkpoint every checkpointInterval and deletes the
// segments that the last completed one made obsolete.
func (c *coordNode) scheduleCheckpoint(inc int) {
	s := c.s
	s.after(checkpointInterval, func() {
		if !c.alive(inc) {
			return
		}
		if s.cl != nil {
			// The cluster log deletes what a checkpoint made obsolete in its closing write;
			// the store forgets old revisions, as etcd's auto-compaction does (nothing
			// reads at a past revision across events).
			s.cl.store.Compact(s.cl.store.Revision())
		} else {
			seg, removed, err := coordlog.RemoveObsolete(c.wlog, []*coordlog.ShardLog{c.slog})
			switch {
			case err != nil:
				s.tracef(coordID, "log: removing segments before %d: %v", seg, err)
				if errors.Is(err, wal.ErrSyncFailed) {
					s.fatal(coordID, fmt.Sprintf("its log failed: %v", err))
					return
				}
			case removed:
				s.stats.Compactions++
				s.tracef(coordID, "log: segments before %d removed", seg)
			}
		}
		if c.eng.Ready() {
			if err := c.eng.Checkpoint(); err != nil {
				s.tracef(coordID, "checkpoint: %v", err)
			} else {
				s.stats.Checkpoints++
				s.tracef(coordID, "checkpoint written")
			}
			c.kick()
		}
		if c.alive(inc) {
			c.scheduleCheckpoint(inc)
		}
	})
}

// restart brings the coordinator back after a crash. If its log does not open, it stays
// down: corruption the wal refuses is not a fault a restart can cure.
func (c *coordNode) restart() {
	s := c.s
	if s.up[coordID] {
		return
	}
	c.restarts++
	s.stats.Restarts++
	if err := c.start(); err != nil {
		s.stats.RestartsFailed++
		if s.cl != nil {
			// A takeover that cannot happen yet (the lease of the last owner still runs,
			// the store is unreachable): the next node tries again soon.
			s.up[coordID] = false
			c.eng = nil
			s.tracef(coordID, "takeover: %v", err)
			s.after(100*time.Millisecond, c.restart)
			return
		}
		s.up[coordID] = false
		s.startFailed(coordID)
		s.note(coordID, "does not start: %v", err)
		if errors.Is(err, wal.ErrNoSpace) || errors.Is(err, wal.ErrSyncFailed) {
			s.after(200*time.Millisecond, c.restart) // the disk may have room later
		} else if errors.Is(err, wal.ErrCorrupt) {
			s.refused(coordID, err)
		} else {
			s.violation("restart", "", "coordinator cannot restart: %v", err)
		}
		c.eng = nil
		return
	}
	s.started(coordID)
	s.note(coordID, "restarted (restart %d)", c.restarts)
}

// crash kills the process: clients waiting on it see their connection reset, and the
// disk forgets what was not synced once the current event is over.
func (c *coordNode) crash() {
	for _, r := range c.requests {
		if !r.answered {
			r.answered = true
			r.reply(nil, errReset)
		}
	}
	c.requests = nil
}

func (c *coordNode) alive(inc int) bool { return c.s.up[coordID] && c.s.inc[coordID] == inc }

// kick runs after every call into the engine: it schedules the sync the log needs, and
// crashes the process if its log failed.
func (c *coordNode) kick() {
	s := c.s
	if !c.alive(c.inc) {
		return
	}
	if c.walDied != nil {
		err := c.walDied
		c.walDied = nil
		s.fatal(coordID, fmt.Sprintf("its log failed: %v", err))
		return
	}
	if s.cl != nil {
		c.clusterKick()
		return
	}
	if c.sink.Pending() == 0 {
		return
	}
	d := uniform(s.diskRng, s.knobs.SyncLatencyMin, s.knobs.SyncLatencyMax)
	if !c.sink.SyncRequested {
		d += lazySyncDelay // lazy records ride along with the next sync, or this one
	}
	at := s.now + int64(d)
	if at >= c.syncAt {
		return
	}
	c.syncAt = at
	inc := c.inc
	s.at(at, func() { c.sync(inc) })
}

// lazySyncDelay is how long records that asked for no sync wait for one.
const lazySyncDelay = 20 * time.Millisecond

// sync makes the appended records durable, then tells the engine.
func (c *coordNode) sync(inc int) {
	s := c.s
	if !c.alive(inc) {
		return
	}
	c.syncAt = maxTime
	if c.sink.Pending() == 0 {
		return
	}
	if err := c.sink.Flush(); err != nil {
		s.fatal(coordID, fmt.Sprintf("fsync failed: %v", err))
		return
	}
	c.disk.frames = c.disk.frames[:0]
	through := c.slog.Synced()
	s.tracef(coordID, "log: synced through lsn %d", through)
	for len(c.decision) > 0 && c.decision[0].lsn <= through {
		txn := c.decision[0].txn
		c.decision = c.decision[1:]
		c.point(faults.Decided, txn)
		if !c.alive(inc) {
			return // crashed with the decision durable, before anyone heard of it
		}
	}
	c.step(coordinator.LogSynced{Through: through})
}

func (c *coordNode) step(ev coordinator.Event) {
	c.eng.Step(ev)
	c.kick()
}

// point reports a protocol point to the fault schedule.
func (c *coordNode) point(ev faults.Event, txn string) {
	c.s.point(coordID, ev, txn, -1)
}

// submit serves a client's call: the engine answers at once (an error) or once the
// decision is durable.
func (c *coordNode) submit(req coordinator.Request, reply func(resp any, err error)) {
	s := c.s
	r := &clientRequest{txn: req.ID, reply: reply}
	_, known := c.eng.Get(req.ID)
	v, err := c.eng.Submit(req, func(v coordinator.View) {
		if !r.answered {
			r.answered = true
			s.tracef(coordID, "tells client: %s %s", v.ID, v.State)
			reply(v, nil)
		}
	})
	switch {
	case err != nil:
		s.tracef(coordID, "refuses %s: %v", req.ID, err)
		reply(nil, err)
	case !r.answered:
		s.tracef(coordID, "begins %s (%s)", v.ID, v.State)
		if at, ok := s.presumedAborted[v.TxnID]; ok && errors.Is(known, coordinator.ErrNotFound) {
			s.violation("id-reuse", v.TxnID, "txn %s: the coordinator begins it anew, though it answered \"not found\" (presumed abort) for it at t=%v: a participant may have rolled back what it now commits (DESIGN §7)", v.TxnID, time.Duration(at))
		}
		if len(c.requests) >= 64 {
			live := c.requests[:0]
			for _, x := range c.requests {
				if !x.answered {
					live = append(live, x)
				}
			}
			clear(c.requests[len(live):])
			c.requests = live
		}
		c.requests = append(c.requests, r)
	}
	c.kick()
}

// get serves a participant's query about a transaction in doubt,
// GET /v1/transactions/{id}, answering what the API server answers, in the part of it a
// participant reads: 200 with the transaction (protocol.CoordinatorTxn), 404 with the
// not_found error for one it has no record of, 503 while it cannot tell.
func (c *coordNode) get(u string, asker *partNode, reply func(resp any, err error)) {
	s := c.s
	id, ok := txnOfURL(u)
	if !ok {
		reply(errorAnswer(404, "no_route", "no route for "+u), nil)
		return
	}
	v, err := c.eng.Get(id)
	if mf := s.point(asker.id, faults.QueryAnswered, id, asker.id); mf.drop {
		s.tracef(coordID, "  → %s answer about %s dropped by the schedule", asker.name, id)
		return
	} else if mf.delay > 0 {
		s.tracef(coordID, "  → %s answer about %s delayed %v by the schedule", asker.name, id, mf.delay)
		answer := reply
		reply = func(resp any, err error) { s.after(mf.delay, func() { answer(resp, err) }) }
	}
	defer c.kick()
	switch {
	case errors.Is(err, coordinator.ErrNotFound):
		s.tracef(coordID, "%s asks about %s: not found (presumed abort)", asker.name, id)
		if _, ok := s.presumedAborted[id]; !ok {
			s.presumedAborted[id] = s.now
		}
		s.rec.Told(id, checker.Aborted, asker.name+" (not found)", s.now)
	case err != nil:
		s.tracef(coordID, "%s asks about %s: %v", asker.name, id, err)
	default:
		s.tracef(coordID, "%s asks about %s: %s", asker.name, id, v.State)
		if v.Final() {
			s.rec.Told(id, outcomeOf(v.State), asker.name+" (status query)", s.now)
		}
	}
	switch {
	case errors.Is(err, coordinator.ErrNotFound):
		reply(errorAnswer(404, protocol.CodeTxnNotFound, err.Error()), nil)
	case err != nil:
		reply(errorAnswer(503, "unavailable", err.Error()), nil)
	default:
		reply(wireAnswer{status: 200, body: protocol.AppendJSON(nil, protocol.CoordinatorTxn{ID: v.ID, TxnID: v.TxnID, State: v.State})}, nil)
	}
}

func outcomeOf(state string) checker.Outcome {
	switch state {
	case coordinator.StateCommitted:
		return checker.Committed
	case coordinator.StateAborted:
		return checker.Aborted
	}
	return checker.Unknown
}

// --- the engine's environment ---

type coordClock struct {
	c   *coordNode
	inc int
}

func (k coordClock) Now() time.Time { return k.c.s.time() }

func (k coordClock) SetTimer(d time.Duration, t coordinator.Timer) {
	c := k.c
	if !c.alive(k.inc) {
		return
	}
	c.s.after(d, func() {
		if c.alive(k.inc) {
			c.step(coordinator.TimerFired{Timer: t})
		}
	})
}

type coordObserver struct {
	c   *coordNode
	inc int
}

func (o coordObserver) Observe(n coordinator.Note) {
	c := o.c
	if !c.alive(o.inc) {
		return
	}
	s := c.s
	switch n.Kind {
	case coordinator.NoteDecided:
		d := "abort"
		if n.Commit {
			d = "commit"
		}
		s.tracef(coordID, "decided %s: %s durable%s %s", n.Txn, d, recovered(n.Recovered), n.Reason)
		if !n.Commit && n.Cause == coordinator.CauseTimeout {
			s.timedOut(n.Txn)
		}
		s.dropWaits(clientID(n.Txn))
		c.decidedWaits(n.Txn)
	case coordinator.NoteEnded:
		s.tracef(coordID, "ended %s after %v", n.Txn, n.Elapsed)
	case coordinator.NoteHazard:
		s.tracef(coordID, "HAZARD %s at %s: %s", n.Txn, n.URL, n.Reason)
	case coordinator.NoteLogRefused:
		s.tracef(coordID, "log refused a record of %s: %s", n.Txn, n.Reason)
	}
}

func recovered(r bool) string {
	if r {
		return " (recovered)"
	}
	return ""
}

// coordLog is the engine's Log: the ShardLog, with the fault points and the deliberate
// bugs around it.
type coordLog coordNode

func (l *coordLog) Append(rec *coordinator.Record, sync bool) error {
	c := (*coordNode)(l)
	inc := c.inc
	if !c.alive(inc) {
		return errCrashed
	}
	switch rec.Type {
	case coordinator.RecBegin:
		c.point(faults.AppendBegin, rec.Txn)
	case coordinator.RecDecision:
		c.point(faults.AppendDecision, rec.Txn)
	case coordinator.RecEnd:
		c.point(faults.AppendEnd, rec.Txn)
	}
	if !c.alive(inc) {
		return errCrashed // it crashed at this point: the record is never written
	}
	if c.cs != nil {
		if err := c.clusterAppend(rec, sync); err != nil {
			return err
		}
	} else if err := c.slog.Append(rec, sync); err != nil {
		if errors.Is(err, wal.ErrSyncFailed) {
			c.walDied = err
		}
		return err
	}
	c.lsn++
	if rec.Type == coordinator.RecBegin && c.s.o.Break&BreakClientToldBeforeLog != 0 {
		c.incarnation[rec.Txn] = rec.TxnID // for the broken early answer, which must name it
	}
	if rec.Type == coordinator.RecDecision {
		c.decision = append(c.decision, lsnTxn{c.lsn, rec.Txn})
		c.appendedDecision(rec, c.lsn)
	}
	return nil
}

// coordSink is the coordlog Sink: the SyncSink, remembering where each record went.
type coordSink coordNode

func (k *coordSink) Append(payload []byte, sync bool, done func(wal.Pos, error)) (wal.Pos, error) {
	c := (*coordNode)(k)
	pos, err := c.sink.Append(payload, sync, done)
	if err == nil {
		c.disk.frames = append(c.disk.frames, pos)
	}
	return pos, err
}

// coordTransport sends the engine's requests across the simulated network, as an HTTP
// client would: every request gets exactly one Reply, an answer or an error.
type coordTransport struct {
	c   *coordNode
	inc int
}

var sendPoints = map[coordinator.MsgKind]faults.Event{
	coordinator.MsgPrepare:  faults.SendPrepare,
	coordinator.MsgCommit:   faults.SendCommit,
	coordinator.MsgRollback: faults.SendRollback,
	coordinator.MsgStatus:   faults.SendStatus,
}

func (t coordTransport) Send(m coordinator.Message) {
	c := t.c
	s := c.s
	if !c.alive(t.inc) {
		return // a dead process sends nothing, and nobody waits for its answers
	}
	p := s.byURL[m.URL]
	if p == nil {
		panic(fmt.Sprintf("simnet: the engine sent %s to %q, which is no participant", m.Kind, m.URL))
	}
	timeout := m.Timeout
	if timeout <= 0 {
		timeout = s.coordCfg.RequestTimeout
	}
	reply := func(r coordinator.Reply) {
		r.Txn, r.Participant, r.Seq, r.Kind = m.Txn, m.Participant, m.Seq, m.Kind
		if c.alive(t.inc) {
			c.rewriteStatus(&r)
			c.everyoneAsks(&r)
			c.step(r)
		}
	}
	mf := s.point(coordID, sendPoints[m.Kind], m.Txn, p.id)
	if !c.alive(t.inc) {
		return // crashed at this point: the message never leaves
	}
	switch m.Kind {
	case coordinator.MsgCommit:
		s.rec.Told(m.Txn, checker.Committed, p.name, s.now)
	case coordinator.MsgRollback:
		s.rec.Told(m.Txn, checker.Aborted, p.name, s.now)
	}
	if c.phase2GivesUp(m, p, reply) {
		return
	}
	what := fmt.Sprintf("%s %s #%d", m.Kind, m.Txn, m.Seq)
	if mf.drop {
		s.tracef(coordID, "→ %s %s", p.name, what)
		s.tracef(coordID, "  → %s dropped by the schedule", p.name)
		s.after(timeout, func() {
			s.tracef(coordID, "%s → %s timed out after %v", what, p.name, timeout)
			reply(coordinator.Reply{Err: errTimeout})
		})
		return
	}
	if mf.delay == 0 && (m.Kind == coordinator.MsgCommit || m.Kind == coordinator.MsgRollback) && c.enqueueBatch(p, m, timeout, reply) {
		return
	}
	c.sendOne(p, m, mf.delay, timeout, reply)
}

// sendOne sends m on its own, after delay, and replies with the participant's answer
// read by protocol.Interpret, or with the reason there was none.
func (c *coordNode) sendOne(p *partNode, m coordinator.Message, delay, timeout time.Duration, reply func(coordinator.Reply)) {
	s := c.s
	inc := c.inc
	req := encodeRequest(m, coordURL)
	s.tracef(coordID, "→ %s %s", p.name, req.what)
	if delay > 0 {
		s.tracef(coordID, "  → %s delayed %v by the schedule", p.name, delay)
	}
	s.callDelayed(coordID, p.id, delay, timeout, req.what,
		func(answer func(any, error)) { p.handle(req, answer) },
		func(resp any, err error) {
			if err != nil {
				reply(coordinator.Reply{Err: err})
				return
			}
			a := resp.(wireAnswer)
			if c.alive(inc) {
				c.noteBatchMax(p, a)
			}
			r, err := protocol.Interpret(protocol.Answer{Kind: m.Kind, Status: a.status, Body: a.body, Asks: a.asks})
			if err != nil {
				s.tracef(coordID, "%s: %v", req.what, err)
				r = coordinator.Reply{Err: err}
			}
			reply(r)
		})
}

// txnOfURL reads the transaction id of a query URL, {coordURL}/v1/transactions/{id}, as
// the API server's router does.
func txnOfURL(u string) (string, bool) {
	rest, ok := strings.CutPrefix(u, coordURL+"/v1/transactions/")
	if !ok || rest == "" || strings.Contains(rest, "/") {
		return "", false
	}
	id, err := url.PathUnescape(rest)
	return id, err == nil
}
