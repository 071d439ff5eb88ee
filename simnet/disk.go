package simnet

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"strings"
	"syscall"

	"github.com/dtc-project/dtc/wal"
)

// disk is one node's simulated disk: a wal.MemFS that outlives the node's crashes, with
// the fault hooks the fault phase uses.
type disk struct {
	s    *sim
	node int
	fs   *wal.MemFS
	dir  string

	full      int  // > 0: the disk has no room for new segments
	failSyncs int  // the next failSyncs fsyncs fail
	powerCut  bool // the next fsync fails and the node crashes, tearing what it wrote

	// tornAt is set by a sync that failed: the node crashes at the event boundary with
	// its unsynced writes torn (powerCut) or lost.
	syncFailed bool
	tear       bool
	// frames are the positions of the records handed to the sync that is running, so
	// that a bit flip in a torn tail can hit the last frame.
	frames []wal.Pos
}

var (
	errInjectedSync = errors.New("injected fsync error (EIO)")
	errPowerCut     = errors.New("power cut during fsync")
)

func newDisk(s *sim, node int, dir string) *disk {
	d := &disk{s: s, node: node, fs: wal.NewMemFS(), dir: dir}
	d.fs.SetFaults(wal.MemFSFaults{SyncErr: d.syncErr, WriteErr: d.writeErr})
	return d
}

// syncErr is the MemFS hook deciding whether an fsync fails.
func (d *disk) syncErr(name string) error {
	s := d.s
	if !s.faultPhase {
		return nil
	}
	var err error
	switch {
	case d.powerCut:
		d.powerCut = false
		d.tear = true
		err = errPowerCut
	case d.failSyncs > 0:
		d.failSyncs--
		err = errInjectedSync
	case s.knobs.SyncErrRate > 0 && s.diskRng.Float64() < s.knobs.SyncErrRate:
		err = errInjectedSync
	default:
		return nil
	}
	d.syncFailed = true
	s.stats.SyncErrors++
	s.tracef(d.node, "disk: fsync of %s fails: %v", shortName(name), err)
	return err
}

// writeErr is the MemFS hook deciding whether a write fails. Segments are preallocated,
// so a full disk refuses only the building of a new segment (its .tmp file).
func (d *disk) writeErr(name string, off int64, n int) error {
	if d.full > 0 && d.s.faultPhase && strings.HasSuffix(name, ".tmp") {
		d.s.stats.DiskFullErrors++
		return syscall.ENOSPC
	}
	return nil
}

func (d *disk) heal() {
	d.full, d.failSyncs, d.powerCut = 0, 0, false
}

// crash drops what the disk has not made durable. After a power cut during an fsync
// (d.tear), a prefix of what was written survives, as a torn write; with probability
// BitFlipRate a bit of the last frame in it flips too.
func (d *disk) crash() {
	s := d.s
	if !d.tear {
		d.fs.Crash()
		d.syncFailed = false
		d.frames = nil
		return
	}
	d.tear, d.syncFailed = false, false
	type flip struct {
		name   string
		lo, hi int64 // the bytes the flip may hit
	}
	var flips []flip
	d.fs.CrashTornAt(func(name string, lo int64, unsynced []byte) int {
		k := s.diskRng.IntN(len(unsynced) + 1)
		s.tracef(d.node, "disk: torn write keeps %d of %d unsynced bytes of %s", k, len(unsynced), shortName(name))
		if k > 0 && s.knobs.BitFlipRate > 0 && s.diskRng.Float64() < s.knobs.BitFlipRate {
			if lo, hi, ok := d.tornPayload(name, lo, int64(k), unsynced); ok {
				flips = append(flips, flip{name, lo, hi})
			}
		}
		return k
	})
	for _, f := range flips {
		off := f.lo + s.diskRng.Int64N(f.hi-f.lo)
		bit := uint(s.diskRng.IntN(8))
		s.stats.BitFlips++
		s.tracef(d.node, "disk: bit %d of byte %d of %s flips in the torn frame", bit, off, shortName(f.name))
		d.fs.FlipBit(f.name, off, bit)
	}
	d.frames = nil
}

// tornPayload finds, in segment file name whose unsynced bytes (from offset base on)
// were cut after k of them, the written part of the payload of the frame the cut went
// through: garbage there is still a torn write (the frame's end was never written). It
// reports false if the cut fell between frames, inside a frame header or outside the
// frames of the sync that was running (the unsynced bytes may hold more than its
// frames): the wal's torn-tail rule (a prefix of a frame, then zeros) has no room for
// garbage in a length field or in a complete frame, and such a log is refused as
// corrupt by design. Each frame's end is read from its own length field, never
// inferred from the extent of the unsynced bytes.
func (d *disk) tornPayload(name string, base, k int64, unsynced []byte) (lo, hi int64, ok bool) {
	seg, isSeg := segmentIndex(name)
	if !isSeg {
		return 0, 0, false
	}
	cut := base + k
	for _, p := range d.frames {
		if p.Segment != seg || p.Offset < base || p.Offset+8 > base+int64(len(unsynced)) {
			continue
		}
		rel := p.Offset - base
		end := p.Offset + 8 + int64(binary.LittleEndian.Uint32(unsynced[rel:]))
		if p.Offset+8 < cut && cut < end {
			return p.Offset + 8, cut, true
		}
	}
	return 0, 0, false
}

// segmentIndex parses a segment file name as wal/doc.go specifies it: the index in 16
// lower-case hex digits, then ".wal".
func segmentIndex(name string) (uint64, bool) {
	base := name[strings.LastIndexByte(name, '/')+1:]
	hex, ok := strings.CutSuffix(base, ".wal")
	if !ok || len(hex) != 16 {
		return 0, false
	}
	var idx uint64
	if _, err := fmt.Sscanf(hex, "%016x", &idx); err != nil {
		return 0, false
	}
	return idx, true
}

func segmentPath(dir string, idx uint64) string { return fmt.Sprintf("%s/%016x.wal", dir, idx) }

func shortName(name string) string { return name[strings.LastIndexByte(name, '/')+1:] }

// frame is where one valid record lies in a segment file: its frame at off, its
// payload from off+8 to end.
type frame struct{ off, end int64 }

// syncedFrames lists the valid frames of segment content b, in order, up to the first
// one that is not valid (a torn tail) or the end marker. Called on the durable content
// (right after a crash, or anywhere in a sealed segment), they are synced records.
func syncedFrames(b []byte) []frame {
	const frameHeader = 8
	if len(b) < 12 {
		return nil
	}
	header := int64(32) // format version 2; version 1's header is 24 bytes
	if binary.LittleEndian.Uint32(b[8:]) == 1 {
		header = 24
	}
	var out []frame
	for off := header; off+frameHeader <= int64(len(b)); {
		n := int64(binary.LittleEndian.Uint32(b[off:]))
		crc := binary.LittleEndian.Uint32(b[off+4:])
		end := off + frameHeader + n
		if n == 0 && crc == 0 || end > int64(len(b)) {
			break
		}
		h := crc32.Update(crc32.Checksum(b[off:off+4], castagnoli), castagnoli, b[off+frameHeader:end])
		if h != crc {
			break
		}
		out = append(out, frame{off, end})
		off = end
	}
	return out
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// rot flips a bit in the payload of a synced record of the node's log, as rot on the
// platter would: the last durable record (a decision already told, a prepare already
// ACKed) if last, else one drawn among all of them. It may be called on the disk of
// a node that runs as well as on one that is down: only durable bytes count. The log must refuse to
// open, naming the segment and offset; the simulator counts that refusal as expected
// (s.rotted) and any other refusal as a durability violation. It reports false if the
// log holds no record yet.
func (d *disk) rot(last bool) (bool, error) {
	names, err := d.fs.ReadDir(d.dir)
	if err != nil {
		return false, err
	}
	type rec struct {
		name string
		f    frame
	}
	var recs []rec
	for _, n := range names {
		if _, ok := segmentIndex(n); !ok {
			continue
		}
		b, err := d.fs.ReadDurable(d.dir + "/" + n)
		if err != nil {
			return false, err
		}
		for _, f := range syncedFrames(b) {
			recs = append(recs, rec{n, f})
		}
	}
	if len(recs) == 0 {
		return false, nil
	}
	s := d.s
	r, what := recs[len(recs)-1], "the last durable record"
	if !last {
		r, what = recs[s.diskRng.IntN(len(recs))], "a synced record"
	}
	off := r.f.off + 4 // an empty payload: rot in its CRC
	if n := r.f.end - r.f.off - 8; n > 0 {
		off = r.f.off + 8 + s.diskRng.Int64N(n)
	}
	bit := uint(s.diskRng.IntN(8))
	d.fs.FlipBit(d.dir+"/"+r.name, off, bit)
	s.stats.RotFlips++
	s.rotted[d.node] = true
	s.rotDown[d.node] = s.rotDown[d.node] || !s.up[d.node]
	s.tracef(d.node, "disk: bit %d of byte %d of %s flips: rot in %s (frame at offset %d)", bit, off, r.name, what, r.f.off)
	return true, nil
}

// segmentFiles lists the node's segment files, oldest first, with their durable
// content.
func (d *disk) segmentFiles() ([]string, [][]byte, error) {
	if d.s.up[d.node] {
		// A running log holds its files open and would write through the lie.
		return nil, nil, fmt.Errorf("%s is running: disk lies are told to a node that is down", d.s.names[d.node])
	}
	names, err := d.fs.ReadDir(d.dir)
	if err != nil {
		return nil, nil, err
	}
	var segs []string
	var contents [][]byte
	for _, n := range names { // ReadDir sorts: segment names sort by index
		if _, ok := segmentIndex(n); !ok {
			continue
		}
		b, err := d.fs.ReadDurable(d.dir + "/" + n)
		if err != nil {
			return nil, nil, err
		}
		segs, contents = append(segs, n), append(contents, b)
	}
	return segs, contents, nil
}

// cutShort cuts a segment file of the node's log, drawn at random, short at a random
// length, durably: a disk that lost the end of a file it had reported synced (or a
// copy of the log taken while it was written). Half of the time the cut falls within
// the segment's records or just after them, otherwise anywhere in the file. The cut is
// lossy unless the records the file still holds end at an end-of-records marker (8
// zero bytes) before it: then only zeros were lost, and the log must start; when it is
// lossy the log must refuse to (s.rotted, s.rotDown: a start is a durability
// violation, a refusal is expected and ends the run). Called on a node that is down.
func (d *disk) cutShort() error {
	segs, contents, err := d.segmentFiles()
	if err != nil || len(segs) == 0 {
		return err
	}
	s := d.s
	i := s.diskRng.IntN(len(segs))
	size := int64(len(contents[i]))
	if size == 0 {
		return nil
	}
	_, end := recordsEnd(contents[i])
	cut := s.diskRng.Int64N(size)
	if s.diskRng.IntN(2) == 0 {
		cut = s.diskRng.Int64N(min(size, end+frameHeaderBytes*2))
	}
	return d.cut(segs[i], contents[i], cut)
}

// recordsEnd returns where the last record of segment content b starts and ends (both
// the end of its header if it holds none).
func recordsEnd(b []byte) (last, end int64) {
	last, end = 32, 32 // the header of format version 2, which the simulated logs write
	if fr := syncedFrames(b); len(fr) > 0 {
		last, end = fr[len(fr)-1].off, fr[len(fr)-1].end
	}
	return last, end
}

// cutAt is the scheduled cut: the newest segment holding records, at the start of its
// last record (lossy), or halfway through the zeros after the end marker that follows
// its records (only zeros lost).
func (d *disk) cutAt(afterRecords bool) error {
	segs, contents, err := d.segmentFiles()
	if err != nil || len(segs) == 0 {
		return err
	}
	i := lastWithRecords(contents)
	last, end := recordsEnd(contents[i])
	cut := last
	if afterRecords {
		// Halfway through the zeros after the end marker: room is left for records.
		cut = end + frameHeaderBytes + (int64(len(contents[i]))-end-frameHeaderBytes)/2
	}
	if cut >= int64(len(contents[i])) {
		return fmt.Errorf("%s is %d bytes, too short to cut at %d", segs[i], len(contents[i]), cut)
	}
	return d.cut(segs[i], contents[i], cut)
}

// cut cuts segment file name, of durable content b, at cut, and sets what the node's
// next start must do.
func (d *disk) cut(name string, b []byte, cut int64) error {
	s := d.s
	size := int64(len(b))
	_, end := recordsEnd(b)
	lossy := cut < end+frameHeaderBytes || !allZero(b[end:end+frameHeaderBytes])
	d.fs.CutShort(d.dir+"/"+name, cut)
	s.stats.ShortCuts++
	if lossy {
		s.stats.LossyCuts++
		s.rotted[d.node], s.rotDown[d.node] = true, true
	}
	s.note(d.node, "disk lie: %s is cut short to %d of its %d bytes (records end at %d; lossy %v) while it is down", name, cut, size, end, lossy)
	return nil
}

const frameHeaderBytes = 8

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// loseRenames undoes, durably, the renames of the node's newest segment files, from
// the last one holding records on: a directory whose fsyncs reported those renames
// durable and lost them. The files come back under their .tmp names; the log must
// finish the renames of those holding records and start with every synced record.
// Called on a node that is down.
func (d *disk) loseRenames() error {
	segs, contents, err := d.segmentFiles()
	if err != nil || len(segs) == 0 {
		return err
	}
	from := lastWithRecords(contents)
	for j := from; j < len(segs); j++ {
		path := d.dir + "/" + segs[j]
		d.fs.LoseRename(path+".tmp", path)
		d.s.stats.LostRenames++
	}
	d.s.note(d.node, "disk lie: the renames of %d segment files from %s on are lost while it is down", len(segs)-from, segs[from])
	return nil
}

// lastWithRecords is the index of the last of the segment contents that holds a synced
// record, or of the last one if none does.
func lastWithRecords(contents [][]byte) int {
	for j := len(contents) - 1; j >= 0; j-- {
		if len(syncedFrames(contents[j])) > 0 {
			return j
		}
	}
	return len(contents) - 1
}
