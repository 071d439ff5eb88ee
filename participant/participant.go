package participant

import (
	"github.com/dtc-project/dtc/protocol"

	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dtc-project/dtc/locks"
	"github.com/dtc-project/dtc/wal"
)

// Participant is the IO-free core: the participant's side of two-phase commit over a
// Store and a Service. Build it with New, feed it the log with Replay, then Start it; or
// use OpenSync / OpenGroupSync, which do the three steps over a wal.Log.
//
// It is safe for concurrent use. Replies are callbacks: they may run before the call
// returns or later on another goroutine (the Store's), never while the core's lock is
// held, and must not block.
type Participant struct {
	cfg   Config
	svc   Service
	clock Clock

	mu      sync.Mutex
	started bool
	store   Store
	failed  error // the log failed or the participant was closed: no more answers

	txns     map[string]*txn
	prepared int         // txns whose applied state is prepared
	decided  decidedRing // durable decided txns, oldest first
	inflight recordQueue // records appended and not yet durable, in log order
	outbox   []*record   // records appended and not yet handed to the store
	spare    []*record   // an emptied outbox, whose array the next one reuses
	flushing bool        // some goroutine is handing the outbox to the store

	sinceCheckpointBytes   int64
	sinceCheckpointRecords int
	checkpointing          bool     // a checkpoint record is in flight
	compactTo              *wal.Pos // a durable checkpoint whose older segments may go

	// Replay bookkeeping.
	replayedRecords int
	skippedRecords  int
	sawCheckpoint   bool

	stats Stats

	// The lock table (Config.Locks; nil under policy none) and the prepares waiting
	// for it: see lockwait.go.
	table     *locks.Table
	keyed     Keyed
	versioned Versioned
	pending   map[string]*pendingPrepare
	lockObs   LockObserver
	// later holds answers and notifications made under the lock, run once it is
	// released (unlockAndRun).
	later []func()

	// resolvers counts the Resolvers running for this participant (Resolver.Run): while
	// one runs, the participant asks the coordinator about transactions in doubt, and
	// its handler says so (HeaderInDoubt).
	resolvers atomic.Int32
}

// Asks reports whether a Resolver is running for p, so that p asks its coordinators
// about the transactions it holds in doubt. A coordinator may keep a lazy begin record
// only for participants that ask (HeaderInDoubt).
func (p *Participant) Asks() bool { return p.resolvers.Load() > 0 }

// txn is one transaction the core knows.
type txn struct {
	id          string
	state       State // applied: what the core has decided (prepared, committed, aborted)
	durable     State // what the log holds for sure (unknown until the first record is durable)
	fenced      bool  // aborted by a rollback that came before any prepare
	payload     json.RawMessage
	coordinator string
	preparedAt  time.Time
	priority    int64   // from its prepare (wound-wait)
	waiting     *record // the latest record for this txn that is not durable yet
}

// record is one log record on its way to durability.
type record struct {
	data       []byte
	txn        *txn  // the transaction it moves, or nil
	sets       State // txn.durable once the record is durable
	checkpoint bool
	// urgent says that an answer on the protocol's critical path, or a caller, waits
	// for the record: the store makes it durable as soon as it can (Store.Append).
	// Set at creation, under the core's lock, before any flush can hand it on.
	urgent bool
	// waiters are answered once the record is durable (err nil) or never will be: the
	// answers are made under the core's lock and delivered after it is released.
	waiters []waiter
	waiter0 [1]waiter // waiters' first backing array: most records have one
}

// newRecord returns a record with no waiters yet. It is urgent when its answer is on
// the protocol's critical path: a prepare's (the coordinator decides only once every
// vote is in) or an Update's (the service's caller). A commit, rollback or fence is
// answered once its record is durable too, but the coordinator has told the outcome
// already and waits only to finish phase 2, so the store may hold such a record back to
// share a sync with the next prepare: under load that halves the participant's syncs. A
// checkpoint is urgent only when a caller waits for it (Start, Checkpoint), which marks
// it so.
func newRecord(data []byte, t *txn, sets State, checkpoint bool) *record {
	r := &record{data: data, txn: t, sets: sets, checkpoint: checkpoint}
	r.urgent = sets == StatePrepared || (t == nil && !checkpoint)
	r.waiters = r.waiter0[:0]
	return r
}

// waiter is a call waiting for a record. One of vote, result and done is set.
type waiter struct {
	// vote answers a prepare of txn: ACK, unless txn was rolled back in the meantime.
	vote func(Vote)
	// result answers a commit or rollback of txn that asked for outcome, with txn's
	// state.
	result  func(Result)
	txn     *txn
	outcome State
	// done answers any other call with the record's error.
	done func(error)
}

// answer makes w's answer, under the core's lock.
func (w *waiter) answer(err error) delivery {
	d := delivery{w: *w, err: err}
	switch {
	case w.vote != nil:
		switch {
		case err != nil:
			d.vote = nackf("participant unavailable: %v", err)
		case w.txn.state == StateAborted:
			d.vote = nack("rolled back while the prepare record was being persisted")
		default:
			d.vote = ack()
		}
	case w.result != nil:
		d.result = Result{State: w.txn.state, Conflict: w.txn.state != w.outcome, Err: err}
	}
	return d
}

// delivery is a waiter's answer, delivered without the core's lock.
type delivery struct {
	w      waiter
	vote   Vote
	result Result
	err    error
}

func (d *delivery) deliver() {
	switch {
	case d.w.vote != nil:
		d.w.vote(d.vote)
	case d.w.result != nil:
		d.w.result(d.result)
	default:
		d.w.done(d.err)
	}
}

// Stats are counters for monitoring and tests.
type Stats struct {
	Prepared           int // transactions prepared and undecided
	Decided            int // decided transactions remembered
	Inflight           int // records waiting to become durable
	Checkpoints        int // checkpoints made durable (including the one of a fresh log)
	CheckpointFailures int // checkpoints skipped: snapshot failed or record too large
	CompactionFailures int // RemoveBefore failures (retried at the next checkpoint)
	ReplayedRecords    int // records read from the log at startup
	SkippedRecords     int // of which older than the first checkpoint (already in it)
	LockWaits          int // prepares that had to wait for locks
	LockWaitsRetold    int // waits told again at once: a new transaction came in their way
	LockWaiting        int // prepares waiting for locks now
	LockedKeys         int // keys locked or awaited now
}

// New returns a participant that has not read its log yet: call Replay for every
// record, then Start.
func New(cfg Config, svc Service, clock Clock) (*Participant, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if svc == nil || clock == nil {
		return nil, errors.New("participant: New needs a Service and a Clock")
	}
	table, keyed, versioned, err := newLockTable(cfg.Locks, svc)
	if err != nil {
		return nil, err
	}
	return &Participant{
		cfg:       cfg,
		svc:       svc,
		clock:     clock,
		txns:      make(map[string]*txn),
		table:     table,
		keyed:     keyed,
		versioned: versioned,
		pending:   make(map[string]*pendingPrepare),
	}, nil
}

// OpenSync opens the log described by o, rebuilds the participant (and svc) from it and
// starts it over a SyncStore. The simulator uses it over wal.MemFS.
func OpenSync(cfg Config, svc Service, clock Clock, o wal.Options) (*Participant, error) {
	return open(cfg, svc, clock, o, func(l *wal.Log) Store { return NewSyncStore(l, RecordMaxBytes(o)) })
}

// OpenGroupSync opens the log described by o, rebuilds the participant (and svc) from
// it and starts it over a GroupSyncStore: production.
func OpenGroupSync(cfg Config, svc Service, clock Clock, o wal.Options, co wal.GroupSyncerOptions) (*Participant, error) {
	return open(cfg, svc, clock, o, func(l *wal.Log) Store { return NewGroupSyncStore(l, RecordMaxBytes(o), co) })
}

func open(cfg Config, svc Service, clock Clock, o wal.Options, newStore func(*wal.Log) Store) (*Participant, error) {
	p, err := New(cfg, svc, clock)
	if err != nil {
		return nil, err
	}
	l, err := wal.Open(o, p.Replay)
	if err != nil {
		return nil, fmt.Errorf("participant: opening log in %q: %w", o.Dir, err)
	}
	st := newStore(l)
	if err := p.Start(st); err != nil {
		return nil, errors.Join(err, st.Close())
	}
	return p, nil
}

// Replay applies one durable log record, in log order, before Start; its signature fits
// wal.Open. Records older than the first checkpoint are skipped (the checkpoint holds
// them); every later one must be consistent with the state so far, or the log is
// corrupt (or the Service not deterministic) and Replay returns an error.
func (p *Participant) Replay(pos wal.Pos, data []byte) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.started {
		panic("participant: Replay after Start")
	}
	p.replayedRecords++
	r, err := decodeRecord(data)
	if err != nil {
		return fmt.Errorf("participant: replay at %v: %w", pos, err)
	}
	if r.Type == recCheckpoint {
		if err := p.restoreLocked(r.Checkpoint); err != nil {
			return fmt.Errorf("participant: replay checkpoint at %v: %w", pos, err)
		}
		p.sawCheckpoint = true
		p.sinceCheckpointBytes, p.sinceCheckpointRecords = 0, 0
		return nil
	}
	if !p.sawCheckpoint {
		p.skippedRecords++
		return nil
	}
	p.sinceCheckpointBytes += int64(len(data))
	p.sinceCheckpointRecords++
	if err := p.replayLocked(r); err != nil {
		return fmt.Errorf("participant: replay %s record at %v: %w", r.Type, pos, err)
	}
	return nil
}

func (p *Participant) replayLocked(r logRecord) error {
	t := p.txns[r.TxnID]
	switch r.Type {
	case recPrepare:
		if t != nil {
			return fmt.Errorf("txn %q is already %s", r.TxnID, t.state)
		}
		if err := p.svc.Prepare(r.TxnID, r.Payload); err != nil {
			return fmt.Errorf("service refused txn %q it had accepted: %w", r.TxnID, err)
		}
		var at time.Time
		if r.PreparedAt != nil {
			at = *r.PreparedAt
		}
		t := preparedTxn(r.TxnID, r.Payload, r.Coordinator, at)
		t.priority = r.Priority
		p.addPreparedLocked(t)
		if err := p.retakeLocksLocked(t); err != nil {
			return err
		}
	case recCommit, recRollback:
		if t == nil || t.state != StatePrepared {
			return fmt.Errorf("txn %q is not prepared", r.TxnID)
		}
		if r.Type == recCommit {
			p.svc.Commit(r.TxnID)
			t.state = StateCommitted
		} else {
			p.svc.Rollback(r.TxnID)
			t.state = StateAborted
		}
		t.durable = t.state
		p.prepared--
		p.rememberDecidedLocked(t)
		if p.table != nil {
			p.table.Release(r.TxnID) // nothing waits during replay
		}
	case recFence:
		if t != nil {
			return fmt.Errorf("txn %q is already %s", r.TxnID, t.state)
		}
		t = &txn{id: r.TxnID, state: StateAborted, durable: StateAborted, fenced: true}
		p.txns[t.id] = t
		p.rememberDecidedLocked(t)
	case recUpdate:
		u, ok := p.svc.(Updater)
		if !ok {
			return ErrNoUpdater
		}
		if err := u.Update(r.Change); err != nil {
			return fmt.Errorf("service refused a change it had accepted: %w", err)
		}
	default:
		return fmt.Errorf("unknown record type %q", r.Type)
	}
	return nil
}

// preparedTxn returns a transaction that is prepared, durably.
func preparedTxn(id string, payload json.RawMessage, coordinator string, at time.Time) *txn {
	return &txn{
		id:          id,
		state:       StatePrepared,
		durable:     StatePrepared,
		payload:     payload,
		coordinator: coordinator,
		preparedAt:  at,
	}
}

// addPreparedLocked adds t, a prepared transaction.
func (p *Participant) addPreparedLocked(t *txn) {
	p.txns[t.id] = t
	p.prepared++
}

// restoreLocked replaces the whole state with a checkpoint's.
func (p *Participant) restoreLocked(c *checkpoint) error {
	if c == nil {
		return errors.New("checkpoint record without checkpoint")
	}
	if err := p.svc.Restore(c.Service); err != nil {
		return fmt.Errorf("service restore: %w", err)
	}
	p.txns = make(map[string]*txn, len(c.Prepared))
	p.prepared = 0
	p.decided = decidedRing{}
	if p.table != nil {
		p.table, _ = locks.New(p.cfg.Locks) // validated by New
	}
	for _, e := range c.Prepared {
		if p.txns[e.TxnID] != nil {
			return fmt.Errorf("txn %q twice", e.TxnID)
		}
		t := preparedTxn(e.TxnID, e.Payload, e.Coordinator, e.PreparedAt)
		t.priority = e.Priority
		p.addPreparedLocked(t)
		if err := p.retakeLocksLocked(t); err != nil {
			return err
		}
	}
	for _, e := range c.Decided {
		if p.txns[e.TxnID] != nil {
			return fmt.Errorf("txn %q twice", e.TxnID)
		}
		if !protocol.Decided(e.State) {
			return fmt.Errorf("txn %q listed as decided in state %q", e.TxnID, e.State)
		}
		t := &txn{id: e.TxnID, state: e.State, durable: e.State, fenced: e.Fenced}
		p.txns[t.id] = t
		p.rememberDecidedLocked(t)
	}
	return nil
}

// Start attaches the store and opens the participant for business. A fresh log (no
// records) gets a first checkpoint holding the service's initial state, durable before
// Start returns: every log begins with a checkpoint, and initial state given to a
// service is used only once.
func (p *Participant) Start(st Store) error {
	p.mu.Lock()
	if p.started {
		p.mu.Unlock()
		panic("participant: Start called twice")
	}
	p.started = true
	p.store = st
	p.stats.ReplayedRecords = p.replayedRecords
	p.stats.SkippedRecords = p.skippedRecords
	if p.sawCheckpoint {
		p.mu.Unlock()
		return nil
	}
	if p.replayedRecords > 0 {
		p.failed = ErrClosed
		p.mu.Unlock()
		return fmt.Errorf("participant: log has %d records but no checkpoint", p.replayedRecords)
	}
	done := make(chan error, 1)
	r, err := p.checkpointLocked()
	if err != nil {
		p.failed = ErrClosed
		p.mu.Unlock()
		return fmt.Errorf("participant: initial checkpoint: %w", err)
	}
	r.waiters = append(r.waiters, waiter{done: func(err error) { done <- err }})
	r.urgent = true // Start waits for it
	p.mu.Unlock()
	p.flush()
	if err := <-done; err != nil {
		return fmt.Errorf("participant: initial checkpoint: %w", err)
	}
	return nil
}

// Close closes the store. Records already handed to it are finished by it; calls
// waiting for records not handed over yet, and calls after Close, get ErrClosed.
func (p *Participant) Close() error {
	p.mu.Lock()
	if p.failed == nil {
		p.failed = ErrClosed
	}
	st := p.store
	p.store = nil
	// The outbox is the tail of the inflight queue: those records never reach the log.
	var deliver []delivery
	for i := len(p.outbox) - 1; i >= 0; i-- {
		r := p.inflight.dropLast()
		if r != p.outbox[i] {
			panic("participant: outbox is not the tail of the inflight queue")
		}
		for j := range r.waiters {
			deliver = append(deliver, r.waiters[j].answer(ErrClosed))
		}
	}
	p.outbox = nil
	for id := range p.pending {
		p.cancelWaitLocked(id, "participant unavailable: "+ErrClosed.Error())
	}
	p.unlockAndRun()
	for i := range deliver {
		deliver[i].deliver()
	}
	if st == nil {
		return nil
	}
	return st.Close()
}

// Err returns why the participant stopped answering (the log failed, or it was
// closed), or nil.
func (p *Participant) Err() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.failed
}

func (p *Participant) mustStartedLocked() {
	if !p.started {
		panic("participant: used before Start")
	}
}

// Prepare votes on a transaction. ACK is given only once the prepare record (txn id,
// payload, coordinator) is durable; NACK needs no record. A repeated prepare gets the
// same vote; a prepare after a rollback is NACKed ("fenced" if the rollback came first).
// payload must be JSON (or empty); the service sees it compacted. coordinator is the
// base URL asked about the transaction if it is left in doubt ("" for the default).
func (p *Participant) Prepare(txnID string, payload json.RawMessage, coordinator string, reply func(Vote)) {
	p.prepare(txnID, payload, false, coordinator, 0, reply)
}

// PreparePriority is Prepare with the transaction's priority (PrepareRequest.Priority),
// which the wound-wait lock policy uses.
func (p *Participant) PreparePriority(txnID string, payload json.RawMessage, coordinator string, priority int64, reply func(Vote)) {
	p.prepare(txnID, payload, false, coordinator, priority, reply)
}

// prepare is Prepare; payloadOwned says that the caller gives payload away (it does not
// keep or change it), so the core may keep it rather than a copy.
func (p *Participant) prepare(txnID string, payload json.RawMessage, payloadOwned bool, coordinator string, priority int64, reply func(Vote)) {
	p.mu.Lock()
	p.mustStartedLocked()
	v, wait := p.prepareLocked(txnID, payload, payloadOwned, coordinator, priority, reply)
	p.unlockAndRun()
	if !wait {
		reply(v)
	}
	p.flush()
}

func (p *Participant) prepareLocked(id string, payload json.RawMessage, payloadOwned bool, coordinator string, priority int64, reply func(Vote)) (Vote, bool) {
	if p.failed != nil {
		return nackf("participant unavailable: %v", p.failed), false
	}
	if err := ValidateTxnID(id, p.cfg.TxnIDMaxBytes); err != nil {
		return nack(err.Error()), false
	}
	payload, err := normalizeJSON(payload, payloadOwned)
	if err != nil {
		return nackf("payload is not valid JSON: %v", err), false
	}
	if len(payload) > p.cfg.PayloadMaxBytes {
		return nackf("payload too large: %d bytes, at most %d", len(payload), p.cfg.PayloadMaxBytes), false
	}
	if len(coordinator) > p.cfg.CoordinatorMaxBytes {
		return nackf("coordinator URL too long: %d bytes, at most %d", len(coordinator), p.cfg.CoordinatorMaxBytes), false
	}
	if t := p.txns[id]; t != nil {
		switch t.state {
		case StateAborted:
			if t.fenced {
				return nack("fenced: rolled back before prepare"), false
			}
			return nack("already rolled back"), false
		case StatePrepared, StateCommitted:
			if !bytes.Equal(t.payload, payload) {
				return nack("already prepared with a different payload"), false
			}
			if t.durable != StateUnknown {
				return ack(), false
			}
			// The first prepare's record is still on its way: answer with it.
			t.waiting.waiters = append(t.waiting.waiters, waiter{vote: reply, txn: t})
			return Vote{}, true
		default:
			panic(fmt.Sprintf("participant: txn %q in state %q", id, t.state))
		}
	}
	if pw := p.pending[id]; pw != nil { // waiting for locks: answer with it
		if !bytes.Equal(pw.payload, payload) {
			return nack("already prepared with a different payload"), false
		}
		pw.replies = append(pw.replies, reply)
		return Vote{}, true
	}
	if p.prepared >= p.cfg.PreparedMax {
		return nack("too many prepared transactions"), false
	}
	if p.inflight.len() >= p.cfg.InflightMax {
		return nack("too busy: too many records waiting to be persisted"), false
	}
	t := preparedTxn(id, payload, coordinator, p.clock.Now())
	t.priority = priority
	t.durable = StateUnknown
	// The record takes t's time: a time of its own would escape to the heap.
	data := encodeRecord(logRecord{Type: recPrepare, TxnID: id, Payload: payload, Coordinator: coordinator, PreparedAt: &t.preparedAt, Priority: priority})
	if n := p.store.RecordMaxBytes(); len(data) > n {
		return nackf("prepare record too large: %d bytes, the log takes at most %d", len(data), n), false
	}
	if granted, v, wait := p.acquireLocked(id, payload, coordinator, priority, reply); !granted {
		return v, wait
	}
	return p.servicePrepareLocked(t, data, reply)
}

// servicePrepareLocked asks the Service to prepare t, whose locks (if any) are held,
// and appends its prepare record, data. A refusal releases the locks. reply, if not
// nil, waits for the record.
func (p *Participant) servicePrepareLocked(t *txn, data []byte, reply func(Vote)) (Vote, bool) {
	if err := p.svc.Prepare(t.id, t.payload); err != nil {
		reason := err.Error()
		if reason == "" {
			reason = "refused by the service"
		}
		if p.table != nil {
			p.releaseLocked(t.id)
		}
		return nack(reason), false
	}
	p.addPreparedLocked(t)
	r := p.appendLocked(data, t, StatePrepared)
	if reply != nil {
		r.waiters = append(r.waiters, waiter{vote: reply, txn: t})
	}
	return Vote{}, true
}

// Commit applies a prepared transaction and answers once the commit record is durable.
// A repeated commit answers the same. Commit of an aborted or unknown transaction is a
// conflict (a heuristic hazard for the coordinator to record), answered once the state
// it reports is durable.
func (p *Participant) Commit(txnID string, reply func(Result)) {
	p.phase2(txnID, StateCommitted, reply)
}

// Rollback releases a prepared transaction and answers once the rollback record is
// durable. A rollback of an unknown transaction writes a fence, so that a later prepare
// is NACKed. Rollback of a committed transaction is a conflict.
func (p *Participant) Rollback(txnID string, reply func(Result)) {
	p.phase2(txnID, StateAborted, reply)
}

func (p *Participant) phase2(id string, outcome State, reply func(Result)) {
	p.mu.Lock()
	p.mustStartedLocked()
	res, wait := p.phase2Locked(id, outcome, reply)
	p.unlockAndRun()
	if !wait {
		reply(res)
	}
	p.flush()
}

func (p *Participant) phase2Locked(id string, outcome State, reply func(Result)) (Result, bool) {
	if p.failed != nil {
		return Result{Err: p.failed}, false
	}
	if err := ValidateTxnID(id, p.cfg.TxnIDMaxBytes); err != nil {
		return Result{Err: err}, false
	}
	t := p.txns[id]
	if t == nil && outcome == StateCommitted {
		return Result{State: StateUnknown, Conflict: true}, false
	}
	if t == nil && outcome == StateAborted {
		// A prepare waiting for locks ends with a NACK; the fence below keeps it out.
		p.cancelWaitLocked(id, "rolled back while waiting for locks")
	}
	if t == nil || t.state == StatePrepared {
		if p.inflight.len() >= p.cfg.InflightMax {
			return Result{Err: ErrBusy}, false
		}
		var data []byte
		switch {
		case t == nil: // rollback before prepare: fence the id
			t = &txn{id: id, state: StateAborted, durable: StateUnknown, fenced: true}
			p.txns[id] = t
			data = encodeRecord(logRecord{Type: recFence, TxnID: id})
		case outcome == StateCommitted:
			p.svc.Commit(id)
			t.state = StateCommitted
			p.prepared--
			data = encodeRecord(logRecord{Type: recCommit, TxnID: id})
		default:
			p.svc.Rollback(id)
			t.state = StateAborted
			p.prepared--
			data = encodeRecord(logRecord{Type: recRollback, TxnID: id})
		}
		p.appendLocked(data, t, t.state)
		// Only now, with the phase-2 record ahead of anything a waiting prepare does
		// next, may the locks go (see lockwait.go).
		if !t.fenced {
			p.releaseLocked(id)
		}
	}
	// t is decided now; answer once that is durable.
	if t.waiting == nil {
		return Result{State: t.durable, Conflict: t.durable != outcome}, false
	}
	t.waiting.waiters = append(t.waiting.waiters, waiter{result: reply, txn: t, outcome: outcome})
	return Result{}, true
}

// Status returns what the log holds for sure about a transaction: a state whose record
// is still on its way to disk is not reported yet.
func (p *Participant) Status(txnID string) State {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.mustStartedLocked()
	if t := p.txns[txnID]; t != nil {
		return t.durable
	}
	return StateUnknown
}

// InDoubtSince returns when txnID, durably prepared and undecided, becomes (or
// became) in doubt: its prepare time plus Config.InDoubtAfter. ok is false for a
// transaction in any other state.
func (p *Participant) InDoubtSince(txnID string) (since time.Time, ok bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if t := p.txns[txnID]; t != nil && t.state == StatePrepared && t.durable == StatePrepared {
		return t.preparedAt.Add(p.cfg.InDoubtAfter), true
	}
	return time.Time{}, false
}

// Update logs a change to the service's own state (see Updater) and answers once it is
// durable. The change is applied at once, in log order with transactions.
func (p *Participant) Update(change []byte, reply func(error)) {
	p.mu.Lock()
	p.mustStartedLocked()
	err, wait := p.updateLocked(change, reply)
	p.mu.Unlock()
	if !wait {
		reply(err)
	}
	p.flush()
}

func (p *Participant) updateLocked(change []byte, reply func(error)) (error, bool) {
	u, ok := p.svc.(Updater)
	switch {
	case !ok:
		return ErrNoUpdater, false
	case p.failed != nil:
		return p.failed, false
	case p.inflight.len() >= p.cfg.InflightMax:
		return ErrBusy, false
	}
	change = normalizeBlob(change)
	data := encodeRecord(logRecord{Type: recUpdate, Change: change})
	if n := p.store.RecordMaxBytes(); len(data) > n {
		return fmt.Errorf("participant: update record too large: %d bytes, the log takes at most %d", len(data), n), false
	}
	if err := u.Update(change); err != nil {
		return err, false
	}
	r := p.appendLocked(data, nil, "")
	r.waiters = append(r.waiters, waiter{done: reply})
	return nil, true
}

// InDoubtTxn is a transaction prepared for longer than Config.InDoubtAfter.
type InDoubtTxn struct {
	ID          string
	Coordinator string // from its prepare; "" if none was given
	PreparedAt  time.Time
}

// InDoubt lists the durably prepared transactions prepared at least InDoubtAfter before
// now, oldest first (ties by id).
func (p *Participant) InDoubt(now time.Time) []InDoubtTxn {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []InDoubtTxn
	for _, t := range p.txns {
		if t.state == StatePrepared && t.durable == StatePrepared && now.Sub(t.preparedAt) >= p.cfg.InDoubtAfter {
			out = append(out, InDoubtTxn{ID: t.id, Coordinator: t.coordinator, PreparedAt: t.preparedAt})
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].PreparedAt.Equal(out[j].PreparedAt) {
			return out[i].PreparedAt.Before(out[j].PreparedAt)
		}
		return out[i].ID < out[j].ID
	})
	return out
}

// Stats returns the current counters.
func (p *Participant) Stats() Stats {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := p.stats
	s.Prepared = p.prepared
	s.Decided = p.decided.len()
	s.Inflight = p.inflight.len()
	s.LockWaiting = len(p.pending)
	if p.table != nil {
		s.LockedKeys = p.table.Keys()
	}
	return s
}

// Checkpoint writes a checkpoint now (normally they are written when the log has grown
// by Config.CheckpointAfterBytes or CheckpointAfterRecords) and calls done once it is
// durable and older segments are removed, or with the error that stopped it.
func (p *Participant) Checkpoint(done func(error)) {
	p.mu.Lock()
	p.mustStartedLocked()
	var err error
	var r *record
	switch {
	case p.failed != nil:
		err = p.failed
	case p.checkpointing:
		err = errors.New("participant: a checkpoint is already in flight")
	default:
		r, err = p.checkpointLocked()
	}
	if r != nil {
		r.waiters = append(r.waiters, waiter{done: done})
		r.urgent = true // its caller waits for it
	}
	p.mu.Unlock()
	if r == nil {
		done(err)
	}
	p.flush()
}

// appendLocked queues a record for the store. t.durable becomes sets once it is durable.
func (p *Participant) appendLocked(data []byte, t *txn, sets State) *record {
	r := newRecord(data, t, sets, false)
	p.outbox = append(p.outbox, r)
	p.inflight.push(r)
	if t != nil {
		t.waiting = r
	}
	p.sinceCheckpointBytes += int64(len(data))
	p.sinceCheckpointRecords++
	if !p.checkpointing && (p.sinceCheckpointBytes >= p.cfg.CheckpointAfterBytes ||
		p.sinceCheckpointRecords >= p.cfg.CheckpointAfterRecords) {
		_, _ = p.checkpointLocked() // a failure is counted; retried after another interval
	}
	return r
}

// checkpointLocked queues a checkpoint of the state as it is now. Every record before it
// in the log is covered by it, including those still on their way to disk: when it is
// durable, so are they.
func (p *Participant) checkpointLocked() (*record, error) {
	p.sinceCheckpointBytes, p.sinceCheckpointRecords = 0, 0
	snap, err := p.svc.Snapshot()
	if err != nil {
		p.stats.CheckpointFailures++
		return nil, fmt.Errorf("participant: service snapshot: %w", err)
	}
	c := &checkpoint{Service: normalizeBlob(snap), Prepared: []preparedEntry{}, Decided: []decidedEntry{}}
	for _, t := range p.txns {
		if t.state == StatePrepared {
			c.Prepared = append(c.Prepared, preparedEntry{TxnID: t.id, Payload: t.payload, Coordinator: t.coordinator, PreparedAt: t.preparedAt, Priority: t.priority})
		}
	}
	sort.Slice(c.Prepared, func(i, j int) bool { return c.Prepared[i].TxnID < c.Prepared[j].TxnID })
	add := func(t *txn) {
		c.Decided = append(c.Decided, decidedEntry{TxnID: t.id, State: t.state, Fenced: t.fenced})
	}
	p.decided.each(add)
	// Decisions still on their way to disk join the window, in log order, when they get
	// there; after a restart from this checkpoint they are in it already.
	p.inflight.each(func(r *record) {
		if r.txn != nil && protocol.Decided(r.sets) {
			add(r.txn)
		}
	})
	data := encodeRecord(logRecord{Type: recCheckpoint, Checkpoint: c})
	if n := p.store.RecordMaxBytes(); len(data) > n {
		p.stats.CheckpointFailures++
		return nil, fmt.Errorf("participant: checkpoint record too large: %d bytes, the log takes at most %d", len(data), n)
	}
	r := newRecord(data, nil, "", true)
	p.outbox = append(p.outbox, r)
	p.inflight.push(r)
	p.checkpointing = true
	return r, nil
}

// flush hands queued records to the store, in order, without holding the lock (a
// synchronous store calls done, which takes it). One goroutine flushes at a time; others
// leave their records to it. It also removes segments made obsolete by a checkpoint.
func (p *Participant) flush() {
	p.mu.Lock()
	if p.flushing {
		p.mu.Unlock()
		return
	}
	p.flushing = true
	for {
		if len(p.outbox) > 0 && p.store != nil {
			batch := p.outbox
			p.outbox, p.spare = p.spare, nil
			st := p.store
			p.mu.Unlock()
			for _, r := range batch {
				st.Append(r.data, r.urgent, func(pos wal.Pos, err error) { p.recordDone(r, pos, err) })
			}
			p.mu.Lock()
			clear(batch)
			p.spare = batch[:0]
			continue
		}
		if p.compactTo != nil && p.store != nil && p.failed == nil {
			pos := *p.compactTo
			p.compactTo = nil
			st := p.store
			p.mu.Unlock()
			err := st.RemoveBefore(pos)
			p.mu.Lock()
			if err != nil {
				p.stats.CompactionFailures++
			}
			continue
		}
		break
	}
	p.flushing = false
	p.mu.Unlock()
}

// recordDone is the store telling that r is durable (err nil) or never will be.
func (p *Participant) recordDone(r *record, pos wal.Pos, err error) {
	p.mu.Lock()
	if head := p.inflight.pop(); head != r {
		p.mu.Unlock()
		panic(fmt.Sprintf("participant: store reported records out of order: got %s, want %s", r.data, head.data))
	}
	if err != nil {
		err = fmt.Errorf("participant: log failed: %w", err)
		if p.failed == nil {
			p.failed = err
		}
	} else {
		if t := r.txn; t != nil {
			t.durable = r.sets
			if t.waiting == r {
				t.waiting = nil
				if protocol.Decided(t.state) {
					p.rememberDecidedLocked(t)
				}
			}
		}
		if r.checkpoint {
			p.stats.Checkpoints++
			cp := pos // a copy: &pos would move every call's pos to the heap
			p.compactTo = &cp
		}
	}
	if r.checkpoint {
		p.checkpointing = false
	}
	var buf [2]delivery // on the stack for the usual one or two waiters
	deliver := buf[:0]
	for i := range r.waiters {
		deliver = append(deliver, r.waiters[i].answer(err))
	}
	p.mu.Unlock()
	for i := range deliver {
		deliver[i].deliver()
	}
}

// rememberDecidedLocked adds a durably decided txn to the window, forgetting the oldest
// beyond DecidedMax.
func (p *Participant) rememberDecidedLocked(t *txn) {
	p.decided.push(t)
	for p.decided.len() > p.cfg.DecidedMax {
		old := p.decided.pop()
		if p.txns[old.id] == old {
			delete(p.txns, old.id)
		}
	}
}

// decidedRing is a FIFO of decided transactions.
type decidedRing struct {
	items []*txn
	head  int
}

func (q *decidedRing) len() int { return len(q.items) - q.head }

func (q *decidedRing) push(t *txn) { q.items = append(q.items, t) }

func (q *decidedRing) pop() *txn {
	t := q.items[q.head]
	q.items[q.head] = nil
	q.head++
	if q.head > 64 && q.head*2 >= len(q.items) {
		q.items = append([]*txn(nil), q.items[q.head:]...)
		q.head = 0
	}
	return t
}

func (q *decidedRing) each(f func(*txn)) {
	for _, t := range q.items[q.head:] {
		f(t)
	}
}

// recordQueue is a FIFO of records.
type recordQueue struct {
	items []*record
	head  int
}

func (q *recordQueue) len() int { return len(q.items) - q.head }

func (q *recordQueue) push(r *record) { q.items = append(q.items, r) }

func (q *recordQueue) pop() *record {
	if q.len() == 0 {
		return nil
	}
	r := q.items[q.head]
	q.items[q.head] = nil
	q.head++
	if q.head > 64 && q.head*2 >= len(q.items) {
		q.items = append([]*record(nil), q.items[q.head:]...)
		q.head = 0
	}
	return r
}

func (q *recordQueue) dropLast() *record {
	n := len(q.items) - 1
	r := q.items[n]
	q.items = q.items[:n]
	return r
}

func (q *recordQueue) each(f func(*record)) {
	for _, r := range q.items[q.head:] {
		f(r)
	}
}
