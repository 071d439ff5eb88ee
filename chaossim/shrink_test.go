package chaossim

import (
	"strings"
	"testing"
	"time"

	"github.com/dtc-project/dtc/checker"
	"github.com/dtc-project/dtc/faults"
)

func TestScheduleFromNotesReadsTheSwarmsFaults(t *testing.T) {
	ms := func(n int) int64 { return int64(n) * int64(time.Millisecond) }
	notes := []checker.Note{
		{At: ms(100), What: "p1: crashes: random"},
		{At: ms(300), What: "p1: restarted (restart 1)"},
		{At: ms(400), What: "c2: partition from coord, one way, for 1.5s"},
		{At: ms(500), What: "coord: partition from everyone, both ways, for 20ms"},
		{At: ms(600), What: "p2: disk full for 300ms"},
		{At: ms(700), What: "coord: crashes: fsync failed: power cut during fsync"},
		{At: ms(800), What: "p2: crashes: its log failed: whatever"},
		{At: ms(900), What: "p3: crashes: random"},
		{At: ms(900), What: "p3: rot: a bit of the last durable record flips while it is down"},
		{At: ms(950), What: "p1: rot: a bit of a synced record flips while it is down"},
	}
	var got []string
	for _, f := range scheduleFromNotes(notes, faults.Calm()) {
		got = append(got, f.String())
	}
	want := []string{
		"at 100ms, crash p1 for 200ms",
		"at 400ms, cut c2 → coord for 1.5s",
		"at 500ms, isolate coord for 20ms",
		"at 600ms, fill the disk of p2 for 300ms",
		"at 699.999ms, crash coord tearing its log tail",
		"at 900ms, crash p3 for 100ms",
		"at 900ms, flip a bit in the last durable record of the log of p3",
		"at 950ms, flip a bit in a synced record of the log of p1",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
