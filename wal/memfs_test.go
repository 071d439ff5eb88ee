package wal

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"syscall"
	"testing"
)

func memWrite(t *testing.T, m *MemFS, name string, flag int, data string, off int64) File {
	t.Helper()
	f, err := m.OpenFile(name, flag, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte(data), off); err != nil {
		t.Fatal(err)
	}
	return f
}

func memContent(t *testing.T, m *MemFS, name string) string {
	t.Helper()
	b, err := m.ReadFile(name)
	if errors.Is(err, fs.ErrNotExist) {
		return "<missing>"
	}
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestMemFSCrash: what survives a crash is exactly what was made durable:
// file data by File.Sync, directory entries by SyncDir.
func TestMemFSCrash(t *testing.T) {
	for _, tc := range []struct {
		name  string
		steps func(t *testing.T, m *MemFS)
		want  map[string]string // name -> content after the crash
	}{
		{"created, never synced", func(t *testing.T, m *MemFS) {
			f := memWrite(t, m, "/d/a", os.O_RDWR|os.O_CREATE, "hello", 0)
			f.Sync()
		}, map[string]string{"/d/a": "<missing>"}},
		{"created and dir synced, data not synced", func(t *testing.T, m *MemFS) {
			memWrite(t, m, "/d/a", os.O_RDWR|os.O_CREATE, "hello", 0)
			m.SyncDir("/d")
		}, map[string]string{"/d/a": ""}},
		{"data and dir synced", func(t *testing.T, m *MemFS) {
			f := memWrite(t, m, "/d/a", os.O_RDWR|os.O_CREATE, "hello", 0)
			f.Sync()
			m.SyncDir("/d")
			f.WriteAt([]byte("J"), 0) // unsynced overwrite: lost
			f.WriteAt([]byte("!"), 5) // unsynced append: lost
		}, map[string]string{"/d/a": "hello"}},
		{"rename not synced", func(t *testing.T, m *MemFS) {
			f := memWrite(t, m, "/d/a.tmp", os.O_RDWR|os.O_CREATE, "x", 0)
			f.Sync()
			m.SyncDir("/d")
			m.Rename("/d/a.tmp", "/d/a")
		}, map[string]string{"/d/a.tmp": "x", "/d/a": "<missing>"}},
		{"rename synced", func(t *testing.T, m *MemFS) {
			f := memWrite(t, m, "/d/a.tmp", os.O_RDWR|os.O_CREATE, "x", 0)
			f.Sync()
			m.Rename("/d/a.tmp", "/d/a")
			m.SyncDir("/d")
		}, map[string]string{"/d/a.tmp": "<missing>", "/d/a": "x"}},
		{"remove not synced", func(t *testing.T, m *MemFS) {
			f := memWrite(t, m, "/d/a", os.O_RDWR|os.O_CREATE, "x", 0)
			f.Sync()
			m.SyncDir("/d")
			m.Remove("/d/a")
		}, map[string]string{"/d/a": "x"}},
		{"remove synced", func(t *testing.T, m *MemFS) {
			f := memWrite(t, m, "/d/a", os.O_RDWR|os.O_CREATE, "x", 0)
			f.Sync()
			m.SyncDir("/d")
			m.Remove("/d/a")
			m.SyncDir("/d")
		}, map[string]string{"/d/a": "<missing>"}},
		{"sync through another handle", func(t *testing.T, m *MemFS) {
			memWrite(t, m, "/d/a", os.O_RDWR|os.O_CREATE, "abc", 0)
			m.SyncDir("/d")
			f, _ := m.OpenFile("/d/a", os.O_RDONLY, 0)
			f.Sync()
		}, map[string]string{"/d/a": "abc"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := NewMemFS()
			if err := m.MkdirAll("/d"); err != nil {
				t.Fatal(err)
			}
			tc.steps(t, m)
			m.Crash()
			for name, want := range tc.want {
				if got := memContent(t, m, name); got != want {
					t.Errorf("%s after crash: %q, want %q", name, got, want)
				}
			}
		})
	}
}

// TestMemFSCrashTorn: a torn crash keeps a prefix of the unsynced writes.
func TestMemFSCrashTorn(t *testing.T) {
	m := NewMemFS()
	m.MkdirAll("/d")
	f := memWrite(t, m, "/d/seg", os.O_RDWR|os.O_CREATE, "0123456789", 0)
	f.Sync()
	m.SyncDir("/d")
	f.WriteAt([]byte("abc"), 4)
	f.WriteAt([]byte("XYZW"), 8) // extends the file
	var gotName, gotUnsynced string
	m.CrashTorn(func(name string, unsynced []byte) int {
		gotName, gotUnsynced = name, string(unsynced)
		return 5
	})
	if gotName != "/d/seg" || gotUnsynced != "abc7XYZW" {
		t.Fatalf("keep(%q, %q), want the hull of the unsynced writes", gotName, gotUnsynced)
	}
	if got := memContent(t, m, "/d/seg"); got != "0123abc7X9" {
		t.Fatalf("after torn crash: %q", got)
	}
	// The handle from before the crash is dead.
	if _, err := f.WriteAt([]byte("x"), 0); !errors.Is(err, ErrClosed) || !errors.Is(err, fs.ErrClosed) {
		t.Fatalf("write through a pre-crash handle: %v", err)
	}
	// Keeping more than was written extends only as far as was written.
	f, _ = m.OpenFile("/d/seg", os.O_RDWR, 0)
	f.WriteAt([]byte("++"), 12)
	m.CrashTorn(func(string, []byte) int { return 100 })
	if got := memContent(t, m, "/d/seg"); got != "0123abc7X9\x00\x00++" {
		t.Fatalf("after torn crash keeping all: %q", got)
	}
}

func TestMemFSFaultsAndFlipBit(t *testing.T) {
	m := NewMemFS()
	m.MkdirAll("/d")
	f := memWrite(t, m, "/d/a", os.O_RDWR|os.O_CREATE, "abcd", 0)
	m.SetFaults(MemFSFaults{
		SyncErr:  func(name string) error { return syscall.EIO },
		WriteErr: func(name string, off int64, n int) error { return syscall.ENOSPC },
	})
	if err := f.Sync(); !errors.Is(err, syscall.EIO) {
		t.Fatalf("Sync: %v", err)
	}
	if err := m.SyncDir("/d"); !errors.Is(err, syscall.EIO) {
		t.Fatalf("SyncDir: %v", err)
	}
	if _, err := f.WriteAt([]byte("x"), 0); !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("WriteAt: %v", err)
	}
	if err := f.Truncate(100); !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("Truncate: %v", err)
	}
	if got := memContent(t, m, "/d/a"); got != "abcd" {
		t.Fatalf("a failed write changed the file: %q", got)
	}
	m.SetFaults(MemFSFaults{})
	f.Sync()
	m.SyncDir("/d")
	m.FlipBit("/d/a", 1, 0)
	m.Crash()
	if got := memContent(t, m, "/d/a"); got != "accd" {
		t.Fatalf("flipped bit did not survive the crash: %q", got)
	}
}

func TestMemFSFiles(t *testing.T) {
	m := NewMemFS()
	if _, err := m.OpenFile("/nodir/a", os.O_RDWR|os.O_CREATE, 0o644); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("create in a missing dir: %v", err)
	}
	m.MkdirAll("/d/sub")
	memWrite(t, m, "/d/b", os.O_RDWR|os.O_CREATE, "bb", 0).Close()
	memWrite(t, m, "/d/a", os.O_RDWR|os.O_CREATE, "a", 0).Close()
	if names, _ := m.ReadDir("/d"); len(names) != 3 || names[0] != "a" || names[1] != "b" || names[2] != "sub" {
		t.Fatalf("ReadDir = %v", names)
	}
	if _, err := m.OpenFile("/d/a", os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644); !errors.Is(err, fs.ErrExist) {
		t.Fatalf("O_EXCL on an existing file: %v", err)
	}
	if _, err := m.OpenFile("/d/c", os.O_RDONLY, 0); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("open missing: %v", err)
	}
	f, _ := m.OpenFile("/d/b", os.O_RDWR|os.O_TRUNC, 0)
	if n, _ := f.Size(); n != 0 {
		t.Fatalf("size after O_TRUNC = %d", n)
	}
	f.WriteAt([]byte("xyz"), 0)
	buf := make([]byte, 5)
	if n, err := f.ReadAt(buf, 1); n != 2 || err != io.EOF || string(buf[:n]) != "yz" {
		t.Fatalf("ReadAt past EOF = %d, %v", n, err)
	}
	f.Truncate(1)
	if got := memContent(t, m, "/d/b"); got != "x" {
		t.Fatalf("after Truncate(1): %q", got)
	}
	ro, _ := m.OpenFile("/d/b", os.O_RDONLY, 0)
	if _, err := ro.WriteAt([]byte("q"), 0); err == nil {
		t.Fatal("write through a read-only handle succeeded")
	}
	f.Close()
	if _, err := f.ReadAt(buf, 0); !errors.Is(err, fs.ErrClosed) {
		t.Fatalf("read after close: %v", err)
	}
	if err := m.Remove("/d/zz"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("remove missing: %v", err)
	}
}
