package wal

import (
	"errors"
	"fmt"
)

// Sentinel errors that callers branch on with errors.Is.
var (
	// ErrCorrupt: the log holds data that is neither a valid record nor a torn
	// tail. Returned wrapped in a *CorruptError that says where.
	ErrCorrupt = errors.New("wal: corrupt log")
	// ErrNoSpace: the disk is full. An Append refused with it wrote nothing and
	// the log stays usable: a later Append may succeed once space frees.
	ErrNoSpace = errors.New("wal: no space left on device")
	// ErrRecordTooLarge: the payload is longer than Options.RecordMaxBytes.
	ErrRecordTooLarge = errors.New("wal: record too large")
	// ErrClosed: the Log or GroupSyncer was closed.
	ErrClosed = errors.New("wal: closed")
	// ErrSyncFailed: writing or fsyncing the log failed. The log is failed for
	// good: every later Append and Sync returns an error wrapping it. An fsync
	// is never retried (after a failed fsync the kernel may have dropped the
	// dirty pages, so a retry that succeeds proves nothing). Restart and let
	// Open read what is really on disk.
	ErrSyncFailed = errors.New("wal: sync failed")
)

// CorruptError says where the log is corrupt. errors.Is(err, ErrCorrupt)
// holds for it.
type CorruptError struct {
	Segment uint64 // index of the segment file
	Offset  int64  // byte offset in the segment file: a frame start, or 0 for the header
	Reason  string // what is wrong, e.g. "crc mismatch"
}

func (e *CorruptError) Error() string {
	if e.Offset < headerSizeV1 {
		return fmt.Sprintf("wal: corrupt segment %d (%s) at offset %d: %s",
			e.Segment, segmentName(e.Segment), e.Offset, e.Reason)
	}
	return fmt.Sprintf("wal: corrupt record in segment %d (%s) at offset %d: %s",
		e.Segment, segmentName(e.Segment), e.Offset, e.Reason)
}

// Is reports whether target is ErrCorrupt.
func (e *CorruptError) Is(target error) bool { return target == ErrCorrupt }

// walError is an error of a known kind (one of the sentinels) with a message
// that names the place, and optionally the error that caused it.
type walError struct {
	msg   string
	kind  error // sentinel; errors.Is matches it
	cause error // shown in the message; unwrapped unless opaque
	// opaque hides cause from errors.Is/As. Used for fatal errors, so that a
	// failed log whose cause was ENOSPC is not mistaken for the recoverable
	// ErrNoSpace.
	opaque bool
}

func (e *walError) Error() string {
	if e.cause == nil {
		return e.msg
	}
	return e.msg + ": " + e.cause.Error()
}

func (e *walError) Unwrap() []error {
	if e.cause == nil || e.opaque {
		return []error{e.kind}
	}
	return []error{e.kind, e.cause}
}

// errReadOnly is returned by the calls that would modify a log opened with
// Options.ReadOnly.
var errReadOnly = errors.New("wal: log opened read-only")
