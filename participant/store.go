package participant

import (
	"bytes"
	"errors"
	"fmt"
	"sync"

	"github.com/pingcap/failpoint"

	"github.com/dtc-project/dtc/internal/fp"
	"github.com/dtc-project/dtc/wal"
)

// Store is the log the core writes to. The core hands it records in order, never holding
// its own lock while doing so, and learns through done when each one is durable.
type Store interface {
	// Append adds record at the end of the log. done is called exactly once: with the
	// record's position once it is durable, or with an error if it never will be. An
	// error is fatal: the store is broken for good and every later record fails too.
	//
	// urgent says that an answer on the protocol's critical path (a prepare's vote) or
	// a caller (Update, Start's first checkpoint, Checkpoint) waits for the record: the
	// store makes it durable as soon as it can. Any other record (commit, rollback,
	// fence, a checkpoint the log's growth started) may wait a bounded time to share a
	// sync with a later one, since the coordinator is not waiting on its answer to tell
	// anyone the outcome; done still comes only once it is durable.
	// Records become durable in append order and done is called in that order. done may
	// be called before Append returns (a synchronous store) or later from another
	// goroutine; it does not block.
	Append(record []byte, urgent bool, done func(wal.Pos, error))
	// RemoveBefore deletes the whole log segments before the one holding pos. The core
	// calls it only with the position of a durable checkpoint.
	RemoveBefore(pos wal.Pos) error
	// RecordMaxBytes is the largest record Append takes; the core checks records
	// against it before it commits to them.
	RecordMaxBytes() int
	// Close releases the log.
	Close() error
}

// DefaultRecordMaxBytes is the record limit assumed when wal.Options.RecordMaxBytes is
// zero: the wal package then applies its own default (4 MiB, less if the segments are
// small), which this stays below.
const DefaultRecordMaxBytes = 1 << 20

// segmentOverheadBytes is an upper bound of a segment's header plus one record's frame
// header, so a record this much smaller than a segment fits in an empty one.
const segmentOverheadBytes = 512

// RecordMaxBytes returns the largest record a log opened with o surely takes.
func RecordMaxBytes(o wal.Options) int {
	if o.RecordMaxBytes > 0 {
		return o.RecordMaxBytes
	}
	n := int64(DefaultRecordMaxBytes)
	if o.SegmentSizeBytes > 0 && o.SegmentSizeBytes-segmentOverheadBytes < n {
		n = o.SegmentSizeBytes - segmentOverheadBytes
	}
	return int(n)
}

// SyncStore writes each record and syncs it before Append returns: done is called from
// within Append. It suits the simulator (one event at a time over wal.MemFS) and tests.
type SyncStore struct {
	log       *wal.Log
	recordMax int

	mu     sync.Mutex
	broken error
}

var _ Store = (*SyncStore)(nil)

// NewSyncStore returns a Store that appends to l and syncs after every record.
// recordMaxBytes is l's record limit: RecordMaxBytes of its options.
func NewSyncStore(l *wal.Log, recordMaxBytes int) *SyncStore {
	if recordMaxBytes <= 0 {
		panic("participant: record limit must be positive")
	}
	return &SyncStore{log: l, recordMax: recordMaxBytes}
}

// Append appends, syncs, then calls done, urgent or not. A failed sync breaks the store
// for good (an fsync is never retried).
func (s *SyncStore) Append(record []byte, _ bool, done func(wal.Pos, error)) {
	pos, err := s.append(record)
	done(pos, err)
}

func (s *SyncStore) append(record []byte) (wal.Pos, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.broken != nil {
		return wal.Pos{}, s.broken
	}
	pos, err := s.log.Append(record)
	if err == nil {
		err = s.log.Sync()
	}
	if err != nil {
		s.broken = fmt.Errorf("participant: log: %w", err)
		return wal.Pos{}, s.broken
	}
	return pos, nil
}

// RemoveBefore removes the segments before pos.Segment.
func (s *SyncStore) RemoveBefore(pos wal.Pos) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.broken != nil {
		return s.broken
	}
	return s.log.RemoveBefore(pos.Segment)
}

// RecordMaxBytes returns the log's record limit.
func (s *SyncStore) RecordMaxBytes() int { return s.recordMax }

// Close closes the log.
func (s *SyncStore) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.broken == nil {
		s.broken = ErrClosed
	}
	return s.log.Close()
}

// GroupSyncStore writes through a wal.GroupSyncer: concurrent records share one fsync
// (group commit) and done is called from the syncer's goroutine.
type GroupSyncStore struct {
	log       *wal.Log
	syncer    *wal.GroupSyncer
	recordMax int

	mu          sync.Mutex
	broken      error    // the first error: every later record fails with it
	outstanding int      // records handed to the syncer, done not called yet
	deferred    []func() // failures to report once the outstanding records are done
}

var _ Store = (*GroupSyncStore)(nil)

// NewGroupSyncStore starts a wal.GroupSyncer over l. recordMaxBytes is l's record
// limit: RecordMaxBytes of its options. o.OnFatal (required by wal) is where the
// process learns that the log failed; the core also fails every later call.
// o.LazyFlushInterval bounds how long a record that is not urgent (a commit's, say)
// waits for a sync: what a phase-2 answer may be delayed by when nothing else is
// being synced.
func NewGroupSyncStore(l *wal.Log, recordMaxBytes int, o wal.GroupSyncerOptions) *GroupSyncStore {
	if recordMaxBytes <= 0 {
		panic("participant: record limit must be positive")
	}
	return &GroupSyncStore{log: l, syncer: wal.NewGroupSyncer(l, o), recordMax: recordMaxBytes}
}

// Append hands record to the syncer: an urgent record is synced at once (with
// whatever else is waiting), any other one rides along with the next sync and waits for
// one of its own no longer than the syncer's LazyFlushInterval. A record the log
// refuses at once (disk full, say) breaks the store: the core has already acted on the
// record, so no later record may reach the log without it. Its failure is reported
// after the records before it, keeping done calls in order.
func (s *GroupSyncStore) Append(record []byte, urgent bool, done func(wal.Pos, error)) {
	prepare := bytes.HasPrefix(record, []byte(`{"type":"prepare"`)) // for the failpoint markers (faults.Failpoints)
	if prepare {
		failpoint.Inject("beforePrepareSync", func(v failpoint.Value) { _ = fp.Act("participant/beforePrepareSync", v) })
	}
	s.mu.Lock()
	if s.broken == nil {
		s.outstanding++
		s.mu.Unlock()
		_, err := s.syncer.Append(record, urgent, func(pos wal.Pos, err error) {
			if prepare && err == nil {
				failpoint.Inject("afterPrepareSync", func(v failpoint.Value) { err = fp.Act("participant/afterPrepareSync", v) })
			}
			done(pos, err)
			s.finish(err)
		})
		if err == nil {
			return
		}
		s.mu.Lock()
		s.outstanding--
		if s.broken == nil {
			s.broken = fmt.Errorf("participant: log: %w", err)
		}
	}
	err := s.broken
	if s.outstanding > 0 {
		s.deferred = append(s.deferred, func() { done(wal.Pos{}, err) })
		s.mu.Unlock()
		return
	}
	s.mu.Unlock()
	done(wal.Pos{}, err)
}

// finish runs on the syncer's goroutine after a record's done.
func (s *GroupSyncStore) finish(err error) {
	s.mu.Lock()
	s.outstanding--
	if err != nil && s.broken == nil {
		s.broken = fmt.Errorf("participant: log: %w", err)
	}
	var run []func()
	if s.outstanding == 0 {
		run, s.deferred = s.deferred, nil
	}
	s.mu.Unlock()
	for _, f := range run {
		f()
	}
}

// RemoveBefore removes the segments before pos.Segment.
func (s *GroupSyncStore) RemoveBefore(pos wal.Pos) error {
	return s.log.RemoveBefore(pos.Segment)
}

// RecordMaxBytes returns the log's record limit.
func (s *GroupSyncStore) RecordMaxBytes() int { return s.recordMax }

// Close stops the syncer (records already handed to it are synced first) and
// closes the log.
func (s *GroupSyncStore) Close() error {
	s.mu.Lock()
	if s.broken == nil {
		s.broken = ErrClosed
	}
	s.mu.Unlock()
	return errors.Join(s.syncer.Close(), s.log.Close())
}
