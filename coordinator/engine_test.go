package coordinator

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

const (
	pA = "http://a.test/prepare"
	pB = "http://b.test/prepare"
	pC = "http://c.test/prepare"
)

func wantTypes(t *testing.T, w *world, want ...string) {
	t.Helper()
	if got := w.recordTypes(); !slices.Equal(got, want) {
		t.Fatalf("log records:\n got %v\nwant %v", got, want)
	}
}

func wantState(t *testing.T, w *world, id, state string) View {
	t.Helper()
	v, err := w.e.Get(id)
	if err != nil {
		t.Fatalf("get %s: %v", id, err)
	}
	if v.State != state {
		t.Fatalf("txn %s: state %s, want %s (%+v)", id, v.State, state, v)
	}
	return v
}

// The happy path, step by step: nobody hears "committed" before the decision is durable.
func TestCommitWaitsForDurableDecision(t *testing.T) {
	w := newWorld(t, 1)
	id := w.mustSubmit("t1", pA, pB)
	if len(w.net) != 2 || w.net[0].Kind != MsgPrepare || w.net[1].Kind != MsgPrepare {
		t.Fatalf("want two prepares in flight, got %+v", w.net)
	}
	w.deliverAll()
	wantState(t, w, id, StateCommitting)
	wantTypes(t, w, "begin", "decision:commit")
	if len(w.net) != 0 || len(w.told) != 0 {
		t.Fatalf("told before the decision was durable: net=%v told=%v", w.net, w.told)
	}
	w.sync()
	if w.told[w.wire(id)] != StateCommitted || len(w.net) != 2 || w.net[0].Kind != MsgCommit {
		t.Fatalf("after sync: told=%v net=%+v", w.told, w.net)
	}
	wantState(t, w, id, StateCommitted)
	w.deliverAll()
	v := wantState(t, w, id, StateCommitted)
	if !v.PhaseTwoDone || v.EndedAt == nil {
		t.Fatalf("phase 2 should be done: %+v", v)
	}
	wantTypes(t, w, "begin", "decision:commit", "end")
	if w.e.Stats().Inflight != 0 {
		t.Fatalf("stats: %+v", w.e.Stats())
	}
	w.checkAtomic(id)
}

func TestNackAbortsEverywhere(t *testing.T) {
	w := newWorld(t, 1)
	w.part(pB).nack = true
	id := w.mustSubmit("t1", pA, pB, pC)
	w.deliver(1) // B says NACK first: abort at once, without waiting for the others
	wantState(t, w, id, StateAborting)
	w.settle()
	v := wantState(t, w, id, StateAborted)
	if !strings.Contains(v.Reason, "insufficient funds") || v.Participants[1].Vote != VoteNACK {
		t.Fatalf("abort reason should name the NACK: %+v", v)
	}
	if c := decidedCause(w, id); c != CauseNACK {
		t.Fatalf("abort cause %q, want nack", c)
	}
	for _, u := range []string{pA, pB, pC} {
		if st := w.part(u).state[w.wire(id)]; st != PAborted {
			t.Fatalf("%s: %s, want aborted", u, st)
		}
	}
	w.checkAtomic(id)
}

func TestPrepareErrorAborts(t *testing.T) {
	w := newWorld(t, 1)
	id := w.mustSubmit("t1", pA, pB)
	w.fail(0)
	w.settle()
	v := wantState(t, w, id, StateAborted)
	if v.Participants[0].Vote != VoteError {
		t.Fatalf("vote should be ERROR: %+v", v.Participants[0])
	}
	w.checkAtomic(id)
}

func TestPrepareTimeoutAbortsAndIgnoresLateVote(t *testing.T) {
	w := newWorld(t, 1)
	id := w.mustSubmit("t1", pA, pB)
	w.deliver(0)                    // A votes ACK
	late := w.net[0]                // B's prepare is stuck in the network
	w.net = nil                     //
	w.advance(w.cfg.PrepareTimeout) // the deadline passes
	wantState(t, w, id, StateAborting)
	w.sync()
	v := wantState(t, w, id, StateAborted)
	if v.Participants[1].Vote != VoteTimeout || !strings.Contains(v.Reason, "timed out") {
		t.Fatalf("want TIMEOUT: %+v", v)
	}
	if c := decidedCause(w, id); c != CauseTimeout {
		t.Fatalf("abort cause %q, want timeout", c)
	}
	// The late prepare arrives after the rollback: the participant fences it.
	w.deliverAll()
	if r := w.part(pB).handle(late); r.Vote != VoteNACK {
		t.Fatalf("late prepare after rollback should be NACKed, got %+v", r)
	}
	// And its answer, had it come, changes nothing.
	w.e.Step(Reply{Txn: id, Participant: 1, Seq: late.Seq, Kind: MsgPrepare, Vote: VoteACK})
	wantState(t, w, id, StateAborted)
	w.settle()
	w.checkAtomic(id)
}

func TestPerTransactionPrepareTimeout(t *testing.T) {
	w := newWorld(t, 1)
	req := Request{ID: "slow", PrepareTimeout: 5 * time.Second, Participants: []ParticipantSpec{{URL: pA}}}
	if _, err := w.e.Submit(req, nil); err != nil {
		t.Fatal(err)
	}
	if w.net[0].Timeout != 5*time.Second {
		t.Fatalf("prepare should carry the transaction's timeout: %v", w.net[0].Timeout)
	}
	w.net = nil
	w.advance(w.cfg.PrepareTimeout) // the default passes: still preparing
	wantState(t, w, "slow", StatePreparing)
	w.advance(4 * time.Second)
	wantState(t, w, "slow", StateAborting)
}

func TestDuplicateAndStaleRepliesAreIgnored(t *testing.T) {
	w := newWorld(t, 1)
	id := w.mustSubmit("t1", pA, pB)
	m := w.net[0]
	w.deliver(0)
	r := w.part(pA).handle(m)
	w.e.Step(r)                                                                          // the same answer again
	w.e.Step(Reply{Txn: id, Participant: 1, Seq: 999, Kind: MsgPrepare, Vote: VoteNACK}) // not ours
	w.e.Step(Reply{Txn: "nope", Participant: 0, Seq: 1, Kind: MsgPrepare, Vote: VoteNACK})
	w.e.Step(Reply{Txn: id, Participant: 7, Seq: 1, Kind: MsgPrepare, Vote: VoteNACK})
	wantState(t, w, id, StatePreparing)
	w.settle()
	wantState(t, w, id, StateCommitted)
	w.checkAtomic(id)
}

// Phase 2 is retried with growing backoff until the participant answers.
func TestPhase2RetriedUntilAcknowledged(t *testing.T) {
	w := newWorld(t, 1)
	id := w.mustSubmit("t1", pA, pB)
	w.deliverAll()
	w.sync()
	var gaps []time.Duration
	for i := 0; i < 8; i++ {
		// B is down: its commit fails each time.
		for j := range w.net {
			if w.net[j].URL == pB {
				w.fail(j)
				break
			}
		}
		w.deliverAll()
		start := w.now
		for len(w.net) == 0 {
			w.advance(10 * time.Millisecond)
		}
		gaps = append(gaps, w.now.Sub(start))
	}
	v := wantState(t, w, id, StateCommitted)
	if v.PhaseTwoDone || !v.Participants[0].Acked || v.Participants[1].Acked {
		t.Fatalf("only A should have acknowledged: %+v", v)
	}
	for i, g := range gaps {
		if g < w.cfg.RetryBackoffMin/2 || g > w.cfg.RetryBackoffMax+10*time.Millisecond {
			t.Fatalf("retry %d after %v, outside [%v/2, %v]", i, g, w.cfg.RetryBackoffMin, w.cfg.RetryBackoffMax)
		}
	}
	if gaps[len(gaps)-1] < 4*w.cfg.RetryBackoffMin {
		t.Fatalf("backoff did not grow: %v", gaps)
	}
	w.deliverAll() // B is back
	v = wantState(t, w, id, StateCommitted)
	if !v.PhaseTwoDone {
		t.Fatalf("phase 2 should be done: %+v", v)
	}
	w.checkAtomic(id)
}

// A participant that contradicts the decision is a heuristic hazard: recorded, shown,
// and not retried.
func TestHeuristicHazardIsRecorded(t *testing.T) {
	w := newWorld(t, 1)
	id := w.mustSubmit("t1", pA, pB)
	w.deliverAll()
	w.part(pB).state[w.wire(id)] = PAborted // B lost its prepared state and rolled back on its own
	w.sync()
	w.deliverAll()
	v := wantState(t, w, id, StateCommitted)
	if !v.Hazard || v.Participants[1].Hazard == "" || !v.PhaseTwoDone {
		t.Fatalf("want a recorded hazard: %+v", v)
	}
	if len(w.net) != 0 {
		t.Fatalf("a hazard must not be retried: %+v", w.net)
	}
	got, _, err := w.e.List(FilterHeuristic, "", 10)
	if err != nil || len(got) != 1 || got[0].ID != id {
		t.Fatalf("list heuristic: %v %v", got, err)
	}
	wantTypes(t, w, "begin", "decision:commit", "hazard", "end")
	// The hazard survives a restart.
	w.sync()
	w.crash(false)
	if v := wantState(t, w, id, StateCommitted); !v.Hazard {
		t.Fatalf("hazard lost in restart: %+v", v)
	}
	if !hasNote(w, NoteHazard, id) {
		t.Fatal("no hazard note")
	}
}

func decidedCause(w *world, id string) AbortCause {
	for _, n := range w.notes {
		if n.Kind == NoteDecided && n.Txn == id {
			return n.Cause
		}
	}
	return "no NoteDecided"
}

func hasNote(w *world, k NoteKind, id string) bool {
	for _, n := range w.notes {
		if n.Kind == k && n.Txn == id {
			return true
		}
	}
	return false
}

func TestClientChosenIDIsIdempotent(t *testing.T) {
	w := newWorld(t, 1)
	id := w.mustSubmit("order-42", pA, pB)
	var second View
	if _, err := w.e.Submit(Request{ID: id, Participants: []ParticipantSpec{{URL: pA, Payload: []byte(`{"x":1}`)}, {URL: pB, Payload: []byte(`{"x":1}`)}}},
		func(v View) { second = v }); err != nil {
		t.Fatalf("resubmit: %v", err)
	}
	if len(w.net) != 2 {
		t.Fatalf("a resubmission must not prepare again: %d messages", len(w.net))
	}
	_, err := w.submit(id, pA, pC)
	if !errors.Is(err, ErrConflict) {
		t.Fatalf("same id, other participants: want ErrConflict, got %v", err)
	}
	_, err = w.e.Submit(Request{ID: id, Participants: []ParticipantSpec{{URL: pA, Payload: []byte(`{"x":2}`)}, {URL: pB, Payload: []byte(`{"x":1}`)}}}, nil)
	if !errors.Is(err, ErrConflict) {
		t.Fatalf("same id, other payload: want ErrConflict, got %v", err)
	}
	w.settle()
	if second.State != StateCommitted {
		t.Fatalf("the second caller should hear the outcome too: %+v", second)
	}
	// Once done, the same id answers at once with the outcome, and stays reserved.
	var third View
	if _, err := w.e.Submit(Request{ID: id, Participants: []ParticipantSpec{{URL: pA, Payload: []byte(`{"x":1}`)}, {URL: pB, Payload: []byte(`{"x":1}`)}}},
		func(v View) { third = v }); err != nil || third.State != StateCommitted {
		t.Fatalf("resubmit after done: %v %+v", err, third)
	}
	// After the reservation window it is forgotten: not found, presumed aborted.
	w.advance(w.cfg.DoneRetention)
	if _, err := w.e.Get(id); !errors.Is(err, ErrNotFound) {
		t.Fatalf("after DoneRetention: want ErrNotFound, got %v", err)
	}
}

func TestUnknownIDIsNotFound(t *testing.T) {
	w := newWorld(t, 1)
	if _, err := w.e.Get("never"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("want ErrNotFound, got %v", err)
	}
}

func TestInflightBound(t *testing.T) {
	w := newWorld(t, 1)
	w.cfg.InflightMax = 2
	w.crash(false)
	w.mustSubmit("", pA)
	w.mustSubmit("", pA)
	_, err := w.submit("", pA)
	if !errors.Is(err, ErrBusy) || !strings.Contains(err.Error(), "InflightMax") {
		t.Fatalf("want ErrBusy naming InflightMax, got %v", err)
	}
	if len(w.log.recs) != 2 {
		t.Fatalf("a refused submit must not reach the log: %v", w.recordTypes())
	}
	w.settle()
	w.mustSubmit("", pA) // room again
}

func TestDoneMaxBoundsMemory(t *testing.T) {
	w := newWorld(t, 1)
	w.cfg.DoneMax = 3
	w.crash(false)
	for i := 0; i < 10; i++ {
		w.mustSubmit("", pA)
		w.settle()
	}
	if s := w.e.Stats(); s.Remembered > 4 || len(w.e.txns) > 4 {
		t.Fatalf("remembered %d transactions, DoneMax is 3", s.Remembered)
	}
}

// The queue of finished transactions, oldest first, shrinks as they are forgotten.
// It used to grow by one entry (16 bytes) per transaction forever: expire returned from
// its loop at the first transaction still remembered, before it could compact the queue;
// a two-minute soak of dtc bench showed the live heap growing ~24 bytes per transaction.
func TestForgettingBoundsTheDoneQueue(t *testing.T) {
	for _, c := range []struct {
		name      string
		retention time.Duration
		doneMax   int
	}{
		{"by retention", time.Second, 1 << 20}, // 1,000 remembered at one per ms
		{"by DoneMax", time.Hour, 1000},
	} {
		t.Run(c.name, func(t *testing.T) {
			env := &benchEnv{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
			cfg := DefaultConfig()
			cfg.DoneRetention, cfg.DoneMax = c.retention, c.doneMax
			e, err := New(cfg, Env{Clock: env, Transport: env, Log: env, Rand: env})
			if err != nil {
				t.Fatal(err)
			}
			e.Start()
			req := Request{Participants: []ParticipantSpec{{URL: "http://127.0.0.1:9001/prepare"}}}
			for i := range 50_000 {
				req.ID = fmt.Sprintf("t%d", i)
				if err := env.commit(e, req, nil); err != nil {
					t.Fatal(err)
				}
				env.now = env.now.Add(time.Millisecond)
			}
			// Compaction keeps the queue within about twice what is remembered (or
			// 1,024), and append within twice that.
			if n := len(e.txns); n < 900 || n > 1001 {
				t.Fatalf("%d transactions remembered, want about 1,000", n)
			}
			if c := cap(e.doneIDs); c > 4*2048 {
				t.Fatalf("done queue of capacity %d (length %d, head %d) for %d remembered transactions",
					c, len(e.doneIDs), e.doneHead, len(e.txns))
			}
		})
	}
}

// When the log refuses the decision (disk full), nobody is told anything; the decision is
// appended again later.
func TestDecisionRefusedByLogIsRetried(t *testing.T) {
	w := newWorld(t, 1)
	id := w.mustSubmit("t1", pA)
	w.log.refuse = errors.New("no space left on device")
	w.deliverAll()
	wantState(t, w, id, StateCommitting)
	w.advance(w.cfg.RetryBackoffMax)
	wantState(t, w, id, StateCommitting)
	if len(w.told) != 0 || len(w.net) != 0 {
		t.Fatal("told while the decision is not on disk")
	}
	if !hasNote(w, NoteLogRefused, id) {
		t.Fatal("no note of the refused write")
	}
	w.log.refuse = nil
	w.advance(w.cfg.RetryBackoffMax)
	w.settle()
	wantState(t, w, id, StateCommitted)
	w.checkAtomic(id)
}

func TestBeginRefusedByLogRejectsSubmit(t *testing.T) {
	w := newWorld(t, 1)
	w.log.refuse = errors.New("no space left on device")
	if _, err := w.submit("", pA); !errors.Is(err, ErrLogUnavailable) {
		t.Fatalf("want ErrLogUnavailable, got %v", err)
	}
	if len(w.net) != 0 {
		t.Fatal("prepare sent for a transaction that was refused")
	}
}

func TestListPaginates(t *testing.T) {
	w := newWorld(t, 1)
	for _, id := range []string{"c", "a", "d", "b"} {
		w.mustSubmit(id, pA)
	}
	page, next, err := w.e.List(StatePreparing, "", 3)
	if err != nil || len(page) != 3 || page[0].ID != "a" || next != "c" {
		t.Fatalf("page 1: %v %q %v", page, next, err)
	}
	page, next, _ = w.e.List(StatePreparing, next, 3)
	if len(page) != 1 || page[0].ID != "d" || next != "" {
		t.Fatalf("page 2: %v %q", page, next)
	}
	if _, _, err := w.e.List("bogus", "", 3); err == nil {
		t.Fatal("unknown filter accepted")
	}
}

// The API client that began a transaction is kept with it, through a restart (begin
// record) and a checkpoint (snapshot), and a client-chosen id is not another owner's to
// resubmit.
func TestOwnerIsKeptAndGuardsTheID(t *testing.T) {
	w := newWorld(t, 1)
	req := func(owner string) Request {
		return Request{ID: "order-7", Owner: owner, Participants: []ParticipantSpec{{URL: pA}, {URL: pB}}}
	}
	v, err := w.e.Submit(req("alice"), nil)
	if err != nil || v.Owner != "alice" {
		t.Fatalf("submit: %v, owner %q", err, v.Owner)
	}
	if _, err := w.e.Submit(req("mallory"), nil); !errors.Is(err, ErrConflict) {
		t.Fatalf("another owner's resubmission: want ErrConflict, got %v", err)
	}
	if _, err := w.e.Submit(req("alice"), nil); err != nil {
		t.Fatalf("the owner's resubmission: %v", err)
	}
	w.sync()
	w.crash(false)
	if v := wantState(t, w, "order-7", StatePreparing); v.Owner != "alice" {
		t.Fatalf("after replaying the begin record: owner %q", v.Owner)
	}
	if err := w.e.Checkpoint(); err != nil {
		t.Fatal(err)
	}
	w.sync()
	for i, r := range w.log.recs {
		if r.Type == RecCheckpoint && r.Bracket == "begin" {
			w.log.recs = w.log.recs[i:]
			break
		}
	}
	w.log.durable = len(w.log.recs)
	w.crash(false)
	v, err = w.e.Get("order-7")
	if err != nil || v.Owner != "alice" {
		t.Fatalf("after replaying the snapshot: %v, owner %q", err, v.Owner)
	}
}

// A transaction's view tells its story with the engine's clock: when each vote was
// counted, when the decision became durable, how many phase-2 requests each
// participant got, why the failed one failed, and when each acknowledged.
func TestViewTimesVotesAndPhaseTwo(t *testing.T) {
	w := newWorld(t, 1)
	t0 := w.now
	id := w.mustSubmit("t1", pA, pB)
	w.now = t0.Add(10 * time.Millisecond)
	w.deliver(0) // A votes at +10ms
	w.now = t0.Add(30 * time.Millisecond)
	w.deliver(0) // B votes at +30ms
	w.now = t0.Add(35 * time.Millisecond)
	w.sync() // the decision is durable at +35ms; commits go out
	v := wantState(t, w, id, StateCommitted)
	at := func(d time.Duration) time.Time { return t0.Add(d).UTC() }
	if p := v.Participants; p[0].VotedAt == nil || !p[0].VotedAt.Equal(at(10*time.Millisecond)) ||
		p[1].VotedAt == nil || !p[1].VotedAt.Equal(at(30*time.Millisecond)) {
		t.Fatalf("vote times: %+v", p)
	}
	if v.DecidedAt == nil || !v.DecidedAt.Equal(at(35*time.Millisecond)) {
		t.Fatalf("decided_at %v, want %v", v.DecidedAt, at(35*time.Millisecond))
	}
	if p := v.Participants; p[0].Phase2Requests != 1 || p[0].AnsweredAt != nil {
		t.Fatalf("after the commits went out: %+v", p[0])
	}
	w.now = t0.Add(40 * time.Millisecond)
	w.fail(0) // A's commit fails
	v = wantState(t, w, id, StateCommitted)
	if p := v.Participants[0]; p.Phase2Error != "connection refused" || p.Acked {
		t.Fatalf("after a failed commit: %+v", p)
	}
	w.now = t0.Add(50 * time.Millisecond)
	w.deliver(0) // B acknowledges at +50ms
	w.advance(w.cfg.RetryBackoffMax)
	ackAt := w.now
	w.deliver(0) // A's retry is acknowledged
	v = wantState(t, w, id, StateCommitted)
	a, b := v.Participants[0], v.Participants[1]
	if a.Phase2Requests != 2 || !a.Acked || a.Phase2Error != "" || a.AnsweredAt == nil || !a.AnsweredAt.Equal(ackAt.UTC()) {
		t.Fatalf("A after its retry: %+v", a)
	}
	if b.Phase2Requests != 1 || b.AnsweredAt == nil || !b.AnsweredAt.Equal(at(50*time.Millisecond)) {
		t.Fatalf("B: %+v", b)
	}
}

// A participant that gives no vote before the deadline is TIMEOUT at the deadline.
func TestViewTimesTheDeadline(t *testing.T) {
	w := newWorld(t, 1)
	t0 := w.now
	id := w.mustSubmit("t1", pA)
	w.advance(w.cfg.PrepareTimeout)
	w.sync()
	v := wantState(t, w, id, StateAborted)
	if p := v.Participants[0]; p.Vote != VoteTimeout || p.VotedAt == nil || !p.VotedAt.Equal(t0.Add(w.cfg.PrepareTimeout).UTC()) {
		t.Fatalf("timed-out participant: %+v", p)
	}
}

// Stats says when the oldest in-flight and undecided transactions began.
func TestStatsOldest(t *testing.T) {
	w := newWorld(t, 1)
	if s := w.e.Stats(); !s.OldestInflight.IsZero() || !s.OldestUndecided.IsZero() {
		t.Fatalf("empty engine: %+v", s)
	}
	t0 := w.now
	w.mustSubmit("t1", pA)
	w.now = t0.Add(time.Second)
	w.mustSubmit("t2", pB)
	if s := w.e.Stats(); !s.OldestInflight.Equal(t0) || !s.OldestUndecided.Equal(t0) {
		t.Fatalf("two preparing: %+v, want both %v", s, t0)
	}
	w.deliver(0) // t1's vote: decided, then durable; its commit goes out
	w.sync()
	if s := w.e.Stats(); !s.OldestInflight.Equal(t0) || !s.OldestUndecided.Equal(t0.Add(time.Second)) {
		t.Fatalf("t1 in phase 2: %+v", s)
	}
	w.settle()
	if s := w.e.Stats(); !s.OldestInflight.IsZero() || !s.OldestUndecided.IsZero() {
		t.Fatalf("all done: %+v", s)
	}
}

// An idle engine writes no checkpoints: when nothing was appended since the last one,
// Checkpoint writes nothing; once something is, it checkpoints again. A checkpoint the
// log refused halfway is not mistaken for a completed one.
func TestIdleEngineWritesNoCheckpoints(t *testing.T) {
	w := newWorld(t, 1)
	w.mustSubmit("t1", pA, pB)
	w.sync()
	checkpoint := func() int {
		t.Helper()
		before := len(w.log.recs)
		if err := w.e.Checkpoint(); err != nil {
			t.Fatal(err)
		}
		w.sync()
		return len(w.log.recs) - before
	}
	if n := checkpoint(); n != 3 { // begin, the snapshot of t1, end
		t.Fatalf("first checkpoint wrote %d records, want 3", n)
	}
	for i := range 5 {
		if n := checkpoint(); n != 0 {
			t.Fatalf("idle checkpoint %d wrote %d records, want none", i, n)
		}
	}
	w.mustSubmit("t2", pA)
	w.sync()
	if n := checkpoint(); n != 4 {
		t.Fatalf("checkpoint after a new transaction wrote %d records, want 4", n)
	}
	w.mustSubmit("t3", pA)
	w.sync()
	w.log.refuse = errors.New("disk full")
	if err := w.e.Checkpoint(); err == nil {
		t.Fatal("a refused checkpoint reported success")
	}
	w.log.refuse = nil
	if n := checkpoint(); n != 5 {
		t.Fatalf("checkpoint after a refused one wrote %d records, want 5", n)
	}
}
