package wal

import (
	"bytes"
	"errors"
	"os"
	"testing"
)

// FuzzScanFrames feeds any bytes after a valid segment header to the frame decoder:
// it must not panic, the records it emits must be exactly the valid frames from the
// start (re-encoding them gives back the bytes up to res.end), and what stops it is
// either a clean end (zeros) or a bad frame at res.end that stays within the segment.
// Seeds: testdata/fuzz/FuzzScanFrames, plus frames made here.
func FuzzScanFrames(f *testing.F) {
	frames := appendFrame(nil, []byte(`{"type":"begin"}`), payloadCRC([]byte(`{"type":"begin"}`)))
	frames = appendFrame(frames, []byte("x"), payloadCRC([]byte("x")))
	f.Add(frames)
	f.Add(append(append([]byte(nil), frames...), make([]byte, 64)...))
	torn := append([]byte(nil), frames...)
	torn[len(torn)-1] = 0
	f.Add(torn)
	f.Add([]byte{1, 0, 0, 0, 0, 0, 0, 0, 'a'})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 1, 2, 3, 4})
	f.Fuzz(func(t *testing.T, body []byte) {
		seg := append(encodeHeader(1, int64(headerSize+len(body))), body...)
		var reenc []byte
		next := int64(headerSize)
		res, err := scanFrames(seg, headerSize, func(off int64, payload []byte) error {
			if off != next {
				t.Fatalf("record at %d, want %d", off, next)
			}
			reenc = appendFrame(reenc, payload, payloadCRC(payload))
			next = off + frameHeaderSize + int64(len(payload))
			return nil
		})
		if err != nil {
			t.Fatalf("scanFrames: %v (emit never fails)", err)
		}
		if res.end != next || res.end > int64(len(seg)) {
			t.Fatalf("end %d, last record ends at %d, segment of %d", res.end, next, len(seg))
		}
		if !bytes.Equal(reenc, seg[headerSize:res.end]) {
			t.Fatalf("the records emitted do not re-encode to the bytes they came from")
		}
		if res.bad == nil {
			// A clean end: only zeros may follow the last record.
			if i := firstNonZero(seg[res.end:]); i >= 0 {
				t.Fatalf("clean end at %d but a non-zero byte at %d", res.end, res.end+int64(i))
			}
			return
		}
		if res.bad.off != res.end || res.bad.end <= res.bad.off || res.bad.end > int64(len(seg)) || res.bad.reason == "" {
			t.Fatalf("bad frame %+v after end %d in %d bytes", *res.bad, res.end, len(seg))
		}
	})
}

// FuzzOpenDamagedLog writes a log of three records, overwrites some of its first
// segment at an offset with any bytes, and opens it again: Open must not panic, and
// either refuses with a *CorruptError that points inside the log or opens it and
// replays, in order, records whose frames are valid. Seeds:
// testdata/fuzz/FuzzOpenDamagedLog, plus damage made here.
func FuzzOpenDamagedLog(f *testing.F) {
	f.Add(uint16(24), []byte{0xff})
	f.Add(uint16(132), []byte{0, 0, 0, 0})
	f.Add(uint16(340), []byte{0, 0, 0, 0, 0, 0, 0, 0})
	f.Add(uint16(0), []byte("DTCWAL"))
	f.Add(uint16(2000), []byte("garbage"))
	f.Fuzz(func(t *testing.T, at uint16, damage []byte) {
		m, o := memOptions()
		l, _ := openLog(t, o)
		appendAll(t, l, payload(1, 100), payload(2, 100), payload(3, 100))
		mustSync(t, l)
		mustClose(t, l)
		name := segPath(o, 1)
		file, err := m.OpenFile(name, os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(damage) > 256 {
			damage = damage[:256]
		}
		off := int64(at) % int64(minSegmentSizeBytes)
		if _, err := file.WriteAt(damage[:min(int64(len(damage)), int64(minSegmentSizeBytes)-off)], off); err != nil {
			t.Fatal(err)
		}
		if err := file.Close(); err != nil {
			t.Fatal(err)
		}
		var got []Pos
		log, err := Open(o, func(p Pos, b []byte) error {
			if len(got) > 0 && !got[len(got)-1].Less(p) {
				t.Fatalf("record at %v after %v", p, got[len(got)-1])
			}
			got = append(got, p)
			return nil
		})
		if err != nil {
			var ce *CorruptError
			if !errors.As(err, &ce) || ce.Segment == 0 || ce.Offset < 0 || ce.Offset > int64(minSegmentSizeBytes) {
				t.Fatalf("Open: %v, want a *CorruptError inside the log", err)
			}
			return
		}
		// It opened: it must take a record and give it back after a reopen.
		if _, err := log.Append([]byte("after")); err != nil {
			t.Fatalf("Append after Open: %v", err)
		}
		mustSync(t, log)
		mustClose(t, log)
		recs := replayAll(t, o)
		if len(recs) == 0 || recs[len(recs)-1].payload != "after" {
			t.Fatalf("the record appended after Open is not replayed: %s", brief(recs))
		}
	})
}
