package wal

import (
	"errors"
	"fmt"
)

const (
	defaultSegmentSizeBytes = 64 << 20
	minSegmentSizeBytes     = 4 << 10
	maxSegmentSizeBytes     = 1 << 30
	defaultRecordMaxBytes   = 4 << 20
	maxReservedSegments     = 16
)

// Options configure a Log. The zero value of a limit means its default.
type Options struct {
	// FS is the file system the log runs on: OSFS() in production, a *MemFS
	// in tests and in the simulator. Required.
	FS FS
	// Dir is the directory of the segment files. Required. Open creates it
	// unless ReadOnly.
	Dir string
	// SegmentSizeBytes is the size every new segment file is preallocated to.
	// Default 64 MiB; at least 4 KiB, at most 1 GiB. Existing segments keep the
	// size they were created with.
	SegmentSizeBytes int64
	// RecordMaxBytes bounds the payload of one record. Default 4 MiB, or the
	// largest payload that fits in a segment if that is smaller. A frame of
	// this size must fit in an empty segment.
	RecordMaxBytes int
	// ReservedSegments is how many preallocated segments the log keeps beyond
	// the spare, for AppendReserved only: an ordinary Append that would need
	// one builds a new segment instead (and is refused with ErrNoSpace when the
	// disk is full). The owner appends the records that let it delete old
	// segments (a checkpoint) with AppendReserved, so that they fit even on a
	// full disk, and the log can free space by itself. Default 0, at most 16.
	ReservedSegments int
	// ReadOnly opens the log for reading only (`dtc log dump`): Open never
	// creates, truncates, removes or preallocates anything, reports a torn
	// tail through TornTail instead of repairing it, and Append, Sync and
	// RemoveBefore are refused.
	ReadOnly bool
}

// withDefaults returns o with zero limits replaced by their defaults.
func (o Options) withDefaults() Options {
	if o.SegmentSizeBytes == 0 {
		o.SegmentSizeBytes = defaultSegmentSizeBytes
	}
	if o.RecordMaxBytes == 0 {
		o.RecordMaxBytes = defaultRecordMaxBytes
		if fit := o.SegmentSizeBytes - headerSize - frameHeaderSize; fit >= 0 && fit < int64(o.RecordMaxBytes) {
			o.RecordMaxBytes = int(fit)
		}
	}
	return o
}

// Validate reports the first option that is missing or out of range. Zero
// limits are checked as their defaults.
func (o Options) Validate() error {
	if o.FS == nil {
		return errors.New("wal: Options.FS is required")
	}
	if o.Dir == "" {
		return errors.New("wal: Options.Dir is required")
	}
	o = o.withDefaults()
	if o.SegmentSizeBytes < minSegmentSizeBytes || o.SegmentSizeBytes > maxSegmentSizeBytes {
		return fmt.Errorf("wal: Options.SegmentSizeBytes is %d, must be between %d and %d",
			o.SegmentSizeBytes, minSegmentSizeBytes, maxSegmentSizeBytes)
	}
	if o.ReservedSegments < 0 || o.ReservedSegments > maxReservedSegments {
		return fmt.Errorf("wal: Options.ReservedSegments is %d, must be between 0 and %d", o.ReservedSegments, maxReservedSegments)
	}
	if o.RecordMaxBytes < 0 {
		return fmt.Errorf("wal: Options.RecordMaxBytes is %d, must not be negative", o.RecordMaxBytes)
	}
	if fit := o.SegmentSizeBytes - headerSize - frameHeaderSize; int64(o.RecordMaxBytes) > fit {
		return fmt.Errorf("wal: Options.RecordMaxBytes is %d, must fit in a segment of SegmentSizeBytes %d (at most %d)",
			o.RecordMaxBytes, o.SegmentSizeBytes, fit)
	}
	return nil
}
