package httpnet

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/trace"

	"github.com/dtc-project/dtc/coordinator"
	"github.com/dtc-project/dtc/coordlog"
	"github.com/dtc-project/dtc/httpnet/internal/tracing"
	"github.com/dtc-project/dtc/httpnet/transport"
	"github.com/dtc-project/dtc/wal"
)

// ErrStopped: the runtime is shutting down (or has stopped); the call was not served.
// The API answers 503.
var ErrStopped = errors.New("httpnet: coordinator is shutting down")

// Options configure a Runtime. Zero values mean the defaults.
type Options struct {
	// DataDir holds the log's segment files. Required.
	DataDir string
	// FS is the file system of the log. Default wal.OSFS().
	FS wal.FS
	// Shards is how many engines run, each on its own goroutine. Transactions are routed
	// to them by a hash of their id, at run time and when the log is replayed, so the
	// number may change between restarts. Default 4.
	Shards int
	// Engine configures every shard. Its InflightMax is per shard. Zero: the
	// coordinator's DefaultConfig.
	Engine coordinator.Config
	// Transport configures the HTTP client that talks to participants.
	Transport transport.Options
	// SegmentSizeBytes is the size of new log segments. Default: the wal's (64 MiB).
	SegmentSizeBytes int64
	// LazyFlushInterval bounds how long a lazy record (begin, end) waits for a sync.
	// Default: the wal's (50ms).
	LazyFlushInterval time.Duration
	// CompactInterval is how often the log's size is checked. Default 1s.
	CompactInterval time.Duration
	// CompactSegments: when the log has more segments than this, every shard is asked
	// to checkpoint, and the segments before the lowest checkpoint are removed.
	// Default 2.
	CompactSegments int
	// InboxCap bounds each shard's inbox (replies, API calls). A full inbox
	// makes its producers wait. Default 1024.
	InboxCap int
	// Logger gets the runtime's structured logs. Default slog.Default().
	Logger *slog.Logger
	// OnFatal is called when the log cannot make records durable (a failed fsync): the
	// process must not go on. Default: log the error and os.Exit(1). Tests replace it.
	OnFatal func(error)
	// TracerProvider, when set, traces every transaction begun through the API
	// (httpnet/internal/tracing): off by default. dtc serve --otlp-endpoint sets it.
	TracerProvider trace.TracerProvider
	// NoDeadlockDetection turns the wait-for graph off (dtc serve
	// --deadlock-detection=false): POST /v1/waits is still answered 202, and ignored.
	NoDeadlockDetection bool
	// WaitEdgesMax bounds the wait-for graph's edges. Default waitfor.DefaultEdgesMax.
	WaitEdgesMax int
	// Cluster, if set, makes the runtime one node of a cluster: the shards' logs are in
	// etcd and DataDir, FS, Shards and the segment options are unused (cluster.go).
	Cluster *ClusterOptions
}

func (o *Options) setDefaults() {
	if o.FS == nil {
		o.FS = wal.OSFS()
	}
	if o.Shards == 0 {
		o.Shards = 4
	}
	if o.Engine == (coordinator.Config{}) {
		o.Engine = coordinator.DefaultConfig()
	}
	if o.CompactInterval == 0 {
		o.CompactInterval = time.Second
	}
	if o.CompactSegments == 0 {
		o.CompactSegments = 2
	}
	if o.InboxCap == 0 {
		o.InboxCap = 1024
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
}

// Validate says which option is out of range.
func (o Options) Validate() error {
	var errs []error
	if o.DataDir == "" && o.Cluster == nil {
		errs = append(errs, errors.New("DataDir is required"))
	}
	if o.Shards < 1 || o.Shards > 1024 {
		errs = append(errs, fmt.Errorf("Shards must be between 1 and 1024, got %d", o.Shards))
	}
	if o.CompactInterval < 0 {
		errs = append(errs, fmt.Errorf("CompactInterval must not be negative, got %v", o.CompactInterval))
	}
	if o.CompactSegments < 1 {
		errs = append(errs, fmt.Errorf("CompactSegments must be positive, got %d", o.CompactSegments))
	}
	if o.InboxCap < 1 {
		errs = append(errs, fmt.Errorf("InboxCap must be positive, got %d", o.InboxCap))
	}
	if o.WaitEdgesMax < 0 {
		errs = append(errs, fmt.Errorf("WaitEdgesMax must not be negative, got %d", o.WaitEdgesMax))
	}
	if o.LazyFlushInterval < 0 {
		errs = append(errs, fmt.Errorf("LazyFlushInterval must not be negative, got %v", o.LazyFlushInterval))
	}
	if err := o.Engine.Validate(); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("httpnet: invalid options: %w", err)
	}
	return nil
}

// Runtime runs the coordinator engines ("shards") of one daemon over one shared log
// with group commit, talks to participants over HTTP, and answers API calls. See the
// package documentation for who owns which goroutine.
type Runtime struct {
	o         Options
	lg        *slog.Logger
	metrics   *Metrics
	transport *transport.Transport
	wal       *wal.Log
	syncer    *wal.GroupSyncer
	sink      *meteredSink
	fs        *wal.SyncCountingFS // o.FS, with its fsyncs counted and timed
	shards    []*shard
	logs      []*coordlog.ShardLog
	cl        *clusterState // cluster mode only; then wal, syncer, sink, fs, shards and logs are unused

	replayed int // records read from the log at startup

	stopping chan struct{} // closed when Close begins: waiting callers give up
	failed   chan struct{} // closed when the log failed: nothing becomes durable any more
	// The compactor goroutine: Close cancels compactCtx (which also ends its wait for a
	// shard's checkpoint) and waits for compactDone.
	compactCtx    context.Context
	compactCancel context.CancelFunc
	compactDone   chan struct{}
	lastCPSeg     uint64 // newest segment when checkpoints were last requested (compactor only)
	preallocTicks int    // ticks since the log's missing spare or reserve was last retried (compactor only)
	fatalOnce     sync.Once
	closeOnce     sync.Once
	closeErr      error
	closed        atomic.Bool

	// The sampler goroutine (stats.go) ends with compactCtx too; Close waits for
	// samplerDone.
	samplerDone chan struct{}
	history     history
	started     time.Time
	trace       *tracing.Tracing   // nil when tracing is off
	dl          *detector          // nil when deadlock detection is off
	waitsOff    prometheus.Counter // wait reports ignored because detection is off
}

// Open replays the log in o.DataDir into o.Shards engines, starts them, and returns the
// running runtime. Transactions found undecided in the log are resolved in the
// background (Ready reports when that is done). An error names what is wrong: bad
// options, or a log that cannot be read (corruption before its tail, with segment and
// offset).
func Open(o Options) (*Runtime, error) {
	o.setDefaults()
	if err := o.Validate(); err != nil {
		return nil, err
	}
	if o.Cluster != nil {
		return openCluster(o)
	}
	r := &Runtime{
		o:           o,
		lg:          o.Logger,
		metrics:     newMetrics(),
		stopping:    make(chan struct{}),
		failed:      make(chan struct{}),
		compactDone: make(chan struct{}),
		samplerDone: make(chan struct{}),
		started:     time.Now().UTC(),
	}
	if o.Transport.Logger == nil {
		o.Transport.Logger = r.lg
	}
	r.trace = tracing.New(o.TracerProvider)
	to := o.Transport
	to.Tracing = r.trace
	r.transport = transport.New(to)
	r.fs = wal.NewSyncCountingFS(o.FS, func(_ string, took time.Duration, _ error) {
		r.metrics.fsyncLatency.Observe(took.Seconds())
	})
	r.sink = &meteredSink{m: r.metrics, fs: r.fs}
	r.metrics.reg.MustRegister(newStatsCollector(r), r.transport.Collector())
	r.dl = r.newDetector()

	for i := 0; i < o.Shards; i++ {
		s := newShard(i, o.InboxCap, r.lg)
		log := coordlog.NewShardLog(r.sink, s.notify)
		s.log = log
		var engLog coordinator.Log = log
		if r.trace != nil {
			engLog = tracing.Log{Log: log, Tr: r.trace}
		}
		eng, err := coordinator.New(o.Engine, coordinator.Env{
			Clock:     clock{s},
			Transport: r.transport.For(s.deliver),
			Log:       engLog,
			Rand:      newRand(),
			Observer:  observer{m: r.metrics, log: r.lg, shard: i, trace: r.trace, dl: r.dl},
		})
		if err != nil {
			r.transport.Close()
			return nil, fmt.Errorf("httpnet: %w", err)
		}
		s.eng = eng
		r.shards = append(r.shards, s)
		r.logs = append(r.logs, log)
	}

	start := time.Now()
	l, err := coordlog.Replay(r.walOptions(), func(pos wal.Pos, rec *coordinator.Record) error {
		r.replayed++
		if rec.Txn == "" {
			return nil // checkpoint markers belong to no transaction and change nothing
		}
		if err := r.shardFor(rec.Txn).eng.Replay(rec); err != nil {
			return fmt.Errorf("httpnet: replaying the %s record at segment %d offset %d: %w",
				rec.Type, pos.Segment, pos.Offset, err)
		}
		return nil
	})
	if err != nil {
		r.transport.Close()
		return nil, fmt.Errorf("httpnet: opening the log in %s: %w", o.DataDir, err)
	}
	r.wal = l
	if at, reason, torn := l.TornTail(); torn {
		r.lg.Warn("the log ended in a torn record (a crash during a write); it was truncated",
			"segment", at.Segment, "offset", at.Offset, "reason", reason)
	}
	r.syncer = wal.NewGroupSyncer(l, wal.GroupSyncerOptions{
		LazyFlushInterval: o.LazyFlushInterval,
		OnFatal:           r.fatal,
	})
	r.sink.c = r.syncer
	r.lg.Info("log replayed", "dir", o.DataDir, "records", r.replayed,
		"segments", len(l.Segments()), "shards", o.Shards, "elapsed", time.Since(start))

	// From here on each engine belongs to its shard's goroutine.
	for _, s := range r.shards {
		go s.run()
	}
	r.compactCtx, r.compactCancel = context.WithCancel(context.Background())
	go r.compactor()
	go r.sampler(r.compactCtx, r.samplerDone)
	return r, nil
}

// logReservedSegments is how many preallocated segments dtc's log keeps beyond the spare
// for checkpoints alone (wal.Options.ReservedSegments): on a full disk the shards can still
// checkpoint, the compactor then deletes the segments that made obsolete, and dtc serves
// again without a restart. It costs one segment (SegmentSizeBytes) of disk.
const logReservedSegments = 1

// preallocRetryTicks: a spare or reserved segment that a full disk kept the log from
// building is retried every this many compaction ticks (10 s by default), or as soon as
// the compactor removed segments.
const preallocRetryTicks = 10

func (r *Runtime) walOptions() wal.Options {
	return wal.Options{FS: r.fs, Dir: r.o.DataDir, SegmentSizeBytes: r.o.SegmentSizeBytes,
		ReservedSegments: logReservedSegments}
}

// fatal is the syncer's OnFatal: the log can no longer make anything durable.
func (r *Runtime) fatal(err error) {
	r.fatalOnce.Do(func() {
		close(r.failed) // callers waiting for a decision give up: it will never be durable
		r.lg.Error("the log failed to make records durable; exiting (an fsync is never retried)", "error", err)
		if r.o.OnFatal != nil {
			r.o.OnFatal(err)
			return
		}
		os.Exit(1)
	})
}

// shardFor routes a transaction to its shard by its client id. A participant asks about
// a transaction by the id it was told (client id, '@', incarnation nonce); that routes by
// its client part, like the log's records, which carry the client id.
//
// In a cluster it returns nil when this node does not run the shard (ErrNotOwner).
func (r *Runtime) shardFor(id string) *shard {
	if r.cl != nil {
		return r.cl.local(r.cl.shardNumber(id))
	}
	client, _, _ := coordinator.SplitTxnID(id)
	return r.shards[shardOf(client, len(r.shards))]
}

// liveShards returns the shards this runtime runs: all of them, or in a cluster those
// this node owns now.
func (r *Runtime) liveShards() []*shard {
	if r.cl != nil {
		return r.cl.live()
	}
	return r.shards
}

// Metrics returns the runtime's metrics (the API serves them on /metrics).
func (r *Runtime) Metrics() *Metrics { return r.metrics }

// TransportStats returns the counters of the requests the runtime's Transport has sent
// to participants (Transport.Stats): how many of each kind, and how many commits and
// rollbacks went in batches. Safe from any goroutine, also after Close.
func (r *Runtime) TransportStats() transport.Stats { return r.transport.Stats() }

// Closed reports whether Close has begun: the runtime answers nothing new (the API's
// /readyz says it is shutting down).
func (r *Runtime) Closed() bool { return r.closed.Load() }

// EngineConfig is the engines' configuration (Options.Engine, with its defaults): the
// limits the API checks a request against before it reaches an engine.
func (r *Runtime) EngineConfig() coordinator.Config { return r.o.Engine }

// Tracing is the trace registry the API server starts transactions' spans in; nil when
// tracing is off (no Options.TracerProvider, or a cluster node).
func (r *Runtime) Tracing() *tracing.Tracing { return r.trace }

// Replayed returns how many records were read from the log at startup.
func (r *Runtime) Replayed() int { return r.replayed }

// Ready reports whether every shard has started and resolved what it found undecided in
// the log.
func (r *Runtime) Ready() bool {
	for _, s := range r.liveShards() {
		if !s.ready.Load() {
			return false
		}
	}
	select {
	case <-r.failed:
		return false
	default:
	}
	return !r.closed.Load()
}

// Submit begins a transaction (or, for a client-chosen id it already knows, answers that
// transaction). Without an id the runtime draws a random one, so that the transaction
// can be routed to its shard.
//
// With wait, Submit returns once the decision is durable, with the final view; if ctx
// ends first it returns ctx's error, and the transaction still runs to its end. Without
// wait it returns the view as it stands right after the begin.
//
// Errors: *coordinator.RequestError (invalid), coordinator.ErrBusy, ErrConflict,
// ErrRecovering, ErrLogUnavailable, ErrStopped, or ctx's error.
func (r *Runtime) Submit(ctx context.Context, req coordinator.Request, wait bool) (coordinator.View, error) {
	if req.ID == "" {
		if r.cl != nil {
			req.ID = r.cl.localID()
		} else {
			req.ID = NewTxnID()
		}
	}
	if r.closed.Load() {
		return coordinator.View{}, ErrStopped
	}
	sb := &submission{r: r, req: req, wait: wait, res: make(chan submitResult, 2)}
	s := r.shardFor(req.ID)
	if s == nil {
		return coordinator.View{}, ErrNotOwner
	}
	select {
	case s.inbox <- item{call: sb.run}:
	case <-ctx.Done():
		return coordinator.View{}, ctx.Err()
	case <-s.quit:
		return coordinator.View{}, ErrStopped
	}
	// One wake: the call answers on res at once (an error, or no wait), or leaves the
	// answer to the decision. Stopping and a failed log end the wait only for a call
	// that has run, as a caller waits for its call first.
	stopping, failed := r.stopping, r.failed
	for {
		select {
		case res := <-sb.res:
			return res.v, res.err
		case <-ctx.Done():
			v, _ := sb.waiting()
			return v, ctx.Err()
		case <-s.done:
			if res, ok := sb.answered(); ok {
				return res.v, res.err // it ran just before the loop returned
			}
			v, _ := sb.waiting()
			return v, ErrStopped
		case <-stopping:
			if res, ok := sb.answered(); ok {
				return res.v, res.err
			}
			if v, ok := sb.waiting(); ok {
				return v, ErrStopped
			}
			stopping = nil // not run yet: it runs, or the shard stops (Close stops it next)
		case <-failed:
			if res, ok := sb.answered(); ok {
				return res.v, res.err
			}
			if v, ok := sb.waiting(); ok {
				return v, errNotDurable(v.ID)
			}
			failed = nil // not run yet: when it runs it sees the failure and answers
		}
	}
}

// A submission is one Submit call on its way through the shard's goroutine.
type submission struct {
	r    *Runtime
	req  coordinator.Request
	wait bool
	// res gets the answer: the call's (an error, or the view when the caller does not
	// wait), or the decision's. A call that finds the log failed answers too, and the
	// decision may come after that: hence 2, so that the shard never blocks.
	res chan submitResult

	mu    sync.Mutex
	began bool             // the call ran, and the caller waits for the decision
	v     coordinator.View // the view the call returned, when began
}

type submitResult struct {
	v   coordinator.View
	err error
}

// run is the call, on the shard's goroutine. If the caller gave up before it runs, it
// writes to res and to the fields under mu only, which nobody reads any more.
func (sb *submission) run(e *coordinator.Engine) {
	var done func(coordinator.View)
	if sb.wait {
		done = sb.decided
	}
	v, err := e.Submit(sb.req, done)
	if err != nil || !sb.wait {
		sb.res <- submitResult{v: v, err: err}
		return
	}
	sb.mu.Lock()
	sb.began, sb.v = true, v
	sb.mu.Unlock()
	// A caller that saw the log fail before began was set waits for this answer.
	select {
	case <-sb.r.failed:
		sb.res <- submitResult{v: v, err: errNotDurable(v.ID)}
	default:
	}
}

// decided is the engine's done callback: called at most once.
func (sb *submission) decided(v coordinator.View) { sb.res <- submitResult{v: v} }

// answered returns the answer if one is there already.
func (sb *submission) answered() (submitResult, bool) {
	select {
	case res := <-sb.res:
		return res, true
	default:
		return submitResult{}, false
	}
}

// waiting returns the view the call returned, if it ran and the caller waits for the
// decision.
func (sb *submission) waiting() (coordinator.View, bool) {
	sb.mu.Lock()
	defer sb.mu.Unlock()
	return sb.v, sb.began
}

func errNotDurable(id string) error {
	return fmt.Errorf("httpnet: %w: the log failed; the decision of %s is not durable", coordinator.ErrLogUnavailable, id)
}

// Get returns one transaction, by its client id or by the id its participants know
// (View.TxnID). coordinator.ErrNotFound: the coordinator has no record of it (presumed
// aborted); coordinator.ErrRecovering: its shard may still learn of it.
func (r *Runtime) Get(ctx context.Context, id string) (coordinator.View, error) {
	var (
		v      coordinator.View
		getErr error
	)
	s := r.shardFor(id)
	if s == nil {
		return coordinator.View{}, ErrNotOwner
	}
	if err := s.do(ctx, func(e *coordinator.Engine) { v, getErr = e.Get(id) }); err != nil {
		return coordinator.View{}, err
	}
	if r.cl != nil && r.shardFor(id) != s {
		// The node lost the shard while the engine answered: another node may own it
		// now, and this answer (a 404 above all) may be stale.
		return coordinator.View{}, ErrNotOwner
	}
	return v, getErr
}

// Forget ends a decided transaction whose phase 2 cannot finish, with a hazard on each
// participant that has not acknowledged (coordinator.Engine.Forget).
func (r *Runtime) Forget(ctx context.Context, id, reason string) (coordinator.View, error) {
	var (
		v   coordinator.View
		err error
	)
	s := r.shardFor(id)
	if s == nil {
		return coordinator.View{}, ErrNotOwner
	}
	if doErr := s.do(ctx, func(e *coordinator.Engine) { v, err = e.Forget(id, reason) }); doErr != nil {
		return coordinator.View{}, doErr
	}
	return v, err
}

// List returns up to limit transactions matching filter (see coordinator.CheckFilter)
// with ids greater than after, in id order across all shards, and the cursor for the
// next page ("" when there is none).
func (r *Runtime) List(ctx context.Context, filter, after string, limit int) ([]coordinator.View, string, error) {
	if err := coordinator.CheckFilter(filter); err != nil {
		return nil, "", err
	}
	if limit <= 0 {
		return nil, "", fmt.Errorf("httpnet: list limit must be positive, got %d", limit)
	}
	shards := r.liveShards()
	pages := make([][]coordinator.View, len(shards))
	more := false
	for i, s := range shards {
		var (
			vs      []coordinator.View
			next    string
			listErr error
		)
		if err := s.do(ctx, func(e *coordinator.Engine) { vs, next, listErr = e.List(filter, after, limit) }); err != nil {
			return nil, "", err
		}
		if listErr != nil {
			return nil, "", listErr
		}
		pages[i] = vs
		more = more || next != ""
	}
	all := slices.Concat(pages...)
	slices.SortFunc(all, func(a, b coordinator.View) int {
		switch {
		case a.ID < b.ID:
			return -1
		case a.ID > b.ID:
			return 1
		}
		return 0
	})
	if len(all) > limit {
		all, more = all[:limit], true
	}
	next := ""
	if more && len(all) > 0 {
		next = all[len(all)-1].ID
	}
	return all, next, nil
}

// Stats adds up the engines' Stats, asking every shard on its goroutine.
func (r *Runtime) Stats(ctx context.Context) (coordinator.Stats, error) {
	var sum coordinator.Stats
	for _, s := range r.liveShards() {
		var st coordinator.Stats
		if err := s.do(ctx, func(e *coordinator.Engine) { st = e.Stats() }); err != nil {
			return coordinator.Stats{}, err
		}
		sum.Inflight += st.Inflight
		sum.Undecided += st.Undecided
		sum.Recovering += st.Recovering
		sum.Remembered += st.Remembered
		sum.Phase2 += st.Phase2
		sum.OldestInflight = earliest(sum.OldestInflight, st.OldestInflight)
		sum.OldestUndecided = earliest(sum.OldestUndecided, st.OldestUndecided)
	}
	return sum, nil
}

// compactor is the runtime's goroutine that keeps the log short: on every tick it
// removes the segments before the lowest checkpoint of all shards, rebuilds the log's
// spare and reserved segments if a full disk stopped that, and when more than
// CompactSegments remain, asks every shard to checkpoint, one after the other (the
// next tick removes what that made obsolete). So does a log that refused a record for
// lack of space since the last tick. A shard whose last checkpoint the log
// refused is asked again every tick; a shard that wrote nothing since its last
// checkpoint writes none (coordinator.Engine.Checkpoint).
func (r *Runtime) compactor() {
	defer close(r.compactDone)
	t := time.NewTicker(r.o.CompactInterval)
	defer t.Stop()
	for {
		select {
		case <-r.compactCtx.Done():
			return
		case <-t.C:
			r.compact(r.compactCtx)
		}
	}
}

func (r *Runtime) compact(ctx context.Context) {
	if r.cl != nil {
		r.cl.compact(ctx)
		return
	}
	before, removed, err := coordlog.RemoveObsolete(r.wal, r.logs)
	switch {
	case errors.Is(err, wal.ErrSyncFailed):
		r.fatal(err)
		return
	case err != nil:
		r.lg.Error("removing old log segments failed; retried at the next tick", "before", before, "error", err)
	case removed:
		r.lg.Debug("removed old log segments", "before", before)
	}
	segs := r.wal.Segments()
	if len(segs) == 0 {
		return
	}
	// A spare or reserved segment that could not be built for lack of space is retried
	// here, so that an idle log gets them back once space returns: at once when segments
	// were just removed, else every preallocRetryTicks ticks (each try on a full disk
	// writes zeros until the disk refuses, and removes them).
	if r.wal.Ahead() < 1+logReservedSegments {
		r.preallocTicks++
		if removed || r.preallocTicks >= preallocRetryTicks {
			r.preallocTicks = 0
			if err := r.wal.Preallocate(); err != nil {
				r.fatal(err)
				return
			}
		}
	}
	newest := segs[len(segs)-1]
	all := len(segs) > r.o.CompactSegments && newest != r.lastCPSeg
	if all {
		r.lastCPSeg = newest
	}
	// The log refused a record for lack of space: a checkpoint (which may use the log's
	// reserved segment) lets the next tick delete the segments it makes obsolete.
	all = r.sink.noSpace.Swap(false) || all
	// One shard at a time: a checkpoint stalls its shard while it writes a snapshot of
	// every transaction it remembers, and the other shards go on serving meanwhile.
	// Asked all at once, the shards all stalled together: in a two-minute soak the
	// system stopped for up to 400 ms at every compaction.
	for _, s := range r.shards {
		if all || s.cpFailed.Load() {
			if s.do(ctx, func(*coordinator.Engine) { s.checkpoint() }) != nil {
				return // shutting down
			}
		}
	}
}

// Close shuts the runtime down: callers still waiting for a decision get ErrStopped,
// the shards stop (transactions in flight resume from the log at the next start),
// requests to participants are cancelled, and what the log holds pending is made
// durable before it is closed. It is safe to call more than once.
func (r *Runtime) Close() error {
	r.closeOnce.Do(func() {
		r.closed.Store(true)
		close(r.stopping)
		r.compactCancel()
		<-r.compactDone
		<-r.samplerDone
		if r.cl != nil {
			r.cl.close() // hands every shard off, or they stopped already (Crash)
			r.transport.Close()
			return
		}
		for _, s := range r.shards {
			close(s.quit)
		}
		for _, s := range r.shards {
			<-s.done
		}
		r.transport.Close()
		r.closeErr = errors.Join(r.syncer.Close(), r.wal.Close())
		if r.closeErr != nil {
			r.closeErr = fmt.Errorf("httpnet: closing the log: %w", r.closeErr)
		}
	})
	return r.closeErr
}
