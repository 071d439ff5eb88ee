package wal

import (
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"sync"
	"syscall"
)

// MemFS is a deterministic in-memory FS with crash semantics, for tests and
// the simulator.
//
// Every file keeps two contents: the durable one (what survives a crash) and
// the current one (what reads see). File.Sync makes the current content
// durable. Directory entries work the same way: creations, renames and
// removals are visible at once and become durable when SyncDir is called on
// their directory. Directories themselves are durable as soon as MkdirAll
// creates them.
//
// Crash forgets everything that is not durable; CrashTorn also keeps a prefix
// of each file's unsynced writes, the way a write cut short by a power loss
// would. Handles opened before a crash are invalid afterwards.
//
// A MemFS is safe for concurrent use. It has no randomness of its own: faults
// come from the hooks set with SetFaults and the calls the simulator makes.
type MemFS struct {
	mu      sync.Mutex
	dirs    map[string]bool      // existing directories, durable at once
	names   map[string]*memInode // current directory entries, by clean path
	durable map[string]*memInode // directory entries as of the last SyncDir of their directory
	faults  MemFSFaults
	gen     uint64 // incremented by every crash; handles of an older generation are invalid
}

// MemFSFaults are hooks through which a simulator injects faults into a MemFS.
// A nil hook injects nothing. Hooks are called with the MemFS locked: they
// must not call the MemFS. A hook may block (a test can hold an fsync in
// progress that way); every other MemFS call waits meanwhile.
type MemFSFaults struct {
	// SyncErr, if it returns an error, makes File.Sync (name is the file) or
	// SyncDir (name is the directory) fail with it without syncing anything.
	SyncErr func(name string) error
	// WriteErr, if it returns an error, makes a write of n bytes at off fail
	// with it without writing anything, e.g. syscall.ENOSPC or ErrNoSpace.
	// It is also asked before a Truncate that grows a file (off is the old
	// size, n the growth).
	WriteErr func(name string, off int64, n int) error
}

type memInode struct {
	durable []byte
	current []byte
	// dirtyLo..dirtyHi is the hull of the byte ranges written since the last
	// Sync; these are the writes a crash may tear.
	dirty            bool
	dirtyLo, dirtyHi int64
	resized          bool // Truncate was called since the last Sync
}

// NewMemFS returns an empty MemFS whose root directory exists.
func NewMemFS() *MemFS {
	return &MemFS{
		dirs:    map[string]bool{"/": true, ".": true},
		names:   map[string]*memInode{},
		durable: map[string]*memInode{},
	}
}

var _ FS = (*MemFS)(nil)

// SetFaults replaces the fault hooks.
func (m *MemFS) SetFaults(f MemFSFaults) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.faults = f
}

// Crash forgets everything that is not durable: unsynced file data and
// directory entries not made durable by SyncDir. Open files become invalid:
// every call on them fails with an error wrapping ErrClosed.
func (m *MemFS) Crash() { m.CrashTorn(nil) }

// CrashTorn is Crash, except that for each file with unsynced writes it first
// keeps the first keep(name, unsynced) bytes of them, as a torn write would.
// unsynced is the current content of the hull of the byte ranges written
// since the file's last Sync (for the log: the frames written but not yet
// synced). keep is called in name order, with the file's durable name. A nil
// keep keeps nothing.
func (m *MemFS) CrashTorn(keep func(name string, unsynced []byte) int) {
	if keep == nil {
		m.CrashTornAt(nil)
		return
	}
	m.CrashTornAt(func(name string, _ int64, unsynced []byte) int { return keep(name, unsynced) })
}

// CrashTornAt is CrashTorn, telling keep also where in the file the unsynced
// bytes begin (off), so that it can tell which frames they hold.
func (m *MemFS) CrashTornAt(keep func(name string, off int64, unsynced []byte) int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.gen++
	names := make([]string, 0, len(m.durable))
	for name := range m.durable {
		names = append(names, name)
	}
	sort.Strings(names)
	survivors := make(map[string]*memInode, len(names))
	done := map[*memInode]bool{}
	for _, name := range names {
		ino := m.durable[name]
		survivors[name] = ino
		if done[ino] {
			continue
		}
		done[ino] = true
		ino.crash(name, keep)
	}
	m.names = survivors
	m.durable = maps.Clone(survivors)
}

func (ino *memInode) crash(name string, keep func(string, int64, []byte) int) {
	if ino.dirty && keep != nil {
		lo, hi := ino.dirtyLo, min(ino.dirtyHi, int64(len(ino.current)))
		if lo < hi {
			k := int64(keep(name, lo, slices.Clone(ino.current[lo:hi])))
			k = max(0, min(k, hi-lo))
			if k > 0 {
				res := slices.Clone(ino.durable)
				if need := lo + k; need > int64(len(res)) {
					res = append(res, make([]byte, need-int64(len(res)))...)
				}
				copy(res[lo:lo+k], ino.current[lo:lo+k])
				ino.durable = res
			}
		}
	}
	ino.current = slices.Clone(ino.durable)
	ino.dirty, ino.resized = false, false
}

// Clone returns a deep copy of m, durable and current contents alike, with
// the same fault hooks: a test can crash the copy in several ways from one
// state. Handles opened on m do not work on the copy.
func (m *MemFS) Clone() *MemFS {
	m.mu.Lock()
	defer m.mu.Unlock()
	c := &MemFS{dirs: maps.Clone(m.dirs), names: map[string]*memInode{},
		durable: map[string]*memInode{}, faults: m.faults, gen: m.gen + 1}
	copies := map[*memInode]*memInode{}
	dup := func(ino *memInode) *memInode {
		if cp, ok := copies[ino]; ok {
			return cp
		}
		cp := *ino
		cp.durable, cp.current = slices.Clone(ino.durable), slices.Clone(ino.current)
		copies[ino] = &cp
		return &cp
	}
	for name, ino := range m.names {
		c.names[name] = dup(ino)
	}
	for name, ino := range m.durable {
		c.durable[name] = dup(ino)
	}
	return c
}

// FlipBit flips bit (0..7) of the byte at off in both the durable and the
// current content of the file name: a bit rotting on the disk. It panics if
// the file or the offset does not exist (a broken test).
func (m *MemFS) FlipBit(name string, off int64, bit uint) {
	m.mu.Lock()
	defer m.mu.Unlock()
	ino := m.names[filepath.Clean(name)]
	if ino == nil || off < 0 || off >= int64(len(ino.current)) || bit > 7 {
		panic(fmt.Sprintf("wal: MemFS.FlipBit(%q, %d, %d): no such byte", name, off, bit))
	}
	ino.current[off] ^= 1 << bit
	if off < int64(len(ino.durable)) {
		ino.durable[off] ^= 1 << bit
	}
}

// CutShort cuts the file name to size bytes, durably: a disk that lost the end
// of a file it had reported synced, or a copy of it taken while it was written.
// It panics if the file does not exist or is not longer than size.
func (m *MemFS) CutShort(name string, size int64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	ino := m.names[filepath.Clean(name)]
	if ino == nil || size < 0 || size >= int64(len(ino.current)) {
		panic(fmt.Sprintf("wal: MemFS.CutShort(%q, %d): no such file or not that long", name, size))
	}
	ino.current = ino.current[:size:size]
	if size < int64(len(ino.durable)) {
		ino.durable = ino.durable[:size:size]
	}
}

// LoseRename undoes the rename of oldname to newname, durably: a directory
// whose fsync reported the rename durable and lost it. It panics if newname
// does not exist or oldname does.
func (m *MemFS) LoseRename(oldname, newname string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	oldname, newname = filepath.Clean(oldname), filepath.Clean(newname)
	ino := m.names[newname]
	if ino == nil || m.names[oldname] != nil {
		panic(fmt.Sprintf("wal: MemFS.LoseRename(%q, %q): no such rename to undo", oldname, newname))
	}
	delete(m.names, newname)
	m.names[oldname] = ino
	if d := m.durable[newname]; d != nil {
		delete(m.durable, newname)
		m.durable[oldname] = d
	}
}

// ReadFile returns a copy of the current content of the file name.
func (m *MemFS) ReadFile(name string) ([]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	ino := m.names[filepath.Clean(name)]
	if ino == nil {
		return nil, &fs.PathError{Op: "read", Path: name, Err: fs.ErrNotExist}
	}
	return slices.Clone(ino.current), nil
}

// ReadDurable returns a copy of the durable content of the file name: what a
// crash now would leave of it.
func (m *MemFS) ReadDurable(name string) ([]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	ino := m.names[filepath.Clean(name)]
	if ino == nil {
		return nil, &fs.PathError{Op: "read", Path: name, Err: fs.ErrNotExist}
	}
	return slices.Clone(ino.durable), nil
}

// MkdirAll creates dir and its parents. Directories are durable at once.
func (m *MemFS) MkdirAll(dir string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for d := filepath.Clean(dir); !m.dirs[d]; d = filepath.Dir(d) {
		if m.names[d] != nil {
			return &fs.PathError{Op: "mkdir", Path: d, Err: syscall.ENOTDIR}
		}
		m.dirs[d] = true
	}
	return nil
}

// ReadDir returns the sorted names of the files and directories in dir.
func (m *MemFS) ReadDir(dir string) ([]string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	dir = filepath.Clean(dir)
	if !m.dirs[dir] {
		return nil, &fs.PathError{Op: "readdir", Path: dir, Err: fs.ErrNotExist}
	}
	var names []string
	for name := range m.names {
		if filepath.Dir(name) == dir {
			names = append(names, filepath.Base(name))
		}
	}
	for d := range m.dirs {
		if d != dir && filepath.Dir(d) == dir {
			names = append(names, filepath.Base(d))
		}
	}
	sort.Strings(names)
	return names, nil
}

// OpenFile opens name. Supported flags: O_RDONLY, O_RDWR (O_WRONLY is treated
// as O_RDWR), O_CREATE, O_EXCL, O_TRUNC.
func (m *MemFS) OpenFile(name string, flag int, perm fs.FileMode) (File, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	name = filepath.Clean(name)
	if !m.dirs[filepath.Dir(name)] {
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
	}
	if m.dirs[name] {
		return nil, &fs.PathError{Op: "open", Path: name, Err: syscall.EISDIR}
	}
	ino := m.names[name]
	switch {
	case ino == nil && flag&os.O_CREATE == 0:
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
	case ino != nil && flag&os.O_CREATE != 0 && flag&os.O_EXCL != 0:
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrExist}
	case ino == nil:
		ino = &memInode{}
		m.names[name] = ino
	}
	writable := flag&(os.O_RDWR|os.O_WRONLY) != 0
	if flag&os.O_TRUNC != 0 && writable && len(ino.current) > 0 {
		ino.current = ino.current[:0:0]
		ino.resized = true
		ino.dirty = false
	}
	return &memFile{m: m, name: name, ino: ino, gen: m.gen, writable: writable}, nil
}

// Remove removes the file name.
func (m *MemFS) Remove(name string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	name = filepath.Clean(name)
	if m.names[name] == nil {
		return &fs.PathError{Op: "remove", Path: name, Err: fs.ErrNotExist}
	}
	delete(m.names, name)
	return nil
}

// Rename renames the file oldname to newname, replacing newname.
func (m *MemFS) Rename(oldname, newname string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	oldname, newname = filepath.Clean(oldname), filepath.Clean(newname)
	ino := m.names[oldname]
	if ino == nil {
		return &os.LinkError{Op: "rename", Old: oldname, New: newname, Err: fs.ErrNotExist}
	}
	if !m.dirs[filepath.Dir(newname)] || m.dirs[newname] {
		return &os.LinkError{Op: "rename", Old: oldname, New: newname, Err: fs.ErrNotExist}
	}
	delete(m.names, oldname)
	m.names[newname] = ino
	return nil
}

// SyncDir makes the current entries of dir durable.
func (m *MemFS) SyncDir(dir string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	dir = filepath.Clean(dir)
	if !m.dirs[dir] {
		return &fs.PathError{Op: "sync", Path: dir, Err: fs.ErrNotExist}
	}
	if m.faults.SyncErr != nil {
		if err := m.faults.SyncErr(dir); err != nil {
			return &fs.PathError{Op: "sync", Path: dir, Err: err}
		}
	}
	for name := range m.durable {
		if filepath.Dir(name) == dir {
			delete(m.durable, name)
		}
	}
	for name, ino := range m.names {
		if filepath.Dir(name) == dir {
			m.durable[name] = ino
		}
	}
	return nil
}

// memFile is a handle on a MemFS file.
type memFile struct {
	m        *MemFS
	name     string // the name it was opened by
	ino      *memInode
	gen      uint64
	writable bool
	closed   bool
}

var _ File = (*memFile)(nil)

// errCrashed is what a handle opened before a crash returns.
type errCrashed struct{}

func (errCrashed) Error() string { return "file handle invalidated by a crash" }
func (errCrashed) Is(target error) bool {
	return target == ErrClosed || target == fs.ErrClosed
}

// check returns the error of an operation on f; m.mu must be held.
func (f *memFile) check(op string) error {
	switch {
	case f.closed:
		return &fs.PathError{Op: op, Path: f.name, Err: fs.ErrClosed}
	case f.gen != f.m.gen:
		return &fs.PathError{Op: op, Path: f.name, Err: errCrashed{}}
	}
	return nil
}

func (f *memFile) ReadAt(p []byte, off int64) (int, error) {
	f.m.mu.Lock()
	defer f.m.mu.Unlock()
	if err := f.check("read"); err != nil {
		return 0, err
	}
	if off < 0 {
		return 0, &fs.PathError{Op: "read", Path: f.name, Err: fs.ErrInvalid}
	}
	if off >= int64(len(f.ino.current)) {
		return 0, io.EOF
	}
	n := copy(p, f.ino.current[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

func (f *memFile) WriteAt(p []byte, off int64) (int, error) {
	f.m.mu.Lock()
	defer f.m.mu.Unlock()
	if err := f.check("write"); err != nil {
		return 0, err
	}
	if !f.writable || off < 0 {
		return 0, &fs.PathError{Op: "write", Path: f.name, Err: fs.ErrInvalid}
	}
	if hook := f.m.faults.WriteErr; hook != nil {
		if err := hook(f.name, off, len(p)); err != nil {
			return 0, &fs.PathError{Op: "write", Path: f.name, Err: err}
		}
	}
	ino := f.ino
	end := off + int64(len(p))
	if end > int64(len(ino.current)) {
		ino.current = append(ino.current, make([]byte, end-int64(len(ino.current)))...)
	}
	copy(ino.current[off:end], p)
	if len(p) > 0 {
		if !ino.dirty {
			ino.dirty, ino.dirtyLo, ino.dirtyHi = true, off, end
		} else {
			ino.dirtyLo, ino.dirtyHi = min(ino.dirtyLo, off), max(ino.dirtyHi, end)
		}
	}
	return len(p), nil
}

func (f *memFile) Sync() error {
	f.m.mu.Lock()
	defer f.m.mu.Unlock()
	if err := f.check("sync"); err != nil {
		return err
	}
	if hook := f.m.faults.SyncErr; hook != nil {
		if err := hook(f.name); err != nil {
			return &fs.PathError{Op: "sync", Path: f.name, Err: err}
		}
	}
	ino := f.ino
	if ino.resized || len(ino.durable) != len(ino.current) {
		ino.durable = slices.Clone(ino.current)
	} else if ino.dirty {
		copy(ino.durable[ino.dirtyLo:ino.dirtyHi], ino.current[ino.dirtyLo:ino.dirtyHi])
	}
	ino.dirty, ino.resized = false, false
	return nil
}

func (f *memFile) Truncate(size int64) error {
	f.m.mu.Lock()
	defer f.m.mu.Unlock()
	if err := f.check("truncate"); err != nil {
		return err
	}
	if !f.writable || size < 0 {
		return &fs.PathError{Op: "truncate", Path: f.name, Err: fs.ErrInvalid}
	}
	ino := f.ino
	ino.resized = true
	cur := int64(len(ino.current))
	if size > cur {
		if hook := f.m.faults.WriteErr; hook != nil {
			if err := hook(f.name, cur, int(size-cur)); err != nil {
				return &fs.PathError{Op: "truncate", Path: f.name, Err: err}
			}
		}
		ino.current = append(ino.current, make([]byte, size-cur)...)
	} else {
		ino.current = ino.current[:size:size]
		if ino.dirty {
			ino.dirtyHi = min(ino.dirtyHi, size)
			ino.dirtyLo = min(ino.dirtyLo, ino.dirtyHi)
		}
	}
	return nil
}

func (f *memFile) Size() (int64, error) {
	f.m.mu.Lock()
	defer f.m.mu.Unlock()
	if err := f.check("stat"); err != nil {
		return 0, err
	}
	return int64(len(f.ino.current)), nil
}

func (f *memFile) Close() error {
	f.m.mu.Lock()
	defer f.m.mu.Unlock()
	if f.closed {
		return &fs.PathError{Op: "close", Path: f.name, Err: fs.ErrClosed}
	}
	f.closed = true
	return nil
}
