package simnet

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/dtc-project/dtc/checker"
	"github.com/dtc-project/dtc/examples/bank"
	"github.com/dtc-project/dtc/faults"
	"github.com/dtc-project/dtc/locks"
	"github.com/dtc-project/dtc/participant"
	"github.com/dtc-project/dtc/protocol"
	"github.com/dtc-project/dtc/wal"
)

// partNode is one participant process: the real participant core with the example bank
// as its service, over a store that syncs when the simulated disk says so.
type partNode struct {
	s    *sim
	id   int
	name string
	url  string
	disk *disk
	// passive: it never asks the coordinator about transactions in doubt, and says so
	// on its answers (no Reply.Asks); noStatus: it has no status endpoint either.
	passive, noStatus bool

	// One incarnation:
	inc      int
	core     *participant.Participant
	bank     *bank.Bank
	store    *partStore
	querying map[string]bool       // in-doubt transactions asked about, answer pending
	resolver *participant.Resolver // nil for a passive participant
	restarts int
	failed   bool // its log failed: it is about to crash
}

func newPartNode(s *sim, id int) *partNode {
	name := s.names[id]
	p := &partNode{s: s, id: id, name: name, url: "http://" + name + ".sim/prepare"}
	// The last Passive participants are passive; the last PassiveNoStatus of those also
	// have no status endpoint.
	fromEnd := s.o.Participants - id // 0 for pN
	p.passive = fromEnd < s.knobs.Passive
	p.noStatus = fromEnd < s.knobs.PassiveNoStatus
	p.disk = newDisk(s, id, "/"+name)
	return p
}

func (p *partNode) alive(inc int) bool { return p.s.up[p.id] && p.s.inc[p.id] == inc }

// initialAccounts is every participant's opening balances.
func (s *sim) initialAccounts() map[string]int64 {
	m := make(map[string]int64, s.o.Accounts)
	for i := 0; i < s.o.Accounts; i++ {
		m[accountName(i)] = s.o.InitialBalance
	}
	return m
}

func accountName(i int) string { return fmt.Sprintf("a%d", i) }

// start opens the participant's log and rebuilds it, as its process does at boot.
func (p *partNode) start() error {
	s := p.s
	p.inc = s.inc[p.id]
	p.querying = map[string]bool{}
	p.failed = false
	b, err := bank.New(s.initialAccounts())
	if err != nil {
		return err
	}
	cfg := s.partCfg
	if s.o.Break&BreakLocksNotTaken != 0 {
		cfg.Locks.Policy = locks.PolicyNone
	}
	if p.busy() {
		// A busy participant: few records may wait for a sync, so that phase-2 calls
		// beyond them fail (ErrBusy) while others pass, alone or inside a batch.
		cfg.InflightMax = min(cfg.InflightMax, busyInflightMax)
	}
	core, err := participant.New(cfg, p.service(b, cfg.Locks.Policy), partClock{s})
	if err != nil {
		return err
	}
	st := &partStore{p: p, inc: p.inc, immediate: true}
	o := wal.Options{FS: p.disk.fs, Dir: p.disk.dir, SegmentSizeBytes: s.o.SegmentSizeBytes}
	l, err := wal.Open(o, core.Replay)
	if err != nil {
		return err
	}
	st.log = l
	st.recordMax = participant.DefaultRecordMaxBytes
	if max := int(s.o.SegmentSizeBytes) - 32; st.recordMax > max {
		st.recordMax = max
	}
	s.up[p.id] = true
	if err := core.Start(st); err != nil {
		s.up[p.id] = false
		return err
	}
	st.immediate = false
	p.core, p.bank, p.store = core, b, st
	if at, reason, torn := l.TornTail(); torn {
		s.stats.TornRepaired++
		s.tracef(p.id, "log: torn tail at segment %d offset %d repaired (%s)", at.Segment, at.Offset, reason)
	}
	stats := core.Stats()
	s.tracef(p.id, "starts: %d records replayed, %d prepared", stats.ReplayedRecords, stats.Prepared)
	if !p.passive {
		r, err := participant.NewResolver(core, participant.ResolverOptions{Coordinator: coordURL, Clock: partClock{s},
			QueriesPerRoundMax: queriesPerRoundMax, Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			return err
		}
		p.resolver = r
		p.scheduleResolve(p.inc)
	}
	if core.LockPolicy().Waits() {
		core.SetLockObserver(lockObserver{p, p.inc})
		p.scheduleWaitReports(p.inc)
	}
	return nil
}

func (p *partNode) restart() {
	s := p.s
	if s.up[p.id] {
		return
	}
	p.restarts++
	s.stats.Restarts++
	if err := p.start(); err != nil {
		s.stats.RestartsFailed++
		s.up[p.id] = false
		p.core = nil
		s.startFailed(p.id)
		s.note(p.id, "does not start: %v", err)
		if errors.Is(err, wal.ErrNoSpace) || errors.Is(err, wal.ErrSyncFailed) {
			s.after(200*time.Millisecond, p.restart)
		} else if errors.Is(err, wal.ErrCorrupt) {
			s.refused(p.id, err)
		} else {
			s.violation("restart", "", "%s cannot restart: %v", p.name, err)
		}
		return
	}
	s.started(p.id)
	s.note(p.id, "restarted (restart %d)", p.restarts)
}

// checkFailed crashes the process once its log has failed (an fsync error, a full disk
// under the store): the participant answers nothing useful any more, and its
// supervisor restarts it.
func (p *partNode) checkFailed(inc int) {
	if !p.alive(inc) || p.failed {
		return
	}
	if err := p.core.Err(); err != nil {
		p.failed = true
		p.s.fatal(p.id, fmt.Sprintf("its log failed: %v", err))
	}
}

func (p *partNode) point(ev faults.Event, txn string) { p.s.point(p.id, ev, txn, -1) }

// answer is a participant's answer with its headers: whether it asks about
// transactions in doubt, and the batch size it offers.
func (p *partNode) answer(status int, body []byte) wireAnswer {
	return wireAnswer{status: status, body: body, asks: !p.passive, batchMax: p.batchMax()}
}

// handle serves one request of the coordinator, as participant's handler serves it:
// it decodes the body, calls the core, and answers through answer, with the bytes the
// handler writes, once the core has answered (after its record is durable).
func (p *partNode) handle(req wireRequest, answer func(any, error)) {
	s := p.s
	inc := p.inc
	defer p.checkFailed(inc)
	switch req.endpoint {
	case protocol.EndpointPrepare:
		pr, err := decodePrepare(req.body)
		if err != nil {
			answer(errorAnswer(400, protocol.CodeMalformedJSON, err.Error()), nil)
			return
		}
		s.incarnations[pr.TxnID] = true
		s.priorities[pr.TxnID] = pr.Priority
		p.point(faults.RecvPrepare, pr.TxnID)
		if !p.alive(inc) {
			return
		}
		p.core.PreparePriority(pr.TxnID, pr.Payload, pr.Coordinator, pr.Priority, func(v participant.Vote) {
			if !p.alive(inc) {
				return
			}
			s.rec.Voted(pr.TxnID, p.name, v.ACK, s.now)
			p.checkFence(pr.TxnID, v)
			if v.ACK {
				s.readAtAck(pr.TxnID, p)
				s.tracef(p.id, "votes ACK on %s", req.what)
				p.point(faults.Ack, pr.TxnID)
			} else {
				if v.Cause == participant.CauseConflict {
					s.stats.Conflicts++
					if strings.Contains(v.Reason, staleReadReason) {
						s.stats.StaleReads++
					}
				}
				s.tracef(p.id, "votes NACK on %s: %s", req.what, v.Reason)
				p.point(faults.Nack, pr.TxnID)
			}
			answer(p.answer(200, protocol.AppendVoteResponse(nil, v.Response())), nil)
		})
	case protocol.EndpointCommit, protocol.EndpointRollback:
		txn, err := decodeTxn(req.body)
		if err != nil {
			answer(errorAnswer(400, protocol.CodeMalformedJSON, err.Error()), nil)
			return
		}
		s.incarnations[txn] = true
		p.phase2Op(txn, req.endpoint == protocol.EndpointCommit, req.what, func(res participant.Result) {
			switch {
			case res.Err != nil:
				answer(errorAnswer(503, protocol.CodeUnavailable, res.Err.Error()), nil)
			case res.Conflict:
				answer(p.answer(409, protocol.AppendStateResponse(nil, res.State)), nil)
			default:
				answer(p.answer(200, protocol.AppendStateResponse(nil, res.State)), nil)
			}
		})
	case protocol.EndpointBatch:
		p.handleBatch(req, answer)
	case protocol.EndpointStatus:
		txn := protocol.StatusTxnID(req.query)
		s.incarnations[txn] = true
		if p.noStatus {
			// A service with no status endpoint: its router answers 404.
			s.tracef(p.id, "status of %s: no status endpoint (404)", txn)
			answer(wireAnswer{status: 404, body: []byte("404 page not found\n")}, nil)
			return
		}
		st := p.core.Status(txn)
		s.tracef(p.id, "status of %s: %s", txn, st)
		if st == participant.StatePrepared {
			// Reporting prepared is a durable yes: recovery counts it as a vote.
			s.rec.Voted(txn, p.name, true, s.now)
		}
		answer(p.answer(200, protocol.AppendStateResponse(nil, st)), nil)
	default:
		answer(wireAnswer{status: 404, body: []byte("404 page not found\n")}, nil)
	}
}

// phase2Op serves one commit or rollback, alone or in a batch: the failpoint of its
// arrival, then the core. done is not called if the process dies first.
func (p *partNode) phase2Op(txn string, commit bool, what string, done func(participant.Result)) {
	inc := p.inc
	want, ev, recv := participant.StateCommitted, faults.Committed, faults.RecvCommit
	if !commit {
		want, ev, recv = participant.StateAborted, faults.RolledBack, faults.RecvRollback
	}
	p.point(recv, txn)
	if !p.alive(inc) {
		return
	}
	if !commit && p.unfencedRollback(txn, what, done) {
		return
	}
	p.phase2(txn, want, what, func(res participant.Result) {
		if res.Err == nil {
			p.point(ev, txn)
		}
		if p.alive(inc) {
			done(res)
		}
	})
}

// phase2 commits or rolls back txn in the core and records what it applied.
func (p *partNode) phase2(txn string, want participant.State, what string, done func(participant.Result)) {
	s := p.s
	inc := p.inc
	cb := func(res participant.Result) {
		if !p.alive(inc) {
			return
		}
		switch {
		case res.Err != nil:
			s.tracef(p.id, "%s: unavailable: %v", what, res.Err)
		case res.Conflict:
			s.tracef(p.id, "%s: CONFLICT, holds %s", what, res.State)
		default:
			s.tracef(p.id, "%s: %s", what, res.State)
			s.rec.Applied(txn, p.name, outcomeOf(string(res.State)), s.now)
			if res.State == participant.StateAborted {
				s.rolledBack[p.name+" "+txn] = true
			}
		}
		done(res)
	}
	if want == participant.StateCommitted {
		p.core.Commit(txn, cb)
	} else {
		p.core.Rollback(txn, cb)
	}
}

// staleReadReason is in the reason of a NACK for a version conflict
// (locks.Conflict.Error).
const staleReadReason = ": read version "

// checkFence checks the participant's promise that a late prepare, after it answered
// the transaction's rollback, is refused (DESIGN §3: the rollback fences it).
func (p *partNode) checkFence(txn string, v participant.Vote) {
	if v.ACK && p.s.rolledBack[p.name+" "+txn] {
		p.s.violation("fencing", txn, "txn %s: %s voted ACK on a prepare after it had acknowledged the rollback of that transaction: the rollback did not fence it", txn, p.name)
	}
}

// --- resolving transactions in doubt ---

// resolveInterval is how often a participant looks for transactions in doubt.
const resolveInterval = 500 * time.Millisecond

// queryTimeout bounds one in-doubt query to the coordinator.
const queryTimeout = time.Second

// queriesPerRoundMax bounds the in-doubt queries of one round.
const queriesPerRoundMax = 16

func (p *partNode) scheduleResolve(inc int) {
	p.s.after(resolveInterval, func() {
		if p.alive(inc) {
			p.resolve(inc)
			p.scheduleResolve(inc)
		}
	})
}

// resolve runs one round of the participant's Resolver (participant.Resolver, the
// code a real participant runs): the Resolver picks the transactions in doubt to ask
// about, the question and its answer cross the simulated network as HTTP would carry
// them, the answer is read by protocol.InDoubtVerdict and the Resolver acts on it
// (Settle): committed → commit, aborted or not found (presumed abort) → rollback,
// anything else → ask again later.
func (p *partNode) resolve(inc int) {
	s := p.s
	for _, t := range p.resolver.NextRound() {
		if p.querying[t.ID] {
			continue
		}
		t := t
		id := t.ID
		p.querying[id] = true
		u := protocol.CoordinatorTxnURL(t.Coordinator, id)
		s.tracef(p.id, "in doubt about %s: asks the coordinator", id)
		s.call(p.id, coordID, queryTimeout, "query "+id,
			func(answer func(any, error)) { s.coord.get(u, p, answer) },
			func(resp any, err error) {
				if !p.alive(inc) {
					return
				}
				delete(p.querying, id)
				var (
					verdict = participant.StateUnknown
					detail  string
					reached bool
				)
				if err != nil {
					detail = err.Error()
				} else {
					verdict, detail, reached = p.verdict(id, resp.(wireAnswer))
				}
				p.resolver.Settle(t, verdict, detail, reached, func(res participant.Resolution) {
					if !p.alive(inc) {
						return
					}
					switch res.Outcome {
					case participant.ResolvedCommitted:
						s.tracef(p.id, "resolve %s: committed", id)
						s.rec.Applied(id, p.name, checker.Committed, s.now)
					case participant.ResolvedRolledBack:
						s.tracef(p.id, "resolve %s: aborted", id)
						s.rec.Applied(id, p.name, checker.Aborted, s.now)
						s.rolledBack[p.name+" "+id] = true
					default:
						s.tracef(p.id, "resolve %s: %s: %s", id, res.Outcome, res.Detail)
					}
					p.checkFailed(inc)
				})
			})
	}
}

// --- store ---

// partStore is the participant's Store over the wal: Append buffers the record, and a
// sync the simulated disk schedules makes it durable and calls done, in order (group
// commit). During Start it syncs at once, since Start waits for its first checkpoint.
type partStore struct {
	p         *partNode
	inc       int
	log       *wal.Log
	recordMax int
	immediate bool
	broken    error
	pending   []pendingRecord
	syncAt    int64
}

type pendingRecord struct {
	pos  wal.Pos
	done func(wal.Pos, error)
}

var _ participant.Store = (*partStore)(nil)

var prepareRecord = []byte(`{"type":"prepare"`)

func (st *partStore) Append(record []byte, _ bool, done func(wal.Pos, error)) {
	p := st.p
	s := p.s
	if st.inc != s.inc[p.id] {
		st.fail(errCrashed, done)
		return
	}
	if st.broken != nil {
		st.fail(st.broken, done)
		return
	}
	if !st.immediate && bytes.HasPrefix(record, prepareRecord) {
		p.point(faults.AppendPrepare, "")
		if st.inc != s.inc[p.id] {
			st.fail(errCrashed, done)
			return
		}
	}
	pos, err := st.log.Append(record)
	if err != nil {
		st.broken = fmt.Errorf("simnet: %s log: %w", p.name, err)
		st.fail(st.broken, done)
		return
	}
	if st.immediate {
		if err := st.log.Sync(); err != nil {
			st.broken = err
			st.fail(err, done)
			return
		}
		done(pos, nil)
		return
	}
	if s.o.Break&BreakParticipantSkipsFsync != 0 {
		done(pos, nil) // deliberately broken: "durable" without a sync
		return
	}
	st.pending = append(st.pending, pendingRecord{pos, done})
	p.disk.frames = append(p.disk.frames, pos)
	if st.syncAt == 0 {
		d := uniform(s.diskRng, s.knobs.SyncLatencyMin, s.knobs.SyncLatencyMax)
		st.syncAt = s.now + int64(d)
		s.at(st.syncAt, st.sync)
	}
}

// fail reports err for every record still waiting and then for the one being appended:
// a store that fails, fails every later record, and reports them in append order.
func (st *partStore) fail(err error, done func(wal.Pos, error)) {
	pend := st.pending
	st.pending = nil
	for _, r := range pend {
		r.done(wal.Pos{}, err)
	}
	done(wal.Pos{}, err)
}

// sync makes the pending records durable and tells the core. A failed sync is fatal:
// the process crashes and its records were never durable.
func (st *partStore) sync() {
	p := st.p
	s := p.s
	st.syncAt = 0
	if !p.alive(st.inc) || len(st.pending) == 0 {
		return
	}
	if err := st.log.Sync(); err != nil {
		st.broken = err
		s.fatal(p.id, fmt.Sprintf("fsync failed: %v", err))
		return
	}
	p.disk.frames = p.disk.frames[:0]
	pend := st.pending
	st.pending = nil
	for _, r := range pend {
		r.done(r.pos, nil)
	}
	p.checkFailed(st.inc)
}

func (st *partStore) RemoveBefore(pos wal.Pos) error {
	err := st.log.RemoveBefore(pos.Segment)
	if err != nil && errors.Is(err, wal.ErrSyncFailed) {
		st.broken = err
	}
	return err
}

func (st *partStore) RecordMaxBytes() int { return st.recordMax }

// Close abandons the log: a crashed process closes nothing.
func (st *partStore) Close() error { return nil }

type partClock struct{ s *sim }

func (c partClock) Now() time.Time { return c.s.time() }

// balances reads every account of every participant, keyed "p1/a0".
func (s *sim) balances() (map[string]int64, error) {
	out := map[string]int64{}
	for _, p := range s.parts {
		if !s.up[p.id] || p.bank == nil {
			return nil, fmt.Errorf("%s is down", p.name)
		}
		for _, a := range p.bank.Accounts() {
			out[p.name+"/"+a.Name] = a.Balance
		}
	}
	return out, nil
}

var _ = checker.Committed

// verdict is protocol.InDoubtVerdict on the coordinator's answer about txn, or, under
// BreakResolverPresumesCommit, a broken rule that reads "not found" as committed.
func (p *partNode) verdict(txn string, a wireAnswer) (protocol.State, string, bool) {
	st, detail, reached := protocol.InDoubtVerdict(txn, a.status, "", a.body)
	if p.s.o.Break&BreakResolverPresumesCommit != 0 && a.status == 404 && st == protocol.StateAborted {
		p.s.tracef(p.id, "BROKEN: %s not found at the coordinator, presumed committed", txn)
		return protocol.StateCommitted, "presumed commit (broken)", reached
	}
	return st, detail, reached
}
