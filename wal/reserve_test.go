package wal

import (
	"strings"
	"syscall"
	"testing"
)

// TestReservedSegmentForCheckpointOnFullDisk: with ReservedSegments 1 the log keeps
// two empty segments ahead. When the disk is full, an ordinary Append that needs a
// new segment is refused with ErrNoSpace, but an AppendReserved takes the reserved
// one; after RemoveBefore has freed space the next sync rebuilds the spare and the
// reserve, and ordinary appends go on. Every record survives a crash.
func TestReservedSegmentForCheckpointOnFullDisk(t *testing.T) {
	m, o := memOptions()
	o.ReservedSegments = 1
	l, _ := openLog(t, o) // segment 1 active, 2 spare, 3 reserved
	if got := l.Ahead(); got != 2 {
		t.Fatalf("Ahead after Open = %d, want 2", got)
	}
	want := appendAll(t, l, payload(1, 3000), payload(2, 3000)) // cut to 2
	diskFull := true
	m.SetFaults(MemFSFaults{WriteErr: func(name string, _ int64, _ int) error {
		if diskFull && strings.HasSuffix(name, tmpExt) {
			return syscall.ENOSPC
		}
		return nil
	}})
	mustSync(t, l) // building segment 4 fails quietly: only the reserve (3) is ahead
	if got := l.Ahead(); got != 1 {
		t.Fatalf("Ahead on a full disk = %d, want 1 (the reserve)", got)
	}
	_, err := l.Append([]byte(payload(3, 3000)))
	wantErr(t, "ordinary Append needing the reserved segment", err, ErrNoSpace)

	pos, err := l.AppendReserved([]byte(payload(4, 3000)))
	if err != nil {
		t.Fatalf("AppendReserved on a full disk: %v", err)
	}
	if pos.Segment != 3 {
		t.Fatalf("reserved record at %v, want segment 3", pos)
	}
	want = append(want, rec{pos, payload(4, 3000)})
	mustSync(t, l)
	if got := l.Ahead(); got != 0 {
		t.Fatalf("Ahead once the reserve is spent = %d, want 0", got)
	}
	_, err = l.AppendReserved([]byte(payload(5, 3000)))
	wantErr(t, "reserved Append with no reserve left", err, ErrNoSpace)

	// The checkpoint made segments 1 and 2 obsolete: removing them frees space.
	diskFull = false
	if err := l.RemoveBefore(3); err != nil {
		t.Fatalf("RemoveBefore: %v", err)
	}
	mustSync(t, l)
	if got := l.Ahead(); got != 2 {
		t.Fatalf("Ahead after space was freed = %d, want 2", got)
	}
	want = append(want[2:], appendAll(t, l, payload(6, 3000))...)
	if want[len(want)-1].pos.Segment != 4 {
		t.Fatalf("ordinary record after recovery at %v, want segment 4", want[len(want)-1].pos)
	}
	mustSync(t, l)
	m.Crash()
	sameRecords(t, replayAll(t, o), want)
}

// TestPreallocateRetriesAfterSpaceReturns: a build that failed for lack of space is
// not retried by syncs, but Preallocate retries it, so an idle log gets its spare
// and reserve back once space returns; Open keeps the reserve it finds.
func TestPreallocateRetriesAfterSpaceReturns(t *testing.T) {
	m, o := memOptions()
	o.ReservedSegments = 1
	diskFull := true
	m.SetFaults(MemFSFaults{WriteErr: func(name string, _ int64, _ int) error {
		if diskFull && !strings.HasSuffix(name, segmentName(1)+tmpExt) && strings.HasSuffix(name, tmpExt) {
			return syscall.ENOSPC
		}
		return nil
	}})
	l, _ := openLog(t, o)
	if got := l.Ahead(); got != 0 {
		t.Fatalf("Ahead on a full disk = %d, want 0", got)
	}
	diskFull = false
	mustSync(t, l) // nothing to sync; the failed build is not retried
	if got := l.Ahead(); got != 0 {
		t.Fatalf("Ahead after a sync = %d, want 0 (no retry)", got)
	}
	if err := l.Preallocate(); err != nil {
		t.Fatalf("Preallocate: %v", err)
	}
	if got := l.Ahead(); got != 2 {
		t.Fatalf("Ahead after Preallocate = %d, want 2", got)
	}
	want := appendAll(t, l, "one")
	mustClose(t, l)
	l, recs := openLog(t, o)
	sameRecords(t, recs, want)
	if got := l.Ahead(); got != 2 {
		t.Fatalf("Ahead after reopening = %d, want 2", got)
	}
	mustClose(t, l)

	// Reopened with no reserve wanted, the extra empty segment is removed.
	o.ReservedSegments = 0
	l, _ = openLog(t, o)
	if got := l.Ahead(); got != 1 {
		t.Fatalf("Ahead reopened without a reserve = %d, want 1", got)
	}
	mustClose(t, l)
	if names, _ := m.ReadDir(o.Dir); len(names) != 2 {
		t.Fatalf("files: %v, want segment 1 and the spare", names)
	}
}
