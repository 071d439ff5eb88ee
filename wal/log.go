package wal

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
)

// Pos is where a record starts: its segment and the byte offset of its frame
// in the segment file. Positions are ordered by Less, in log order.
type Pos struct {
	Segment uint64
	Offset  int64
}

// Less reports whether p comes before q in the log.
func (p Pos) Less(q Pos) bool {
	if p.Segment != q.Segment {
		return p.Segment < q.Segment
	}
	return p.Offset < q.Offset
}

// Log is a segmented append-only log of records. Append buffers a record in
// memory; Sync writes the buffered records and fsyncs them. Append, Sync,
// RemoveBefore, Segments, TornTail and Close are safe for concurrent use; the
// Log starts no goroutine and, driven from one goroutine, does the same file
// operations in the same order every time.
//
// What is buffered between two Syncs is bounded only by the caller: sync
// regularly (a GroupSyncer syncs continuously, and lazy records at least every
// LazyFlushInterval).
type Log struct {
	o Options // defaults applied

	// syncMu serializes the calls that write segments: Sync (and the
	// GroupSyncer's syncs), Close, and the moment RemoveBefore decides what it
	// may remove. (A spare's build and the removals themselves run beside
	// them: see preallocateSpare and RemoveBefore.) It is never taken while
	// holding mu.
	syncMu sync.Mutex
	// removeMu serializes RemoveBefore calls, and Close with them. It is taken
	// before syncMu, never after.
	removeMu sync.Mutex

	mu         sync.Mutex
	spareBuilt sync.Cond // on mu; broadcast when a spare build ends
	// active is the segment appends go to. Its file is open read-write.
	active   *segment
	writeOff int64  // where the next frame goes in active
	first    uint64 // lowest segment index on disk
	// pending holds what Append buffered and Sync has not taken yet, in log
	// order: data to write, and seals of segments the log moved on from.
	pending []chunk
	free    [][]byte // recycled chunk buffers, at most freeBufsMax
	// ahead is how many preallocated empty segments follow the active one
	// (active+1 .. active+ahead), each large enough for the largest record: the
	// spare, then the reserve (Options.ReservedSegments). The log keeps
	// 1+ReservedSegments of them when it can.
	ahead      int
	isBuilding bool // preallocateSpare is building segment active+ahead+1 outside mu
	// spareFailed is the index of a segment whose background build failed
	// without being fatal (e.g. disk full); it is not retried in the
	// background until Preallocate or RemoveBefore: the Append that needs it
	// retries and reports the error.
	spareFailed uint64
	failed      error // first fatal error; the log is unusable once set
	closed      bool
	torn        *tornTail
	// unrenamed names, for a read-only Open, the segments found under their
	// .tmp name with records in them (a lost rename, see rollForward): they are
	// read from there.
	unrenamed map[uint64]string
}

// segment is one segment file of a Log.
type segment struct {
	index    uint64
	f        File  // open while active or until the final sync after a cut
	capacity int64 // size of the file; frames must end by it
}

// chunk is either buffered frames to write at off in seg, or (seal) the
// order to fsync and close seg because the log moved on to the next segment.
type chunk struct {
	seg  *segment
	off  int64
	buf  []byte
	seal bool
}

type tornTail struct {
	at     Pos
	reason string
}

const (
	// Recycled chunk buffers: a few, and only ordinary ones. A sync's batch is a few
	// KiB (15 records of ~170 bytes on dtc's log under load); a batch that piled up
	// behind a slow fsync or a checkpoint can be MiBs, and keeping its buffer would
	// keep that memory for good. With 1 MiB allowed, a soak's live heap rose in steps
	// of ~2 MiB, up to 3 logs × 4 × 1 MiB, as stalls left bigger buffers behind.
	freeBufsMax       = 4
	freeBufMaxBytes   = 64 << 10
	zeroFillChunkSize = 256 << 10
)

var zeroBlock [zeroFillChunkSize]byte

// Open opens the log in o.Dir, creating the directory and a first segment if
// there is none. It reads every record in log order, calling replay for each
// (replay may keep payload; it may be nil), then repairs a torn tail (see the
// package doc) and returns the log ready for appends. A Log opened with
// o.ReadOnly changes nothing on disk.
//
// A torn tail (the last record cut short by a crash) is zeroed; TornTail
// reports where it was. Corruption anywhere else fails Open with a
// *CorruptError naming the segment file and offset. An error from replay fails Open too, wrapped.
// When Open fails, replay may already have seen some records: discard
// whatever it built.
func Open(o Options, replay func(Pos, []byte) error) (*Log, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	l := &Log{o: o.withDefaults()}
	l.spareBuilt.L = &l.mu
	if err := l.open(replay); err != nil {
		if l.active != nil && l.active.f != nil {
			_ = l.active.f.Close() // the error that matters is err
		}
		return nil, err
	}
	return l, nil
}

func (l *Log) open(replay func(Pos, []byte) error) error {
	o := l.o
	if !o.ReadOnly {
		if err := o.FS.MkdirAll(o.Dir); err != nil {
			return fmt.Errorf("wal: open: create directory: %w", err)
		}
	}
	names, err := o.FS.ReadDir(o.Dir)
	if err != nil {
		return fmt.Errorf("wal: open: %w", err)
	}
	var idxs []uint64
	for _, name := range names {
		if idx, ok := parseSegmentName(name); ok {
			idxs = append(idxs, idx)
			continue
		}
		// A spare whose build a crash interrupted, or a segment whose rename was lost.
		if base, ok := strings.CutSuffix(name, tmpExt); ok {
			if idx, ok := parseSegmentName(base); ok {
				kept, err := l.rollForward(idx, name, slices.Contains(names, base))
				if err != nil {
					return err
				}
				if kept {
					idxs = append(idxs, idx)
				}
			}
		}
	}
	slices.Sort(idxs)
	for i := 1; i < len(idxs); i++ {
		if idxs[i] != idxs[i-1]+1 {
			return &CorruptError{Segment: idxs[i-1] + 1, Offset: 0,
				Reason: fmt.Sprintf("segment file is missing (segments %d and %d exist)", idxs[i-1], idxs[i])}
		}
	}
	if len(idxs) == 0 {
		if o.ReadOnly {
			return nil // an empty log: no segments, no records
		}
		if err := l.buildSegment(1); err != nil {
			return l.buildError(err, 1, "open")
		}
		idxs = []uint64{1}
	}

	// Read every segment in order. Records are replayed up to the first bad
	// frame; after it, the later segments only have to be empty for the bad
	// frame to be a torn tail.
	var (
		buf      []byte
		bad      *badFrame
		badAt    int
		lastRec  int // index in idxs of the last segment with records
		ends     = make([]int64, len(idxs))
		sizes    = make([]int64, len(idxs))
		versions = make([]uint32, len(idxs))
		short    = make([]bool, len(idxs)) // shorter than built, and accepted (checkSize)
	)
	for i, idx := range idxs {
		content, err := l.readSegment(idx, &buf)
		if err != nil {
			return err
		}
		sizes[i] = int64(len(content))
		hdr, reason := parseHeader(content, idx)
		if reason != "" {
			if bad != nil {
				return notTorn(idxs[badAt], bad, idx)
			}
			return &CorruptError{Segment: idx, Offset: 0, Reason: reason}
		}
		versions[i] = hdr.version
		short[i] = hdr.built > 0 && sizes[i] < hdr.built
		if bad != nil {
			if firstNonZero(content[hdr.len:]) >= 0 {
				return notTorn(idxs[badAt], bad, idx)
			}
			if err := checkSize(idx, hdr, content, hdr.len, int64(len(content))-hdr.len >= frameHeaderSize); err != nil {
				return err
			}
			continue
		}
		res, err := scanFrames(content, hdr.len, func(off int64, payload []byte) error {
			if replay == nil {
				return nil
			}
			if err := replay(Pos{idx, off}, bytes.Clone(payload)); err != nil {
				return fmt.Errorf("wal: open: replay of record at segment %d offset %d: %w", idx, off, err)
			}
			return nil
		})
		if err != nil {
			return err
		}
		if err := checkSize(idx, hdr, content, res.end, res.bad == nil && res.marker); err != nil {
			return err
		}
		if res.records > 0 {
			lastRec = i
		}
		ends[i] = res.end
		if res.bad != nil {
			if !res.bad.torn {
				return &CorruptError{Segment: idx, Offset: res.bad.off, Reason: res.bad.reason}
			}
			bad, badAt = res.bad, i
		}
	}
	activeAt := lastRec
	if bad != nil {
		l.torn = &tornTail{at: Pos{idxs[badAt], bad.off}, reason: bad.reason}
		activeAt = badAt
	}
	l.first = idxs[0]
	l.active = &segment{index: idxs[activeAt], capacity: sizes[activeAt]}
	if short[activeAt] {
		// Nothing more goes into a segment cut short: the first append moves on to
		// the spare. Written on, its records would no longer end at the marker that
		// made it acceptable, and a torn tail in it could not be told from a cut.
		l.active.capacity = ends[activeAt]
	}
	l.writeOff = ends[activeAt]
	if o.ReadOnly {
		return nil
	}

	// Keep the segments after the active one as the spare and the reserve,
	// as many as wanted and as long as each is of the current format and can
	// hold the largest record; remove every other empty segment after the
	// active one, newest first so that the sequence stays without gaps
	// whatever a crash keeps.
	keep := activeAt
	for j := activeAt + 1; j < len(idxs) && j-activeAt <= 1+o.ReservedSegments && versions[j] == formatVersion && !short[j] &&
		sizes[j] >= headerSize+frameHeaderSize+int64(o.RecordMaxBytes); j++ {
		keep = j
	}
	l.ahead = keep - activeAt
	removed := false
	for i := len(idxs) - 1; i > keep; i-- {
		if err := o.FS.Remove(l.path(idxs[i])); err != nil {
			return fmt.Errorf("wal: open: remove empty segment %d: %w", idxs[i], err)
		}
		removed = true
	}
	if removed {
		if err := o.FS.SyncDir(o.Dir); err != nil {
			return fatalError(fmt.Sprintf("wal: open: sync directory %s", o.Dir), err)
		}
	}
	f, err := o.FS.OpenFile(l.path(l.active.index), os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("wal: open: segment %d: %w", l.active.index, err)
	}
	l.active.f = f
	if bad != nil {
		if err := repairTorn(f, l.active.index, bad); err != nil {
			return err
		}
	}
	return l.preallocateSpare()
}

// rollForward deals with tmpName, the .tmp file of segment idx found by Open,
// and reports whether it is now segment idx. A .tmp file is a segment being
// built (a header and zeros): a crash interrupted its build, and it is removed.
// But if it holds a valid record, it was renamed and used before the crash,
// and the rename was lost: the directory's fsync said it was durable and it
// was not (a disk that lies about fsync). Its records were synced and may
// have been reported durable, so Open finishes the rename rather than delete
// them; a read-only Open reads the segment where it is. If a file with the
// final name exists too (exists), nothing explains both: corruption.
func (l *Log) rollForward(idx uint64, tmpName string, exists bool) (bool, error) {
	o := l.o
	tmp := filepath.Join(o.Dir, tmpName)
	records, err := l.tmpRecords(idx, tmp)
	if err != nil {
		return false, err
	}
	switch {
	case records && exists:
		return false, &CorruptError{Segment: idx, Offset: 0,
			Reason: fmt.Sprintf("%s holds records, and so does %s: a segment's rename was lost and then redone", tmpName, segmentName(idx))}
	case records && o.ReadOnly:
		if l.unrenamed == nil {
			l.unrenamed = map[uint64]string{}
		}
		l.unrenamed[idx] = tmp
		return true, nil
	case records:
		if err := o.FS.Rename(tmp, l.path(idx)); err != nil {
			return false, fmt.Errorf("wal: open: finish the lost rename of %s: %w", tmpName, err)
		}
		if err := o.FS.SyncDir(o.Dir); err != nil {
			return false, fatalError(fmt.Sprintf("wal: open: sync directory %s", o.Dir), err)
		}
		return true, nil
	case o.ReadOnly:
		return false, nil
	}
	if err := o.FS.Remove(tmp); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return false, fmt.Errorf("wal: open: remove unfinished segment: %w", err)
	}
	return false, nil
}

// tmpRecords reports whether the file at path holds segment idx's header and at
// least one valid record after it.
func (l *Log) tmpRecords(idx uint64, path string) (bool, error) {
	f, err := l.o.FS.OpenFile(path, os.O_RDONLY, 0)
	if err != nil {
		return false, fmt.Errorf("wal: open: %s: %w", filepath.Base(path), err)
	}
	defer f.Close() // read-only: nothing to lose
	size, err := f.Size()
	if err != nil || size > maxSegmentSizeBytes {
		return false, err // a file too large to be a segment is left for the operator
	}
	b := make([]byte, size)
	if n, err := f.ReadAt(b, 0); n < len(b) {
		if err == nil || err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return false, fmt.Errorf("wal: open: read %s: %w", filepath.Base(path), err)
	}
	hdr, reason := parseHeader(b, idx)
	if reason != "" {
		return false, nil
	}
	res, err := scanFrames(b, hdr.len, func(int64, []byte) error { return errStopScan })
	if errors.Is(err, errStopScan) {
		return true, nil
	}
	return res.records > 0, err
}

var errStopScan = errors.New("wal: a record found")

// repairTorn zeroes the torn frame bad in the segment file f, so that shorter
// frames written over it do not leave its bytes behind them. The power may
// fail during the repair too, keeping a prefix of what it wrote; so it zeroes
// back to front, syncing after each step, and every state a crash can leave
// is still a torn tail (or a clean end):
//
//  1. the payload: the header still claims the same extent, whose last byte
//     and everything after it stay zero;
//  2. the CRC: the length still claims the extent, now all zeros;
//  3. the length: a prefix of it zeroed reads lower (or zero, and with the
//     CRC already zero that is the end marker).
//
// Zeroing the whole frame in one write would not do: a prefix of zeros over
// the header followed by the rest of the torn payload is an end marker
// followed by data, which is corruption.
func repairTorn(f File, seg uint64, bad *badFrame) error {
	steps := [][2]int64{{bad.off + frameHeaderSize, bad.end}, {bad.off + 4, bad.off + frameHeaderSize}, {bad.off, bad.off + 4}}
	for _, st := range steps {
		if st[0] >= st[1] {
			continue
		}
		if err := writeZeros(f, st[0], st[1]); err != nil {
			return fatalError(fmt.Sprintf("wal: open: zero torn tail of segment %d (%s) at offset %d",
				seg, segmentName(seg), bad.off), err)
		}
		if err := f.Sync(); err != nil {
			return fatalError(fmt.Sprintf("wal: open: sync segment %d (%s)", seg, segmentName(seg)), err)
		}
	}
	return nil
}

// checkSize refuses segment idx if its file is shorter than it was built
// (version 2 headers record that size) and the records it still shows do not
// end at an end-of-records marker (ended): the missing bytes may then have
// held records, synced and reported durable, and no rule can tell. A short
// file whose records end at a marker lost only zeros: the writer never
// skips bytes, so nothing was written after the marker. Such a file is
// accepted, and Open writes nothing more into it (the next append goes to the
// spare; a short spare is rebuilt). Only a disk that lies about fsync,
// or a copy of the log taken while it was written, cuts a segment short:
// every segment is built at its full size and fsynced before it is used.
func checkSize(idx uint64, hdr segHeader, content []byte, end int64, ended bool) error {
	if hdr.built == 0 || int64(len(content)) >= hdr.built || ended {
		return nil
	}
	return &CorruptError{Segment: idx, Offset: end,
		Reason: fmt.Sprintf("segment file cut short: %d bytes, built as %d, and no end-of-records marker after the last record: records after offset %d may be lost",
			len(content), hdr.built, end)}
}

// notTorn is the corruption error for a bad frame that would be a torn tail
// if the later segment later were empty.
func notTorn(seg uint64, bad *badFrame, later uint64) error {
	return &CorruptError{Segment: seg, Offset: bad.off,
		Reason: fmt.Sprintf("%s (not a torn tail: segment %d after it is not empty)", bad.reason, later)}
}

// readSegment reads the whole file of segment idx into *buf and returns it.
func (l *Log) readSegment(idx uint64, buf *[]byte) ([]byte, error) {
	path := l.path(idx)
	if p, ok := l.unrenamed[idx]; ok {
		path = p
	}
	f, err := l.o.FS.OpenFile(path, os.O_RDONLY, 0)
	if err != nil {
		return nil, fmt.Errorf("wal: open: segment %d: %w", idx, err)
	}
	defer f.Close() // read-only: nothing to lose
	size, err := f.Size()
	if err != nil {
		return nil, fmt.Errorf("wal: open: segment %d: %w", idx, err)
	}
	if size > maxSegmentSizeBytes {
		return nil, &CorruptError{Segment: idx, Offset: 0,
			Reason: fmt.Sprintf("segment file is %d bytes, more than the largest segment (%d)", size, maxSegmentSizeBytes)}
	}
	if int64(cap(*buf)) < size {
		*buf = make([]byte, size)
	}
	b := (*buf)[:size]
	if n, err := f.ReadAt(b, 0); n < len(b) {
		if err == nil || err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, fmt.Errorf("wal: open: read segment %d: %w", idx, err)
	}
	return b, nil
}

// Append adds a record to the log and returns where it starts. The record is
// buffered in memory: it is durable only once a Sync that started after
// Append returned has succeeded. Append refuses a payload longer than
// RecordMaxBytes (ErrRecordTooLarge); when the record needs a new segment
// and the disk is full it writes nothing and returns ErrNoSpace, and the log
// stays usable. Append never uses the reserved segments
// (Options.ReservedSegments): when only they are left, it builds a new
// segment first, so a full disk refuses it.
func (l *Log) Append(payload []byte) (Pos, error) { return l.append(payload, false) }

// AppendReserved is Append, except that when the record needs a new segment it
// may take one of the reserved segments (Options.ReservedSegments) rather
// than build one: it is for the records that let old segments be deleted (a
// checkpoint), so that they still fit when the disk is full. The log rebuilds
// its reserve after later syncs, once there is room.
func (l *Log) AppendReserved(payload []byte) (Pos, error) { return l.append(payload, true) }

func (l *Log) append(payload []byte, reserved bool) (Pos, error) {
	if len(payload) > l.o.RecordMaxBytes {
		return Pos{}, &walError{kind: ErrRecordTooLarge,
			msg: fmt.Sprintf("wal: append: record of %d bytes exceeds RecordMaxBytes %d", len(payload), l.o.RecordMaxBytes)}
	}
	if l.o.ReadOnly {
		return Pos{}, errReadOnly
	}
	crc := payloadCRC(payload)
	frameLen := int64(frameHeaderSize + len(payload))
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.usableLocked("append"); err != nil {
		return Pos{}, err
	}
	if l.writeOff+frameLen > l.active.capacity {
		if err := l.cutLocked(reserved); err != nil {
			return Pos{}, err
		}
	}
	pos := Pos{Segment: l.active.index, Offset: l.writeOff}
	var c *chunk
	if n := len(l.pending); n > 0 {
		c = &l.pending[n-1]
		if c.seal || c.seg != l.active || c.off+int64(len(c.buf)) != l.writeOff {
			c = nil
		}
	}
	if c == nil {
		var buf []byte
		if n := len(l.free); n > 0 {
			buf, l.free = l.free[n-1], l.free[:n-1]
		}
		l.pending = append(l.pending, chunk{seg: l.active, off: l.writeOff, buf: buf})
		c = &l.pending[len(l.pending)-1]
	}
	c.buf = appendFrame(c.buf, payload, crc)
	l.writeOff += frameLen
	return pos, nil
}

// usableLocked returns why the log cannot be used, or nil. mu must be held.
func (l *Log) usableLocked(op string) error {
	if l.failed != nil {
		return l.failed
	}
	if l.closed {
		return &walError{msg: "wal: " + op + ": log is closed", kind: ErrClosed}
	}
	return nil
}

// cutLocked moves appends to segment active+1: the spare if it is ready, else
// one built now. Unless reserved, it leaves the reserve whole: when only the
// reserved segments are ready, it first builds one more after them. The old
// segment is sealed: the next Sync writes what is buffered for it, fsyncs and
// closes it before writing anything to the new one, so only the last segment
// can ever have a torn tail. mu must be held.
func (l *Log) cutLocked(reserved bool) error {
	for l.isBuilding {
		l.spareBuilt.Wait()
	}
	if err := l.usableLocked("append"); err != nil {
		return err
	}
	next := l.active.index + 1
	need := 1 + l.o.ReservedSegments
	if reserved {
		need = 1
	}
	if l.ahead < need {
		// No spare beyond the reserve (its background build failed, e.g. for
		// lack of space): build one now, on the append path.
		idx := l.active.index + uint64(l.ahead) + 1
		if err := l.buildSegment(idx); err != nil {
			l.spareFailed = idx
			return l.buildErrorLocked(err, idx, "append")
		}
		l.ahead++
	}
	f, err := l.o.FS.OpenFile(l.path(next), os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("wal: append: open segment %d (%s): %w", next, segmentName(next), err)
	}
	size, err := f.Size()
	if err != nil {
		_ = f.Close() // the Stat error is the one to report
		return fmt.Errorf("wal: append: open segment %d (%s): %w", next, segmentName(next), err)
	}
	if size < headerSize+frameHeaderSize+int64(l.o.RecordMaxBytes) {
		panic(fmt.Sprintf("wal: spare segment %d is %d bytes, too small for a record of RecordMaxBytes %d",
			next, size, l.o.RecordMaxBytes))
	}
	l.pending = append(l.pending, chunk{seg: l.active, seal: true})
	l.active = &segment{index: next, f: f, capacity: size}
	l.writeOff = headerSize
	l.ahead--
	return nil
}

// Sync makes durable every record whose Append returned before Sync was
// called: it writes the buffered frames and fsyncs each segment they went to.
// Appends may run while it waits for the disk; they go to the next Sync.
// After syncing, Sync prepares the spare segment if there is none.
//
// An error wraps ErrSyncFailed and is final: the log is failed and every
// later Append and Sync returns an error. A Log opened ReadOnly has nothing to
// sync.
func (l *Log) Sync() error {
	if l.o.ReadOnly {
		return nil
	}
	if err := l.syncData(); err != nil {
		return err
	}
	return l.preallocateSpare()
}

// syncData is Sync without the spare preparation: the GroupSyncer prepares the
// spare after it has told the appenders that their records are durable.
func (l *Log) syncData() error {
	l.syncMu.Lock()
	defer l.syncMu.Unlock()
	return l.flushLocked(false)
}

// flushLocked writes and fsyncs what is pending. syncMu must be held.
func (l *Log) flushLocked(closing bool) error {
	l.mu.Lock()
	if l.failed != nil || (l.closed && !closing) {
		err := l.usableLocked("sync")
		l.mu.Unlock()
		return err
	}
	chunks := l.pending
	l.pending = nil
	l.mu.Unlock()

	err := writeChunks(chunks)

	l.mu.Lock()
	defer l.mu.Unlock()
	if err != nil {
		l.failLocked(err)
		for _, c := range chunks {
			if c.seal && c.seg.f != nil {
				_ = c.seg.f.Close() // the log is failed; nothing more is written
				c.seg.f = nil
			}
		}
		return l.failed
	}
	for _, c := range chunks {
		if c.buf != nil && cap(c.buf) <= freeBufMaxBytes && len(l.free) < freeBufsMax {
			l.free = append(l.free, c.buf[:0])
		}
	}
	return nil
}

// writeChunks writes chunks in order, fsyncing each segment before anything
// is written to the next one, and closing sealed segments after their final
// fsync. Called with syncMu held, without mu: Appends go on meanwhile.
func writeChunks(chunks []chunk) error {
	var cur *segment
	dirty := false
	syncCur := func() error {
		if !dirty {
			return nil
		}
		dirty = false
		if err := cur.f.Sync(); err != nil {
			return fatalError(fmt.Sprintf("wal: sync segment %d (%s)", cur.index, segmentName(cur.index)), err)
		}
		return nil
	}
	for _, c := range chunks {
		if c.seg != cur {
			if err := syncCur(); err != nil {
				return err
			}
			cur = c.seg
		}
		if c.seal {
			if err := syncCur(); err != nil {
				return err
			}
			// Synced: an error closing the file cannot lose anything.
			_ = cur.f.Close()
			cur.f = nil
			continue
		}
		if _, err := cur.f.WriteAt(c.buf, c.off); err != nil {
			return fatalError(fmt.Sprintf("wal: write segment %d (%s) at offset %d",
				cur.index, segmentName(cur.index), c.off), err)
		}
		dirty = true
	}
	return syncCur()
}

// fatalError is the error that fails a log: it wraps ErrSyncFailed and shows,
// without wrapping, what went wrong.
func fatalError(msg string, cause error) error {
	return &walError{msg: msg, kind: ErrSyncFailed, cause: cause, opaque: true}
}

func (l *Log) failLocked(err error) {
	if l.failed == nil {
		l.failed = err
	}
}

// preallocateSpare builds the segments after the active one that are not there
// yet (the spare, then the reserve), off the append path, so that cutting to
// a new segment costs an open and no IO. It only returns fatal errors; any
// other failure is left for the Append that needs the segment to retry and
// report.
//
// It holds neither lock while it builds (the build touches no Log state), so
// syncs and appends go on meanwhile; a cut waits for the build to end, and so
// does Close.
func (l *Log) preallocateSpare() error {
	for {
		l.mu.Lock()
		if !l.spareWantedLocked() {
			err := l.failed
			l.mu.Unlock()
			return err
		}
		next := l.active.index + uint64(l.ahead) + 1
		l.isBuilding = true
		l.mu.Unlock()

		err := l.buildSegment(next)

		l.mu.Lock()
		l.isBuilding = false
		l.spareBuilt.Broadcast()
		if next != l.active.index+uint64(l.ahead)+1 {
			panic(fmt.Sprintf("wal: the segments ahead changed from %d to %d while segment %d was built",
				next-1, l.active.index+uint64(l.ahead), next))
		}
		if err != nil {
			l.spareFailed = next
			err := l.buildErrorLocked(err, next, "prepare spare")
			l.mu.Unlock()
			if errors.Is(err, ErrSyncFailed) {
				return err
			}
			return nil
		}
		l.ahead++
		l.mu.Unlock()
	}
}

// Preallocate builds the spare and reserved segments that are missing, as a
// sync does, and retries a build that failed before (for lack of space): the
// log's owner calls it from time to time, so that a log with no traffic gets
// its spare and its reserve back once space returns. Like Sync, it returns
// only fatal errors.
func (l *Log) Preallocate() error {
	if l.o.ReadOnly {
		return nil
	}
	l.mu.Lock()
	l.spareFailed = 0
	l.mu.Unlock()
	return l.preallocateSpare()
}

// Ahead reports how many preallocated empty segments follow the active one:
// the spare and the reserve, 1+Options.ReservedSegments when the disk had room.
func (l *Log) Ahead() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.ahead
}

// spareWanted reports whether preallocateSpare has a segment to build: the log is
// usable, lacks a spare or a reserved segment, is not building one, and the last
// background build of the next one did not fail.
func (l *Log) spareWanted() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.spareWantedLocked()
}

func (l *Log) spareWantedLocked() bool {
	return l.failed == nil && !l.closed && l.ahead < 1+l.o.ReservedSegments && !l.isBuilding &&
		l.spareFailed != l.active.index+uint64(l.ahead)+1
}

// buildError describes a failed segment build; syncing says whether the
// failure was an fsync (fatal) rather than a write or a rename.
type buildError struct {
	step    string
	err     error
	syncing bool
}

func (e *buildError) Error() string { return e.step + ": " + e.err.Error() }
func (e *buildError) Unwrap() error { return e.err }

// buildSegment creates segment idx durably: header and zeros up to
// SegmentSizeBytes written to a .tmp file, the file fsynced, renamed, and the
// directory fsynced. It touches no Log state. On failure other than an fsync
// it removes what it wrote, best effort (Open removes .tmp files anyway).
func (l *Log) buildSegment(idx uint64) error {
	fsys, final := l.o.FS, l.path(idx)
	tmp := final + tmpExt
	f, err := fsys.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return &buildError{step: "create " + filepath.Base(tmp), err: err}
	}
	if _, err := f.WriteAt(encodeHeader(idx, l.o.SegmentSizeBytes), 0); err != nil {
		_ = f.Close()
		_ = fsys.Remove(tmp)
		return &buildError{step: "write header", err: err}
	}
	if err := writeZeros(f, headerSize, l.o.SegmentSizeBytes); err != nil {
		_ = f.Close()
		_ = fsys.Remove(tmp)
		return &buildError{step: "preallocate", err: err}
	}
	if err := f.Sync(); err != nil {
		_ = f.Close()
		return &buildError{step: "sync " + filepath.Base(tmp), err: err, syncing: true}
	}
	if err := f.Close(); err != nil {
		_ = fsys.Remove(tmp)
		return &buildError{step: "close " + filepath.Base(tmp), err: err}
	}
	if err := fsys.Rename(tmp, final); err != nil {
		_ = fsys.Remove(tmp)
		return &buildError{step: "rename", err: err}
	}
	if err := fsys.SyncDir(l.o.Dir); err != nil {
		return &buildError{step: "sync directory", err: err, syncing: true}
	}
	return nil
}

// writeZeros fills [from, to) of f with zeros.
func writeZeros(f File, from, to int64) error {
	for off := from; off < to; {
		n := min(to-off, zeroFillChunkSize)
		if _, err := f.WriteAt(zeroBlock[:n], off); err != nil {
			return err
		}
		off += n
	}
	return nil
}

// buildErrorLocked turns a buildSegment error into the error to return, and
// fails the log if it was an fsync. mu must be held.
func (l *Log) buildErrorLocked(err error, idx uint64, op string) error {
	err = l.buildError(err, idx, op)
	if errors.Is(err, ErrSyncFailed) {
		l.failLocked(err)
	}
	return err
}

// buildError turns a buildSegment error into the error to return.
func (l *Log) buildError(err error, idx uint64, op string) error {
	msg := fmt.Sprintf("wal: %s: new segment %d (%s)", op, idx, segmentName(idx))
	var be *buildError
	if errors.As(err, &be) && be.syncing {
		return fatalError(msg, err)
	}
	if isNoSpace(err) {
		return &walError{msg: msg, kind: ErrNoSpace, cause: err}
	}
	return fmt.Errorf("%s: %w", msg, err)
}

// RemoveBefore deletes the segments with an index below seg, oldest first,
// each removal made durable before the next: after a checkpoint, the records
// in them are no longer needed. It never removes the active segment, nor a
// segment whose final sync is still to come; those stay until a later call.
// An error from syncing the directory is fatal, like any fsync error.
func (l *Log) RemoveBefore(seg uint64) error {
	if l.o.ReadOnly {
		return errReadOnly
	}
	l.removeMu.Lock()
	defer l.removeMu.Unlock()
	// Which segments may go is decided with syncMu held: no sync is writing then, and
	// the seals still pending name the segments whose final sync is yet to come. The
	// segments before the limit are complete and no sync touches them again, so they
	// are removed without syncMu: unlinking a 64 MiB segment takes ~15 ms here, and
	// every appender's sync waited for it.
	l.syncMu.Lock()
	l.mu.Lock()
	if err := l.usableLocked("remove segments"); err != nil {
		l.mu.Unlock()
		l.syncMu.Unlock()
		return err
	}
	limit := min(seg, l.active.index)
	for _, c := range l.pending {
		limit = min(limit, c.seg.index)
	}
	first := l.first
	l.mu.Unlock()
	l.syncMu.Unlock()

	for idx := first; idx < limit; idx++ {
		if err := l.o.FS.Remove(l.path(idx)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("wal: remove segment %d (%s): %w", idx, segmentName(idx), err)
		}
		if err := l.o.FS.SyncDir(l.o.Dir); err != nil {
			err = fatalError(fmt.Sprintf("wal: remove segment %d (%s): sync directory", idx, segmentName(idx)), err)
			l.mu.Lock()
			l.failLocked(err)
			l.mu.Unlock()
			return err
		}
		l.mu.Lock()
		l.first = idx + 1
		l.spareFailed = 0 // space freed: the next sync may build what failed for lack of it
		l.mu.Unlock()
	}
	return nil
}

// Segments returns the indices of the log's segments, oldest first, up to
// and including the active one. The spare segment prepared for later appends
// is not listed. A read-only log of an empty directory has none.
func (l *Log) Segments() []uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.active == nil {
		return nil
	}
	segs := make([]uint64, 0, l.active.index-l.first+1)
	for idx := l.first; idx <= l.active.index; idx++ {
		segs = append(segs, idx)
	}
	return segs
}

// TornTail reports the torn tail Open found, if any: where the incomplete
// record starts and why it is not a valid record. A log opened read-write
// has already zeroed it; a read-only one left it on disk.
func (l *Log) TornTail() (at Pos, reason string, ok bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.torn == nil {
		return Pos{}, "", false
	}
	return l.torn.at, l.torn.reason, true
}

// Close syncs what is buffered, closes the files and makes every later call
// fail with ErrClosed. It returns the error that failed the log, if any:
// then not everything appended is durable. Closing twice returns nil.
func (l *Log) Close() error {
	l.removeMu.Lock() // nothing touches the directory once Close returns
	defer l.removeMu.Unlock()
	l.syncMu.Lock()
	defer l.syncMu.Unlock()
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	l.closed = true
	for l.isBuilding { // nothing touches the directory once Close returns
		l.spareBuilt.Wait()
	}
	l.mu.Unlock()
	if l.o.ReadOnly || l.active == nil {
		return nil
	}
	err := l.flushLocked(true)
	// After a failure, sealed segments may still be open.
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, c := range l.pending {
		if c.seal && c.seg.f != nil {
			_ = c.seg.f.Close()
			c.seg.f = nil
		}
	}
	l.pending = nil
	if l.active.f != nil {
		if cerr := l.active.f.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("wal: close segment %d: %w", l.active.index, cerr)
		}
		l.active.f = nil
	}
	return err
}

func (l *Log) path(idx uint64) string { return filepath.Join(l.o.Dir, segmentName(idx)) }
