package wal

import (
	"strings"
	"syscall"
	"testing"
)

// failSyncOf makes every fsync of the file name fail, so that what the log
// writes to it stays unsynced: exactly what a crash during the fsync leaves.
func failSyncOf(m *MemFS, name string) {
	m.SetFaults(MemFSFaults{SyncErr: func(n string) error {
		if n == name {
			return syscall.EIO
		}
		return nil
	}})
}

// TestTornTailAtEveryOffset writes records, syncs them, then writes one more
// whose sync never completes, and crashes keeping each possible prefix of it.
// Open must return exactly the synced records (all of them and the last one
// too if it was kept whole), and the log must work on from there.
func TestTornTailAtEveryOffset(t *testing.T) {
	cases := []struct {
		name   string
		synced []string // records synced before the torn one
		torn   string
	}{
		{"mid segment", []string{payload(1, 100), payload(2, 30), payload(3, 200)}, payload(4, 150)},
		{"empty payload", []string{payload(1, 100)}, ""},
		{"first record of the log", nil, payload(1, 40)},
		// 4056 bytes fill segment 1 exactly: the torn record is the first of segment 2.
		{"first frame of a new segment", []string{payload(1, 4056)}, payload(2, 60)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			frame := appendFrame(nil, []byte(tc.torn), payloadCRC([]byte(tc.torn)))
			frameLen := len(frame)
			for k := 0; k <= frameLen; k++ {
				m, o := memOptions()
				l, _ := openLog(t, o)
				want := appendAll(t, l, tc.synced...)
				mustSync(t, l)
				torn := appendAll(t, l, tc.torn)[0]
				failSyncOf(m, segPath(o, torn.pos.Segment))
				wantErr(t, "Sync", l.Sync(), ErrSyncFailed)
				m.SetFaults(MemFSFaults{})
				m.CrashTorn(func(name string, unsynced []byte) int {
					if name != segPath(o, torn.pos.Segment) || len(unsynced) != frameLen {
						t.Fatalf("unsynced data: %d bytes in %s, want the %d-byte frame in segment %d",
							len(unsynced), name, frameLen, torn.pos.Segment)
					}
					return k
				})

				l, got := openLog(t, o)
				at, reason, isTorn := l.TornTail()
				switch {
				case k == frameLen:
					want = append(want, torn) // the whole frame made it
					fallthrough
				case firstNonZero(frame[:k]) < 0: // nothing of it shows: a clean end
					if isTorn {
						t.Fatalf("k=%d: TornTail reports %v %q on a clean log", k, at, reason)
					}
				default:
					if !isTorn || at != torn.pos {
						t.Fatalf("k=%d: TornTail = %v %q %v, want %v", k, at, reason, isTorn, torn.pos)
					}
				}
				sameRecords(t, got, want)

				// The log goes on from there; a short record first, so that
				// leftovers of the torn frame would show.
				want = append(want, appendAll(t, l, "x", payload(7, 300), payload(8, 10))...)
				mustSync(t, l)
				mustClose(t, l)
				l, got = openLog(t, o)
				if at, reason, ok := l.TornTail(); ok {
					t.Fatalf("k=%d: torn tail %v %q after a clean close", k, at, reason)
				}
				mustClose(t, l)
				sameRecords(t, got, want)
			}
		})
	}
}

// TestCrashLosesUnsyncedKeepsSynced: a crash keeps what was synced and
// nothing else, whether the lost records were buffered or written.
func TestCrashLosesUnsyncedKeepsSynced(t *testing.T) {
	m, o := memOptions()
	l, _ := openLog(t, o)
	want := appendAll(t, l, "synced 1", "synced 2")
	mustSync(t, l)
	appendAll(t, l, "buffered, never written")
	m.Crash()
	sameRecords(t, replayAll(t, o), want)

	l, _ = openLog(t, o)
	want = append(want, appendAll(t, l, "synced 3")...)
	mustSync(t, l)
	lost := appendAll(t, l, "written, not synced")
	failSyncOf(m, segPath(o, lost[0].pos.Segment))
	wantErr(t, "Sync", l.Sync(), ErrSyncFailed)
	if b, _ := m.ReadFile(segPath(o, 1)); !strings.Contains(string(b), "written, not synced") {
		t.Fatal("the record was not written before the failed fsync")
	}
	m.SetFaults(MemFSFaults{})
	m.Crash()
	sameRecords(t, replayAll(t, o), want)

	// Writes to handles from before the crash fail.
	if _, err := l.Append([]byte("after crash")); err == nil {
		t.Fatal("Append on a failed log succeeded")
	}
}

// TestPowerCutDuringTheRepairOfATornTail: Open finds a torn tail and zeroes
// it, and the power fails during the fsync of that repair, keeping each
// possible prefix of the repair's writes. The log must open again (the torn
// tail is still a torn tail, or gone), with the synced records, and go on.
func TestPowerCutDuringTheRepairOfATornTail(t *testing.T) {
	synced := []string{payload(1, 100), payload(2, 30)}
	tornRec := payload(3, 150)
	frameLen := len(appendFrame(nil, []byte(tornRec), payloadCRC([]byte(tornRec))))
	for cut := 9; cut < frameLen; cut += 7 { // the first crash keeps cut bytes of the frame
		for step := 0; ; step++ { // the power fails during the repair's step-th fsync
			m, o := memOptions()
			l, _ := openLog(t, o)
			want := appendAll(t, l, synced...)
			mustSync(t, l)
			torn := appendAll(t, l, tornRec)[0]
			seg := segPath(o, torn.pos.Segment)
			failSyncOf(m, seg)
			wantErr(t, "Sync", l.Sync(), ErrSyncFailed)
			m.SetFaults(MemFSFaults{})
			m.CrashTorn(func(string, []byte) int { return cut })

			syncs := 0
			m.SetFaults(MemFSFaults{SyncErr: func(n string) error {
				if n != seg {
					return nil
				}
				syncs++
				if syncs == step+1 {
					return syscall.EIO
				}
				return nil
			}})
			_, err := Open(o, nil)
			m.SetFaults(MemFSFaults{})
			if err == nil {
				break // the repair has fewer fsyncs than step+1: every case is done
			}
			wantErr(t, "Open", err, ErrSyncFailed)
			for keep := 0; ; keep++ {
				m2 := m.Clone()
				more := false
				m2.CrashTorn(func(_ string, unsynced []byte) int {
					more = keep < len(unsynced)
					return keep
				})
				o2 := o
				o2.FS = m2
				l, got := openLog(t, o2)
				sameRecords(t, got, want)
				all := append(append([]rec(nil), want...), appendAll(t, l, "x")...)
				mustSync(t, l)
				mustClose(t, l)
				sameRecords(t, replayAll(t, o2), all)
				if !more {
					break
				}
			}
		}
	}
}
