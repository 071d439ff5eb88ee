package bench

import (
	"strings"
	"sync"
	"testing"

	"github.com/dtc-project/dtc/wal"
)

// countFS counts a log's segment fsyncs, the records and bytes written to segments and
// the other fsyncs, and times the segment fsyncs; with noSync the segment fsyncs are
// counted but never reach the disk, and are not timed.
func TestCountFSCountsWhatTheLogAsks(t *testing.T) {
	for _, noSync := range []bool{false, true} {
		m := wal.NewMemFS()
		var mu sync.Mutex
		diskSegmentSyncs := 0
		m.SetFaults(wal.MemFSFaults{SyncErr: func(name string) error {
			if strings.HasSuffix(name, segmentSuffix) {
				mu.Lock()
				diskSegmentSyncs++
				mu.Unlock()
			}
			return nil
		}})
		c := newCountFS(m, noSync)
		l, err := wal.Open(wal.Options{FS: c, Dir: "/log", SegmentSizeBytes: 1 << 20}, func(wal.Pos, []byte) error { return nil })
		if err != nil {
			t.Fatal(err)
		}
		before, diskBefore := c.counts(), diskSegmentSyncs
		for _, rec := range []string{"one", "two", "three"} {
			if _, err := l.Append([]byte(rec)); err != nil {
				t.Fatal(err)
			}
		}
		if err := l.Sync(); err != nil {
			t.Fatal(err)
		}
		d := c.counts().sub(before)
		if d.syncs != 1 || d.records != 3 || d.bytes != 3*frameHeaderBytes+int64(len("onetwothree")) {
			t.Errorf("noSync %v: one sync of 3 records: counted %+v", noSync, d)
		}
		wantDisk, wantTimed := 1, uint64(1)
		if noSync {
			wantDisk, wantTimed = 0, 0
		}
		if got := diskSegmentSyncs - diskBefore; got != wantDisk {
			t.Errorf("noSync %v: %d segment fsyncs reached the disk, want %d", noSync, got, wantDisk)
		}
		if got := c.syncHist.Count(); got != wantTimed {
			t.Errorf("noSync %v: %d fsyncs timed, want %d", noSync, got, wantTimed)
		}
		if c.counts().other == 0 {
			t.Errorf("noSync %v: Open's directory and preallocation fsyncs not counted as other", noSync)
		}
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
	}
}
