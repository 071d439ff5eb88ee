package wal

import (
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
		})
	}
}
