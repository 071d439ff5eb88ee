package checker

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
)

var (
	p1 = "http://p1/prepare"
	p2 = "http://p2/prepare"
	p3 = "http://p3/prepare"
)

func ms(n int64) int64 { return n * 1_000_000 }

// run records a clean transaction over parts starting at t0 (nanoseconds): prepare
// votes, the decision (commit if every vote is ACK), phase 2, the client's answer and the
// final states. nack names participants that vote NACK.
func run(r *Recorder, client int, txn string, parts []string, t0 int64, nack ...string) Outcome {
	op := r.Submit(client, txn, parts, t0)
	outcome := Committed
	for i, p := range parts {
		ack := true
		for _, n := range nack {
			if n == p {
				ack, outcome = false, Aborted
			}
		}
		r.Voted(txn, p, ack, t0+ms(1)+int64(i))
	}
	for i, p := range parts {
		r.Told(txn, outcome, p, t0+ms(5)+int64(i))
		r.Applied(txn, p, outcome, t0+ms(6)+int64(i))
		r.FinalParticipant(txn, p, string(outcome))
	}
	r.Return(op, outcome, t0+ms(7))
	r.FinalCoordinator(txn, string(outcome))
	return outcome
}

// wantViolations checks the report's violations, one line each, exactly.
func wantViolations(t *testing.T, rep *Report, want ...string) {
	t.Helper()
	var got []string
	for _, v := range rep.Violations {
		got = append(got, v.String())
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("violations:\n  got  %q\n  want %q", got, want)
	}
	if rep.OK() != (len(want) == 0) {
		t.Errorf("OK() = %v with violations %q", rep.OK(), got)
	}
}

func TestCleanHistoriesPass(t *testing.T) {
	r := NewRecorder()
	run(r, 0, "t1", []string{p1, p2, p3}, ms(1000))
	run(r, 1, "t2", []string{p1, p2}, ms(1001), p2)
	run(r, 0, "t3", []string{p3}, ms(1100))
	rep := Check(r.History(), Options{CheckLiveness: true})
	wantViolations(t, rep)
	if rep.Porcupine != porcupine.Ok || rep.Txns != 3 || rep.Ops != 3 {
		t.Errorf("report = %+v", rep)
	}
	if got, want := rep.String(), "ok: 3 txns, 3 client ops, 30 model ops, porcupine Ok"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
}

func TestEmptyHistoryPasses(t *testing.T) {
	rep := Check(NewRecorder().History(), Options{CheckLiveness: true})
	wantViolations(t, rep)
	if rep.Txns != 0 || rep.ModelOps != 0 {
		t.Errorf("report = %+v", rep)
	}
}

// A client that did not learn the outcome constrains nothing: whatever the transaction
// became, the history is correct.
func TestUnknownClientOutcomesPass(t *testing.T) {
	for _, outcome := range []Outcome{Committed, Aborted} {
		t.Run(string(outcome), func(t *testing.T) {
			r := NewRecorder()
			op := r.Submit(0, "t1", []string{p1, p2}, ms(10))
			r.Voted("t1", p1, true, ms(11))
			r.Voted("t1", p2, outcome == Committed, ms(11))
			r.Return(op, Unknown, ms(12)) // timed out before the decision
			r.Note(ms(13), "coordinator crashed")
			r.Note(ms(20), "coordinator restarted")
			r.Told("t1", outcome, p1, ms(21))
			r.Told("t1", outcome, p2, ms(21))
			r.Applied("t1", p1, outcome, ms(22))
			r.Applied("t1", p2, outcome, ms(23))
			// The client retries with the same id and learns the outcome.
			op2 := r.Submit(0, "t1", []string{p1, p2}, ms(30))
			r.Return(op2, outcome, ms(31))
			r.Told("t1", outcome, "status query by client 0", ms(32))
			r.FinalCoordinator("t1", string(outcome))
			r.FinalParticipant("t1", p1, string(outcome))
			r.FinalParticipant("t1", p2, string(outcome))
			// A second transaction whose call never returned and never reached the coordinator.
			r.Submit(1, "t2", []string{p1}, ms(40))
			r.FinalCoordinator("t2", StateNotFound)
			r.FinalParticipant("t2", p1, StateUnknown)
			wantViolations(t, Check(r.History(), Options{CheckLiveness: true}))
		})
	}
}

func TestManyTxnsPass(t *testing.T) {
	r := NewRecorder()
	parts := []string{p1, p2, p3}
	for i := range 2000 {
		txn := fmt.Sprintf("t%04d", i)
		switch i % 4 {
		case 0:
			run(r, i%7, txn, parts, ms(int64(i)))
		case 1:
			run(r, i%7, txn, parts, ms(int64(i)), parts[i%3])
		case 2:
			op := r.Submit(i%7, txn, parts, ms(int64(i)))
			for _, p := range parts {
				r.Voted(txn, p, true, ms(int64(i))+1)
			}
			r.Return(op, Unknown, ms(int64(i))+2)
			for _, p := range parts {
				r.Applied(txn, p, Committed, ms(int64(i))+3)
				r.FinalParticipant(txn, p, StateUnknown) // committed, then forgotten
			}
			r.FinalCoordinator(txn, StateNotFound)
		default:
			// Interleaved: this transaction overlaps the next ones.
			run(r, i%7, txn, parts[:2], ms(int64(i))-ms(3))
		}
	}
	rep := Check(r.History(), Options{CheckLiveness: true})
	wantViolations(t, rep)
	if rep.Txns != 2000 {
		t.Errorf("Txns = %d, want 2000", rep.Txns)
	}
}

func TestAtomicitySplitCommit(t *testing.T) {
	r := NewRecorder()
	op := r.Submit(0, "7f3a", []string{p1, p2}, ms(1000))
	r.Voted("7f3a", p1, true, ms(1100))
	r.Voted("7f3a", p2, true, ms(1100))
	r.Return(op, Unknown, ms(1150))
	r.Applied("7f3a", p1, Committed, ms(1203))
	r.Applied("7f3a", p2, Aborted, ms(1250))
	rep := Check(r.History(), Options{})
	wantViolations(t, rep,
		"atomicity: txn 7f3a committed at http://p1/prepare (t=1.203s) but aborted at http://p2/prepare (t=1.25s)",
		`linearizability: txn 7f3a has no linearization of its 5 operations in the outcome model: after 4 of them the outcome is committed, and "txn 7f3a: http://p2/prepare applied aborted" (t=1.25s) cannot follow`,
	)
	if rep.Porcupine != porcupine.Illegal {
		t.Errorf("Porcupine = %s, want Illegal", rep.Porcupine)
	}
}

func TestAtomicityInFinalStates(t *testing.T) {
	r := NewRecorder()
	run(r, 0, "t1", []string{p1, p2}, ms(1000))
	r.FinalParticipant("t1", p2, "aborted") // overrides the committed final state
	rep := Check(r.History(), Options{})
	if len(rep.Violations) == 0 || rep.Violations[0].String() != "atomicity: txn t1 committed at http://p1/prepare (t=1.006s) but aborted at http://p2/prepare (final state)" {
		t.Errorf("got %q", rep.String())
	}
}

func TestValidity(t *testing.T) {
	t.Run("NACK", func(t *testing.T) {
		r := NewRecorder()
		op := r.Submit(2, "t1", []string{p1, p2}, ms(1000))
		r.Voted("t1", p1, true, ms(1001))
		r.Voted("t1", p2, false, ms(1002))
		r.Return(op, Committed, ms(1010))
		wantViolations(t, Check(r.History(), Options{}),
			"validity: txn t1 committed without an ACK from http://p2/prepare: it voted NACK (t=1.002s); first sign of the commit: client 2 was told committed (t=1.01s)")
	})
	t.Run("no vote", func(t *testing.T) {
		r := NewRecorder()
		r.Submit(0, "t1", []string{p1, p2}, ms(1000))
		r.Voted("t1", p1, true, ms(1001))
		r.Told("t1", Committed, p1, ms(1005))
		wantViolations(t, Check(r.History(), Options{}),
			"validity: txn t1 committed without an ACK from http://p2/prepare: no vote from it was recorded; first sign of the commit: http://p1/prepare was told committed (t=1.005s)")
	})
	t.Run("ACK after commit", func(t *testing.T) {
		r := NewRecorder()
		r.Submit(0, "t1", []string{p1, p2}, ms(1000))
		r.Voted("t1", p1, true, ms(1001))
		r.Applied("t1", p1, Committed, ms(1005))
		r.Voted("t1", p2, true, ms(1006))
		wantViolations(t, Check(r.History(), Options{}),
			"validity: txn t1 committed without an ACK from http://p2/prepare: its ACK came later (t=1.006s); first sign of the commit: http://p1/prepare applied committed (t=1.005s)")
	})
	t.Run("no op recorded", func(t *testing.T) {
		r := NewRecorder()
		r.Voted("t1", p1, true, ms(1))
		r.Applied("t1", p1, Committed, ms(3))
		r.Applied("t1", p2, Committed, ms(3))
		wantViolations(t, Check(r.History(), Options{}),
			"validity: txn t1 committed without an ACK from http://p2/prepare: no vote from it was recorded; first sign of the commit: http://p1/prepare applied committed (t=3ms)")
	})
	t.Run("not a participant", func(t *testing.T) {
		r := NewRecorder()
		run(r, 0, "t1", []string{p1}, ms(1000))
		r.Applied("t1", p3, Committed, ms(1010))
		wantViolations(t, Check(r.History(), Options{}),
			"validity: txn t1 committed at http://p3/prepare, which is not one of its participants [http://p1/prepare]: http://p3/prepare applied committed (t=1.01s)")
	})
}

func TestStability(t *testing.T) {
	t.Run("client told aborted but committed", func(t *testing.T) {
		r := NewRecorder()
		op := r.Submit(3, "t1", []string{p1, p2}, ms(1000))
		r.Voted("t1", p1, true, ms(1001))
		r.Voted("t1", p2, true, ms(1001))
		r.Return(op, Aborted, ms(1002))
		r.Note(ms(1003), "coordinator crashed and restarted")
		r.Applied("t1", p1, Committed, ms(1010))
		r.Applied("t1", p2, Committed, ms(1011))
		rep := Check(r.History(), Options{})
		wantViolations(t, rep,
			"stability: txn t1 was reported one way and done the other: client 3 was told aborted (t=1.002s), but http://p1/prepare applied committed (t=1.01s)",
			`linearizability: txn t1 has no linearization of its 5 operations in the outcome model: after 3 of them the outcome is aborted, and "txn t1: http://p1/prepare applied committed" (t=1.01s) cannot follow`,
		)
	})
	t.Run("told committed then aborted", func(t *testing.T) {
		r := NewRecorder()
		r.Submit(0, "t1", []string{p1}, ms(1000))
		r.Voted("t1", p1, true, ms(1001))
		r.Told("t1", Committed, p1, ms(1002))
		r.Told("t1", Aborted, "status query by http://p1/prepare", ms(2000))
		rep := Check(r.History(), Options{})
		wantViolations(t, rep,
			"stability: txn t1 reported both outcomes: http://p1/prepare was told committed (t=1.002s), but status query by http://p1/prepare was told aborted (t=2s)",
			`linearizability: txn t1 has no linearization of its 4 operations in the outcome model: after 3 of them the outcome is committed, and "txn t1: status query by http://p1/prepare told aborted" (t=2s) cannot follow`,
		)
	})
	t.Run("coordinator changed its mind", func(t *testing.T) {
		r := NewRecorder()
		op := r.Submit(0, "t1", []string{p1}, ms(1000))
		r.Voted("t1", p1, false, ms(1001))
		r.Return(op, Aborted, ms(1002))
		r.FinalCoordinator("t1", "committed")
		rep := Check(r.History(), Options{})
		want := "stability: txn t1 reported both outcomes: client 0 was told aborted (t=1.002s), but the coordinator ends committed"
		if len(rep.Violations) == 0 || rep.Violations[0].Kind != KindValidity || !strings.Contains(rep.String(), want) {
			t.Errorf("got\n%s\nwant a validity violation and %q", rep, want)
		}
	})
}

func TestLiveness(t *testing.T) {
	t.Run("participant left prepared", func(t *testing.T) {
		r := NewRecorder()
		run(r, 0, "t1", []string{p1, p2}, ms(1000))
		r.FinalParticipant("t1", p2, StatePrepared)
		wantViolations(t, Check(r.History(), Options{CheckLiveness: true}),
			`liveness: txn t1 is still "prepared" at http://p2/prepare after the heal phase (the outcome is committed)`)
		wantViolations(t, Check(r.History(), Options{})) // without a heal phase, prepared is fine
	})
	t.Run("coordinator undecided after heal", func(t *testing.T) {
		r := NewRecorder()
		op := r.Submit(0, "t1", []string{p1}, ms(1000))
		r.Voted("t1", p1, true, ms(1001))
		r.Return(op, Unknown, ms(2000))
		r.FinalCoordinator("t1", "preparing")
		r.FinalParticipant("t1", p1, StatePrepared)
		wantViolations(t, Check(r.History(), Options{CheckLiveness: true}),
			`liveness: txn t1 is still "prepared" at http://p1/prepare after the heal phase (the outcome is aborted)`,
			`liveness: txn t1 is still "preparing" at the coordinator after the heal phase`)
	})
	t.Run("nothing recorded at the end", func(t *testing.T) {
		r := NewRecorder()
		op := r.Submit(0, "t1", []string{p1}, ms(1000))
		r.Return(op, Aborted, ms(1001))
		wantViolations(t, Check(r.History(), Options{CheckLiveness: true}),
			"liveness: txn t1 has no final coordinator state recorded",
			"liveness: txn t1 has no final state recorded for participant http://p1/prepare")
	})
	t.Run("commit never reached a participant", func(t *testing.T) {
		r := NewRecorder()
		op := r.Submit(0, "t1", []string{p1, p2}, ms(1000))
		r.Voted("t1", p1, true, ms(1001))
		r.Voted("t1", p2, true, ms(1001))
		r.Return(op, Committed, ms(1002))
		r.Applied("t1", p1, Committed, ms(1003))
		r.FinalCoordinator("t1", StateNotFound)
		r.FinalParticipant("t1", p1, StateUnknown) // applied, then forgotten: fine
		r.FinalParticipant("t1", p2, StateUnknown)
		wantViolations(t, Check(r.History(), Options{CheckLiveness: true}),
			"liveness: txn t1 ends unknown at http://p2/prepare, which never applied the outcome committed")
	})
}

func TestCheckBank(t *testing.T) {
	if vs := CheckBank(300, map[string]int64{"a": 100, "b": 0, "c": 200}); len(vs) != 0 {
		t.Errorf("clean bank: %v", vs)
	}
	var got []string
	for _, v := range CheckBank(300, map[string]int64{"c": 250, "a": -20, "b": 100}) {
		got = append(got, v.String())
	}
	want := []string{
		"bank: account a has a negative balance -20",
		"bank: total money is 330 across 3 accounts, want 300 (+30)",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %q\nwant %q", got, want)
	}
}

func TestReportStringWhenPorcupineTimedOut(t *testing.T) {
	rep := &Report{Porcupine: porcupine.Unknown, PorcupineTimeout: DefaultPorcupineTimeout}
	if rep.OK() {
		t.Error("OK() with an unknown porcupine result")
	}
	if got, want := rep.String(), "linearizability: porcupine found no answer within 10s: result unknown (not a violation, not a pass)"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
}

func TestViolationsSorted(t *testing.T) {
	r := NewRecorder()
	// t2 breaks atomicity, t1 liveness and validity: atomicity comes first, then by txn.
	r.Submit(0, "t2", []string{p1, p2}, ms(1))
	r.Voted("t2", p1, true, ms(2))
	r.Voted("t2", p2, true, ms(2))
	r.Applied("t2", p1, Committed, ms(3))
	r.Applied("t2", p2, Aborted, ms(3))
	r.Submit(0, "t1", []string{p1}, ms(1))
	r.Told("t1", Committed, p1, ms(3))
	var kinds []string
	for _, v := range Check(r.History(), Options{CheckLiveness: true}).Violations {
		kinds = append(kinds, v.Kind+" "+v.Txn)
	}
	want := []string{"atomicity t2", "validity t1", "liveness t1", "liveness t1", "liveness t2", "liveness t2", "liveness t2", "linearizability t2"}
	if !reflect.DeepEqual(kinds, want) {
		t.Errorf("order %q, want %q", kinds, want)
	}
}

// A history survives JSON and gives the same verdict, so a failing run can be saved and
// checked again.
func TestHistoryJSONRoundTrip(t *testing.T) {
	r := NewRecorder()
	run(r, 0, "t1", []string{p1, p2}, ms(10))
	op := r.Submit(1, "t2", []string{p1}, ms(11))
	r.Return(op, Aborted, ms(12))
	r.Applied("t2", p1, Committed, ms(13))
	r.Note(ms(12), "partition p1")
	h := r.History()
	b, err := json.Marshal(h)
	if err != nil {
		t.Fatal(err)
	}
	var back History
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back, h) {
		t.Errorf("round trip changed the history:\n%+v\n%+v", back, h)
	}
	if a, b := Check(h, Options{}).String(), Check(back, Options{}).String(); a != b {
		t.Errorf("verdicts differ:\n%s\n%s", a, b)
	}
}

func BenchmarkCheck(b *testing.B) {
	r := NewRecorder()
	parts := []string{p1, p2, p3}
	for i := range 200 {
		var nack []string
		if i%5 == 0 {
			nack = parts[i%3 : i%3+1]
		}
		run(r, i%8, fmt.Sprintf("txn-%03d", i), parts, ms(int64(i)), nack...)
	}
	h := r.History()
	b.ResetTimer()
	for b.Loop() {
		if rep := Check(h, Options{CheckLiveness: true}); !rep.OK() {
			b.Fatal(rep)
		}
	}
}

// A client that retries a transaction many times without an answer leaves many
// open-ended ops; when the transaction is also broken, porcupine must search
// exhaustively, and open ends would make that 2^retries. It must stay a quick Illegal.
func TestManyOpenRetriesOfABrokenTxnStayFast(t *testing.T) {
	r := NewRecorder()
	for i := range 40 {
		op := r.Submit(0, "t1", []string{p1, p2}, ms(int64(10*i)))
		r.Return(op, Unknown, ms(int64(10*i+9)))
	}
	r.Submit(1, "t1", []string{p1, p2}, ms(450)) // never returns
	r.Voted("t1", p1, true, ms(500))
	r.Voted("t1", p2, true, ms(500))
	r.Applied("t1", p1, Committed, ms(501))
	r.Applied("t1", p2, Aborted, ms(502))
	rep := Check(r.History(), Options{PorcupineTimeout: time.Minute})
	if rep.Porcupine != porcupine.Illegal {
		t.Fatalf("porcupine %s, want Illegal", rep.Porcupine)
	}
	if ops := Operations(r.History()); ops[0].Return != openEnd {
		t.Errorf("Operations closed an open end: %+v", ops[0])
	}
}
