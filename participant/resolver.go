package participant

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/dtc-project/dtc/protocol"
)

// ResolverOptions configure a Resolver.
type ResolverOptions struct {
	// Coordinator is the base URL asked about in-doubt transactions whose prepare named
	// no coordinator, e.g. "http://127.0.0.1:7070". Optional.
	Coordinator string
	// Client makes the queries. Default: a client with no timeout of its own (each
	// query has QueryTimeout).
	Client *http.Client
	// Clock says when a transaction is in doubt. Default SystemClock.
	Clock Clock
	// Interval is the time between two rounds of Run. Default 5s.
	Interval time.Duration
	// QueryTimeout bounds one query to the coordinator. Default 5s.
	QueryTimeout time.Duration
	// QueriesPerRoundMax bounds the queries of one round; the next round goes on
	// where it stopped. Default 64.
	QueriesPerRoundMax int
	// ConcurrencyMax bounds the queries in flight at once. Default 4.
	ConcurrencyMax int
	// ResponseMaxBytes bounds a coordinator answer. Default 1 MiB.
	ResponseMaxBytes int64
	// Logger: default slog.Default().
	Logger *slog.Logger
	// BearerToken, if set, is sent as "Authorization: Bearer …" with every query, for a
	// coordinator whose API asks for one (a token allowed to read transactions). A
	// coordinator that does not ask ignores it.
	BearerToken string
	// ParticipantURL is this participant's prepare URL as its coordinators know it,
	// sent with the lock waits it reports (POST /v1/waits). Optional.
	ParticipantURL string
	// WaitReportInterval is how often a lock wait still going on is reported again
	// (at most 1s, the coordinator's expectation). Default 1s.
	WaitReportInterval time.Duration
}

// Resolver finds transactions left in doubt (prepared longer than
// Config.InDoubtAfter: the coordinator's phase 2 has not reached this participant) and
// asks their coordinator, GET {coordinator}/v1/transactions/{id}, and acts on the
// answer by the protocol's rule (protocol.InDoubtVerdict):
//
//	200 "state":"committed"             → commit
//	200 "state":"aborted"               → rollback
//	404 with code "not_found"           → presumed abort: rollback
//	anything else (503, a state still in
//	progress, an error, any other 404)  → ask again in a later round
//
// A 404 must carry the coordinator's JSON error with code "not_found": a bare 404 from a
// misconfigured URL, or the coordinator's "no_route" for a wrong path, must not roll back
// a transaction the real coordinator may have committed.
type Resolver struct {
	p   *Participant
	o   ResolverOptions
	log *slog.Logger

	roundMu sync.Mutex // one round at a time
	next    int        // where the next round starts in the in-doubt list

	mu    sync.Mutex
	track map[string]*inDoubtTrack // by txn id: those in doubt at the last round; at most Config.PreparedMax
	stats ResolverStats
}

// inDoubtTrack is what the resolver knows about one in-doubt transaction's queries.
type inDoubtTrack struct {
	attempts         int
	unreachable      bool      // the last query got no usable answer
	unreachableSince time.Time // first of the queries in a row without one
	lastErr          string
}

// ResolverStats count the resolver's work, for monitoring: a transaction whose
// coordinator cannot be reached shows in CoordinatorUnreachable (and in its status
// answer, see HandlerOptions.Resolver) until it is resolved.
type ResolverStats struct {
	Rounds      uint64 `json:"rounds"`       // rounds run
	Attempts    uint64 `json:"attempts"`     // queries to a coordinator (or attempts without one to ask)
	Resolved    uint64 `json:"resolved"`     // transactions committed or rolled back on the coordinator's answer
	Pending     uint64 `json:"pending"`      // answers "still in progress"
	Unreachable uint64 `json:"unreachable"`  // attempts without a usable answer: no coordinator known, connection error, timeout, a status other than 200 or the coordinator's 404
	Conflicts   uint64 `json:"conflicts"`    // answers contradicting this participant's state (heuristic hazards)
	WaitReports uint64 `json:"wait_reports"` // lock waits reported (POST /v1/waits), answered 202
	Wounds      uint64 `json:"wounds"`       // aborts asked for younger holders (wound-wait), answered 200
	ReportFails uint64 `json:"report_fails"` // wait reports and wounds without that answer
	// ReportsQueued counts wait reports that found ConcurrencyMax in flight and waited
	// for one to end (not for the next interval).
	ReportsQueued uint64 `json:"reports_queued"`
	// InDoubt is the number of transactions in doubt at the last round, and
	// CoordinatorUnreachable those of them whose last query got no usable answer.
	InDoubt                int `json:"in_doubt"`
	CoordinatorUnreachable int `json:"coordinator_unreachable"`
}

// InDoubtReport is what the resolver knows about one transaction in doubt.
type InDoubtReport struct {
	Attempts               int       // queries so far
	CoordinatorUnreachable bool      // the last one got no usable answer
	UnreachableSince       time.Time // when the queries without an answer began; zero if reachable
	LastError              string    // why the last query got no usable answer
}

// Resolution is what one round did about one in-doubt transaction.
type Resolution struct {
	TxnID string
	// Outcome: "committed", "rolled_back", "pending" (asked again later), "conflict"
	// (the coordinator's outcome contradicts ours: a heuristic hazard) or "error".
	Outcome string
	Detail  string
}

// Resolution outcomes.
const (
	ResolvedCommitted  = "committed"
	ResolvedRolledBack = "rolled_back"
	ResolvedPending    = "pending"
	ResolvedConflict   = "conflict"
	ResolvedError      = "error"
)

// NewResolver returns a resolver for p.
func NewResolver(p *Participant, o ResolverOptions) (*Resolver, error) {
	if o.Coordinator != "" {
		if err := checkCoordinatorURL(o.Coordinator, p.cfg.CoordinatorMaxBytes); err != nil {
			return nil, fmt.Errorf("participant: resolver: %w", err)
		}
	}
	if o.Client == nil {
		o.Client = &http.Client{}
	}
	if o.Clock == nil {
		o.Clock = SystemClock{}
	}
	if o.Interval <= 0 {
		o.Interval = 5 * time.Second
	}
	if o.QueryTimeout <= 0 {
		o.QueryTimeout = 5 * time.Second
	}
	if o.QueriesPerRoundMax <= 0 {
		o.QueriesPerRoundMax = 64
	}
	if o.ConcurrencyMax <= 0 {
		o.ConcurrencyMax = 4
	}
	if o.ResponseMaxBytes <= 0 {
		o.ResponseMaxBytes = 1 << 20
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.WaitReportInterval <= 0 || o.WaitReportInterval > time.Second {
		o.WaitReportInterval = time.Second
	}
	return &Resolver{p: p, o: o, log: o.Logger, track: make(map[string]*inDoubtTrack)}, nil
}

// Stats returns the counters.
func (r *Resolver) Stats() ResolverStats {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.stats
	for _, t := range r.track {
		if t.unreachable {
			s.CoordinatorUnreachable++
		}
	}
	return s
}

// Report returns what the resolver knows about txnID, if it has asked about it since
// it has been in doubt.
func (r *Resolver) Report(txnID string) (InDoubtReport, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	t := r.track[txnID]
	if t == nil {
		return InDoubtReport{}, false
	}
	return InDoubtReport{Attempts: t.attempts, CoordinatorUnreachable: t.unreachable, UnreachableSince: t.unreachableSince, LastError: t.lastErr}, true
}

// report is Report, false for a nil Resolver.
func (r *Resolver) report(txnID string) (InDoubtReport, bool) {
	if r == nil {
		return InDoubtReport{}, false
	}
	return r.Report(txnID)
}

// forgetResolved drops the tracks of transactions no longer in doubt.
func (r *Resolver) forgetResolved(all []InDoubtTxn) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.stats.Rounds++
	r.stats.InDoubt = len(all)
	if len(r.track) == 0 {
		return
	}
	still := make(map[string]bool, len(all))
	for _, t := range all {
		still[t.ID] = true
	}
	for id := range r.track {
		if !still[id] {
			delete(r.track, id)
		}
	}
}

// noteAttempt records one query about id; reached tells whether it got a usable
// answer, detail why not. It returns the track as it is now.
func (r *Resolver) noteAttempt(id string, reached bool, detail string) inDoubtTrack {
	now := r.o.Clock.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	r.stats.Attempts++
	t := r.track[id]
	if t == nil {
		t = new(inDoubtTrack)
		r.track[id] = t
	}
	t.attempts++
	if reached {
		t.unreachable, t.unreachableSince, t.lastErr = false, time.Time{}, ""
	} else {
		r.stats.Unreachable++
		if !t.unreachable {
			t.unreachableSince = now
		}
		t.unreachable, t.lastErr = true, detail
	}
	return *t
}

func (r *Resolver) count(f func(*ResolverStats)) {
	r.mu.Lock()
	f(&r.stats)
	r.mu.Unlock()
}

// Run resolves in-doubt transactions every Interval until ctx is done; it returns when
// its last round has finished. Run it on a goroutine its owner waits for.
//
// While Run runs, the participant's handler tells every coordinator that it asks
// (HeaderInDoubt), which lets them keep their begin records lazy.
//
// Under a lock policy that waits (wait, wound-wait), Run also reports the lock waits to
// the coordinators (see runWaitReports).
func (r *Resolver) Run(ctx context.Context) {
	r.p.resolvers.Add(1)
	defer r.p.resolvers.Add(-1)
	if r.p.LockPolicy().Waits() {
		var wg sync.WaitGroup
		defer wg.Wait()
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		wg.Go(func() { r.runWaitReports(ctx) })
	}
	t := time.NewTicker(r.o.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		r.ResolveOnce(ctx)
	}
}

// ResolveOnce runs one round: it asks about up to QueriesPerRoundMax in-doubt
// transactions and acts on the answers. The resolutions are in the order of the
// in-doubt list (oldest first).
func (r *Resolver) ResolveOnce(ctx context.Context) []Resolution {
	r.roundMu.Lock()
	defer r.roundMu.Unlock()
	batch := r.nextRoundLocked()
	if len(batch) == 0 {
		return nil
	}
	out := make([]Resolution, len(batch))
	sem := make(chan struct{}, r.o.ConcurrencyMax)
	var wg sync.WaitGroup
	for i, t := range batch {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			out[i] = r.resolve(ctx, t)
		}()
	}
	wg.Wait()
	return out
}

// NextRound returns the in-doubt transactions to ask about in the next round: up to
// QueriesPerRoundMax, going on where the last round stopped. A caller that asks the
// coordinator by its own means (the simulator, over its simulated network) asks
// about each and passes the answer to Settle; ResolveOnce does both over HTTP.
func (r *Resolver) NextRound() []InDoubtTxn {
	r.roundMu.Lock()
	defer r.roundMu.Unlock()
	return r.nextRoundLocked()
}

func (r *Resolver) nextRoundLocked() []InDoubtTxn {
	all := r.p.InDoubt(r.o.Clock.Now())
	r.forgetResolved(all)
	if len(all) == 0 {
		r.next = 0
		return nil
	}
	if r.next >= len(all) {
		r.next = 0
	}
	n := min(len(all), r.o.QueriesPerRoundMax)
	batch := make([]InDoubtTxn, 0, n)
	for i := range n {
		batch = append(batch, all[(r.next+i)%len(all)])
	}
	r.next = (r.next + n) % len(all)
	return batch
}

// coordinatorOf is the base URL to ask about t, "" if none is known.
func (r *Resolver) coordinatorOf(t InDoubtTxn) string {
	if t.Coordinator != "" {
		return t.Coordinator
	}
	return r.o.Coordinator
}

func (r *Resolver) resolve(ctx context.Context, t InDoubtTxn) Resolution {
	base := r.coordinatorOf(t)
	if base == "" {
		res := Resolution{TxnID: t.ID, Outcome: ResolvedPending, Detail: "no coordinator known for it"}
		tr := r.noteAttempt(t.ID, false, res.Detail)
		r.log.Warn("participant: transaction in doubt and no coordinator to ask", "txn_id", t.ID,
			"prepared_at", t.PreparedAt, "attempt", tr.attempts)
		return res
	}
	verdict, detail, reached := r.ask(ctx, base, t.ID)
	ch := make(chan Resolution, 1)
	r.Settle(t, verdict, detail, reached, func(res Resolution) { ch <- res })
	select {
	case res := <-ch:
		return res
	case <-ctx.Done():
		return Resolution{TxnID: t.ID, Outcome: ResolvedError, Detail: ctx.Err().Error()}
	}
}

// Settle acts on what the coordinator answered about t, read by
// protocol.InDoubtVerdict (verdict, detail, reached): it commits or rolls back t, or
// leaves it in doubt, counts and logs it, and calls done once with what it did, after
// the participant's record is durable. It never blocks.
func (r *Resolver) Settle(t InDoubtTxn, verdict State, detail string, reached bool, done func(Resolution)) {
	res := Resolution{TxnID: t.ID, Detail: detail}
	tr := r.noteAttempt(t.ID, reached, detail)
	if !reached {
		res.Outcome = ResolvedPending
		r.log.Warn("participant: transaction in doubt and its coordinator cannot be reached", "txn_id", t.ID,
			"coordinator", r.coordinatorOf(t), "prepared_at", t.PreparedAt, "attempt", tr.attempts,
			"unreachable_since", tr.unreachableSince, "why", detail)
		done(res)
		return
	}
	if verdict != StateCommitted && verdict != StateAborted {
		r.count(func(s *ResolverStats) { s.Pending++ })
		res.Outcome = ResolvedPending
		r.log.Info("participant: transaction still in doubt", "txn_id", t.ID, "coordinator", r.coordinatorOf(t), "attempt", tr.attempts, "why", detail)
		done(res)
		return
	}
	settled := func(x Result) {
		switch {
		case x.Err != nil:
			res.Outcome, res.Detail = ResolvedError, x.Err.Error()
		case x.Conflict:
			r.count(func(s *ResolverStats) { s.Conflicts++ })
			res.Outcome = ResolvedConflict
			res.Detail = fmt.Sprintf("coordinator says %s, participant has %s", verdict, x.State)
			r.log.Error("participant: heuristic hazard while resolving", "txn_id", t.ID, "coordinator", verdict, "participant", x.State)
		case verdict == StateCommitted:
			r.count(func(s *ResolverStats) { s.Resolved++ })
			res.Outcome = ResolvedCommitted
			r.log.Info("participant: resolved in-doubt transaction", "txn_id", t.ID, "outcome", "committed", "why", detail, "attempt", tr.attempts)
		default:
			r.count(func(s *ResolverStats) { s.Resolved++ })
			res.Outcome = ResolvedRolledBack
			r.log.Info("participant: resolved in-doubt transaction", "txn_id", t.ID, "outcome", "rolled back", "why", detail, "attempt", tr.attempts)
		}
		done(res)
	}
	if verdict == StateCommitted {
		r.p.Commit(t.ID, settled)
	} else {
		r.p.Rollback(t.ID, settled)
	}
}

// ask returns StateCommitted or StateAborted when the coordinator's answer settles the
// transaction, StateUnknown otherwise (protocol.InDoubtVerdict); detail says why.
// reached is false when no usable answer came (see ResolverStats.Unreachable).
func (r *Resolver) ask(ctx context.Context, base, id string) (_ State, detail string, reached bool) {
	ctx, cancel := context.WithTimeout(ctx, r.o.QueryTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, protocol.CoordinatorTxnURL(base, id), nil)
	if err != nil {
		return StateUnknown, err.Error(), false
	}
	req.Header.Set("Accept", "application/json")
	if r.o.BearerToken != "" {
		req.Header.Set("Authorization", "Bearer "+r.o.BearerToken)
	}
	resp, err := r.o.Client.Do(req)
	if err != nil {
		return StateUnknown, err.Error(), false
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, r.o.ResponseMaxBytes))
	if err != nil {
		return StateUnknown, fmt.Sprintf("reading answer: %v", err), false
	}
	return protocol.InDoubtVerdict(id, resp.StatusCode, resp.Status, body)
}
