package coordinator

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"
)

// Env is what the engine runs against. Clock, Transport, Log and Rand are required;
// Observer may be nil.
type Env struct {
	Clock     Clock
	Transport Transport
	Log       Log
	Rand      Rand
	Observer  Observer
}

// Engine is the two-phase-commit state machine. It is not safe for concurrent use: its
// owner calls every method from one goroutine (production: one per shard; simulator: the
// scheduler). No method blocks.
//
// Lifecycle: New, then Replay for every record found in the log (oldest first), then
// Start, then any mix of Submit, Get, List, Checkpoint and Step.
type Engine struct {
	cfg Config
	env Env

	txns     map[string]*txn
	inflight int      // transactions not yet done
	phase2   int      // of those, the ones whose decision is durable: phase 2 under way
	doneIDs  []string // finished transactions, oldest first; doneHead is the first live entry
	doneHead int

	lsn     uint64    // LSN of the last record the log accepted
	synced  uint64    // every record up to this LSN is durable
	waiting []lsnWait // decisions waiting for their record to be durable, in LSN order
	// cpLSN is e.lsn when the last checkpoint was completely appended (cpDone): while
	// nothing more is appended, that checkpoint still stands and another one would be
	// the same records again.
	cpLSN  uint64
	cpDone bool

	seq        uint64 // last Message.Seq used
	askers     askers // participants known to ask about transactions in doubt
	started    bool
	recovering int // transactions found undecided in the log whose decision is not yet durable
}

// lsnWait is a transaction waiting for a record of its own to be durable: its decision
// (then the outcome is told) or its synced begin (then the prepares leave).
type lsnWait struct {
	lsn uint64
	txn *txn
}

// New returns an engine that has not started: feed it the log with Replay, then Start.
func New(cfg Config, env Env) (*Engine, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if env.Clock == nil || env.Transport == nil || env.Log == nil || env.Rand == nil {
		return nil, errors.New("coordinator: Env needs Clock, Transport, Log and Rand")
	}
	return &Engine{cfg: cfg, env: env, txns: make(map[string]*txn), askers: newAskers(cfg.AskersMax)}, nil
}

// Ready reports whether the engine answers requests: it has started and every
// transaction it found undecided in the log has a durable decision.
func (e *Engine) Ready() bool { return e.started && e.recovering == 0 }

// Stats counts what the engine holds, for gauges.
type Stats struct {
	Inflight   int // begun, not yet acknowledged by every participant
	Undecided  int // no durable decision yet (preparing, or recovering)
	Recovering int // found undecided in the log, still being resolved
	Remembered int // finished, still remembered for their id's reservation window
	Phase2     int // decided, phase 2 under way (counted in Inflight, not in InflightMax)

	// When the oldest of the in-flight and of the undecided transactions began; zero
	// when there is none. Their age says whether one is stuck (a participant down for
	// long, a decision that cannot become durable).
	OldestInflight, OldestUndecided time.Time
}

// Stats returns the current counts. It walks every transaction: call it for metrics
// scrapes, not per request.
func (e *Engine) Stats() Stats {
	s := Stats{Inflight: e.inflight, Recovering: e.recovering, Remembered: len(e.doneIDs) - e.doneHead, Phase2: e.phase2}
	for _, t := range e.txns {
		if t.phase < phPhase2 {
			s.Undecided++
			if s.OldestUndecided.IsZero() || t.began.Before(s.OldestUndecided) {
				s.OldestUndecided = t.began
			}
		}
		if t.phase < phDone && (s.OldestInflight.IsZero() || t.began.Before(s.OldestInflight)) {
			s.OldestInflight = t.began
		}
	}
	return s
}

// Replay applies one durable record read from the log. It must be called before Start,
// for every record, in log order. Recovery has no code path of its own: the records are
// applied exactly as they were when they were first written, and Start resumes from there.
func (e *Engine) Replay(rec *Record) error {
	if e.started {
		panic("coordinator: Replay after Start")
	}
	if err := rec.check(); err != nil {
		return err
	}
	return e.apply(rec)
}

// Start ends replay and resumes every transaction found in the log: a decided one
// resumes phase 2; an undecided one asks every participant for its status and commits
// only if all of them report prepared. Transactions are resumed in id order so that a
// simulated run is the same every time.
func (e *Engine) Start() {
	if e.started {
		panic("coordinator: Start called twice")
	}
	e.started = true
	now := e.env.Clock.Now()
	ids := make([]string, 0, len(e.txns))
	for id, t := range e.txns {
		if t.phase != phDone {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	for _, id := range ids {
		t := e.txns[id]
		t.recovered = true
		switch t.phase {
		case phPreparing:
			e.recovering++
			t.phase = phQuerying
			for i := range t.parts {
				t.parts[i].vote, t.parts[i].reason = VoteNone, ""
			}
			t.gen++
			e.env.Clock.SetTimer(e.cfg.RecoveryTimeout, Timer{Kind: TimerDeadline, Txn: id, Gen: t.gen})
			for i := range t.parts {
				e.send(t, i, MsgStatus)
			}
		case phDeciding:
			// Replayed decisions are durable by definition.
			t.decided = now
			e.startPhase2(t)
		default:
			panic(fmt.Sprintf("coordinator: txn %s replayed into phase %v", id, t.phase))
		}
	}
	e.expire(now)
}

// Submit begins a transaction. On success done is called exactly once, with the
// transaction's view, once its decision is durable — possibly before Submit returns, when
// a client-chosen id names a transaction that is already decided. The returned view is
// the transaction as it stands now. On error done is never called.
func (e *Engine) Submit(req Request, done func(View)) (View, error) {
	if !e.Ready() {
		return View{}, ErrRecovering
	}
	now := e.env.Clock.Now()
	e.expire(now)
	if err := e.cfg.validate(&req); err != nil {
		return View{}, err
	}
	sum := payloadSum(req.Participants)
	if req.ID != "" {
		if t := e.txns[req.ID]; t != nil {
			return e.resubmit(t, &req, sum, done)
		}
	}
	// A decided transaction no longer counts against InflightMax: its phase 2 may wait
	// for a participant that is gone, and must not keep new transactions out. It is
	// bounded apart (Phase2Max), for the memory it holds.
	if e.inflight-e.phase2 >= e.cfg.InflightMax {
		return View{}, fmt.Errorf("coordinator: %w (InflightMax=%d)", ErrBusy, e.cfg.InflightMax)
	}
	if e.phase2 >= e.cfg.Phase2Max {
		return View{}, fmt.Errorf("coordinator: %w: %d decided transactions wait for participants to acknowledge (Phase2Max)", ErrBusy, e.phase2)
	}
	id := req.ID
	for id == "" || e.txns[id] != nil {
		id = fmt.Sprintf("%016x%016x", e.env.Rand.Uint64(), e.env.Rand.Uint64())
	}
	urls := make([]string, len(req.Participants))
	for i, p := range req.Participants {
		urls[i] = p.URL
	}
	rec := &Record{
		Type:             RecBegin,
		Txn:              id,
		TxnID:            fmt.Sprintf("%s%c%016x", id, incarnationSep, e.env.Rand.Uint64()),
		TimeUnixMs:       now.UnixMilli(),
		Participants:     urls,
		PrepareTimeoutMs: req.PrepareTimeout.Milliseconds(),
		PayloadSum:       sum,
		Owner:            req.Owner,
		Priority:         Priority(now, id),
	}
	// The begin record may be lazy only if every participant asks about the
	// transactions it holds in doubt: then a begin lost in a crash is harmless, since no
	// decision can have been made durable after it, and each participant that prepared
	// learns "not found" (presumed abort) when it asks. A participant that never asks
	// would hold its prepared change for ever, so otherwise the begin is synced before
	// the first prepare leaves, and a restart finds the transaction and resolves it.
	lazy := e.askers.all(urls)
	if err := e.append(rec, !lazy); err != nil {
		return View{}, fmt.Errorf("coordinator: %w: %v", ErrLogUnavailable, err)
	}
	e.mustApply(rec)
	t := e.txns[id]
	t.began, t.prepareTimeout = now, req.PrepareTimeout // the record keeps milliseconds
	if done != nil {
		t.waiters = append(t.waiters, done)
	}
	e.observe(Note{Kind: NoteBegun, Txn: id, DurableBegin: !lazy})
	t.gen++
	e.env.Clock.SetTimer(req.PrepareTimeout, Timer{Kind: TimerDeadline, Txn: id, Gen: t.gen})
	t.payloads = make([]json.RawMessage, len(req.Participants))
	for i, p := range req.Participants {
		t.payloads[i] = p.Payload
	}
	if lazy {
		e.sendPrepares(t)
	} else {
		t.beginLSN = e.lsn
		e.waiting = append(e.waiting, lsnWait{lsn: e.lsn, txn: t})
	}
	return t.view(), nil
}

// sendPrepares sends every participant its prepare, in parallel. The deadline runs from
// Submit, so the time a synced begin takes counts against it.
func (e *Engine) sendPrepares(t *txn) {
	left := t.began.Add(t.prepareTimeout).Sub(e.env.Clock.Now())
	if left <= 0 {
		return // the deadline's timer is due and aborts it; nobody was asked anything
	}
	for i := range t.parts {
		e.seq++
		t.parts[i].seq = e.seq
		e.env.Transport.Send(Message{
			Kind: MsgPrepare, Txn: t.wire, Participant: i, URL: t.parts[i].url,
			Payload: t.payloads[i], Priority: t.priority, Seq: e.seq, Timeout: left,
		})
	}
	t.payloads = nil
}

// said words a participant's answer, or why there was none, for ParticipantView.LastSaid.
func said(r Reply) string {
	switch {
	case r.Err != nil:
		return "no answer: " + r.Err.Error()
	case r.Kind == MsgPrepare && r.Reason != "":
		return string(r.Vote) + ": " + r.Reason
	case r.Kind == MsgPrepare:
		return string(r.Vote)
	case r.Conflict:
		return "refused " + r.Kind.String() + ": " + string(r.State)
	case r.Reason != "":
		return string(r.State) + " (" + r.Reason + ")"
	}
	return string(r.State)
}

// resubmit answers a Submit whose client-chosen id is already known.
func (e *Engine) resubmit(t *txn, req *Request, sum string, done func(View)) (View, error) {
	if !t.sameRequest(req, sum) {
		return View{}, fmt.Errorf("coordinator: %w: %q", ErrConflict, t.id)
	}
	if err := e.await(t, done); err != nil {
		return View{}, err
	}
	return t.view(), nil
}

// await has done (if not nil) called with t's view once t's decision is durable: at
// once if it already is, else when it becomes so. ErrBusy if WaitersMax callers already
// wait on t.
func (e *Engine) await(t *txn, done func(View)) error {
	switch {
	case done == nil:
	case t.phase >= phPhase2:
		done(t.view())
	case len(t.waiters) >= e.cfg.WaitersMax:
		return fmt.Errorf("coordinator: %w: %d callers already wait on %q (WaitersMax)",
			ErrBusy, len(t.waiters), t.id)
	default:
		t.waiters = append(t.waiters, done)
	}
	return nil
}

// Get returns a transaction's view, by the client's id or by the id the participants see
// (View.TxnID). ErrNotFound means the engine has no record of it, which a participant in
// doubt may take as aborted: for a participant's id that names an incarnation other than
// the one the engine knows, that is the truth, since only one incarnation of a client id
// can ever have had a durable begin since it was last forgotten. While recovery runs, an
// id the engine does not know gets ErrRecovering instead, because it may yet learn of it.
func (e *Engine) Get(id string) (View, error) {
	if e.started {
		e.expire(e.env.Clock.Now())
	}
	if client, _, ok := SplitTxnID(id); ok {
		if t := e.txns[client]; t != nil && t.wire != id {
			return View{}, ErrNotFound
		}
		id = client
	}
	t := e.txns[id]
	if t == nil {
		if !e.Ready() {
			return View{}, ErrRecovering
		}
		return View{}, ErrNotFound
	}
	return t.view(), nil
}

// Step handles one event: a participant's reply, a timer, or the log's progress.
func (e *Engine) Step(ev Event) {
	if !e.started {
		panic("coordinator: Step before Start")
	}
	switch ev := ev.(type) {
	case Reply:
		e.onReply(ev)
	case TimerFired:
		e.onTimer(ev.Timer)
	case LogSynced:
		e.onSynced(ev.Through)
	default:
		panic(fmt.Sprintf("coordinator: unknown event %T", ev))
	}
}

func (e *Engine) onReply(r Reply) {
	t := e.byTxnID(r.Txn)
	if t == nil || r.Participant < 0 || r.Participant >= len(t.parts) {
		return
	}
	p := &t.parts[r.Participant]
	if p.seq == 0 || p.seq != r.Seq {
		return // a duplicate, or the answer to a request that no longer matters
	}
	p.seq = 0
	p.lastSaid, p.lastSaidAt = said(r), e.env.Clock.Now()
	if r.Err != nil {
		e.observe(Note{Kind: NoteSendFailed, Txn: t.id, URL: p.url, Msg: r.Kind, Reason: r.Err.Error()})
	} else {
		e.askers.learn(p.url, r.Asks)
	}
	switch r.Kind {
	case MsgPrepare:
		e.onVote(t, r)
	case MsgStatus:
		e.onStatus(t, r)
	case MsgCommit, MsgRollback:
		e.onPhase2(t, r)
	}
}

func (e *Engine) onVote(t *txn, r Reply) {
	if t.phase != phPreparing {
		return
	}
	p := &t.parts[r.Participant]
	p.votedAt = e.env.Clock.Now()
	switch {
	case r.Err != nil:
		p.vote, p.reason = VoteError, r.Err.Error()
	case r.Vote == VoteACK:
		p.vote = VoteACK
		for i := range t.parts {
			if t.parts[i].vote != VoteACK {
				return
			}
		}
		e.decide(t, Commit, CauseNone, "")
		return
	case r.Vote == VoteNACK:
		p.vote, p.reason = VoteNACK, r.Reason
	default:
		p.vote, p.reason = VoteError, fmt.Sprintf("unrecognised vote %q", r.Vote)
	}
	cause := CauseError
	if p.vote == VoteNACK {
		cause = CauseNACK
		if r.Cause == string(CauseConflict) {
			cause = CauseConflict
		}
	}
	e.decide(t, Abort, cause, fmt.Sprintf("%s voted %s: %s", p.url, p.vote, p.reason))
}

func (e *Engine) onStatus(t *txn, r Reply) {
	if t.phase != phQuerying {
		return
	}
	p := &t.parts[r.Participant]
	if r.Err != nil {
		e.retryLater(t, r.Participant)
		return
	}
	p.votedAt = e.env.Clock.Now()
	if r.State != PPrepared {
		// Not prepared, or cannot tell (no status endpoint): the transaction was never
		// answered, so rolling it back is safe, and phase 2 delivers the rollback.
		said := string(r.State)
		if r.Reason != "" {
			said += " (" + r.Reason + ")"
		}
		p.vote, p.reason = VoteNACK, "reports "+said+" after restart"
		e.decide(t, Abort, CauseRecovery, fmt.Sprintf("recovery: %s reports %s", p.url, said))
		return
	}
	p.vote = VoteACK
	for i := range t.parts {
		if t.parts[i].vote != VoteACK {
			return
		}
	}
	e.decide(t, Commit, CauseNone, "")
}

func (e *Engine) onPhase2(t *txn, r Reply) {
	if t.phase != phPhase2 {
		return
	}
	p := &t.parts[r.Participant]
	want := PCommitted
	if t.decision == Abort {
		want = PAborted
	}
	switch {
	case r.Err != nil:
		p.phase2Err = r.Err.Error()
		e.retryLater(t, r.Participant)
		return
	case r.Conflict || r.State != want:
		if r.State == "" || (!r.Conflict && r.State != PCommitted && r.State != PAborted) {
			p.phase2Err = fmt.Sprintf("unrecognised answer %q to %s", r.State, r.Kind)
			e.retryLater(t, r.Participant) // not an answer we understand: ask again
			return
		}
		p.answeredAt = e.env.Clock.Now()
		e.hazard(t, r.Participant, fmt.Sprintf("answered %s to %s", r.State, r.Kind))
	default:
		p.acked, p.answeredAt, p.phase2Err = true, e.env.Clock.Now(), ""
	}
	e.maybeEnd(t)
}

func (e *Engine) onTimer(tm Timer) {
	t := e.txns[tm.Txn]
	if t == nil {
		return
	}
	switch tm.Kind {
	case TimerDeadline:
		if tm.Gen != t.gen {
			return
		}
		switch t.phase {
		case phPreparing:
			late := t.timeOut("no vote before the deadline", e.env.Clock.Now())
			e.decide(t, Abort, CauseTimeout, fmt.Sprintf("prepare timed out after %v waiting for %v", t.prepareTimeout, late))
		case phQuerying:
			late := t.timeOut("no status before the recovery deadline", e.env.Clock.Now())
			e.decide(t, Abort, CauseRecovery, fmt.Sprintf("recovery: no status from %v within %v", late, e.cfg.RecoveryTimeout))
		}
	case TimerRetry:
		if tm.Participant < 0 || tm.Participant >= len(t.parts) {
			return
		}
		p := &t.parts[tm.Participant]
		if tm.Gen != p.gen || p.seq != 0 {
			return
		}
		switch {
		case t.phase == phQuerying && p.vote == VoteNone:
			e.send(t, tm.Participant, MsgStatus)
		case t.phase == phPhase2 && !p.finished():
			e.send(t, tm.Participant, t.phase2Kind())
		}
	case TimerLogRetry:
		if tm.Gen == t.gen && t.phase == phDeciding && t.decisionLSN == 0 {
			e.appendDecision(t)
		}
	}
}

func (e *Engine) onSynced(through uint64) {
	if through > e.lsn {
		panic(fmt.Sprintf("coordinator: log reports LSN %d durable, but only %d were appended", through, e.lsn))
	}
	if through <= e.synced {
		return
	}
	e.synced = through
	n := 0
	for n < len(e.waiting) && e.waiting[n].lsn <= through {
		w := e.waiting[n]
		e.waiting[n] = lsnWait{}
		n++
		t := w.txn
		if e.txns[t.id] != t {
			continue
		}
		switch {
		case t.phase == phDeciding && t.decisionLSN == w.lsn:
			e.decisionDurable(t)
		case t.phase == phPreparing && t.beginLSN == w.lsn:
			e.sendPrepares(t)
		}
	}
	e.waiting = e.waiting[n:]
}

// decide fixes the outcome in memory and appends it; nothing is told until it is durable.
func (e *Engine) decide(t *txn, d Decision, cause AbortCause, reason string) {
	if t.phase != phPreparing && t.phase != phQuerying {
		panic(fmt.Sprintf("coordinator: txn %s decided twice", t.id))
	}
	t.decision, t.cause, t.reason = d, cause, reason
	t.phase = phDeciding
	t.gen++ // the prepare or recovery deadline no longer matters
	for i := range t.parts {
		t.parts[i].seq = 0 // late votes and statuses are ignored from now on
	}
	e.appendDecision(t)
}

func (e *Engine) appendDecision(t *txn) {
	votes := make([]Vote, len(t.parts))
	for i := range t.parts {
		votes[i] = t.parts[i].vote
	}
	rec := &Record{
		Type: RecDecision, Txn: t.id, TimeUnixMs: e.env.Clock.Now().UnixMilli(),
		Decision: t.decision, Votes: votes, Reason: t.reason, Cause: t.cause,
	}
	if err := e.append(rec, true); err != nil {
		// Disk full or similar: the decision is not durable, so nobody may hear it. Try
		// again later; the participants stay prepared and ask, and are told to wait.
		e.observe(Note{Kind: NoteLogRefused, Txn: t.id, Reason: err.Error()})
		t.logRetries++
		e.env.Clock.SetTimer(e.backoff(t.logRetries), Timer{Kind: TimerLogRetry, Txn: t.id, Gen: t.gen})
		return
	}
	t.decisionLSN = e.lsn
	e.waiting = append(e.waiting, lsnWait{lsn: e.lsn, txn: t})
}

// decisionDurable tells the outcome: to the waiting clients and, through phase 2, to
// every participant.
func (e *Engine) decisionDurable(t *txn) {
	t.decided = e.env.Clock.Now()
	if t.recovered {
		e.recovering--
	}
	e.startPhase2(t)
	v := t.view()
	for _, w := range t.waiters {
		w(v)
	}
	t.waiters = nil
	e.observe(Note{Kind: NoteDecided, Txn: t.id, Commit: t.decision == Commit, Cause: t.cause, Reason: t.reason,
		Elapsed: t.decided.Sub(t.began), Recovered: t.recovered})
}

func (e *Engine) startPhase2(t *txn) {
	if t.phase != phPhase2 {
		e.phase2++
	}
	t.phase = phPhase2
	kind := t.phase2Kind()
	for i := range t.parts {
		if !t.parts[i].finished() {
			e.send(t, i, kind)
		}
	}
	e.maybeEnd(t)
}

func (e *Engine) hazard(t *txn, i int, what string) {
	p := &t.parts[i]
	p.hazard = what
	e.observe(Note{Kind: NoteHazard, Txn: t.id, URL: p.url, Reason: what})
	idx := i
	rec := &Record{Type: RecHazard, Txn: t.id, TimeUnixMs: e.env.Clock.Now().UnixMilli(), Participant: &idx, Hazard: what}
	if err := e.append(rec, false); err != nil {
		e.observe(Note{Kind: NoteLogRefused, Txn: t.id, Reason: err.Error()})
	}
}

func (e *Engine) maybeEnd(t *txn) { e.end(t, false) }

// end ends t if every participant is finished. The end record is lazy unless sync.
func (e *Engine) end(t *txn, sync bool) {
	for i := range t.parts {
		if !t.parts[i].finished() {
			return
		}
	}
	now := e.env.Clock.Now()
	rec := &Record{Type: RecEnd, Txn: t.id, TimeUnixMs: now.UnixMilli()}
	// The end record may be lazy and may be refused: if it is lost, a restart resumes
	// phase 2 for this transaction, which is harmless because phase 2 is idempotent.
	if err := e.append(rec, sync); err != nil {
		e.observe(Note{Kind: NoteLogRefused, Txn: t.id, Reason: err.Error()})
	}
	e.mustApply(rec)
	e.observe(Note{Kind: NoteEnded, Txn: t.id, Elapsed: now.Sub(t.began), Recovered: t.recovered})
}

// Forget ends a decided transaction whose phase 2 cannot finish, because a participant
// is gone for good: an operator's call, made with a reason. Each participant that has
// not acknowledged gets a hazard, "forgotten by an operator: reason" (a heuristic
// outcome: it may never learn the decision, and the API and the metrics show it), and
// the transaction ends: its records go to the log, the end synced, and nothing more is
// sent to anyone. Forgetting a transaction that is done already changes nothing. An
// undecided one cannot be forgotten (ErrUndecided): it is aborted by its deadline.
func (e *Engine) Forget(id, reason string) (View, error) {
	if !e.Ready() {
		return View{}, ErrRecovering
	}
	if client, _, ok := SplitTxnID(id); ok {
		id = client
	}
	t := e.txns[id]
	switch {
	case t == nil:
		return View{}, ErrNotFound
	case t.phase == phDone:
		return t.view(), nil
	case t.phase != phPhase2:
		return View{}, fmt.Errorf("coordinator: %w: %q is %s", ErrUndecided, id, t.state())
	}
	if reason == "" {
		reason = "no reason given"
	}
	for i := range t.parts {
		p := &t.parts[i]
		if !p.finished() {
			p.seq = 0 // its answer, if one comes, no longer matters
			e.hazard(t, i, "forgotten by an operator: "+reason)
		}
	}
	e.end(t, true)
	return t.view(), nil
}

// Abort aborts a transaction that is not decided yet, with cause and reason: a client
// cancelling it (CauseClient), an older transaction wounding it (CauseWound), the
// deadlock detector choosing it as a victim (CauseDeadlock). A decided transaction is
// never changed, so Abort is idempotent: a second call, or one that comes after the
// commit, changes nothing and answers the outcome. id is the client's id or the one the
// participants see. On success done (if not nil) is called exactly once, with the view,
// once the decision is durable — at once when it already is. The returned view is the
// transaction as it stands now (aborting, or its outcome). ErrNotFound for an unknown
// id, ErrRecovering while the engine is not ready.
func (e *Engine) Abort(id string, cause AbortCause, reason string, done func(View)) (View, error) {
	if !e.Ready() {
		return View{}, ErrRecovering
	}
	if cause == CauseNone {
		panic("coordinator: Abort without a cause")
	}
	if client, _, ok := SplitTxnID(id); ok {
		if t := e.txns[client]; t != nil && t.wire != id {
			return View{}, ErrNotFound // another incarnation: never begun, as far as this one goes
		}
		id = client
	}
	t := e.txns[id]
	if t == nil {
		return View{}, ErrNotFound
	}
	if err := e.await(t, done); err != nil {
		return View{}, err
	}
	if t.phase == phPreparing || t.phase == phQuerying {
		if reason == "" {
			reason = "no reason given"
		}
		// Nobody voted what is left: their prepares' answers no longer matter.
		e.decide(t, Abort, cause, fmt.Sprintf("aborted (%s): %s", cause, reason))
	}
	return t.view(), nil
}

// retryLater schedules another phase-2 or status request to participant i.
func (e *Engine) retryLater(t *txn, i int) {
	p := &t.parts[i]
	p.attempts++
	p.gen++
	e.env.Clock.SetTimer(e.backoff(p.attempts), Timer{Kind: TimerRetry, Txn: t.id, Participant: i, Gen: p.gen})
}

func (e *Engine) send(t *txn, i int, kind MsgKind) {
	p := &t.parts[i]
	e.seq++
	p.seq = e.seq
	if kind == MsgCommit || kind == MsgRollback {
		p.phase2Sent++
	}
	e.env.Transport.Send(Message{Kind: kind, Txn: t.wire, Participant: i, URL: p.url, Seq: e.seq, Timeout: e.cfg.RequestTimeout})
}

// backoff is capped exponential backoff with jitter: a random duration in [d/2, d], where
// d doubles from RetryBackoffMin with each attempt up to RetryBackoffMax.
func (e *Engine) backoff(attempt int) time.Duration {
	d := e.cfg.RetryBackoffMin
	for i := 1; i < attempt && d < e.cfg.RetryBackoffMax; i++ {
		d *= 2
	}
	d = min(d, e.cfg.RetryBackoffMax)
	half := d / 2
	return half + time.Duration(e.env.Rand.Uint64()%uint64(half+1))
}

func (e *Engine) append(rec *Record, sync bool) error {
	if err := e.env.Log.Append(rec, sync); err != nil {
		return err
	}
	e.lsn++
	return nil
}

// expire forgets finished transactions whose id reservation has passed, oldest first,
// and any beyond DoneMax.
func (e *Engine) expire(now time.Time) {
	for e.doneHead < len(e.doneIDs) {
		id := e.doneIDs[e.doneHead]
		t := e.txns[id]
		if t != nil && t.phase == phDone {
			if len(e.doneIDs)-e.doneHead <= e.cfg.DoneMax && now.Sub(t.ended) < e.cfg.DoneRetention {
				break // the oldest is still remembered, so are the others
			}
			delete(e.txns, id)
		}
		e.doneIDs[e.doneHead] = ""
		e.doneHead++
	}
	// Compact the queue once its dead head dominates, so memory stays proportional to
	// what is remembered.
	if e.doneHead > 1024 && e.doneHead*2 > len(e.doneIDs) {
		e.doneIDs = append([]string(nil), e.doneIDs[e.doneHead:]...)
		e.doneHead = 0
	}
}

// byTxnID finds a transaction by the id its participants see.
func (e *Engine) byTxnID(txnID string) *txn {
	client, _, _ := SplitTxnID(txnID)
	if t := e.txns[client]; t != nil && t.wire == txnID {
		return t
	}
	return nil
}

func (e *Engine) observe(n Note) {
	if e.env.Observer != nil {
		e.env.Observer.Observe(n)
	}
}
