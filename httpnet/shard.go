package httpnet

import (
	"context"
	crand "crypto/rand"
	"log/slog"
	"math"
	"math/rand/v2"
	"sync/atomic"
	"time"

	"github.com/dtc-project/dtc/coordinator"
)

// A shard is one engine and the goroutine that owns it. Everything that touches the
// engine runs on that goroutine: replies and API calls (as closures) in the order the
// inbox delivers them, timers from the shard's own timer queue and, through a separate
// coalescing signal, the log's progress.
type shard struct {
	id     int
	eng    *coordinator.Engine // owned by run's goroutine once it starts
	log    syncedLog
	lg     *slog.Logger
	timers timerQueue // owned by run's goroutine, like eng

	inbox  chan item     // bounded: producers wait (or give up with their context)
	synced chan struct{} // 1-buffered: "more of this shard's records are durable"
	quit   chan struct{} // closed by the runtime to stop the loop
	done   chan struct{} // closed when the loop has returned

	ready    atomic.Bool // eng.Ready(), published after every event
	cpFailed atomic.Bool // the last checkpoint was refused by the log
}

// syncedLog is what a shard asks its log (a *coordlog.ShardLog, or a *cluster.Log in a
// cluster): the LSN through which the engine's records are durable.
type syncedLog interface{ Synced() uint64 }

// item is one thing for the shard's goroutine to do: step an event, or run a call.
type item struct {
	ev   coordinator.Event
	call func(*coordinator.Engine)
}

func newShard(id, inboxCap int, lg *slog.Logger) *shard {
	return &shard{
		id:     id,
		lg:     lg.With("shard", id),
		inbox:  make(chan item, inboxCap),
		synced: make(chan struct{}, 1),
		quit:   make(chan struct{}),
		done:   make(chan struct{}),
		timers: newTimerQueue(),
	}
}

// notify is the ShardLog's callback. It runs on the log's goroutine and never blocks: a
// pending signal already covers whatever became durable since.
func (s *shard) notify() {
	select {
	case s.synced <- struct{}{}:
	default:
	}
}

// post hands it to the shard, waiting while the inbox is full. It reports false if the
// shard stopped first.
func (s *shard) post(it item) bool {
	select {
	case s.inbox <- it:
		return true
	case <-s.quit:
		return false
	}
}

// deliver is the transport's reply callback.
func (s *shard) deliver(r coordinator.Reply) { s.post(item{ev: r}) }

// do runs fn on the shard's goroutine and waits until it has run. If ctx ends or the
// shard stops first, do returns an error, and fn may still run later (or never): fn must
// only write to variables the caller reads after a nil return.
func (s *shard) do(ctx context.Context, fn func(*coordinator.Engine)) error {
	ran := make(chan struct{})
	select {
	case s.inbox <- item{call: func(e *coordinator.Engine) { fn(e); close(ran) }}:
	case <-ctx.Done():
		return ctx.Err()
	case <-s.quit:
		return ErrStopped
	}
	select {
	case <-ran:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-s.done:
		select {
		case <-ran: // it ran just before the loop returned
			return nil
		default:
			return ErrStopped
		}
	}
}

// run is the shard's goroutine: it resumes what the log held, checkpoints once so that
// the shard has a floor for compaction, then serves the inbox until quit.
func (s *shard) run() {
	defer close(s.done)
	defer s.timers.stop() // nothing fires once the shard has stopped
	s.eng.Start()
	s.checkpoint()
	s.ready.Store(s.eng.Ready())
	for {
		select {
		case <-s.quit:
			return
		default:
		}
		select {
		case <-s.quit:
			return
		case <-s.synced:
			s.eng.Step(coordinator.LogSynced{Through: s.log.Synced()})
		case it := <-s.inbox:
			if it.call != nil {
				it.call(s.eng)
			} else {
				s.eng.Step(it.ev)
			}
		case <-s.timers.wake.C:
			for _, t := range s.timers.due() {
				s.eng.Step(coordinator.TimerFired{Timer: t})
			}
		}
		s.ready.Store(s.eng.Ready())
	}
}

// checkpoint runs on the shard's goroutine.
func (s *shard) checkpoint() {
	if err := s.eng.Checkpoint(); err != nil {
		s.cpFailed.Store(true)
		s.lg.Error("checkpoint refused by the log; retried at the next compaction tick", "error", err)
		return
	}
	s.cpFailed.Store(false)
}

// clock is a shard's coordinator.Clock: the wall clock, and timers kept in the shard's
// timer queue, which the shard's goroutine steps as TimerFired at or after their
// deadline. Timers are not cancelled (the engine ignores stale ones); those still
// pending when the shard stops never fire.
type clock struct{ s *shard }

var _ coordinator.Clock = clock{}

func (c clock) Now() time.Time { return time.Now() }

// SetTimer runs on the shard's goroutine, as every call into the engine does.
func (c clock) SetTimer(d time.Duration, t coordinator.Timer) { c.s.timers.add(d, t) }

// timerQueue is a shard's pending timers, owned by the shard's goroutine: a min-heap by
// deadline, and one time.Timer (wake) armed for the earliest. It costs no goroutine and
// no runtime timer per engine timer, and a stale timer (the prepare deadline of a
// transaction decided long before) costs one heap entry and one Step.
//
// It holds every timer set and not yet due: as many as the engine sets within its
// longest timeout (the prepare deadlines of the transactions begun within
// PrepareTimeoutMax, the retries of the transactions in flight), each a few dozen
// bytes.
type timerQueue struct {
	base    time.Time // deadlines are durations since base, on the monotonic clock
	heap    []pendingTimer
	wake    *time.Timer // fires at armedAt, if armed
	armed   bool
	armedAt time.Duration
	fired   []coordinator.Timer // due's result, reused
}

type pendingTimer struct {
	at time.Duration // since timerQueue.base
	t  coordinator.Timer
}

// timerQueueShrinkMin: a heap's array of more entries than this is reallocated
// smaller once it is less than a quarter full, so that a burst does not pin memory.
const timerQueueShrinkMin = 1024

func newTimerQueue() timerQueue {
	wake := time.NewTimer(time.Hour)
	wake.Stop() // a stopped timer delivers nothing until it is Reset
	return timerQueue{base: time.Now(), wake: wake}
}

// add schedules t for d from now, arming wake if t is the earliest.
func (q *timerQueue) add(d time.Duration, t coordinator.Timer) {
	now := time.Since(q.base)
	at := now + max(d, 0)
	if at < now { // overflow: a deadline beyond anything that matters
		at = math.MaxInt64
	}
	q.heap = append(q.heap, pendingTimer{at: at, t: t})
	q.up(len(q.heap) - 1)
	if !q.armed || at < q.armedAt {
		q.arm(now)
	}
}

// due removes and returns, in deadline order, the timers whose deadline has passed, and
// arms wake for the next one. It is called when wake fired; the slice is valid until
// the next call.
func (q *timerQueue) due() []coordinator.Timer {
	q.armed = false
	now := time.Since(q.base)
	clear(q.fired) // the last batch's transaction ids
	q.fired = q.fired[:0]
	for len(q.heap) > 0 && q.heap[0].at <= now {
		q.fired = append(q.fired, q.pop())
	}
	if c := cap(q.heap); c > timerQueueShrinkMin && len(q.heap) < c/4 {
		q.heap = append(make([]pendingTimer, 0, c/2), q.heap...)
	}
	if len(q.heap) > 0 {
		q.arm(now)
	}
	return q.fired
}

// arm sets wake for the earliest deadline; the heap is not empty.
func (q *timerQueue) arm(now time.Duration) {
	q.armed, q.armedAt = true, q.heap[0].at
	q.wake.Reset(q.armedAt - now) // a value from an earlier arming is never delivered
}

// stop disarms wake for good: the shard has stopped.
func (q *timerQueue) stop() {
	q.wake.Stop()
	q.armed = false
}

func (q *timerQueue) up(i int) {
	h := q.heap
	for i > 0 {
		parent := (i - 1) / 2
		if h[parent].at <= h[i].at {
			return
		}
		h[parent], h[i] = h[i], h[parent]
		i = parent
	}
}

// pop removes the earliest timer.
func (q *timerQueue) pop() coordinator.Timer {
	h := q.heap
	t := h[0].t
	last := len(h) - 1
	h[0] = h[last]
	h[last] = pendingTimer{} // drop the reference to the transaction id
	h = h[:last]
	for i := 0; ; {
		least, l, r := i, 2*i+1, 2*i+2
		if l < len(h) && h[l].at < h[least].at {
			least = l
		}
		if r < len(h) && h[r].at < h[least].at {
			least = r
		}
		if least == i {
			break
		}
		h[i], h[least] = h[least], h[i]
		i = least
	}
	q.heap = h
	return t
}

// newRand returns a ChaCha8 generator seeded from the operating system: the engine's
// backoff jitter. It is used by one shard's goroutine only.
func newRand() coordinator.Rand {
	var seed [32]byte
	_, _ = crand.Read(seed[:]) // never fails (it crashes the program instead)
	return rand.NewChaCha8(seed)
}

// NewTxnID returns a random transaction id (128 bits, hex), so that a transaction
// without a client-chosen id can be routed to its shard before it begins.
func NewTxnID() string {
	var b [16]byte
	_, _ = crand.Read(b[:])
	const hexdigits = "0123456789abcdef"
	out := make([]byte, 32)
	for i, c := range b {
		out[2*i], out[2*i+1] = hexdigits[c>>4], hexdigits[c&0xf]
	}
	return string(out)
}

// shardOf routes a transaction id to one of n shards (FNV-1a). Records are routed the
// same way at replay, so the number of shards may change between restarts.
func shardOf(id string, n int) int {
	const (
		offset64 = 14695981039346656037
		prime64  = 1099511628211
	)
	h := uint64(offset64)
	for i := 0; i < len(id); i++ {
		h ^= uint64(id[i])
		h *= prime64
	}
	h ^= h >> 32 // fold the high bits in: FNV's low bits alone mix short keys poorly
	return int(h % uint64(n))
}

// ShardOf is the shard (of n) that transaction id belongs to: the local log's shards and
// a cluster's alike. Tools use it to find an id of a given shard.
func ShardOf(id string, n int) int { return shardOf(id, n) }
