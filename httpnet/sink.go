package httpnet

import (
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dtc-project/dtc/coordlog"
	"github.com/dtc-project/dtc/wal"
)

// meteredSink is the coordlog.Sink of every shard: the shared GroupSyncer, measured. The
// syncer is set once the log has been replayed, before any shard appends.
//
// The GroupSyncer keeps no statistics, so two are derived here:
//   - sync latency: from appending a record that asks for a sync until its done callback;
//   - records per group commit: the GroupSyncer calls the done callbacks of one batch one
//     after the other on its goroutine, right after the fsync that made them durable and
//     before the next one, so callbacks that see the same count of file fsyncs (kept by
//     a wal.SyncCountingFS) belong to the same batch.
type meteredSink struct {
	c  *wal.GroupSyncer
	m  *Metrics
	fs *wal.SyncCountingFS

	// noSpace is set when the log refused a record for lack of space; the compactor
	// clears it and has every shard checkpoint, so that old segments can go.
	noSpace atomic.Bool

	mu       sync.Mutex // the syncer's goroutine is the only caller; kept for safety
	batchGen uint64
	batchLen int
}

var _ coordlog.ReserveSink = (*meteredSink)(nil)

func (s *meteredSink) Append(payload []byte, sync bool, done func(wal.Pos, error)) (wal.Pos, error) {
	return s.append(s.c.Append, payload, sync, done)
}

// AppendReserved is for a checkpoint's records: they may use the log's reserved segment.
func (s *meteredSink) AppendReserved(payload []byte, sync bool, done func(wal.Pos, error)) (wal.Pos, error) {
	return s.append(s.c.AppendReserved, payload, sync, done)
}

func (s *meteredSink) append(appendTo func([]byte, bool, func(wal.Pos, error)) (wal.Pos, error),
	payload []byte, sync bool, done func(wal.Pos, error)) (wal.Pos, error) {
	start := time.Now()
	pos, err := appendTo(payload, sync, func(pos wal.Pos, err error) {
		if err == nil {
			if sync {
				s.m.logSyncLatency.Observe(time.Since(start).Seconds())
			}
			s.countInBatch()
		}
		if done != nil {
			done(pos, err)
		}
	})
	if err != nil && errors.Is(err, wal.ErrNoSpace) {
		s.noSpace.Store(true)
	}
	return pos, err
}

// countInBatch counts one durable record in the current batch; the previous batch is
// observed when the first record of the next one arrives.
func (s *meteredSink) countInBatch() {
	gen := s.fs.Syncs()
	s.mu.Lock()
	defer s.mu.Unlock()
	if gen != s.batchGen {
		if s.batchLen > 0 {
			s.m.logRecordsPerSync.Observe(float64(s.batchLen))
		}
		s.batchGen, s.batchLen = gen, 0
	}
	s.batchLen++
}
