package wal

import (
	"errors"
	"os"
	"strings"
	"syscall"
	"testing"
)

func TestOptionsValidate(t *testing.T) {
	m := NewMemFS()
	for _, tc := range []struct {
		name string
		o    Options
		want string // substring of the error; "" for valid
	}{
		{"defaults", Options{FS: m, Dir: "/d"}, ""},
		{"smallest segments, default record limit fits", Options{FS: m, Dir: "/d", SegmentSizeBytes: 4096}, ""},
		{"largest record that fits", Options{FS: m, Dir: "/d", SegmentSizeBytes: 4096, RecordMaxBytes: 4096 - 40}, ""},
		{"no FS", Options{Dir: "/d"}, "Options.FS is required"},
		{"no Dir", Options{FS: m}, "Options.Dir is required"},
		{"segment too small", Options{FS: m, Dir: "/d", SegmentSizeBytes: 4095}, "SegmentSizeBytes is 4095"},
		{"segment negative", Options{FS: m, Dir: "/d", SegmentSizeBytes: -1}, "SegmentSizeBytes is -1"},
		{"segment too large", Options{FS: m, Dir: "/d", SegmentSizeBytes: 2 << 30}, "SegmentSizeBytes"},
		{"record does not fit", Options{FS: m, Dir: "/d", SegmentSizeBytes: 4096, RecordMaxBytes: 4096 - 39}, "RecordMaxBytes is 4057, must fit"},
		{"record negative", Options{FS: m, Dir: "/d", RecordMaxBytes: -1}, "RecordMaxBytes is -1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.o.Validate()
			if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
				t.Fatalf("Validate() = %v, want %q", err, tc.want)
			}
			if tc.want != "" {
				if _, err := Open(tc.o, nil); err == nil {
					t.Fatal("Open accepted invalid options")
				}
			}
		})
	}
	if got := (Options{SegmentSizeBytes: 4096}).withDefaults().RecordMaxBytes; got != 4096-headerSize-frameHeaderSize {
		t.Errorf("default RecordMaxBytes for 4 KiB segments = %d", got)
	}
	if got := (Options{}).withDefaults(); got.SegmentSizeBytes != 64<<20 || got.RecordMaxBytes != 4<<20 {
		t.Errorf("defaults = %d, %d", got.SegmentSizeBytes, got.RecordMaxBytes)
	}
}

// TestSegmentRotation: frames go to the active segment while they fit, a
// record may fill a segment to its last byte, and the next one starts the
// next segment after its header.
func TestSegmentRotation(t *testing.T) {
	const fill = 4096 - headerSize - frameHeaderSize // the payload that fills a segment
	for _, tc := range []struct {
		name     string
		payloads []int // sizes
		want     []Pos
	}{
		{"one record fills a segment", []int{fill, 0, 10},
			[]Pos{{1, 32}, {2, 32}, {2, 40}}},
		{"last record fills the rest", []int{1000, fill - 1008, 1},
			[]Pos{{1, 32}, {1, 1040}, {2, 32}}},
		{"one byte too many", []int{1000, fill - 1007, 1},
			[]Pos{{1, 32}, {2, 32}, {2, 4096}}[:2]},
		{"less than a frame header left", []int{fill - 7, 0},
			[]Pos{{1, 32}, {2, 32}}},
		{"exactly a frame header left", []int{fill - 8, 0, 0},
			[]Pos{{1, 32}, {1, 4088}, {2, 32}}},
		{"many small records", []int{500, 500, 500, 500, 500, 500, 500, 500, 500},
			[]Pos{{1, 32}, {1, 540}, {1, 1048}, {1, 1556}, {1, 2064}, {1, 2572}, {1, 3080}, {1, 3588}, {2, 32}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, o := memOptions()
			l, _ := openLog(t, o)
			var payloads []string
			for i, n := range tc.payloads[:len(tc.want)] {
				payloads = append(payloads, payload(i, n))
			}
			want := appendAll(t, l, payloads...)
			for i := range want {
				if want[i].pos != tc.want[i] {
					t.Fatalf("record %d at %v, want %v (all: %s)", i, want[i].pos, tc.want[i], brief(want))
				}
			}
			mustSync(t, l)
			if segs := l.Segments(); segs[len(segs)-1] != tc.want[len(tc.want)-1].Segment {
				t.Fatalf("Segments() = %v", segs)
			}
			mustClose(t, l)
			sameRecords(t, replayAll(t, o), want)
		})
	}
}

func TestRecordMaxBytes(t *testing.T) {
	m := NewMemFS()
	o := Options{FS: m, Dir: "/log", SegmentSizeBytes: 8192, RecordMaxBytes: 1000}
	l, _ := openLog(t, o)
	want := appendAll(t, l, payload(1, 1000))
	_, err := l.Append(make([]byte, 1001))
	wantErr(t, "Append(1001 bytes)", err, ErrRecordTooLarge)
	if !strings.Contains(err.Error(), "1001") || !strings.Contains(err.Error(), "RecordMaxBytes 1000") {
		t.Errorf("error %q does not say the size and the limit", err)
	}
	want = append(want, appendAll(t, l, payload(2, 999))...) // still usable
	mustClose(t, l)
	sameRecords(t, replayAll(t, o), want)
}

// TestRemoveBefore: removing old segments keeps the rest replayable, and
// numbering continues after a restart.
func TestRemoveBefore(t *testing.T) {
	m, o := memOptions()
	l, _ := openLog(t, o)
	var all []rec
	for i := range 20 {
		all = append(all, appendAll(t, l, payload(i, 1500))...) // two per segment
	}
	mustSync(t, l)
	if got := l.Segments(); len(got) != 10 || got[0] != 1 || got[9] != 10 {
		t.Fatalf("Segments() = %v, want 1..10", got)
	}
	if err := l.RemoveBefore(4); err != nil {
		t.Fatal(err)
	}
	if got := l.Segments(); len(got) != 7 || got[0] != 4 {
		t.Fatalf("after RemoveBefore(4): Segments() = %v, want 4..10", got)
	}
	// Never the active segment, whatever is asked.
	if err := l.RemoveBefore(100); err != nil {
		t.Fatal(err)
	}
	if got := l.Segments(); len(got) != 1 || got[0] != 10 {
		t.Fatalf("after RemoveBefore(100): Segments() = %v, want [10]", got)
	}
	// Removals are durable.
	m.Crash()
	l, got := openLog(t, o)
	sameRecords(t, got, all[18:])
	more := appendAll(t, l, payload(30, 1500), payload(31, 1500), payload(32, 10))
	if more[1].pos.Segment != 11 || more[2].pos.Segment != 11 {
		t.Fatalf("numbering after restart: %s, want segment 11 next", brief(more))
	}
	mustClose(t, l)
	l, got = openLog(t, o)
	sameRecords(t, got, append(all[18:], more...))
	if segs := l.Segments(); len(segs) != 2 || segs[0] != 10 {
		t.Fatalf("Segments() = %v, want [10 11]", segs)
	}
	mustClose(t, l)
}

// TestRemoveBeforeSkipsUnsyncedSegment: a segment sealed by a cut whose
// final sync has not happened is not removed yet.
func TestRemoveBeforeSkipsUnsyncedSegment(t *testing.T) {
	_, o := memOptions()
	l, _ := openLog(t, o)
	recs := appendAll(t, l, payload(1, 3000), payload(2, 3000)) // segment 1 sealed, not synced
	if err := l.RemoveBefore(2); err != nil {
		t.Fatal(err)
	}
	if got := l.Segments(); got[0] != 1 {
		t.Fatalf("Segments() = %v: removed a segment before its final sync", got)
	}
	mustSync(t, l)
	if err := l.RemoveBefore(2); err != nil {
		t.Fatal(err)
	}
	mustClose(t, l)
	sameRecords(t, replayAll(t, o), recs[1:])
}

// TestSyncFailureIsFatal: after a failed fsync the log refuses everything,
// and never calls fsync again, even when the disk would now succeed.
func TestSyncFailureIsFatal(t *testing.T) {
	for _, tc := range []struct {
		name   string
		faults func(o Options, syncs *int) MemFSFaults
	}{
		{"fsync fails", func(o Options, syncs *int) MemFSFaults {
			return MemFSFaults{SyncErr: func(string) error { *syncs++; return syscall.EIO }}
		}},
		{"write fails", func(o Options, syncs *int) MemFSFaults {
			return MemFSFaults{
				SyncErr:  func(string) error { *syncs++; return nil },
				WriteErr: func(string, int64, int) error { return syscall.EIO },
			}
		}},
		{"write fails for lack of space", func(o Options, syncs *int) MemFSFaults {
			return MemFSFaults{
				SyncErr:  func(string) error { *syncs++; return nil },
				WriteErr: func(string, int64, int) error { return syscall.ENOSPC },
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, o := memOptions()
			l, _ := openLog(t, o)
			want := appendAll(t, l, "durable")
			mustSync(t, l)
			appendAll(t, l, "lost")
			syncs := 0
			m.SetFaults(tc.faults(o, &syncs))
			err := l.Sync()
			wantErr(t, "Sync", err, ErrSyncFailed)
			if errors.Is(err, ErrNoSpace) {
				t.Errorf("a fatal error also matches ErrNoSpace: %v", err)
			}
			if !strings.Contains(err.Error(), segmentName(1)) {
				t.Errorf("error %q does not name the segment", err)
			}
			m.SetFaults(MemFSFaults{SyncErr: func(string) error { syncs++; return nil }})
			before := syncs
			_, err = l.Append([]byte("after"))
			wantErr(t, "Append after failure", err, ErrSyncFailed)
			wantErr(t, "Sync after failure", l.Sync(), ErrSyncFailed)
			wantErr(t, "RemoveBefore after failure", l.RemoveBefore(1), ErrSyncFailed)
			wantErr(t, "Close after failure", l.Close(), ErrSyncFailed)
			if syncs != before {
				t.Errorf("fsync called %d more times after the failure", syncs-before)
			}
			m.Crash()
			sameRecords(t, replayAll(t, o), want)
		})
	}
}

// TestDiskFullAtCut: when the next segment cannot be preallocated, the
// Append that needs it is refused with ErrNoSpace and writes nothing; the
// log stays usable and goes on once space frees.
func TestDiskFullAtCut(t *testing.T) {
	m, o := memOptions()
	l, _ := openLog(t, o) // segment 1 active, 2 spare
	want := appendAll(t, l, payload(1, 3000), payload(2, 3000))
	diskFull := true
	m.SetFaults(MemFSFaults{WriteErr: func(name string, off int64, n int) error {
		// Only new segments find the disk full: writes into preallocated
		// segments never need space.
		if diskFull && strings.HasSuffix(name, tmpExt) {
			return syscall.ENOSPC
		}
		return nil
	}})
	mustSync(t, l) // the cut to 2 happened; preparing spare 3 fails quietly
	if names, _ := m.ReadDir(o.Dir); len(names) != 2 {
		t.Fatalf("files after a failed spare: %v", names)
	}
	want = append(want, appendAll(t, l, payload(3, 500))...) // still room in segment 2
	for range 3 {
		_, err := l.Append([]byte(payload(4, 3000)))
		wantErr(t, "Append needing a new segment", err, ErrNoSpace)
		if errors.Is(err, ErrSyncFailed) || !strings.Contains(err.Error(), segmentName(3)) {
			t.Fatalf("error %q: want a non-fatal error naming segment 3", err)
		}
	}
	want = append(want, appendAll(t, l, payload(5, 100))...) // fits in segment 2
	mustSync(t, l)

	diskFull = false
	want = append(want, appendAll(t, l, payload(6, 3000))...)
	if want[len(want)-1].pos.Segment != 3 {
		t.Fatalf("record after the fault cleared at %v, want segment 3", want[len(want)-1].pos)
	}
	mustSync(t, l)
	m.Crash()
	sameRecords(t, replayAll(t, o), want)
}

// TestDiskFullAtOpen: a new log that cannot get its first segment fails to
// open with ErrNoSpace; one that cannot get its spare opens anyway.
func TestDiskFullAtOpen(t *testing.T) {
	m, o := memOptions()
	m.SetFaults(MemFSFaults{WriteErr: func(string, int64, int) error { return syscall.ENOSPC }})
	_, err := Open(o, nil)
	wantErr(t, "Open", err, ErrNoSpace)

	m, o = memOptions()
	full := false
	m.SetFaults(MemFSFaults{WriteErr: func(name string, _ int64, _ int) error {
		if full && strings.HasSuffix(name, "0000000000000002.wal.tmp") {
			return syscall.ENOSPC
		}
		full = full || strings.HasSuffix(name, "0000000000000001.wal.tmp")
		return nil
	}})
	l, _ := openLog(t, o)
	if names, _ := m.ReadDir(o.Dir); len(names) != 1 {
		t.Fatalf("files: %v, want only segment 1", names)
	}
	want := appendAll(t, l, "fits")
	mustClose(t, l)
	sameRecords(t, replayAll(t, o), want)
}

// TestReadOnly: a read-only Open of a log with a torn tail replays the
// records before it, reports the tail and changes nothing; a read-write Open
// then repairs it.
func TestReadOnly(t *testing.T) {
	m, o := memOptions()
	l, _ := openLog(t, o)
	want := appendAll(t, l, payload(1, 100), payload(2, 100))
	mustSync(t, l)
	torn := appendAll(t, l, payload(3, 100))[0]
	failSyncOf(m, segPath(o, 1))
	wantErr(t, "Sync", l.Sync(), ErrSyncFailed)
	m.SetFaults(MemFSFaults{})
	m.CrashTorn(func(string, []byte) int { return 50 })
	// A leftover spare build and an unrelated file must stay too.
	for _, name := range []string{"0000000000000009.wal.tmp", "notes.txt"} {
		f, err := m.OpenFile(o.Dir+"/"+name, os.O_RDWR|os.O_CREATE, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		f.Close()
	}
	before := snapshot(t, m, o.Dir)

	ro := o
	ro.ReadOnly = true
	l, got := openLog(t, ro)
	sameRecords(t, got, want)
	if at, reason, ok := l.TornTail(); !ok || at != torn.pos || reason != "crc mismatch" {
		t.Fatalf("TornTail() = %v %q %v, want %v crc mismatch", at, reason, ok, torn.pos)
	}
	if _, err := l.Append([]byte("x")); !errors.Is(err, errReadOnly) {
		t.Fatalf("Append on a read-only log: %v", err)
	}
	if err := l.RemoveBefore(5); !errors.Is(err, errReadOnly) {
		t.Fatalf("RemoveBefore on a read-only log: %v", err)
	}
	if err := l.Sync(); err != nil {
		t.Fatal(err)
	}
	if segs := l.Segments(); len(segs) != 1 || segs[0] != 1 {
		t.Fatalf("Segments() = %v", segs)
	}
	mustClose(t, l)
	after := snapshot(t, m, o.Dir)
	if len(after) != len(before) {
		t.Fatalf("read-only Open changed the directory: %v -> %v", sortedKeys(before), sortedKeys(after))
	}
	for name := range before {
		if after[name] != before[name] {
			t.Fatalf("read-only Open changed %s", name)
		}
	}

	// A read-only Open of a directory that does not exist fails and creates nothing.
	ro.Dir = "/nothing"
	if _, err := Open(ro, nil); err == nil {
		t.Fatal("read-only Open of a missing directory succeeded")
	}
	if _, err := m.ReadDir("/nothing"); err == nil {
		t.Fatal("read-only Open created the directory")
	}
	ro.Dir = o.Dir

	// Read-write repairs.
	l, got = openLog(t, o)
	sameRecords(t, got, want)
	if _, _, ok := l.TornTail(); !ok {
		t.Fatal("read-write Open did not report the torn tail it repaired")
	}
	mustClose(t, l)
	l, got = openLog(t, ro)
	if _, _, ok := l.TornTail(); ok {
		t.Fatal("torn tail still there after a read-write Open")
	}
	sameRecords(t, got, want)
	if names, _ := m.ReadDir(o.Dir); strings.Contains(strings.Join(names, " "), ".tmp") {
		t.Fatalf("leftover .tmp not removed: %v", names)
	}
}

// TestReplayError: an error from replay fails Open, wrapped.
func TestReplayError(t *testing.T) {
	_, o := memOptions()
	l, _ := openLog(t, o)
	appendAll(t, l, "a", "b", "c")
	mustClose(t, l)
	stop := errors.New("stop here")
	n := 0
	_, err := Open(o, func(p Pos, b []byte) error {
		if n++; n == 2 {
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) || !strings.Contains(err.Error(), "segment 1 offset 41") {
		t.Fatalf("Open: %v", err)
	}
}

// TestClosed: calls after Close fail with ErrClosed.
func TestClosed(t *testing.T) {
	_, o := memOptions()
	l, _ := openLog(t, o)
	mustClose(t, l)
	_, err := l.Append([]byte("x"))
	wantErr(t, "Append", err, ErrClosed)
	wantErr(t, "Sync", l.Sync(), ErrClosed)
	wantErr(t, "RemoveBefore", l.RemoveBefore(1), ErrClosed)
	if err := l.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

func TestPosLess(t *testing.T) {
	ps := []Pos{{1, 24}, {1, 100}, {2, 24}, {10, 0}}
	for i := range ps {
		for j := range ps {
			if got := ps[i].Less(ps[j]); got != (i < j) {
				t.Errorf("%v.Less(%v) = %v", ps[i], ps[j], got)
			}
		}
	}
}

// TestFatalDirectoryAndSpareSyncs: an fsync of a new segment or of the
// directory failing is as fatal as one of a data segment.
func TestFatalDirectoryAndSpareSyncs(t *testing.T) {
	for _, tc := range []struct {
		name   string
		failOn func(o Options) string                       // the name whose sync fails
		act    func(t *testing.T, l *Log, arm func()) error // arm turns the fault on
	}{
		{"spare prepared after a sync", func(o Options) string { return segPath(o, 3) + tmpExt },
			func(t *testing.T, l *Log, arm func()) error {
				arm()
				appendAll(t, l, payload(1, 3000), payload(2, 3000)) // moves to segment 2
				return l.Sync()                                     // then prepares 3
			}},
		{"segment built by the append that needs it", func(o Options) string { return o.Dir },
			func(t *testing.T, l *Log, arm func()) error {
				arm()
				l.mu.Lock()
				l.ahead = 0 // as if its preparation had failed
				l.mu.Unlock()
				_, err := l.Append([]byte(payload(1, 4000)))
				_, err2 := l.Append([]byte(payload(2, 4000)))
				if err != nil {
					return err
				}
				return err2
			}},
		{"directory after removing a segment", func(o Options) string { return o.Dir },
			func(t *testing.T, l *Log, arm func()) error {
				appendAll(t, l, payload(1, 3000), payload(2, 3000))
				mustSync(t, l)
				arm()
				return l.RemoveBefore(2)
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, o := memOptions()
			l, _ := openLog(t, o)
			name := tc.failOn(o)
			arm := func() {
				m.SetFaults(MemFSFaults{SyncErr: func(n string) error {
					if n == name {
						return syscall.EIO
					}
					return nil
				}})
			}
			wantErr(t, tc.name, tc.act(t, l, arm), ErrSyncFailed)
			m.SetFaults(MemFSFaults{})
			_, err := l.Append([]byte("after"))
			wantErr(t, "Append after the failure", err, ErrSyncFailed)
			wantErr(t, "Sync after the failure", l.Sync(), ErrSyncFailed)
		})
	}
}
