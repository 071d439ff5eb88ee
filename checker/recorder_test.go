package checker

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/anishathalye/porcupine"
)

// Real runs record from many goroutines at once (run with -race).
func TestRecorderConcurrent(t *testing.T) {
	r := NewRecorder()
	var wg sync.WaitGroup
	for c := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 50 {
				run(r, c, fmt.Sprintf("c%d-%02d", c, i), []string{p1, p2}, ms(int64(i)))
				r.Note(ms(int64(i)), "tick")
				if i%10 == 0 {
					_ = r.History()
				}
			}
		}()
	}
	wg.Wait()
	h := r.History()
	if len(h.Ops) != 400 || len(h.Events) != 400*6 || len(h.FinalParticipants) != 800 || len(h.FinalCoordinator) != 400 {
		t.Fatalf("history sizes: %d ops, %d events, %d/%d finals", len(h.Ops), len(h.Events), len(h.FinalParticipants), len(h.FinalCoordinator))
	}
	for i, op := range h.Ops {
		if op.ID != i {
			t.Fatalf("op %d has ID %d", i, op.ID)
		}
	}
	wantViolations(t, Check(h, Options{CheckLiveness: true}))
}

func TestHistoryOrderAndCopy(t *testing.T) {
	r := NewRecorder()
	parts := []string{p2, p1}
	op := r.Submit(0, "t1", parts, 50)
	parts[0] = "changed by the caller"
	r.Applied("t1", p1, Committed, 30)
	r.Voted("t1", p2, true, 10)
	r.Voted("t1", p1, true, 10)
	r.Told("t1", Committed, p1, 20)
	r.Return(op, Committed, 60)
	r.FinalParticipant("t1", p2, "prepared")
	r.FinalParticipant("t1", p2, "committed") // replaces
	r.FinalParticipant("t1", p1, "committed")
	r.FinalCoordinator("t2", StateNotFound)
	r.FinalCoordinator("t1", "committed")
	r.Note(40, "b")
	r.Note(5, "a")
	h := r.History()
	want := History{
		Ops: []Op{{ID: 0, Client: 0, Txn: "t1", Participants: []string{p2, p1}, Call: 50, Return: 60, Outcome: Committed}},
		Events: []Event{
			{Kind: EventVoted, Txn: "t1", Who: p2, Vote: VoteACK, At: 10},
			{Kind: EventVoted, Txn: "t1", Who: p1, Vote: VoteACK, At: 10},
			{Kind: EventTold, Txn: "t1", Who: p1, Outcome: Committed, At: 20},
			{Kind: EventApplied, Txn: "t1", Who: p1, Outcome: Committed, At: 30},
		},
		FinalParticipants: []FinalState{{Txn: "t1", Who: p1, State: "committed"}, {Txn: "t1", Who: p2, State: "committed"}},
		FinalCoordinator:  []FinalState{{Txn: "t1", State: "committed"}, {Txn: "t2", State: StateNotFound}},
		Notes:             []Note{{At: 5, What: "a"}, {At: 40, What: "b"}},
	}
	if !reflect.DeepEqual(h, want) {
		t.Fatalf("History() =\n%+v\nwant\n%+v", h, want)
	}
	h.Ops[0].Participants[0] = "changed by the reader"
	if got := r.History().Ops[0].Participants[0]; got != p2 {
		t.Errorf("History shares memory with the recorder: participant 0 is %q", got)
	}
	trace := h.Trace()
	for _, line := range []string{
		"5ns            note: a",
		"10ns           http://p2/prepare votes ACK on txn t1",
		"60ns           client 0 gets txn t1 committed (op 0)",
		"final          coordinator holds txn t2 not-found",
	} {
		if !strings.Contains(trace, line+"\n") {
			t.Errorf("trace lacks %q:\n%s", line, trace)
		}
	}
}

func TestFmtTime(t *testing.T) {
	for at, want := range map[int64]string{
		0:                   "0s",
		1_203_000_000:       "1.203s",
		1_203_456_789:       "1.203457s",
		850_000:             "850µs",
		5:                   "5ns",
		1_234_567:           "1.235ms",
		1732550400123456789: "2024-11-25T16:00:00.123456Z",
	} {
		if got := fmtTime(at); got != want {
			t.Errorf("fmtTime(%d) = %q, want %q", at, got, want)
		}
	}
}

func TestRecorderMisusePanics(t *testing.T) {
	for name, f := range map[string]func(r *Recorder){
		"unknown op":       func(r *Recorder) { r.Return(3, Committed, 1) },
		"returned twice":   func(r *Recorder) { op := r.Submit(0, "t", nil, 0); r.Return(op, Aborted, 1); r.Return(op, Aborted, 2) },
		"bad outcome":      func(r *Recorder) { op := r.Submit(0, "t", nil, 0); r.Return(op, "maybe", 1) },
		"told unknown":     func(r *Recorder) { r.Told("t", Unknown, p1, 1) },
		"applied prepared": func(r *Recorder) { r.Applied("t", p1, "prepared", 1) },
	} {
		t.Run(name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Error("no panic")
				}
			}()
			f(NewRecorder())
		})
	}
}

func TestModelStep(t *testing.T) {
	in := modelInput{Kind: opApplied, Txn: "t"}
	for _, c := range []struct {
		state, out, next Outcome
		ok               bool
	}{
		{undecided, Unknown, undecided, true},
		{undecided, Committed, Committed, true},
		{undecided, Aborted, Aborted, true},
		{Committed, Unknown, Committed, true},
		{Committed, Committed, Committed, true},
		{Committed, Aborted, Committed, false},
		{Aborted, Committed, Aborted, false},
	} {
		ok, next := step(c.state, in, c.out)
		if ok != c.ok || (ok && next != c.next) {
			t.Errorf("step(%q, %q) = %v, %q; want %v, %q", c.state, c.out, ok, next, c.ok, c.next)
		}
	}
}

// The open end: a client op that never learned its outcome is concurrent with everything
// after its call.
func TestOperationsOpenEnd(t *testing.T) {
	r := NewRecorder()
	op := r.Submit(7, "t1", []string{p1}, 100)
	r.Return(op, Unknown, 200)
	r.Submit(9, "t1", []string{p1}, 300) // never returned
	r.Told("t1", Committed, p1, 400)
	r.FinalCoordinator("t1", "committed")
	ops := Operations(r.History())
	if len(ops) != 4 {
		t.Fatalf("%d ops", len(ops))
	}
	for _, i := range []int{0, 1} {
		if ops[i].Return != openEnd || ops[i].Output != Unknown {
			t.Errorf("op %d: return %d output %v, want an open end and unknown", i, ops[i].Return, ops[i].Output)
		}
	}
	if ops[0].ClientId != 0 || ops[1].ClientId != 1 || ops[2].ClientId != 2 || ops[3].ClientId != 3 {
		t.Errorf("lanes %d %d %d %d, want 0 1 2 3", ops[0].ClientId, ops[1].ClientId, ops[2].ClientId, ops[3].ClientId)
	}
	if ops[3].Call != 401 {
		t.Errorf("final state observed at %d, want one past the last event (401)", ops[3].Call)
	}
}

// PartitionEvent keeps each return with its call, so the event form of a history gives
// the same verdicts as the operation form.
func TestPartitionEvent(t *testing.T) {
	m := Model()
	call := func(id int, txn string) porcupine.Event {
		return porcupine.Event{Kind: porcupine.CallEvent, Id: id, Value: modelInput{Kind: opSubmit, Txn: txn}}
	}
	ret := func(id int, o Outcome) porcupine.Event {
		return porcupine.Event{Kind: porcupine.ReturnEvent, Id: id, Value: o}
	}
	good := []porcupine.Event{call(0, "a"), call(1, "b"), ret(1, Aborted), call(2, "a"), ret(0, Committed), ret(2, Committed), call(3, "b"), ret(3, Unknown)}
	parts := partitionEvent(good)
	if len(parts) != 2 || len(parts[0]) != 4 || len(parts[1]) != 4 {
		t.Fatalf("partitions %v", parts)
	}
	if !porcupine.CheckEvents(m, good) {
		t.Error("good history rejected")
	}
	bad := []porcupine.Event{call(0, "a"), call(1, "b"), ret(0, Committed), ret(1, Aborted), call(2, "a"), ret(2, Aborted)}
	if porcupine.CheckEvents(m, bad) {
		t.Error("committed then aborted accepted")
	}
}

func TestWriteHTML(t *testing.T) {
	r := NewRecorder()
	run(r, 0, "txn-alpha", []string{p1, p2}, ms(10))
	op := r.Submit(1, "txn-beta", []string{p1, p2}, ms(11))
	r.Voted("txn-beta", p1, true, ms(12))
	r.Voted("txn-beta", p2, true, ms(12))
	r.Return(op, Unknown, ms(13))
	r.Note(ms(14), "coordinator crashed")
	r.Applied("txn-beta", p1, Committed, ms(15))
	r.Applied("txn-beta", p2, Aborted, ms(16))
	h := r.History()
	rep := Check(h, Options{})
	dir := t.TempDir()
	for name, rep := range map[string]*Report{"with-report.html": rep, "without.html": nil} {
		path := filepath.Join(dir, name)
		if err := WriteHTML(path, h, rep); err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		page := string(b)
		for _, s := range []string{"txn-alpha", "txn-beta", "coordinator crashed", "<title>dtc check: FAIL</title>", "atomicity: txn txn-beta committed at", "<script>"} {
			if !strings.Contains(page, s) {
				t.Errorf("%s lacks %q", name, s)
			}
		}
	}
	if err := WriteHTML(filepath.Join(dir, "no-such-dir", "x.html"), h, rep); err == nil || !strings.HasPrefix(err.Error(), "checker: ") {
		t.Errorf("error %v, want one naming the package", err)
	}
}
