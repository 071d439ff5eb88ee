package wal

import (
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// rec is a replayed or appended record.
type rec struct {
	pos     Pos
	payload string
}

// memOptions returns options for a log in /log on a new MemFS with the
// smallest segments.
func memOptions() (*MemFS, Options) {
	m := NewMemFS()
	return m, Options{FS: m, Dir: "/log", SegmentSizeBytes: minSegmentSizeBytes}
}

// openLog opens a log and returns it with the records Open replayed.
func openLog(t testing.TB, o Options) (*Log, []rec) {
	t.Helper()
	var recs []rec
	l, err := Open(o, func(p Pos, b []byte) error {
		recs = append(recs, rec{p, string(b)})
		return nil
	})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return l, recs
}

// replayAll opens, reads and closes the log.
func replayAll(t testing.TB, o Options) []rec {
	t.Helper()
	l, recs := openLog(t, o)
	if err := l.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	return recs
}

// payload returns a deterministic record of size bytes (at least 2) that
// ends with a non-zero byte, like the JSON the coordinator writes.
func payload(i, size int) string {
	b := fmt.Appendf(nil, "{%d:", i)
	for len(b) < size-1 {
		b = append(b, byte('a'+(len(b)+i)%26))
	}
	return string(append(b, '}')[:max(size, 0)])
}

func appendAll(t testing.TB, l *Log, payloads ...string) []rec {
	t.Helper()
	var recs []rec
	for _, p := range payloads {
		pos, err := l.Append([]byte(p))
		if err != nil {
			t.Fatalf("Append(%d bytes): %v", len(p), err)
		}
		recs = append(recs, rec{pos, p})
	}
	return recs
}

func mustSync(t testing.TB, l *Log) {
	t.Helper()
	if err := l.Sync(); err != nil {
		t.Fatalf("Sync: %v", err)
	}
}

func mustClose(t testing.TB, l *Log) {
	t.Helper()
	if err := l.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
}

// sameRecords fails the test unless got equals want.
func sameRecords(t testing.TB, got, want []rec) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d records, want %d\ngot:  %s\nwant: %s", len(got), len(want), brief(got), brief(want))
	}
	for i := range got {
		if got[i] != want[i] {
			t.Fatalf("record %d: got %v %.40q, want %v %.40q", i, got[i].pos, got[i].payload, want[i].pos, want[i].payload)
		}
	}
}

func brief(recs []rec) string {
	var b strings.Builder
	for _, r := range recs {
		fmt.Fprintf(&b, "%d:%d(%d) ", r.pos.Segment, r.pos.Offset, len(r.payload))
	}
	return b.String()
}

// segPath is the path of segment idx of o's log.
func segPath(o Options, idx uint64) string { return filepath.Join(o.Dir, segmentName(idx)) }

// snapshot returns the name and current content of every file in dir.
func snapshot(t testing.TB, m *MemFS, dir string) map[string]string {
	t.Helper()
	names, err := m.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]string{}
	for _, n := range names {
		b, err := m.ReadFile(filepath.Join(dir, n))
		if err != nil {
			t.Fatal(err)
		}
		files[n] = string(b)
	}
	return files
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// wantErr fails the test unless errors.Is(err, target).
func wantErr(t testing.TB, what string, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("%s: got error %v, want one wrapping %v", what, err, target)
	}
}
