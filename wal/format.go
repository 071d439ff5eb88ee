package wal

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"strconv"
	"strings"
)

// The on-disk format; doc.go describes it in words.
const (
	segmentMagic    = "DTCWAL01"
	formatVersion   = 2
	headerSize      = 32 // version 2: magic 8 | version 4 | segment index 8 | built size 8 | header crc 4
	headerSizeV1    = 24 // version 1, still read: magic 8 | version 4 | segment index 8 | header crc 4
	frameHeaderSize = 8  // payload length 4 | crc 4
	segmentExt      = ".wal"
	tmpExt          = ".tmp"
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// segmentName is the file name of segment idx.
func segmentName(idx uint64) string { return fmt.Sprintf("%016x%s", idx, segmentExt) }

// parseSegmentName returns the index of a segment file name.
func parseSegmentName(name string) (uint64, bool) {
	hex, ok := strings.CutSuffix(name, segmentExt)
	if !ok || len(hex) != 16 || strings.ToLower(hex) != hex {
		return 0, false
	}
	idx, err := strconv.ParseUint(hex, 16, 64)
	if err != nil || idx == 0 {
		return 0, false
	}
	return idx, true
}

// encodeHeader returns the header of segment idx, a file of size bytes.
func encodeHeader(idx uint64, size int64) []byte {
	h := make([]byte, headerSize)
	copy(h, segmentMagic)
	binary.LittleEndian.PutUint32(h[8:], formatVersion)
	binary.LittleEndian.PutUint64(h[12:], idx)
	binary.LittleEndian.PutUint64(h[20:], uint64(size))
	binary.LittleEndian.PutUint32(h[28:], crc32.Checksum(h[:28], castagnoli))
	return h
}

// segHeader is what a valid segment header says.
type segHeader struct {
	version uint32
	len     int64 // the header's length: the first frame starts here
	built   int64 // the file's size when it was built; 0 in version 1, which does not record it
}

// parseHeader reads the header at the start of segment content b, which must be
// segment idx's, and returns it, or why it is not a valid header.
func parseHeader(b []byte, idx uint64) (segHeader, string) {
	if len(b) < headerSizeV1 {
		return segHeader{}, fmt.Sprintf("segment file is %d bytes, shorter than its %d-byte header", len(b), headerSizeV1)
	}
	if string(b[:8]) != segmentMagic {
		return segHeader{}, fmt.Sprintf("bad magic %q in header, want %q", b[:8], segmentMagic)
	}
	h := segHeader{version: binary.LittleEndian.Uint32(b[8:])}
	switch h.version {
	case 1:
		h.len = headerSizeV1
	case formatVersion:
		h.len = headerSize
		if len(b) < headerSize {
			return segHeader{}, fmt.Sprintf("segment file is %d bytes, shorter than its %d-byte header", len(b), headerSize)
		}
	default:
		// A bit flip in the version field reads as an unknown version: say both.
		return segHeader{}, fmt.Sprintf("unsupported format version %d (this build reads versions 1 and %d), or a damaged header",
			h.version, formatVersion)
	}
	crcAt := h.len - 4
	switch {
	case binary.LittleEndian.Uint32(b[crcAt:]) != crc32.Checksum(b[:crcAt], castagnoli):
		return segHeader{}, "header crc mismatch"
	case binary.LittleEndian.Uint64(b[12:]) != idx:
		return segHeader{}, fmt.Sprintf("header names segment %d", binary.LittleEndian.Uint64(b[12:]))
	}
	if h.version >= 2 {
		h.built = int64(binary.LittleEndian.Uint64(b[20:]))
	}
	return h, ""
}

// frameCRC is the checksum of a frame: CRC-32C over the 4 length bytes, then
// the payload.
func frameCRC(lenBytes []byte, payload []byte) uint32 {
	return crc32.Update(crc32.Checksum(lenBytes, castagnoli), castagnoli, payload)
}

// appendFrame appends the frame of payload to buf.
func appendFrame(buf []byte, payload []byte, crc uint32) []byte {
	buf = binary.LittleEndian.AppendUint32(buf, uint32(len(payload)))
	buf = binary.LittleEndian.AppendUint32(buf, crc)
	return append(buf, payload...)
}

// payloadCRC computes the frame checksum of payload without building the
// frame. The 4 length bytes are folded in by hand: handing crc32 a slice of
// a local array would move the array to the heap, one allocation per Append.
func payloadCRC(payload []byte) uint32 {
	n := uint32(len(payload))
	crc := ^uint32(0)
	for i := range 4 {
		crc = castagnoli[byte(crc)^byte(n>>(8*i))] ^ crc>>8
	}
	return crc32.Update(^crc, castagnoli, payload)
}

// badFrame describes the first frame of a segment that is not a valid record.
type badFrame struct {
	off    int64
	reason string
	// torn: the bytes look exactly like a frame whose write was cut short by
	// a crash (see isTornFrame). Whether it is a torn tail also depends on the
	// segments after this one being empty.
	torn bool
	// end: the bytes from off to end are what a repair must zero.
	end int64
}

// scanResult is what scanFrames found in one segment.
type scanResult struct {
	records int
	end     int64     // offset just after the last valid record
	bad     *badFrame // first invalid frame, or nil
	marker  bool      // the records end at an end-of-records marker (not at the file's end)
}

// tornCheckBudgetPerByte bounds the checksum work spent deciding whether a
// bad frame is a torn write, per byte of segment: enough for the one-bit
// length check (at most 32 checksums of a segment) and then some. Past it,
// the frame counts as corruption: refusing to start is safe, guessing is not.
// Only ever spent on a bad frame, i.e. after a crash.
const tornCheckBudgetPerByte = 64

// scanFrames reads the frames of segment content b (a header of hdrLen bytes included), calling
// emit for each valid record in order, and stops at the end-of-records marker
// or at the first invalid frame. It does not decide whether an invalid frame
// is a torn tail or corruption: the caller does, knowing which segment is the
// last.
func scanFrames(b []byte, hdrLen int64, emit func(off int64, payload []byte) error) (scanResult, error) {
	size := int64(len(b))
	off := hdrLen
	res := scanResult{end: off}
	for {
		if size-off < frameHeaderSize {
			// Too little room left for a frame: the writer never puts anything here.
			if firstNonZero(b[off:]) >= 0 {
				res.bad = &badFrame{off: off, end: size,
					reason: fmt.Sprintf("%d stray bytes after the last frame (too few for a frame header)", size-off)}
			}
			return res, nil
		}
		n := binary.LittleEndian.Uint32(b[off:])
		crc := binary.LittleEndian.Uint32(b[off+4:])
		if n == 0 && crc == 0 {
			// End-of-records marker: the rest of the segment must be zeros.
			if i := firstNonZero(b[off+frameHeaderSize:]); i >= 0 {
				res.bad = &badFrame{off: off, end: size,
					reason: fmt.Sprintf("end-of-records marker followed by data at offset %d", off+frameHeaderSize+int64(i))}
			}
			res.marker = true
			return res, nil
		}
		if int64(n) > size-off-frameHeaderSize {
			res.bad = &badFrame{off: off, end: size,
				reason: fmt.Sprintf("frame length %d runs past the end of the %d-byte segment", n, size)}
			return res, nil
		}
		end := off + frameHeaderSize + int64(n)
		payload := b[off+frameHeaderSize : end]
		if frameCRC(b[off:off+4], payload) != crc {
			res.bad = &badFrame{off: off, end: end, reason: "crc mismatch", torn: isTornFrame(b, off, end)}
			return res, nil
		}
		if err := emit(off, payload); err != nil {
			return res, err
		}
		res.records++
		off = end
		res.end = off
	}
}

// isTornFrame reports whether the frame at off (whose checksum does not
// match, and whose claimed extent ends at end) looks exactly like a write cut
// short by a crash. A crash keeps a prefix of the bytes written since the last
// sync, so a torn final frame is a prefix of a valid frame followed by zeros:
//
//   - its length field, if only partly written, reads lower than the true
//     length, so the claimed extent lies within the true one: the last byte of
//     the claimed extent was never written and is zero;
//   - every byte after the claimed extent is zero;
//   - no valid frame is hidden inside it: if one is, the length field is
//     damaged and records that were synced follow;
//   - it is not a complete frame whose length field has one bit flipped
//     (the checksum matches a length one bit away).
//
// Anything else is corruption. The rules only ever turn "torn" into
// "corrupt": a bad frame that might hide synced records stops Open.
func isTornFrame(b []byte, off, end int64) bool {
	if b[end-1] != 0 || firstNonZero(b[end:]) >= 0 {
		return false
	}
	budget := int64(tornCheckBudgetPerByte) * int64(len(b))
	crc := binary.LittleEndian.Uint32(b[off+4:])
	n := binary.LittleEndian.Uint32(b[off:])
	var l [4]byte
	for bit := range 32 {
		m := n ^ 1<<bit
		if int64(m) > int64(len(b))-off-frameHeaderSize {
			continue
		}
		binary.LittleEndian.PutUint32(l[:], m)
		if budget -= int64(m) + 4; budget < 0 {
			return false
		}
		if frameCRC(l[:], b[off+frameHeaderSize:off+frameHeaderSize+int64(m)]) == crc {
			return false
		}
	}
	return !hiddenFrame(b, off+frameHeaderSize, end, budget)
}

// hiddenFrame reports whether a valid frame starts anywhere in [from, end)
// and ends by end, or whether deciding that would cost more than budget bytes
// of checksumming.
func hiddenFrame(b []byte, from, end, budget int64) bool {
	var l [4]byte
	for p := from; p+frameHeaderSize <= end; p++ {
		n := binary.LittleEndian.Uint32(b[p:])
		crc := binary.LittleEndian.Uint32(b[p+4:])
		if n == 0 && crc == 0 || int64(n) > end-p-frameHeaderSize {
			continue
		}
		if budget -= int64(n) + 4; budget < 0 {
			return true
		}
		binary.LittleEndian.PutUint32(l[:], n)
		if frameCRC(l[:], b[p+frameHeaderSize:p+frameHeaderSize+int64(n)]) == crc {
			return true
		}
	}
	return false
}

// firstNonZero returns the index of the first non-zero byte of b, or -1.
func firstNonZero(b []byte) int {
	const chunk = 4096
	var zero [chunk]byte
	for base := 0; base < len(b); base += chunk {
		c := b[base:min(base+chunk, len(b))]
		if bytes.Equal(c, zero[:len(c)]) {
			continue
		}
		for i, x := range c {
			if x != 0 {
				return base + i
			}
		}
	}
	return -1
}
