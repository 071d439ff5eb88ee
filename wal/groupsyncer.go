package wal

import (
	"errors"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

const defaultLazyFlushInterval = 50 * time.Millisecond

// GroupSyncerOptions configure a GroupSyncer.
type GroupSyncerOptions struct {
	// LazyFlushInterval bounds how long a lazy record (appended with
	// sync=false) waits for a sync: at the latest this long after it was
	// appended, the syncer syncs. Lazy records never cause a sync sooner.
	// Default 50ms.
	LazyFlushInterval time.Duration
	// OnFatal is called once, from one of the syncer's goroutines (the one
	// that syncs, or the one building the next segment), when a sync fails. The log is failed for good; the process should exit and let
	// Open read what is really on disk. Required.
	OnFatal func(error)
}

// GroupSyncer is group commit over a Log: many appenders share one fsync.
// While one sync runs, new records accumulate; the next sync covers them all.
// It owns one goroutine, which does every sync and calls every done callback,
// and while the log's next segment is being prepared, a second one that
// builds it (so that syncs go on meanwhile); Close stops both and waits for
// them.
//
// The Log stays the GroupSyncer's caller's: Close the GroupSyncer first, then the
// Log. Appending to the Log directly while a GroupSyncer runs is allowed (those
// records ride along with its syncs) but pointless.
type GroupSyncer struct {
	l         *Log
	lazyFlush time.Duration
	onFatal   func(error)
	clock     clock

	mu sync.Mutex
	// queue holds the records appended since the last sync started, in
	// append order. It is bounded by the appenders: each waits for its done
	// (durable records) or is flushed within LazyFlushInterval (lazy ones).
	queue          []waiter
	recycled       []waiter // the previous batch's slice, for reuse
	durableWaiting bool     // queue holds a record appended with sync=true
	lazySet        bool     // lazyDeadline is set for the lazy records in queue
	lazyDeadline   time.Time
	lazyDue        bool // the lazy deadline passed
	closing        bool
	err            error // what stopped the syncer: the log failed or was closed
	fatalCalled    bool  // OnFatal was called

	building atomic.Bool    // a builder goroutine is preparing the spare segment
	builder  sync.WaitGroup // the builder goroutine, if any

	wake    chan struct{} // capacity 1: "look at the queue"
	stopped chan struct{} // closed when the goroutine has returned
}

type waiter struct {
	pos  Pos
	done func(Pos, error)
}

// clock is the time source of a GroupSyncer; tests replace it.
type clock interface {
	Now() time.Time
	NewTimer(d time.Duration) (c <-chan time.Time, stop func() bool)
}

type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }
func (realClock) NewTimer(d time.Duration) (<-chan time.Time, func() bool) {
	t := time.NewTimer(d)
	return t.C, t.Stop
}

// NewGroupSyncer starts group commit over l. It panics if o.OnFatal is nil or
// o.LazyFlushInterval is negative: both are programming errors.
func NewGroupSyncer(l *Log, o GroupSyncerOptions) *GroupSyncer {
	return newGroupSyncer(l, o, realClock{})
}

func newGroupSyncer(l *Log, o GroupSyncerOptions, clk clock) *GroupSyncer {
	if o.OnFatal == nil {
		panic("wal: GroupSyncerOptions.OnFatal is required")
	}
	if o.LazyFlushInterval < 0 {
		panic("wal: GroupSyncerOptions.LazyFlushInterval must not be negative")
	}
	if o.LazyFlushInterval == 0 {
		o.LazyFlushInterval = defaultLazyFlushInterval
	}
	c := &GroupSyncer{
		l:         l,
		lazyFlush: o.LazyFlushInterval,
		onFatal:   o.OnFatal,
		clock:     clk,
		wake:      make(chan struct{}, 1),
		stopped:   make(chan struct{}),
	}
	go c.run()
	return c
}

// Append writes payload to the log now and returns its position, or an error
// at once if the log refuses it (ErrRecordTooLarge, ErrNoSpace, a failed or
// closed log). Once the record is durable, done(pos, nil) is called; if the
// log fails or closes first, done(pos, err). done may be nil; it is called
// from the syncer's goroutine, in append order, and must not block.
//
// With sync false the record is lazy: it rides along with the next sync and
// never causes one, except that it is synced at the latest
// LazyFlushInterval after it was appended.
func (c *GroupSyncer) Append(payload []byte, sync bool, done func(Pos, error)) (Pos, error) {
	return c.append(payload, sync, done, false)
}

// AppendReserved is Append through Log.AppendReserved: the record may take a
// reserved segment (Options.ReservedSegments) when it needs a new one.
func (c *GroupSyncer) AppendReserved(payload []byte, sync bool, done func(Pos, error)) (Pos, error) {
	return c.append(payload, sync, done, true)
}

func (c *GroupSyncer) append(payload []byte, sync bool, done func(Pos, error), reserved bool) (Pos, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closing {
		return Pos{}, &walError{msg: "wal: syncer append: syncer is closed", kind: ErrClosed}
	}
	if c.err != nil {
		return Pos{}, c.err
	}
	// Appending under c.mu keeps the queue in log order.
	pos, err := c.l.append(payload, reserved)
	if err != nil {
		return Pos{}, err
	}
	c.queue = append(c.queue, waiter{pos: pos, done: done})
	wake := false
	switch {
	case sync && !c.durableWaiting:
		c.durableWaiting, wake = true, true
	case !sync && !c.lazySet:
		c.lazySet, wake = true, true
		c.lazyDeadline = c.clock.Now().Add(c.lazyFlush)
	}
	if wake {
		c.poke()
	}
	return pos, nil
}

// Close syncs what is pending (calling its done callbacks), stops the
// goroutine and waits for it. It does not close the Log. It returns the error
// that stopped the syncer early, if any (a failed sync, or the Log closed
// under it).
func (c *GroupSyncer) Close() error {
	c.mu.Lock()
	c.closing = true
	c.mu.Unlock()
	c.poke()
	<-c.stopped
	c.builder.Wait()
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// run is the syncer's goroutine: it syncs whenever a durable record waits,
// the lazy deadline passes, or Close asks, and then reports to the appenders.
func (c *GroupSyncer) run() {
	defer close(c.stopped)
	var (
		timerC    <-chan time.Time
		stopTimer func() bool
	)
	disarm := func() {
		if stopTimer != nil {
			stopTimer()
		}
		timerC, stopTimer = nil, nil
	}
	defer disarm()
	for {
		c.mu.Lock()
		due := c.durableWaiting || c.lazyDue || c.closing || c.err != nil
		if len(c.queue) == 0 || !due {
			if c.closing {
				c.mu.Unlock()
				return
			}
			if len(c.queue) > 0 && timerC == nil {
				// Only lazy records wait: sync them at their deadline.
				timerC, stopTimer = c.clock.NewTimer(max(0, c.lazyDeadline.Sub(c.clock.Now())))
			}
			c.mu.Unlock()
			select {
			case <-c.wake:
			case <-timerC:
				timerC, stopTimer = nil, nil
				c.mu.Lock()
				c.lazyDue = true
				c.mu.Unlock()
			}
			continue
		}
		batch := c.queue
		c.queue, c.recycled = c.recycled, nil
		c.durableWaiting, c.lazySet, c.lazyDue = false, false, false
		err := c.err
		c.mu.Unlock()
		disarm()

		// Every record in batch was appended before this sync starts, so
		// the sync covers it.
		if err == nil {
			if err = c.l.syncData(); err != nil {
				c.stop(err)
			}
		}
		for i := range batch {
			if batch[i].done != nil {
				batch[i].done(batch[i].pos, err)
			}
			batch[i] = waiter{}
		}
		c.mu.Lock()
		c.recycled = batch[:0]
		c.mu.Unlock()
		if err == nil && c.l.spareWanted() {
			c.buildSpare()
		}
		// Let the appenders just told run and append their next records
		// before the next sync starts, so that they share it instead of
		// waiting for the one after. Measured (bench TestMeasure, K=2 C=64,
		// GOMAXPROCS 3): without this yield the participants' logs synced
		// 2.5 records per sync instead of 7, 2.5x as many syncs, and dtc
		// spent ~10% more CPU per transaction with no lower latency.
		runtime.Gosched()
	}
}

// buildSpare prepares the log's next segment on a goroutine of its own, unless
// one is at it already. Building a segment writes and fsyncs SegmentSizeBytes
// of zeros: measured during a soak, 17 ms for a participant's log and 40-50 ms
// for dtc's, during which the syncs of every appender would otherwise wait.
// Called by the run goroutine only.
func (c *GroupSyncer) buildSpare() {
	if c.building.Swap(true) {
		return
	}
	c.builder.Go(func() {
		defer c.building.Store(false)
		if err := c.l.preallocateSpare(); err != nil {
			c.stop(err)
			c.poke() // the run goroutine fails what is queued
		}
	})
}

// poke wakes the run goroutine.
func (c *GroupSyncer) poke() {
	select {
	case c.wake <- struct{}{}:
	default: // a wake-up is already pending
	}
}

// stop records what stopped the syncer and, for a failed sync, calls
// OnFatal once. Called by the run goroutine and the spare's builder.
func (c *GroupSyncer) stop(err error) {
	c.mu.Lock()
	if c.err == nil {
		c.err = err
	}
	call := errors.Is(err, ErrSyncFailed) && !c.fatalCalled
	c.fatalCalled = c.fatalCalled || call
	c.mu.Unlock()
	if call {
		c.onFatal(err)
	}
}
