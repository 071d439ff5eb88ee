package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pingcap/failpoint"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/dtc-project/dtc/coordinator"
	"github.com/dtc-project/dtc/internal/fp"
)

// ErrFenced: this node no longer owns the shard (the owner key's revision changed, or
// its lease is gone). Nothing more is written, and nothing more is reported durable.
var ErrFenced = errors.New("cluster: shard fenced: this node no longer owns it")

// ErrLogBacklog: the log holds LogOptions.PendingRecordsMax records not yet written
// (etcd is slow or unreachable). The engine refuses new transactions (503) until the
// backlog drains.
var ErrLogBacklog = fmt.Errorf("cluster: %w: too many records wait for etcd", coordinator.ErrLogUnavailable)

// ErrLogClosed: Append after Close or Stop.
var ErrLogClosed = errors.New("cluster: shard log closed")

// LogOptions configure one shard's Log. Zero values mean the defaults.
type LogOptions struct {
	// KV is the etcd client. Required.
	KV clientv3.KV
	// Keys and Shard say where the log lives. Required.
	Keys  Keys
	Shard int
	// OwnerRevision is the create revision of the shard's owner key that this node
	// acquired. Every write carries the compare "the owner key's create revision is still
	// OwnerRevision". Required.
	OwnerRevision int64
	// NextIndex is the index of the first record this log writes: one more than the
	// last index ReadLog returned. Required (1 for a shard that never had a record).
	NextIndex uint64
	// BatchRecordsMax bounds the records in one etcd transaction. etcd refuses a
	// transaction of more than its --max-txn-ops operations (default 128). Default 100.
	BatchRecordsMax int
	// BatchBytesMax bounds the encoded records in one etcd transaction. etcd refuses a
	// request larger than its --max-request-bytes (default 1.5 MiB). Default 1 MiB.
	BatchBytesMax int
	// PendingRecordsMax bounds the records accepted and not yet written. Beyond it
	// Append refuses (ErrLogBacklog). Default 10000.
	PendingRecordsMax int
	// LazyFlushInterval bounds how long a lazy record waits for a write. Default 50ms.
	LazyFlushInterval time.Duration
	// WriteTimeout bounds one etcd transaction; a write that times out is retried (it
	// writes the same values at the same keys, so a retry of one that did apply is
	// harmless). Default 5s.
	WriteTimeout time.Duration
	// RetryBackoffMax caps the wait between retries of a failed write. Default 1s.
	RetryBackoffMax time.Duration
	// Notify is called (on the log's goroutine, without locks held) each time more
	// records are durable; it must not block. Synced tells how far.
	Notify func()
	// OnFenced is called once, on whichever goroutine found out, when the shard is
	// fenced (a compare failed, or Fence was called). It must not block, nor call Stop
	// or Close. The shard's owner must stop the shard at once: it answers nothing more.
	OnFenced func(error)
	// Metrics count writes and fenced writes. Default: counters nobody exports.
	Metrics *Metrics
	// Logger gets the log's structured logs. Default slog.Default().
	Logger *slog.Logger
}

func (o *LogOptions) setDefaults() {
	if o.BatchRecordsMax == 0 {
		o.BatchRecordsMax = 100
	}
	if o.BatchBytesMax == 0 {
		o.BatchBytesMax = 1 << 20
	}
	if o.PendingRecordsMax == 0 {
		o.PendingRecordsMax = 10000
	}
	if o.LazyFlushInterval == 0 {
		o.LazyFlushInterval = 50 * time.Millisecond
	}
	if o.WriteTimeout == 0 {
		o.WriteTimeout = 5 * time.Second
	}
	if o.RetryBackoffMax == 0 {
		o.RetryBackoffMax = time.Second
	}
	if o.Notify == nil {
		o.Notify = func() {}
	}
	if o.OnFenced == nil {
		o.OnFenced = func(error) {}
	}
	if o.Metrics == nil {
		o.Metrics = NewMetrics()
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
}

// Validate says which option is out of range.
func (o LogOptions) Validate() error {
	var errs []error
	if o.KV == nil {
		errs = append(errs, errors.New("KV is required"))
	}
	if err := CheckName("cluster name", o.Keys.Cluster); err != nil {
		errs = append(errs, err)
	}
	if o.Shard < 0 {
		errs = append(errs, fmt.Errorf("Shard must not be negative, got %d", o.Shard))
	}
	if o.OwnerRevision <= 0 {
		errs = append(errs, fmt.Errorf("OwnerRevision must be positive, got %d", o.OwnerRevision))
	}
	if o.NextIndex == 0 {
		errs = append(errs, errors.New("NextIndex must be positive"))
	}
	if o.BatchRecordsMax < 1 || o.BatchRecordsMax > 120 {
		errs = append(errs, fmt.Errorf("BatchRecordsMax must be between 1 and 120 (etcd's default max-txn-ops is 128), got %d", o.BatchRecordsMax))
	}
	if o.BatchBytesMax < 1<<10 || o.BatchBytesMax > 1<<20 {
		errs = append(errs, fmt.Errorf("BatchBytesMax must be between 1 KiB and 1 MiB (etcd's default max-request-bytes is 1.5 MiB), got %d", o.BatchBytesMax))
	}
	if o.PendingRecordsMax < o.BatchRecordsMax {
		errs = append(errs, fmt.Errorf("PendingRecordsMax must be at least BatchRecordsMax (%d), got %d", o.BatchRecordsMax, o.PendingRecordsMax))
	}
	if o.LazyFlushInterval <= 0 {
		errs = append(errs, fmt.Errorf("LazyFlushInterval must be positive, got %v", o.LazyFlushInterval))
	}
	if o.WriteTimeout <= 0 {
		errs = append(errs, fmt.Errorf("WriteTimeout must be positive, got %v", o.WriteTimeout))
	}
	if o.RetryBackoffMax <= 0 {
		errs = append(errs, fmt.Errorf("RetryBackoffMax must be positive, got %v", o.RetryBackoffMax))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("cluster: invalid log options: %w", err)
	}
	return nil
}

// Log is one shard's coordinator.Log, kept in etcd and fenced by the shard's owner key.
//
// Append (on the engine's goroutine) encodes the record and queues it; the log's own
// goroutine writes the queue in batches, one etcd transaction per batch (group commit),
// each guarded by the compare "the owner key's create revision is still the one this
// node acquired". A transaction whose compare fails writes nothing: the log is fenced,
// reports nothing more as durable, and calls OnFenced so that the shard stops at once.
//
// Records are written at consecutive indexes. The engine's LSNs count from 1 for each
// Log (each engine), whatever index the log's keys start at.
//
// Checkpoints: the transaction that writes a checkpoint's closing record also deletes
// every record before the checkpoint's opening one, so the shard's keys stay few.
type Log struct {
	o    LogOptions
	lsn  uint64 // records accepted; the engine's goroutine only
	next uint64 // index of the next record accepted; the engine's goroutine only
	// cpBegin is the index of the last checkpoint's opening record; the engine's goroutine only.
	cpBegin uint64

	synced atomic.Uint64 // LSN through which records are durable

	mu          sync.Mutex
	pending     []pendingRecord // accepted, not yet written, in order
	syncThrough uint64          // highest LSN appended with sync
	oldest      time.Time       // when pending's first record was appended
	closing     bool            // Close: write what is pending, then stop
	stopped     bool            // fenced, stopped or closed: nothing more is written
	fenceErr    error

	wake     chan struct{} // 1-buffered: the writer has something to look at
	stop     chan struct{} // closed when stopped is set
	done     chan struct{} // closed when the writer has returned
	stopOnce sync.Once
}

type pendingRecord struct {
	lsn uint64
	BatchRecord
}

// BatchRecord is one record of a log write: its index, its encoded bytes, and, on a
// checkpoint's closing record, the index of its opening record (DeleteBefore): the
// records before it are deleted in the same etcd transaction.
type BatchRecord struct {
	Index        uint64
	Data         []byte
	DeleteBefore uint64
}

// WriteBatch writes batch, records at consecutive indexes, in one etcd transaction that
// applies only if shard's owner key still has create revision ownerRevision. written
// is false, with a nil error, when that compare failed: the shard is fenced and nothing
// was written. Log's writer calls it for every group commit; the simulator calls it too,
// so that the fenced write it runs is this one.
func WriteBatch(ctx context.Context, kv clientv3.KV, keys Keys, shard int, ownerRevision int64, batch []BatchRecord) (written bool, err error) {
	ops := make([]clientv3.Op, 0, len(batch)+1)
	for _, p := range batch {
		ops = append(ops, clientv3.OpPut(keys.LogKey(shard, p.Index), string(p.Data)))
		if p.DeleteBefore > 0 {
			// etcd refuses a transaction that deletes a key it also puts: records of this
			// batch older than the checkpoint stay until the next checkpoint.
			end := min(p.DeleteBefore, batch[0].Index)
			ops = append(ops, clientv3.OpDelete(keys.LogKey(shard, 0),
				clientv3.WithRange(keys.LogKey(shard, end))))
		}
	}
	owned := clientv3.Compare(clientv3.CreateRevision(keys.Owner(shard)), "=", ownerRevision)
	resp, err := kv.Txn(ctx).If(owned).Then(ops...).Commit()
	if err != nil {
		return false, err
	}
	return resp.Succeeded, nil
}

var _ coordinator.Log = (*Log)(nil)

// OpenLog returns the log of a shard this node has just acquired (OwnerRevision) and
// whose records it has read (NextIndex), with its writer running.
func OpenLog(o LogOptions) (*Log, error) {
	o.setDefaults()
	if err := o.Validate(); err != nil {
		return nil, err
	}
	l := &Log{
		o:    o,
		next: o.NextIndex,
		wake: make(chan struct{}, 1),
		stop: make(chan struct{}),
		done: make(chan struct{}),
	}
	go l.writer()
	return l, nil
}

// Append implements coordinator.Log.
func (l *Log) Append(rec *coordinator.Record, sync bool) error {
	b, err := coordinator.EncodeRecord(rec)
	if err != nil {
		return fmt.Errorf("cluster: %w", err)
	}
	if len(b) > l.o.BatchBytesMax {
		return fmt.Errorf("cluster: %w: a %s record of %d bytes exceeds BatchBytesMax (%d)",
			coordinator.ErrLogUnavailable, rec.Type, len(b), l.o.BatchBytesMax)
	}
	p := pendingRecord{lsn: l.lsn + 1, BatchRecord: BatchRecord{Index: l.next, Data: b}}
	isCheckpoint := rec.Type == coordinator.RecCheckpoint
	if isCheckpoint && rec.Bracket == "end" {
		p.DeleteBefore = l.cpBegin
	}
	l.mu.Lock()
	switch {
	case l.fenceErr != nil:
		err = l.fenceErr
	case l.stopped || l.closing:
		err = ErrLogClosed
	case len(l.pending) >= l.o.PendingRecordsMax:
		err = ErrLogBacklog
	}
	if err != nil {
		l.mu.Unlock()
		return err
	}
	if len(l.pending) == 0 {
		l.oldest = time.Now()
	}
	l.pending = append(l.pending, p)
	if sync {
		l.syncThrough = p.lsn
	}
	first := len(l.pending) == 1
	l.mu.Unlock()
	l.lsn, l.next = p.lsn, p.Index+1
	if isCheckpoint && rec.Bracket == "begin" {
		l.cpBegin = p.Index
	}
	if sync || first {
		l.poke()
	}
	return nil
}

func (l *Log) poke() {
	select {
	case l.wake <- struct{}{}:
	default:
	}
}

// Synced returns the LSN through which this log's records are durable in etcd.
func (l *Log) Synced() uint64 { return l.synced.Load() }

// Fenced returns the error that fenced the log, or nil.
func (l *Log) Fenced() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.fenceErr
}

// Fence stops the log at once because this node lost the shard (its lease is gone):
// nothing pending is written, and OnFenced is called (unless the log was fenced or
// stopped already).
func (l *Log) Fence(cause error) {
	l.fence(fmt.Errorf("%w: %w", ErrFenced, cause))
}

func (l *Log) fence(err error) {
	l.mu.Lock()
	if l.stopped {
		l.mu.Unlock()
		return
	}
	l.fenceErr = err
	l.stopLocked()
	l.mu.Unlock()
	l.o.Logger.Warn("shard fenced: it stops at once", "shard", l.o.Shard, "error", err)
	l.o.OnFenced(err)
}

func (l *Log) stopLocked() {
	l.stopped = true
	l.stopOnce.Do(func() { close(l.stop) })
}

// Stop stops the log without writing what is pending (a crash, as far as etcd can
// tell), and waits for its goroutine.
func (l *Log) Stop() {
	l.mu.Lock()
	l.stopLocked()
	l.mu.Unlock()
	<-l.done
}

// Close writes every record accepted so far (a graceful handoff), then stops. It
// returns ErrFenced (wrapped) if the log was fenced before everything was written, or
// ctx's error if ctx ended first (the log is then stopped).
func (l *Log) Close(ctx context.Context) error {
	l.mu.Lock()
	l.closing = true
	l.mu.Unlock()
	l.poke()
	select {
	case <-l.done:
	case <-ctx.Done():
		l.Stop()
		return fmt.Errorf("cluster: closing the log of shard %d: %w", l.o.Shard, ctx.Err())
	}
	return l.Fenced()
}

// writer is the log's goroutine: it writes batches until stopped.
func (l *Log) writer() {
	defer close(l.done)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for {
		batch, ok := l.nextBatch(timer)
		if !ok {
			return
		}
		if !l.write(batch) {
			return
		}
	}
}

// nextBatch waits until there is something to write: a record someone waits for, a
// lazy record older than LazyFlushInterval, or anything at all when closing. It
// returns false when the writer must stop.
func (l *Log) nextBatch(timer *time.Timer) ([]pendingRecord, bool) {
	for {
		l.mu.Lock()
		if l.stopped {
			l.mu.Unlock()
			return nil, false
		}
		n := len(l.pending)
		if n == 0 && l.closing {
			l.stopLocked()
			l.mu.Unlock()
			return nil, false
		}
		var wait time.Duration
		if n > 0 {
			wait = l.o.LazyFlushInterval - time.Since(l.oldest)
			if l.closing || l.syncThrough > l.synced.Load() || wait <= 0 {
				batch := l.takeLocked()
				l.mu.Unlock()
				return batch, true
			}
		}
		l.mu.Unlock()
		var fire <-chan time.Time
		if n > 0 {
			timer.Reset(wait)
			fire = timer.C
		}
		select {
		case <-l.wake:
		case <-fire:
		case <-l.stop:
		}
		timer.Stop()
	}
}

// takeLocked returns the front of pending that fits in one transaction. The records
// stay in pending until they are written.
func (l *Log) takeLocked() []pendingRecord {
	size := 0
	n := 0
	for n < len(l.pending) && n < l.o.BatchRecordsMax {
		size += len(l.pending[n].Data)
		if n > 0 && size > l.o.BatchBytesMax {
			break
		}
		n++
	}
	return l.pending[:n:n]
}

// write writes batch in one fenced etcd transaction, retrying on errors until it is
// written, the compare fails, or the log is stopped. It returns false when the writer
// must stop.
func (l *Log) write(batch []pendingRecord) bool {
	records := make([]BatchRecord, len(batch))
	for i, p := range batch {
		records[i] = p.BatchRecord
	}
	// A chaos build may hold the batch here (faults.Failpoints): a node stopped (SIGSTOP)
	// during the hold sends it once resumed, past its lease, and the compare refuses it.
	failpoint.Inject("beforeLogWrite", func(v failpoint.Value) { _ = fp.Act("cluster/beforeLogWrite", v) })
	backoff := 10 * time.Millisecond
	for attempt := 1; ; attempt++ {
		ctx, cancel := context.WithTimeout(context.Background(), l.o.WriteTimeout)
		written, err := WriteBatch(ctx, l.o.KV, l.o.Keys, l.o.Shard, l.o.OwnerRevision, records)
		cancel()
		if err == nil && !written {
			l.o.Metrics.FencedWrites.Inc()
			l.fence(fmt.Errorf("%w: the owner key of shard %d no longer has create revision %d",
				ErrFenced, l.o.Shard, l.o.OwnerRevision))
			return false
		}
		if err == nil {
			break
		}
		l.o.Metrics.WriteErrors.Inc()
		if status.Code(err) == codes.InvalidArgument {
			// etcd refuses the transaction itself (too many operations, too large): it
			// would refuse it again. The shard stops rather than wait forever.
			l.fence(fmt.Errorf("cluster: etcd refuses shard %d's log write: %w", l.o.Shard, err))
			return false
		}
		l.o.Logger.Warn("writing the shard's log to etcd failed; retrying",
			"shard", l.o.Shard, "attempt", attempt, "error", err)
		select {
		case <-l.stop:
			return false
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, l.o.RetryBackoffMax)
	}
	l.o.Metrics.Writes.Inc()
	l.o.Metrics.RecordsWritten.Add(float64(len(batch)))
	l.mu.Lock()
	if l.stopped && l.fenceErr != nil {
		// Fenced while the transaction was in flight: it succeeded, so the compare held
		// when etcd applied it, but the shard has stopped and reports nothing more.
		l.mu.Unlock()
		return false
	}
	l.pending = l.pending[len(batch):]
	if len(l.pending) > 0 {
		l.oldest = time.Now() // the rest waits at most one more interval
	} else {
		l.pending = nil // let a burst's array go
	}
	l.mu.Unlock()
	l.synced.Store(batch[len(batch)-1].lsn)
	l.o.Notify()
	return true
}

// Accepted returns the LSN of the last record accepted. Call it on the engine's
// goroutine.
func (l *Log) Accepted() uint64 { return l.lsn }
