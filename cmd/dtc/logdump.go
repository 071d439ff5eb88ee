package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/dtc-project/dtc/coordinator"
	"github.com/dtc-project/dtc/wal"
)

const logHelp = `Usage: dtc log dump [flags]

Prints every record of the coordinator's log, oldest first, one JSON object per line:

  {"segment":1,"offset":32,"record":{"type":"begin","txn":"…","ts":…,"participants":[…]}}

Record types: begin, decision (commit or abort, with the votes), hazard, end,
checkpoint and snapshot (written so that old segments can be deleted).

The log is opened read-only: nothing is repaired, truncated or deleted, so it is safe
to run on the data directory of a running or crashed coordinator. A torn last record (a
crash in the middle of a write, which 'dtc serve' truncates at startup) and corruption
are reported on stderr with the segment and the byte offset.

Example:
  dtc log dump --data-dir ./data | jq -c 'select(.record.type == "decision")'

Exit codes:
  0  the whole log was read (a torn tail is reported, but is no error)
  1  the log is corrupt or cannot be read (records before the damage were printed)
  2  bad arguments
`

func runLog(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		w, code := stdout, exitOK
		if len(args) == 0 {
			w, code = stderr, exitError
		}
		fmt.Fprint(w, logHelp)
		return code
	}
	if args[0] != "dump" {
		return usageError(stderr, "log", "unknown subcommand %q: the only one is dump", args[0])
	}
	fs := newFlags("log dump")
	dataDir := fs.String("data-dir", "./data", "directory of the coordinator's log")
	if ok, code := parse(fs, logHelp, args[1:], nil, stdout, stderr); !ok {
		return code
	}
	if fs.NArg() > 0 {
		return usageError(stderr, "log", "unexpected argument %q", fs.Arg(0))
	}
	return dumpLog(*dataDir, stdout, stderr)
}

// dumpLine is one line of dtc log dump.
type dumpLine struct {
	Segment uint64          `json:"segment"`
	Offset  int64           `json:"offset"`
	Record  json.RawMessage `json:"record,omitempty"`
	// Raw holds a record that is not JSON (it passed the CRC, so it was written that way).
	Raw string `json:"raw,omitempty"`
}

func dumpLog(dir string, stdout, stderr io.Writer) int {
	out := bufio.NewWriter(stdout)
	enc := json.NewEncoder(out)
	enc.SetEscapeHTML(false)
	records, invalid := 0, 0
	l, err := wal.Open(wal.Options{FS: wal.OSFS(), Dir: dir, ReadOnly: true}, func(pos wal.Pos, payload []byte) error {
		records++
		line := dumpLine{Segment: pos.Segment, Offset: pos.Offset}
		if json.Valid(payload) {
			line.Record = payload
		} else {
			line.Raw = string(payload)
		}
		if _, err := coordinator.DecodeRecord(payload); err != nil {
			invalid++
			fmt.Fprintf(stderr, "dtc log dump: segment %d offset %d: not a valid coordinator record: %v\n",
				pos.Segment, pos.Offset, err)
		}
		return enc.Encode(line)
	})
	if ferr := out.Flush(); err == nil && ferr != nil {
		err = ferr
	}
	if err != nil {
		var ce *wal.CorruptError
		if errors.As(err, &ce) {
			fmt.Fprintf(stderr, "dtc log dump: the log is corrupt at segment %d offset %d: %s (after %d records)\n",
				ce.Segment, ce.Offset, ce.Reason, records)
		} else {
			fmt.Fprintf(stderr, "dtc log dump: %v\n", err)
		}
		return exitNo
	}
	defer l.Close()
	segs := l.Segments()
	if at, reason, torn := l.TornTail(); torn {
		fmt.Fprintf(stderr, "dtc log dump: torn tail at segment %d offset %d: %s "+
			"(a crash during a write; 'dtc serve' truncates it at startup)\n", at.Segment, at.Offset, reason)
	}
	if len(segs) == 0 {
		fmt.Fprintf(stderr, "dtc log dump: no log segments in %s\n", dir)
	} else {
		fmt.Fprintf(stderr, "dtc log dump: %d records in segments %d..%d of %s\n", records, segs[0], segs[len(segs)-1], dir)
	}
	if invalid > 0 {
		return exitNo
	}
	return exitOK
}
