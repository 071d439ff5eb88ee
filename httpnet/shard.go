package httpnet

import (
	"context"
	crand "crypto/rand"
	"log/slog"
	"math/rand/v2"
	"sync/atomic"
	"time"

	"github.com/dtc-project/dtc/coordinator"
	"github.com/dtc-project/dtc/coordlog"
)

// A shard is one engine and the goroutine that owns it. Everything that touches the
// engine runs on that goroutine, in the order the inbox delivers it: replies, timers,
// API calls (as closures) and, through a separate coalescing signal, the log's progress.
type shard struct {
	id  int
	eng *coordinator.Engine // owned by run's goroutine once it starts
	log *coordlog.ShardLog
	lg  *slog.Logger

	inbox  chan item     // bounded: producers wait (or give up with their context)
	synced chan struct{} // 1-buffered: "more of this shard's records are durable"
	quit   chan struct{} // closed by the runtime to stop the loop
	done   chan struct{} // closed when the loop has returned

	ready    atomic.Bool // eng.Ready(), published after every event
	cpFailed atomic.Bool // the last checkpoint was refused by the log
}

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

// clock is a shard's coordinator.Clock: the wall clock, and timers that post
// TimerFired to the shard's inbox. Timers are not cancelled (the engine ignores stale
// ones); one that fires after the shard stopped is dropped.
type clock struct{ s *shard }

var _ coordinator.Clock = clock{}

func (c clock) Now() time.Time { return time.Now() }

func (c clock) SetTimer(d time.Duration, t coordinator.Timer) {
	time.AfterFunc(d, func() { c.s.post(item{ev: coordinator.TimerFired{Timer: t}}) })
}

// newRand returns a ChaCha8 generator seeded from the operating system: the engine's
// backoff jitter. It is used by one shard's goroutine only.
func newRand() coordinator.Rand {
	var seed [32]byte
	_, _ = crand.Read(seed[:]) // never fails (it crashes the program instead)
	return rand.NewChaCha8(seed)
}

// newTxnID returns a random transaction id (128 bits, hex), so that a transaction
// without a client-chosen id can be routed to its shard before it begins.
func newTxnID() string {
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
