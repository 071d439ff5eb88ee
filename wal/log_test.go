package wal

import (
	"sync"
	"testing"
)

// fsKinds are the file systems every round-trip test runs on.
var fsKinds = []struct {
	name string
	opts func(t *testing.T) Options
}{
	{"MemFS", func(t *testing.T) Options { _, o := memOptions(); return o }},
	{"OSFS", func(t *testing.T) Options {
		return Options{FS: OSFS(), Dir: t.TempDir() + "/log", SegmentSizeBytes: minSegmentSizeBytes}
	}},
}

func TestRoundTrip(t *testing.T) {
	for _, k := range fsKinds {
		t.Run(k.name, func(t *testing.T) {
			o := k.opts(t)
			l, recs := openLog(t, o)
			if len(recs) != 0 {
				t.Fatalf("new log replayed %d records", len(recs))
			}
			var want []rec
			for i := range 300 {
				want = append(want, appendAll(t, l, payload(i, i%97))...)
				if i%50 == 49 {
					mustSync(t, l)
				}
			}
			mustClose(t, l)
			if segs := want[len(want)-1].pos.Segment; segs < 4 {
				t.Fatalf("records span %d segments, want several", segs)
			}
			sameRecords(t, replayAll(t, o), want)

			// Appends after a reopen continue the log.
			l, _ = openLog(t, o)
			for i := 300; i < 400; i++ {
				want = append(want, appendAll(t, l, payload(i, 50+i%200))...)
			}
			mustSync(t, l)
			mustClose(t, l)
			sameRecords(t, replayAll(t, o), want)

			// Old segments removed, the rest still replays.
			l, _ = openLog(t, o)
			last := want[len(want)-1].pos.Segment
			if err := l.RemoveBefore(last); err != nil {
				t.Fatal(err)
			}
			mustClose(t, l)
			var tail []rec
			for _, r := range want {
				if r.pos.Segment == last {
					tail = append(tail, r)
				}
			}
			sameRecords(t, replayAll(t, o), tail)
		})
	}
}

// TestAppendDuringSync: Appends are not held up while Sync waits for the
// disk; they go to the next Sync.
func TestAppendDuringSync(t *testing.T) {
	m, o := memOptions()
	l, _ := openLog(t, o)
	want := appendAll(t, l, "before")
	entered, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	m.SetFaults(MemFSFaults{SyncErr: func(name string) error {
		if name == segPath(o, 1) {
			once.Do(func() {
				close(entered)
				<-release // the fsync is "in progress" until the test says so
			})
		}
		return nil
	}})
	errc := make(chan error, 1)
	go func() { errc <- l.Sync() }()
	<-entered
	// Would hang here if Append waited for the fsync.
	appendAll(t, l, "during 1", "during 2")
	close(release)
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	m.Crash() // the records appended during the Sync were not covered by it
	sameRecords(t, replayAll(t, o), want)

	l, _ = openLog(t, o)
	during := appendAll(t, l, "during 1", "during 2")
	mustSync(t, l)
	m.Crash()
	sameRecords(t, replayAll(t, o), append(want, during...))
}

// TestRecycledBuffersStaySmall: a batch that piled up (behind a slow fsync, say) does
// not leave its big buffer in the free list, where it would stay for good; ordinary
// batches' buffers are reused.
func TestRecycledBuffersStaySmall(t *testing.T) {
	_, o := memOptions()
	o.SegmentSizeBytes = 8 << 20
	l, _ := openLog(t, o)
	defer l.Close()
	big := make([]byte, 4<<10)
	for range 64 { // 256 KiB in one batch
		if _, err := l.Append(big); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Sync(); err != nil {
		t.Fatal(err)
	}
	for _, b := range l.free {
		if cap(b) >= 64*len(big) {
			t.Fatalf("kept the big batch's buffer (%d bytes) for reuse", cap(b))
		}
	}
	if _, err := l.Append([]byte("small")); err != nil {
		t.Fatal(err)
	}
	if err := l.Sync(); err != nil {
		t.Fatal(err)
	}
	if len(l.free) == 0 {
		t.Fatal("an ordinary batch's buffer was not kept for reuse")
	}
}

// removeGatedFS holds every Remove until release is closed.
type removeGatedFS struct {
	*MemFS
	entered chan string
	release chan struct{}
}

func (g *removeGatedFS) Remove(name string) error {
	g.entered <- name
	<-g.release
	return g.MemFS.Remove(name)
}

// TestSyncsWhileSegmentsAreRemoved: RemoveBefore unlinks old segments without
// holding up the syncs of new records, and Close waits for it.
func TestSyncsWhileSegmentsAreRemoved(t *testing.T) {
	m, o := memOptions()
	g := &removeGatedFS{MemFS: m, entered: make(chan string, 1), release: make(chan struct{})}
	o.FS = g
	l, _ := openLog(t, o)
	big := make([]byte, 1024)
	for len(l.Segments()) < 3 {
		if _, err := l.Append(big); err != nil {
			t.Fatal(err)
		}
		if err := l.Sync(); err != nil {
			t.Fatal(err)
		}
	}
	segs := l.Segments()
	removed := make(chan error, 1)
	go func() { removed <- l.RemoveBefore(segs[len(segs)-1]) }()
	<-g.entered // a removal is under way, held
	if _, err := l.Append([]byte("meanwhile")); err != nil {
		t.Fatal(err)
	}
	if err := l.Sync(); err != nil { // with the old locking this waited for the removal
		t.Fatalf("Sync during a removal: %v", err)
	}
	closed := make(chan error, 1)
	go func() { closed <- l.Close() }()
	close(g.release)
	for range len(segs) - 2 { // the rest of the removals
		<-g.entered
	}
	if err := <-removed; err != nil {
		t.Fatalf("RemoveBefore: %v", err)
	}
	if err := <-closed; err != nil {
		t.Fatalf("Close: %v", err)
	}
	o.FS = m
	if got := replayAll(t, o); len(got) == 0 || got[len(got)-1].payload != "meanwhile" {
		t.Fatalf("after reopening, the last record is not the one synced during the removal: %v", got[max(0, len(got)-1):])
	}
}
