package bench

import (
	"os"
	"syscall"
)

// fdatasync is what the wal's OS file system does on Sync: the fsync floor measures
// the same call.
func fdatasync(f *os.File) error {
	for {
		err := syscall.Fdatasync(int(f.Fd()))
		if err != syscall.EINTR {
			return err
		}
	}
}
