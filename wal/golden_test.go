package wal

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite testdata/format.golden")

// goldenRecords are the records of the tiny log in testdata/format.golden.
var goldenRecords = []string{
	`{"type":"begin","txn":"t1","participants":["http://a/prepare"]}`,
	`{"type":"decision","txn":"t1","outcome":"commit"}`,
	``,
	`{"type":"end","txn":"t1"}`,
}

// TestFormatGolden pins the on-disk format: a tiny log, written and dumped
// in hex, must match testdata/format.golden byte for byte, and the log read
// back from the golden file must replay the same records. Run with -update
// after an intended format change (and bump formatVersion).
func TestFormatGolden(t *testing.T) {
	m, o := memOptions()
	l, _ := openLog(t, o)
	want := appendAll(t, l, goldenRecords...)
	mustSync(t, l)
	mustClose(t, l)
	got := hexDumpDir(t, m, o.Dir)

	path := filepath.Join("testdata", "format.golden")
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	golden, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -run TestFormatGolden -update to create it)", err)
	}
	if got != string(golden) {
		t.Fatalf("the on-disk format changed; if intended, bump formatVersion and run with -update\n--- got\n%s\n--- want\n%s", got, golden)
	}

	// The reader understands the golden bytes.
	m2 := NewMemFS()
	if err := m2.MkdirAll(o.Dir); err != nil {
		t.Fatal(err)
	}
	for name, content := range parseHexDump(t, string(golden)) {
		f, err := m2.OpenFile(filepath.Join(o.Dir, name), os.O_RDWR|os.O_CREATE, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.WriteAt(content, 0); err != nil {
			t.Fatal(err)
		}
		f.Close()
	}
	o.FS = m2
	o.ReadOnly = true
	sameRecords(t, replayAll(t, o), want)
}

// hexDumpDir dumps every file of dir like hexdump -C: offset, 16 bytes in
// hex, printable characters; a run of lines equal to the one before is
// printed as "*".
func hexDumpDir(t *testing.T, m *MemFS, dir string) string {
	t.Helper()
	names, err := m.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	b.WriteString("# wal on-disk format, version 2: a log of 4 KiB segments holding 4 records.\n")
	b.WriteString("# Rewrite with: go test ./wal -run TestFormatGolden -update\n")
	for _, name := range names {
		content, err := m.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&b, "\n== %s %d\n", name, len(content))
		var prev []byte
		starred := false
		for off := 0; off < len(content); off += 16 {
			line := content[off:min(off+16, len(content))]
			if prev != nil && bytes.Equal(line, prev) {
				if !starred {
					b.WriteString("*\n")
					starred = true
				}
				continue
			}
			prev, starred = line, false
			fmt.Fprintf(&b, "%08x ", off)
			for i := range 16 {
				if i == 8 {
					b.WriteByte(' ')
				}
				if i < len(line) {
					fmt.Fprintf(&b, " %02x", line[i])
				} else {
					b.WriteString("   ")
				}
			}
			b.WriteString("  |")
			for _, c := range line {
				if c < 32 || c > 126 {
					c = '.'
				}
				b.WriteByte(c)
			}
			b.WriteString("|\n")
		}
	}
	return b.String()
}

// parseHexDump reads hexDumpDir's output back into file contents.
func parseHexDump(t *testing.T, dump string) map[string][]byte {
	t.Helper()
	files := map[string][]byte{}
	var name string
	for _, line := range strings.Split(dump, "\n") {
		switch {
		case line == "" || strings.HasPrefix(line, "#") || line == "*":
		case strings.HasPrefix(line, "== "):
			f := strings.Fields(line)
			size, err := strconv.Atoi(f[2])
			if err != nil {
				t.Fatalf("bad line %q", line)
			}
			name = f[1]
			files[name] = make([]byte, size)
		default:
			// "*" lines stand for repeats; in these files they are all zeros,
			// which the make above already holds.
			off, err := strconv.ParseInt(line[:8], 16, 64)
			if err != nil {
				t.Fatalf("bad line %q", line)
			}
			hexPart := line[8:strings.Index(line, "|")]
			for i, h := range strings.Fields(hexPart) {
				v, err := strconv.ParseUint(h, 16, 8)
				if err != nil {
					t.Fatalf("bad line %q", line)
				}
				files[name][off+int64(i)] = byte(v)
			}
		}
	}
	return files
}
