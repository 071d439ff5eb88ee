package wal

import (
	"io/fs"
	"sync/atomic"
	"time"
)

// SyncCountingFS is an FS that counts the fsyncs of the files opened through it (not
// of directories) and, if OnSync is set, reports each one with how long it took. It
// changes nothing else: a decorator for metrics and benchmarks, around any FS.
type SyncCountingFS struct {
	FS
	// OnSync, if set, is called after every file fsync, from the goroutine that
	// synced, with the file's name, the time the fsync took and its error.
	OnSync func(name string, took time.Duration, err error)

	syncs atomic.Uint64
}

var _ FS = (*SyncCountingFS)(nil)

// NewSyncCountingFS wraps base.
func NewSyncCountingFS(base FS, onSync func(name string, took time.Duration, err error)) *SyncCountingFS {
	return &SyncCountingFS{FS: base, OnSync: onSync}
}

// Syncs is how many file fsyncs have completed (failed ones included).
func (c *SyncCountingFS) Syncs() uint64 { return c.syncs.Load() }

// OpenFile opens name on the wrapped FS; the file's Sync is counted.
func (c *SyncCountingFS) OpenFile(name string, flag int, perm fs.FileMode) (File, error) {
	f, err := c.FS.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	return syncCountingFile{File: f, fs: c, name: name}, nil
}

type syncCountingFile struct {
	File
	fs   *SyncCountingFS
	name string
}

func (f syncCountingFile) Sync() error {
	start := time.Now()
	err := f.File.Sync()
	f.fs.syncs.Add(1)
	if f.fs.OnSync != nil {
		f.fs.OnSync(f.name, time.Since(start), err)
	}
	return err
}
