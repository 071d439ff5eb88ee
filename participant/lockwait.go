package participant

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/dtc-project/dtc/locks"
)

// The lock table in the core (Config.Locks, package locks). A prepare asks for the
// locks of the keys its Service names (Keyed) before Service.Prepare:
//
//	granted   → Service.Prepare, prepare record, ACK once durable (as without locks)
//	conflict  → NACK, cause "conflict", key (no-wait, occ)
//	queued    → the prepare waits (wait, wound-wait): the LockObserver hears of it
//	            (and, under wound-wait, of the younger holders to wound); it goes on
//	            when a phase 2 releases what is in its way, or ends with a NACK when
//	            its transaction is rolled back, CancelWait is called (the HTTP
//	            request ended: its deadline) or the participant closes.
//
// Locks are released right after the commit or rollback record is appended, in the
// same critical section: the record is then ahead, in the log, of everything a prepare
// granted next does, so that prepare's own ACK (durable record) implies the phase-2
// record is durable too. Replay retakes the locks of every transaction still prepared
// (Table.Force), with the priority its prepare record keeps.

// LockWait is a prepare waiting for locks.
type LockWait struct {
	TxnID       string
	Coordinator string // from its prepare; "" if none was given
	Key         string // the first key it waits on
	// WaitsFor are the transactions it waits for: holders of its keys, and requests
	// queued before it, in a conflicting mode. The coordinator adds the edges
	// TxnID → each of them to its wait-for graph.
	WaitsFor []string
	// Wound (wound-wait): the younger transactions holding what it waits for, which
	// its coordinator should abort. WoundCoordinator[i] is the coordinator of Wound[i].
	Wound            []string
	WoundCoordinator []string
	Since            time.Time
}

// LockObserver hears of every prepare that begins to wait for locks, outside the
// core's lock, on the goroutine of a call into the core. It must not block.
type LockObserver interface {
	LockWaiting(w LockWait)
}

// SetLockObserver sets (or, with nil, removes) the LockObserver.
func (p *Participant) SetLockObserver(o LockObserver) {
	p.mu.Lock()
	p.lockObs = o
	p.mu.Unlock()
}

// LockPolicy returns the policy of Config.Locks (PolicyNone if none).
func (p *Participant) LockPolicy() locks.Policy {
	if p.table == nil {
		return locks.PolicyNone
	}
	return p.table.Policy()
}

// pendingPrepare is a prepare waiting for locks.
type pendingPrepare struct {
	id          string
	payload     json.RawMessage
	coordinator string
	priority    int64
	since       time.Time
	replies     []func(Vote) // the first prepare and its repeats
	// told is what the LockObserver last heard this prepare waits for: a release that
	// puts a transaction not in it in the way (a new holder of the key) tells it again
	// at once, not at the next periodic report.
	told []string
}

// LockWaits lists the prepares waiting for locks now, by txn id, with what each waits
// for now: a reporter re-sends them while they wait.
func (p *Participant) LockWaits() []LockWait {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]LockWait, 0, len(p.pending))
	for _, pw := range p.pending {
		key, waitsFor, ok := p.table.WaitsFor(pw.id)
		if !ok {
			panic(fmt.Sprintf("participant: %s pending but not waiting for locks", pw.id))
		}
		out = append(out, p.lockWaitLocked(pw, key, waitsFor))
	}
	slices.SortFunc(out, func(a, b LockWait) int { return cmpString(a.TxnID, b.TxnID) })
	return out
}

func cmpString(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// lockWaitLocked describes pw, waiting on key for waitsFor; under wound-wait it names
// the younger holders among them.
func (p *Participant) lockWaitLocked(pw *pendingPrepare, key string, waitsFor []string) LockWait {
	w := LockWait{TxnID: pw.id, Coordinator: pw.coordinator, Key: key, WaitsFor: waitsFor, Since: pw.since}
	if p.table.Policy() == locks.PolicyWoundWait {
		mine := effectivePriority(pw.priority)
		for _, id := range waitsFor {
			if t := p.txns[id]; t != nil && t.state == StatePrepared && effectivePriority(t.priority) > mine {
				w.Wound = append(w.Wound, id)
				w.WoundCoordinator = append(w.WoundCoordinator, t.coordinator)
			}
		}
	}
	return w
}

// effectivePriority ranks 0 (none given) as the youngest.
func effectivePriority(prio int64) int64 {
	if prio <= 0 {
		return 1<<63 - 1
	}
	return prio
}

// lockRequestLocked asks the Service for the keys of a transaction.
func (p *Participant) lockRequestLocked(id string, payload json.RawMessage, priority int64) (locks.Request, error) {
	ks, err := p.keyed.Keys(id, payload)
	if err != nil {
		return locks.Request{}, err
	}
	req := locks.Request{Txn: id, Priority: priority}
	for _, k := range ks.Reads {
		req.Locks = append(req.Locks, locks.Lock{Key: k, Mode: locks.Shared})
	}
	for _, k := range ks.Writes {
		req.Locks = append(req.Locks, locks.Lock{Key: k, Mode: locks.Exclusive})
	}
	for k, v := range ks.ReadVersions {
		req.Reads = append(req.Reads, locks.Read{Key: k, Version: v})
	}
	return req, nil
}

func (p *Participant) versionOf(key string) uint64 { return p.versioned.Version(key) }

// acquireLocked asks for id's locks. It returns granted, or the vote that ends the
// prepare (wait false), or wait true when the prepare was queued: pw then holds reply.
func (p *Participant) acquireLocked(id string, payload json.RawMessage, coordinator string, priority int64, reply func(Vote)) (granted bool, v Vote, wait bool) {
	if p.table == nil {
		return true, Vote{}, false
	}
	req, err := p.lockRequestLocked(id, payload, priority)
	if err != nil {
		return false, nackf("keys: %v", err), false
	}
	a, err := p.table.Acquire(req, p.versionOf)
	switch {
	case err != nil:
		return false, nack(err.Error()), false
	case a.Conflict != nil:
		return false, Vote{Reason: a.Conflict.Error(), Cause: CauseConflict, Key: a.Conflict.Key}, false
	case a.Granted:
		return true, Vote{}, false
	}
	pw := &pendingPrepare{id: id, payload: payload, coordinator: coordinator, priority: priority, since: p.clock.Now(), replies: []func(Vote){reply}}
	p.pending[id] = pw
	p.stats.LockWaits++
	pw.told = a.WaitsFor
	if o := p.lockObs; o != nil {
		w := p.lockWaitLocked(pw, a.Key, a.WaitsFor)
		p.later = append(p.later, func() { o.LockWaiting(w) })
	}
	return false, Vote{}, true
}

// retellWaitsLocked tells the LockObserver again of every prepare still waiting that
// now waits for a transaction it was not told of: the key it waits for passed to a new
// holder (or a request queued before it). Without this a real cycle closed by the new
// holder would stand until the next periodic report (up to a second). A wait that only
// lost transactions is not told again: the coordinator drops edges to decided ones.
func (p *Participant) retellWaitsLocked() {
	if len(p.pending) == 0 {
		return
	}
	ids := make([]string, 0, len(p.pending))
	for id := range p.pending {
		ids = append(ids, id)
	}
	slices.Sort(ids) // the observer hears them in an order that does not depend on the map's
	for _, id := range ids {
		pw := p.pending[id]
		key, waitsFor, ok := p.table.WaitsFor(pw.id)
		if !ok {
			panic(fmt.Sprintf("participant: %s pending but not waiting for locks", pw.id))
		}
		if !newIn(waitsFor, pw.told) {
			continue
		}
		pw.told = waitsFor
		p.stats.LockWaitsRetold++
		if o := p.lockObs; o != nil {
			w := p.lockWaitLocked(pw, key, waitsFor)
			p.later = append(p.later, func() { o.LockWaiting(w) })
		}
	}
}

// newIn reports whether sorted a holds an id that sorted b does not.
func newIn(a, b []string) bool {
	for _, id := range a {
		if _, found := slices.BinarySearch(b, id); !found {
			return true
		}
	}
	return false
}

// releaseLocked frees id's locks (or its place in the queue) and goes on with the
// prepares that this lets in, in grant order.
func (p *Participant) releaseLocked(id string) {
	if p.table == nil {
		return
	}
	work := p.table.Release(id)
	defer p.retellWaitsLocked()
	for len(work) > 0 {
		g := work[0]
		work = work[1:]
		pw := p.pending[g]
		if pw == nil {
			panic(fmt.Sprintf("participant: lock table granted %s, which no prepare waits for", g))
		}
		delete(p.pending, g)
		if v, wait := p.grantedLocked(pw); !wait {
			p.answerLater(pw.replies, v)
			if !v.ACK {
				work = append(work, p.table.Release(g)...)
			}
		}
	}
}

// grantedLocked goes on with a prepare that was waiting and now holds its locks.
func (p *Participant) grantedLocked(pw *pendingPrepare) (Vote, bool) {
	switch {
	case p.failed != nil:
		return nackf("participant unavailable: %v", p.failed), false
	case p.prepared >= p.cfg.PreparedMax:
		return nack("too many prepared transactions"), false
	case p.inflight.len() >= p.cfg.InflightMax:
		return nack("too busy: too many records waiting to be persisted"), false
	}
	t := preparedTxn(pw.id, pw.payload, pw.coordinator, p.clock.Now())
	t.priority = pw.priority
	t.durable = StateUnknown
	data := encodeRecord(logRecord{Type: recPrepare, TxnID: pw.id, Payload: pw.payload, Coordinator: pw.coordinator, PreparedAt: &t.preparedAt, Priority: pw.priority})
	// Checked again: the time written may be longer than when the prepare was queued.
	if n := p.store.RecordMaxBytes(); len(data) > n {
		return nackf("prepare record too large: %d bytes, the log takes at most %d", len(data), n), false
	}
	v, wait := p.servicePrepareLocked(t, data, nil)
	if wait {
		for _, reply := range pw.replies {
			t.waiting.waiters = append(t.waiting.waiters, waiter{vote: reply, txn: t})
		}
	}
	return v, wait
}

// answerLater delivers v to replies once the core's lock is released.
func (p *Participant) answerLater(replies []func(Vote), v Vote) {
	p.later = append(p.later, func() {
		for _, reply := range replies {
			reply(v)
		}
	})
}

// cancelWaitLocked ends the lock wait of id's prepare with a NACK; it reports whether
// there was one.
func (p *Participant) cancelWaitLocked(id, reason string) bool {
	pw := p.pending[id]
	if pw == nil {
		return false
	}
	delete(p.pending, id)
	key, _, _ := p.table.WaitsFor(id)
	p.answerLater(pw.replies, Vote{Reason: fmt.Sprintf("%s (waiting for key %s)", reason, key), Cause: CauseConflict, Key: key})
	p.releaseLocked(id)
	return true
}

// CancelWait ends the lock wait of txnID's prepare, if it waits: the prepare is
// answered NACK (cause conflict) with reason, and nothing is recorded. The HTTP handler
// calls it when the prepare's request ends (its deadline passed, the coordinator went
// away).
func (p *Participant) CancelWait(txnID, reason string) {
	p.mu.Lock()
	p.cancelWaitLocked(txnID, reason)
	p.unlockAndRun()
	p.flush()
}

// unlockAndRun releases the core's lock and runs what was left for after it.
func (p *Participant) unlockAndRun() {
	later := p.later
	p.later = nil
	p.mu.Unlock()
	for _, f := range later {
		f()
	}
}

// retakeLocksLocked takes the locks of a transaction found prepared in the log.
func (p *Participant) retakeLocksLocked(t *txn) error {
	if p.table == nil {
		return nil
	}
	req, err := p.lockRequestLocked(t.id, t.payload, t.priority)
	if err != nil {
		return fmt.Errorf("service names no keys for txn %q it had accepted: %w", t.id, err)
	}
	p.table.Force(t.id, t.priority, req.Locks)
	return nil
}

// newLockTable checks that svc can name keys for policy and returns the table, or nil
// for policy none.
func newLockTable(cfg locks.Config, svc Service) (*locks.Table, Keyed, Versioned, error) {
	if cfg.Policy == "" || cfg.Policy == locks.PolicyNone {
		return nil, nil, nil, nil
	}
	keyed, ok := svc.(Keyed)
	if !ok {
		return nil, nil, nil, fmt.Errorf("participant: lock policy %s needs a Service that implements Keyed", cfg.Policy)
	}
	var versioned Versioned
	if cfg.Policy == locks.PolicyOCC {
		if versioned, ok = svc.(Versioned); !ok {
			return nil, nil, nil, errors.New("participant: lock policy occ needs a Service that implements Versioned")
		}
	}
	t, err := locks.New(cfg)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("participant: %w", err)
	}
	return t, keyed, versioned, nil
}
