package wal

import (
	"errors"
	"syscall"
	"testing"
	"time"
)

// TestSyncCountingFSCountsFileFsyncs: every file fsync of the log is counted and
// reported, failed ones too.
func TestSyncCountingFSCountsFileFsyncs(t *testing.T) {
	m, o := memOptions()
	var reported []error
	c := NewSyncCountingFS(m, func(_ string, took time.Duration, err error) {
		if took < 0 {
			t.Errorf("negative fsync time %v", took)
		}
		reported = append(reported, err)
	})
	o.FS = c
	l, _ := openLog(t, o)
	base := c.Syncs()
	if base == 0 || int(base) != len(reported) {
		t.Fatalf("after Open: %d fsyncs counted, %d reported; want the same, more than 0", base, len(reported))
	}
	appendAll(t, l, "one")
	mustSync(t, l)
	if got := c.Syncs(); got != base+1 {
		t.Fatalf("one Sync: %d fsyncs counted, want %d", got, base+1)
	}
	m.SetFaults(MemFSFaults{SyncErr: func(string) error { return syscall.EIO }})
	appendAll(t, l, "two")
	wantErr(t, "Sync", l.Sync(), ErrSyncFailed)
	if got := c.Syncs(); got != base+2 || !errors.Is(reported[len(reported)-1], syscall.EIO) {
		t.Fatalf("a failed fsync: %d counted (want %d), last reported %v", got, base+2, reported[len(reported)-1])
	}
}
