// Package wal is dtc's write-ahead log: a segmented, append-only log of
// CRC-checked records over an abstract file system, with group commit.
//
// The coordinator's adapters (production and the deterministic simulator)
// and the participant library keep their durable state in it. It imports
// only the standard library, and every file access goes through FS, so that
// the simulator can run it over a MemFS that loses unsynced writes, tears
// writes, flips bits, fails fsync and runs out of space.
//
//	appenders ── Append(payload, sync, done) ──▶ GroupSyncer   one goroutine: Sync, then
//	                                                │         done(pos, err) in append
//	                                                │         order; a second builds
//	                                                │         the spare meanwhile
//	simulator, participant ── Append, Sync ──▶     Log        no goroutine; frames wait
//	                                                │         in memory until Sync
//	                                                ▼
//	                  FS: OSFS (files) | MemFS (memory, crashes, faults)
//	                                                │
//	        Dir/0000000000000007.wal   sealed: fully synced, never written again
//	        Dir/0000000000000008.wal   active: appends go here
//	        Dir/0000000000000009.wal   spare: preallocated, zero-filled, ready
//
// # Guarantees
//
//   - A record is durable once a Log.Sync that started after its Append
//     returned has succeeded (with a GroupSyncer: once its done is called with
//     a nil error). Records are replayed by Open in append order.
//   - A crash loses at most records that were not durable, and only a suffix
//     of them: Open never returns a record without all the records before it.
//   - Corruption of durable data is never silently skipped or truncated:
//     Open fails with a *CorruptError naming segment and offset.
//   - A failed fsync (or a failed write of buffered records) fails the Log
//     for good (ErrSyncFailed); an fsync is never retried.
//   - A full disk when a new segment is needed refuses that Append
//     (ErrNoSpace) without writing anything; the log stays usable.
//   - With Options.ReservedSegments, an AppendReserved (for a checkpoint) still
//     gets a segment when the disk is full, so that the owner can write the
//     record that lets it delete old segments and free space.
//
// The Log itself starts no goroutine and is deterministic: the simulator
// calls it directly. Only the GroupSyncer owns goroutines: the one that syncs,
// and, while the spare segment is being built, the one that builds it.
//
// # On-disk format (version 2)
//
// All integers are little-endian. CRCs are CRC-32C (Castagnoli).
//
// Files. The log lives in one directory. Segment files are named
// %016x.wal after their index, in lowercase hex ("0000000000000001.wal");
// indices start at 1 and are consecutive: a missing index between the first
// and the last segment is corruption. A segment being built is named
// %016x.wal.tmp until it is complete; Open removes such leftovers, unless
// one holds a valid record (see "Lost renames" below). Other files in the
// directory are ignored.
//
// Segment header, 32 bytes at offset 0:
//
//	offset size  field
//	0      8     magic "DTCWAL01"
//	8      4     format version, 2
//	12     8     segment index (must match the file name)
//	20     8     the file's size when it was built (Options.SegmentSizeBytes then)
//	28     4     CRC of bytes 0..28
//
// Version 1, written by older builds and still read, has a 24-byte header
// without the size (the CRC at offset 20, covering bytes 0..20); its frames
// start at offset 24. Open writes into a version-1 active segment where it
// left off, removes version-1 spares, and builds every new segment in the
// current version.
//
// Frames follow the header back to back, from offset 32. One frame is one
// record:
//
//	offset size  field
//	0      4     payload length n
//	4      4     CRC of the 4 length bytes followed by the payload
//	8      n     payload (for dtc: one JSON document)
//
// A frame header of 8 zero bytes marks the end of the records in a segment;
// everything after it up to the end of the file must be zero. Because the
// CRC covers the length bytes, an empty payload (length 0) has a non-zero
// CRC and is a valid record, distinct from the end marker. A Pos is the
// segment index and the offset of a frame.
//
// Preallocation. Every segment file is created at its full size
// (Options.SegmentSizeBytes, 64 MiB by default), its header written and the
// rest explicitly zero-filled (so the blocks are really allocated: a full
// disk shows up here, not in the middle of a commit, and later fdatasyncs
// write data only), as %016x.wal.tmp; the file is fsynced, renamed to its
// final name, and the directory fsynced. The log keeps one such spare
// segment ready ahead of the active one, prepared after a sync (by Log.Sync,
// or by the GroupSyncer on a goroutine of its own, so that its syncs go on
// meanwhile), never while an Append waits for it unless the spare could not
// be prepared before (an Append that must cut waits for a build under way).
//
// Reserve. With Options.ReservedSegments = N, the log keeps N more such
// segments after the spare (active+2 .. active+1+N), built the same way. An
// Append cuts to active+1 only if all 1+N are ready, and otherwise builds one
// more first (on a full disk it is refused with ErrNoSpace); an
// AppendReserved cuts to active+1 whenever it exists. So the reserve is
// spent only by reserved appends, and the log rebuilds it after later syncs,
// after RemoveBefore frees space, or when its owner calls Preallocate (a
// build that failed for lack of space is not retried before then). Open keeps
// up to 1+N empty segments after the active one and removes the others.
//
// Cutting a segment. Records are appended to the active segment. When the
// next frame does not fit in what is left of it, the active segment is
// sealed and the spare becomes active. The sync that writes the sealed
// segment's last frames fsyncs it and closes it before it writes anything to
// the new segment. So every segment but the last one holding records is
// completely synced, and only the last can have a torn tail. Whatever is
// left at the end of a sealed segment stays zero (a remainder shorter than a
// frame header as well).
//
// # Reading: torn tail versus corruption
//
// Open reads the segments in order and each frame in turn. A frame is valid
// if its length fits in the file and its CRC matches. The first frame that
// is not valid and is not the end marker is a bad frame. A crash can only
// leave a prefix of the bytes written since the last sync (the rest stays
// zero, as preallocated), so a bad frame is a torn tail, repaired by Open,
// if and only if all of this holds:
//
//   - no segment after its segment holds anything but a header and zeros
//     (it is in the last segment that holds records);
//   - its length fits in the segment, the last byte of the extent it claims
//     is zero (a cut-short write never wrote it: a partly written length
//     reads lower than the real one) and every byte after that extent is
//     zero;
//   - it is not a complete frame whose length has one flipped bit (the CRC
//     matches for a length one bit away), and no valid frame starts inside
//     its claimed extent (its length would then be damaged and synced
//     records would follow).
//
// Short segments. Every segment is built at its full size and fsynced before
// it is used, so a segment file shorter than its header's size was cut by a
// disk that lied about fsync, or by a copy taken while the log was written.
// If the records it still shows end at an end-of-records marker, the bytes it
// lost were zeros (the writer never skips bytes) and Open accepts it, but
// writes nothing more into it (appends go on in the next segment, and a
// short spare is rebuilt): a torn write in it could not be told from a cut;
// otherwise they may have held synced records, and
// Open refuses it as corruption at the offset where its records stop.
//
// Lost renames. A .tmp file that holds a valid record was renamed and used
// before a crash that undid the rename (its directory's fsync had reported
// success): Open finishes the rename instead of removing the file, so its
// synced records are kept. A read-only Open reads it under its .tmp name.
//
// Anything else is corruption, and Open fails with a *CorruptError
// (errors.Is ErrCorrupt) naming the segment file and offset: a bad header,
// a bad frame not at the tail, an end marker followed by non-zero bytes, a
// missing segment file. The rules err towards refusing to start: that needs
// an operator, but never loses a record that was reported durable.
//
// Repair. A read-write Open overwrites a torn tail with zeros (the file
// keeps its size: "truncating" here means zeroing, since segments are
// preallocated), and appends from there. It zeroes back to front in three
// steps, each fsynced: the payload, then the CRC, then the length, so that a
// power cut during the repair leaves a torn tail again (or the end marker),
// never an end marker followed by the rest of the torn frame. It also removes empty
// segments beyond the spare. A read-only Open (Options.ReadOnly, for
// `dtc log dump`) changes nothing and reports the torn tail through
// Log.TornTail.
//
// # Deleting old segments
//
// After a checkpoint (a record that makes everything before it unneeded),
// the owner calls Log.RemoveBefore with the segment of the checkpoint.
// Segments with a lower index are removed oldest first, the directory
// fsynced after each removal, so a crash at any point leaves a log whose
// segments are still consecutive. The active segment is never removed, and
// new segments are numbered on from the active one.
package wal
