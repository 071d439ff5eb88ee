// Package dirlock keeps two processes from opening the same data directory: two writers
// appending to one log would interleave their records and corrupt it.
package dirlock

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// FileName is the lock file created in the data directory.
const FileName = "LOCK"

// ErrLocked means another process holds the directory.
var ErrLocked = errors.New("data directory is in use by another process")

// Lock takes an exclusive advisory lock (flock) on dir/LOCK, creating dir if needed. The
// lock is released by the returned function, or by the kernel when the process dies, so
// a kill -9 never leaves a stale lock behind.
func Lock(dir string) (release func() error, err error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("dirlock: %w", err)
	}
	path := filepath.Join(dir, FileName)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("dirlock: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("dirlock: %s: %w", dir, ErrLocked)
		}
		return nil, fmt.Errorf("dirlock: lock %s: %w", path, err)
	}
	return f.Close, nil
}
