package wal

import (
	"errors"
	"os"
	"strings"
	"testing"
)

// TestCorruption damages a closed log in one place and checks that Open
// refuses it with a *CorruptError that names the right segment and offset.
//
// The log: segment 1 holds records A, B, C (100-byte payloads, at offsets
// 32, 140, 248, ending at 356); with multi, segment 1 is filled and sealed
// and records D, E follow in segment 2. The spare segment follows the last.
func TestCorruption(t *testing.T) {
	const (
		a, b, c = 32, 140, 248 // frame offsets in segment 1
		end     = 356          // end of C
	)
	type flip struct {
		seg uint64
		off int64
		bit uint
	}
	type flips []flip
	cases := []struct {
		name    string
		multi   bool
		flips   flips
		wantSeg uint64
		wantOff int64
		reason  string // substring of CorruptError.Reason
	}{
		{"middle record length, low bit", false, flips{{1, b, 0}}, 1, b, "crc mismatch"},
		{"middle record length, shorter", false, flips{{1, b, 2}}, 1, b, "crc mismatch"},
		{"middle record length, longer into next record", false, flips{{1, b, 1}}, 1, b, "crc mismatch"},
		{"middle record length, longer past the data", false, flips{{1, b + 1, 1}}, 1, b, "crc mismatch"},
		{"middle record length, past the segment", false, flips{{1, b + 2, 4}}, 1, b, "runs past the end"},
		{"middle record crc", false, flips{{1, b + 5, 3}}, 1, b, "crc mismatch"},
		{"middle record payload", false, flips{{1, b + 60, 6}}, 1, b, "crc mismatch"},
		{"first record payload", false, flips{{1, a + 8, 0}}, 1, a, "crc mismatch"},
		{"last record length, longer past the data", false, flips{{1, c + 1, 0}}, 1, c, "crc mismatch"},
		{"last record length, shorter", false, flips{{1, c, 2}}, 1, c, "crc mismatch"},
		{"last record crc", false, flips{{1, c + 4, 7}}, 1, c, "crc mismatch"},
		{"last record payload", false, flips{{1, c + 50, 1}}, 1, c, "crc mismatch"},
		{"last record last byte", false, flips{{1, end - 1, 0}}, 1, c, "crc mismatch"},
		{"zeros after the last record", false, flips{{1, 1000, 5}}, 1, end, "end-of-records marker followed by data at offset 1000"},
		{"last bytes of the segment", false, flips{{1, 4095, 0}}, 1, end, "followed by data at offset 4095"},
		{"header magic", false, flips{{1, 0, 1}}, 1, 0, "bad magic"},
		{"header version", false, flips{{1, 8, 1}}, 1, 0, "unsupported format version 0"},
		{"header version, low bit", false, flips{{1, 8, 0}}, 1, 0, "unsupported format version 3"},
		{"header index", false, flips{{1, 12, 0}}, 1, 0, "header crc mismatch"},
		{"header built size", false, flips{{1, 22, 3}}, 1, 0, "header crc mismatch"},
		{"header crc", false, flips{{1, 29, 3}}, 1, 0, "header crc mismatch"},
		{"spare segment header", false, flips{{2, 16, 2}}, 2, 0, "header crc mismatch"},
		{"spare segment zeros", false, flips{{2, 2000, 2}}, 2, headerSize, "followed by data"},
		{"sealed segment, middle record", true, flips{{1, b + 30, 0}}, 1, b, "crc mismatch"},
		{"sealed segment, record ending the segment", true, flips{{1, 3000, 4}}, 1, end, "crc mismatch"},
		// Looks torn within its segment (its last byte, '}', zeroed),
		// but the segment after it holds records.
		{"sealed segment, torn-looking last record", true, flips{{1, 4095, 0}, {1, 4095, 2}, {1, 4095, 3}, {1, 4095, 4}, {1, 4095, 5}, {1, 4095, 6}}, 1, end, "not a torn tail: segment 2"},
		{"active segment after a sealed one", true, flips{{2, headerSize + 20, 4}}, 2, headerSize, "crc mismatch"},
		{"spare after the active segment", true, flips{{3, 3, 4}}, 3, 0, "bad magic"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m, o := memOptions()
			l, _ := openLog(t, o)
			recs := appendAll(t, l, payload(1, 100), payload(2, 100), payload(3, 100))
			if recs[1].pos.Offset != b || recs[2].pos.Offset != c {
				t.Fatalf("layout changed: %s", brief(recs))
			}
			if tc.multi {
				// Fill segment 1 up to the end exactly, then two records in segment 2.
				recs = append(recs, appendAll(t, l, payload(4, 4096-end-frameHeaderSize), payload(5, 77), payload(6, 88))...)
				if recs[4].pos.Segment != 2 {
					t.Fatalf("layout changed: %s", brief(recs))
				}
			}
			mustSync(t, l)
			mustClose(t, l)

			for _, f := range tc.flips {
				m.FlipBit(segPath(o, f.seg), f.off, f.bit)
			}
			before := snapshot(t, m, o.Dir)
			_, err := Open(o, nil)
			var ce *CorruptError
			if !errors.As(err, &ce) || !errors.Is(err, ErrCorrupt) {
				t.Fatalf("Open: got %v, want a *CorruptError", err)
			}
			if ce.Segment != tc.wantSeg || ce.Offset != tc.wantOff || !strings.Contains(ce.Reason, tc.reason) {
				t.Fatalf("got %v\nwant segment %d, offset %d, reason containing %q", err, tc.wantSeg, tc.wantOff, tc.reason)
			}
			if name := segmentName(tc.wantSeg); !strings.Contains(err.Error(), name) || !strings.HasPrefix(err.Error(), "wal: corrupt") {
				t.Fatalf("error %q does not name %s", err, name)
			}
			after := snapshot(t, m, o.Dir)
			if len(after) != len(before) {
				t.Fatalf("a failed Open changed the directory: %v -> %v", sortedKeys(before), sortedKeys(after))
			}
			for name := range before {
				if after[name] != before[name] {
					t.Fatalf("a failed Open changed %s", name)
				}
			}
		})
	}
}

func TestCorruptErrorMessage(t *testing.T) {
	err := error(&CorruptError{Segment: 3, Offset: 4096, Reason: "crc mismatch"})
	if got, want := err.Error(), "wal: corrupt record in segment 3 (0000000000000003.wal) at offset 4096: crc mismatch"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	err = &CorruptError{Segment: 3, Offset: 0, Reason: "bad magic"}
	if got, want := err.Error(), "wal: corrupt segment 3 (0000000000000003.wal) at offset 0: bad magic"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

// TestMissingOrShortSegment: the segment files must be consecutive and each
// at least a header long.
func TestMissingOrShortSegment(t *testing.T) {
	for _, tc := range []struct {
		name    string
		damage  func(m *MemFS, o Options)
		wantSeg uint64
		reason  string
	}{
		{"middle segment missing", func(m *MemFS, o Options) {
			if err := m.Remove(segPath(o, 2)); err != nil {
				t.Fatal(err)
			}
		}, 2, "segment file is missing (segments 1 and 3 exist)"},
		{"segment shorter than a header", func(m *MemFS, o Options) {
			f, err := m.OpenFile(segPath(o, 3), os.O_RDWR, 0)
			if err != nil {
				t.Fatal(err)
			}
			if err := f.Truncate(10); err != nil {
				t.Fatal(err)
			}
			f.Close()
		}, 3, "shorter than its 24-byte header"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, o := memOptions()
			l, _ := openLog(t, o)
			appendAll(t, l, payload(1, 3000), payload(2, 3000), payload(3, 3000))
			mustClose(t, l)
			tc.damage(m, o)
			_, err := Open(o, nil)
			var ce *CorruptError
			if !errors.As(err, &ce) || ce.Segment != tc.wantSeg || ce.Offset != 0 || !strings.Contains(ce.Reason, tc.reason) {
				t.Fatalf("Open: got %v, want corruption of segment %d at offset 0: %s", err, tc.wantSeg, tc.reason)
			}
		})
	}
}
