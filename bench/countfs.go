package bench

import (
	"encoding/binary"
	"io/fs"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dtc-project/dtc/wal"
)

// countFS is a wal.FS that counts what the log asks of the disk: the fsyncs of its
// segment files (each one a group commit) and the records written to them, and times
// those fsyncs. It wraps another FS (the OS's) and changes nothing, unless noSync is
// set: then the segment fsyncs return at once (LogNoSync, not durable).
//
// The fsyncs are counted and timed by a wal.SyncCountingFS, the one counting FS, whose
// OnSync hook files them here (segments, other files); countFS adds what only the bench
// wants: records and bytes written, segment builds, directory fsyncs.
//
// httpnet's /metrics has no count of fsyncs (dtc_log_sync_duration_seconds is observed
// once per record that asked for a sync, not once per fsync), so the bench counts them
// here, below the log, where it is exact.
type countFS struct {
	wal.FS // a *wal.SyncCountingFS over the base FS
	noSync bool

	syncs   atomic.Int64 // fsyncs of segment files (group commits)
	records atomic.Int64 // frames written to segment files
	bytes   atomic.Int64 // bytes written to segment files
	other   atomic.Int64 // other fsyncs: new segments being preallocated, directories
	syncNs  atomic.Int64 // time spent in segment fsyncs

	mu       sync.Mutex
	syncHist *hist     // latency of segment fsyncs; swapped at the start of a phase
	syncTL   *timeline // if set, the worst segment fsync per slot of time
	builds   []fsEvent // segment files built (preallocated), at most fsEventsMax
	building map[string]int
}

// fsEvent is a segment file built: when it began and how long it took (from creating
// the .tmp file until it was renamed into place).
type fsEvent struct {
	At       time.Time
	Duration time.Duration
}

const fsEventsMax = 1000

// segmentSuffix is the wal's segment file extension; files being built end in
// tmpSuffix (wal/doc.go).
const (
	segmentSuffix = ".wal"
	tmpSuffix     = ".tmp"
)

func newCountFS(base wal.FS, noSync bool) *countFS {
	c := &countFS{noSync: noSync, syncHist: new(hist)}
	if noSync {
		base = skipSegmentSyncsFS{base}
	}
	c.FS = wal.NewSyncCountingFS(base, c.synced)
	return c
}

// synced files one fsync that the wal.SyncCountingFS saw: a segment's is counted and,
// unless noSync (then it did nothing), timed; any other file's is counted as other.
func (c *countFS) synced(name string, took time.Duration, err error) {
	if !strings.HasSuffix(name, segmentSuffix) {
		c.other.Add(1)
		return
	}
	c.syncs.Add(1)
	if c.noSync {
		return
	}
	c.syncNs.Add(int64(took))
	c.mu.Lock()
	h, tl := c.syncHist, c.syncTL
	c.mu.Unlock()
	h.Record(took)
	if tl != nil {
		tl.record(took, err != nil)
	}
}

// fsCounts is a snapshot of a countFS's counters.
type fsCounts struct{ syncs, records, bytes, other, syncNs int64 }

func (c *countFS) counts() fsCounts {
	return fsCounts{c.syncs.Load(), c.records.Load(), c.bytes.Load(), c.other.Load(), c.syncNs.Load()}
}

func (a fsCounts) sub(b fsCounts) fsCounts {
	return fsCounts{a.syncs - b.syncs, a.records - b.records, a.bytes - b.bytes, a.other - b.other, a.syncNs - b.syncNs}
}

func (a fsCounts) add(b fsCounts) fsCounts {
	return fsCounts{a.syncs + b.syncs, a.records + b.records, a.bytes + b.bytes, a.other + b.other, a.syncNs + b.syncNs}
}

// setSyncTimeline makes tl the timeline of the fsyncs from now on (nil: none).
func (c *countFS) setSyncTimeline(tl *timeline) {
	c.mu.Lock()
	c.syncTL = tl
	c.mu.Unlock()
}

// setSyncHist makes h the histogram of the fsyncs from now on.
func (c *countFS) setSyncHist(h *hist) {
	c.mu.Lock()
	c.syncHist = h
	c.mu.Unlock()
}

func (c *countFS) OpenFile(name string, flag int, perm fs.FileMode) (wal.File, error) {
	start := time.Now()
	f, err := c.FS.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	if strings.HasSuffix(name, tmpSuffix) && flag&os.O_CREATE != 0 {
		c.mu.Lock()
		if len(c.builds) < fsEventsMax {
			if c.building == nil {
				c.building = make(map[string]int)
			}
			c.building[name] = len(c.builds)
			c.builds = append(c.builds, fsEvent{At: start})
		}
		c.mu.Unlock()
	}
	if !strings.HasSuffix(name, segmentSuffix) {
		return f, nil
	}
	return &countFile{File: f, fs: c}, nil
}

// Rename of a .tmp file ends the build that created it.
func (c *countFS) Rename(oldname, newname string) error {
	err := c.FS.Rename(oldname, newname)
	if strings.HasSuffix(oldname, tmpSuffix) {
		c.mu.Lock()
		if i, ok := c.building[oldname]; ok {
			c.builds[i].Duration = time.Since(c.builds[i].At)
			delete(c.building, oldname)
		}
		c.mu.Unlock()
	}
	return err
}

// buildsSince returns the segment builds that began at or after t.
func (c *countFS) buildsSince(t time.Time) []fsEvent {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []fsEvent
	for _, b := range c.builds {
		if !b.At.Before(t) {
			out = append(out, b)
		}
	}
	return out
}

func (c *countFS) SyncDir(dir string) error {
	c.other.Add(1)
	return c.FS.SyncDir(dir)
}

// countFile is a segment file in use (not one being built), whose fsyncs the
// wal.SyncCountingFS below counts.
type countFile struct {
	wal.File
	fs *countFS
}

// WriteAt counts the frames in p: the log writes whole frames (length 4 | crc 4 |
// payload), back to back, from a frame boundary.
func (f *countFile) WriteAt(p []byte, off int64) (int, error) {
	n, err := f.File.WriteAt(p, off)
	if err == nil {
		f.fs.records.Add(countFrames(p))
		f.fs.bytes.Add(int64(n))
	}
	return n, err
}

// frameHeaderBytes is the wal's frame header: payload length 4 | crc 4 (wal/doc.go).
const frameHeaderBytes = 8

func countFrames(p []byte) int64 {
	var n int64
	for len(p) >= frameHeaderBytes {
		size := int64(binary.LittleEndian.Uint32(p))
		if size == 0 || size > int64(len(p)-frameHeaderBytes) {
			break // not a frame: a header or zeros
		}
		n++
		p = p[frameHeaderBytes+size:]
	}
	return n
}

// skipSegmentSyncsFS is an FS whose segment files' fsyncs return at once (LogNoSync);
// the other files' sync.
type skipSegmentSyncsFS struct{ wal.FS }

func (s skipSegmentSyncsFS) OpenFile(name string, flag int, perm fs.FileMode) (wal.File, error) {
	f, err := s.FS.OpenFile(name, flag, perm)
	if err != nil || !strings.HasSuffix(name, segmentSuffix) {
		return f, err
	}
	return skipSyncFile{f}, nil
}

type skipSyncFile struct{ wal.File }

func (skipSyncFile) Sync() error { return nil }
