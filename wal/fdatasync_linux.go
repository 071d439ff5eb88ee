package wal

import (
	"io/fs"
	"os"
	"syscall"
)

// fdatasync flushes the file's data (and the metadata needed to read it back)
// without flushing timestamps. Segments are preallocated, so their size never
// changes after creation and fdatasync is enough.
func fdatasync(f *os.File) error {
	for {
		err := syscall.Fdatasync(int(f.Fd()))
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return &fs.PathError{Op: "fdatasync", Path: f.Name(), Err: err}
		}
		return nil
	}
}
