// Package coordlog keeps the coordinator's records in a wal: it is the coordinator.Log
// that both the daemon (httpnet) and the simulator (simnet) use, so the encoding, the
// LSN accounting and the checkpoint bookkeeping exist once.
//
// One wal may hold the records of several engines (the daemon's shards). Each engine
// appends through its own ShardLog; a record's durability comes back, in order, through
// the Sink's done callback, which advances the ShardLog's synced LSN and calls Notify.
// The engine's owner then steps the engine with LogSynced{Through: Synced()}.
//
// Checkpoints: a checkpoint's records go through the Sink's AppendReserved when it has one
// (ReserveSink), so that they may use the wal's reserved segments on a full disk. When an
// engine writes a checkpoint (RecCheckpoint "begin", its snapshots,
// RecCheckpoint "end"), the ShardLog remembers where the opening record sits in the wal.
// Once the closing record is durable, nothing that engine wrote before that position is
// needed again: Floor reports it. The wal's owner deletes the segments that lie wholly
// before the lowest floor of all engines (RemovableBefore).
package coordlog

import (
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/pingcap/failpoint"

	"github.com/dtc-project/dtc/coordinator"
	"github.com/dtc-project/dtc/internal/fp"
	"github.com/dtc-project/dtc/wal"
)

// Sink is where encoded records go: *wal.GroupSyncer in production, *SyncSink in the
// simulator. done must be called once per accepted record, in append order, when it is
// durable; it may be called from another goroutine.
type Sink interface {
	Append(payload []byte, sync bool, done func(wal.Pos, error)) (wal.Pos, error)
}

// ReserveSink is a Sink that can also append into the wal's reserved segments
// (wal.Options.ReservedSegments). A ShardLog writes a checkpoint's records (its brackets
// and snapshots) through AppendReserved when its Sink has it, so that a checkpoint, which
// lets old segments be deleted, fits even when the disk is full.
type ReserveSink interface {
	Sink
	AppendReserved(payload []byte, sync bool, done func(wal.Pos, error)) (wal.Pos, error)
}

// ShardLog is one engine's coordinator.Log. Append is called from the engine's goroutine;
// Synced and Floor may be called from anywhere.
type ShardLog struct {
	sink   Sink
	notify func()

	lsn     uint64  // records accepted, owned by the engine's goroutine
	cpStart wal.Pos // where the checkpoint being written began
	synced  atomic.Uint64

	mu       sync.Mutex
	floor    wal.Pos
	hasFloor bool
}

var _ coordinator.Log = (*ShardLog)(nil)

// NewShardLog returns a log for one engine. notify is called (from the Sink's goroutine,
// without locks held) each time more of this engine's records are durable; it must not
// block.
func NewShardLog(sink Sink, notify func()) *ShardLog {
	if notify == nil {
		notify = func() {}
	}
	return &ShardLog{sink: sink, notify: notify}
}

// Append implements coordinator.Log.
func (l *ShardLog) Append(rec *coordinator.Record, sync bool) error {
	b, err := coordinator.EncodeRecord(rec)
	if err != nil {
		return err
	}
	lsn := l.lsn + 1
	closing := rec.Type == coordinator.RecCheckpoint && rec.Bracket == "end"
	start := l.cpStart
	decision := rec.Type == coordinator.RecDecision // for the failpoint markers (faults.Failpoints)
	if decision {
		failpoint.Inject("beforeDecisionSync", func(v failpoint.Value) {
			if err := fp.Act("coordlog/beforeDecisionSync", v); err != nil {
				failpoint.Return(fmt.Errorf("coordlog: %w", err))
			}
		})
		failpoint.Inject("decisionNotSynced", func() { sync = false }) // a deliberately broken build
	}
	appendTo := l.sink.Append
	if rs, ok := l.sink.(ReserveSink); ok && (rec.Type == coordinator.RecCheckpoint || rec.Type == coordinator.RecSnapshot) {
		appendTo = rs.AppendReserved
	}
	pos, err := appendTo(b, sync, func(_ wal.Pos, err error) {
		if err != nil {
			return // the log failed: the process is going down, nothing more is durable
		}
		if closing {
			l.mu.Lock()
			l.floor, l.hasFloor = start, true
			l.mu.Unlock()
		}
		if decision {
			failpoint.Inject("afterDecisionSync", func(v failpoint.Value) { _ = fp.Act("coordlog/afterDecisionSync", v) })
		}
		l.synced.Store(lsn)
		l.notify()
	})
	if err != nil {
		return fmt.Errorf("coordlog: %w", err)
	}
	l.lsn = lsn
	if decision {
		// A deliberately broken build: the decision is reported durable before its sync.
		failpoint.Inject("decisionNotSynced", func() { l.synced.Store(lsn); l.notify() })
	}
	if rec.Type == coordinator.RecCheckpoint && rec.Bracket == "begin" {
		l.cpStart = pos
	}
	return nil
}

// Synced returns the LSN up to which this engine's records are durable.
func (l *ShardLog) Synced() uint64 { return l.synced.Load() }

// Floor returns the position of this engine's last completed checkpoint: none of its
// records before it are needed. ok is false until a checkpoint has completed.
func (l *ShardLog) Floor() (pos wal.Pos, ok bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.floor, l.hasFloor
}

// RemovableBefore returns the segment index before which every segment may be deleted:
// the lowest checkpoint floor of all shards. ok is false if some shard has no floor yet.
func RemovableBefore(shards []*ShardLog) (seg uint64, ok bool) {
	for i, s := range shards {
		f, has := s.Floor()
		if !has {
			return 0, false
		}
		if i == 0 || f.Segment < seg {
			seg = f.Segment
		}
	}
	return seg, len(shards) > 0
}

// RemoveObsolete is one compaction step: it removes the segments of l before the lowest
// checkpoint floor of all shards, if there are any. It reports the segment it removed
// up to (removed false: nothing to remove, or some shard has no floor yet). An error is
// wal.RemoveBefore's: one that wraps wal.ErrSyncFailed has failed the log for good
// (the caller must stop), any other leaves the log usable and the step may be retried.
func RemoveObsolete(l *wal.Log, shards []*ShardLog) (before uint64, removed bool, err error) {
	segs := l.Segments()
	before, ok := RemovableBefore(shards)
	if !ok || len(segs) == 0 || before <= segs[0] {
		return before, false, nil
	}
	if err := l.RemoveBefore(before); err != nil {
		return before, false, err
	}
	return before, true, nil
}

// Replay reads every durable record of the log in o (repairing a torn tail unless
// o.ReadOnly), decodes it and hands it to fn in log order, and returns the log ready for
// appends. A record that does not decode stops the replay with an error naming its
// position: it passed the wal's CRC, so it was written wrong, and guessing is not safe.
func Replay(o wal.Options, fn func(wal.Pos, *coordinator.Record) error) (*wal.Log, error) {
	return wal.Open(o, func(pos wal.Pos, b []byte) error {
		rec, err := coordinator.DecodeRecord(b)
		if err != nil {
			return fmt.Errorf("coordlog: record at segment %d offset %d: %w", pos.Segment, pos.Offset, err)
		}
		return fn(pos, rec)
	})
}

// SyncSink is a Sink for single-threaded use (the simulator): Append writes to the wal at
// once, and Flush syncs and then calls the done callbacks of everything appended before
// it. Whoever owns it decides when Flush runs, so a simulated disk can take its time.
type SyncSink struct {
	log     *wal.Log
	pending []pendingDone
	// SyncRequested is set when a record asked for a sync since the last Flush.
	SyncRequested bool
}

type pendingDone struct {
	pos  wal.Pos
	done func(wal.Pos, error)
}

// NewSyncSink returns a sink over l.
func NewSyncSink(l *wal.Log) *SyncSink { return &SyncSink{log: l} }

// Append implements Sink.
func (s *SyncSink) Append(payload []byte, sync bool, done func(wal.Pos, error)) (wal.Pos, error) {
	pos, err := s.log.Append(payload)
	if err != nil {
		return pos, err
	}
	if done != nil {
		s.pending = append(s.pending, pendingDone{pos, done})
	}
	s.SyncRequested = s.SyncRequested || sync
	return pos, nil
}

// AppendReserved implements ReserveSink.
func (s *SyncSink) AppendReserved(payload []byte, sync bool, done func(wal.Pos, error)) (wal.Pos, error) {
	pos, err := s.log.AppendReserved(payload)
	if err != nil {
		return pos, err
	}
	if done != nil {
		s.pending = append(s.pending, pendingDone{pos, done})
	}
	s.SyncRequested = s.SyncRequested || sync
	return pos, nil
}

// Pending reports how many records wait for Flush.
func (s *SyncSink) Pending() int { return len(s.pending) }

// Flush syncs the wal and reports everything appended so far as durable. A sync error is
// returned as is and reported to nobody: it is fatal, and the caller must crash.
func (s *SyncSink) Flush() error {
	if err := s.log.Sync(); err != nil {
		return err
	}
	p := s.pending
	s.pending, s.SyncRequested = nil, false
	for _, d := range p {
		d.done(d.pos, nil)
	}
	return nil
}
