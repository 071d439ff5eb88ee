package participant

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/dtc-project/dtc/wal"
)

// TestRandomHistories plays seeded random histories of prepares, commits, rollbacks,
// syncs and crashes (some tearing the last write) over a few transaction ids, and
// checks after every crash and at the end:
//   - nothing answered is lost: ACK ⇒ not unknown, commit 200 ⇒ committed,
//     rollback 200 ⇒ aborted;
//   - no transaction is answered both "committed" and "aborted";
//   - the service holds exactly what the transaction states say.
func TestRandomHistories(t *testing.T) {
	seeds := 300
	if testing.Short() {
		seeds = 30
	}
	for seed := range seeds {
		t.Run(fmt.Sprint(seed), func(t *testing.T) { randomHistory(t, uint64(seed)) })
	}
}

func randomHistory(t *testing.T, seed uint64) {
	rng := rand.New(rand.NewPCG(seed, 0))
	cfg := testConfig()
	cfg.CheckpointAfterRecords = 1 + rng.IntN(8)
	fs := wal.NewMemFS()
	opts := wal.Options{FS: fs, Dir: "p", SegmentSizeBytes: 4096}
	ids := []string{"a", "b", "c", "d"}

	var p *Participant
	var st *steppedStore
	var svc *testService
	open := func() {
		svc = newTestService()
		var err error
		p, err = New(cfg, svc, newFakeClock())
		if err != nil {
			t.Fatal(err)
		}
		l, err := wal.Open(opts, p.Replay)
		if err != nil {
			t.Fatalf("seed %d: reopen: %v", seed, err)
		}
		st = &steppedStore{log: l}
		startSync(t, p, st)
	}
	open()

	a := &answer{}
	acked := map[string]bool{}
	outcome := map[string]State{} // what a 200 answer told
	var history []string
	check := func() {
		t.Helper()
		for _, ans := range a.take() {
			history = append(history, ans)
			call, reply, _ := strings.Cut(ans, ": ")
			op, id, _ := strings.Cut(call, " ")
			var told State
			switch {
			case op == "prepare" && reply == "ACK":
				acked[id] = true
			case op == "commit" && reply == "200 committed":
				told = StateCommitted
			case op == "rollback" && reply == "200 aborted":
				told = StateAborted
			}
			if told != "" {
				if prev := outcome[id]; prev != "" && prev != told {
					t.Fatalf("seed %d: %s told %s and %s\n%s", seed, id, prev, told, strings.Join(history, "\n"))
				}
				outcome[id] = told
			}
		}
	}
	verify := func() {
		t.Helper()
		for _, id := range ids {
			got := p.Status(id)
			if acked[id] && got == StateUnknown {
				t.Fatalf("seed %d: %s was ACKed, now unknown\n%s", seed, id, strings.Join(history, "\n"))
			}
			if o := outcome[id]; o != "" && got != o {
				t.Fatalf("seed %d: %s was answered %s, now %s\n%s", seed, id, o, got, strings.Join(history, "\n"))
			}
		}
		checkServiceMatches(t, p, svc)
	}

	for range 40 {
		id := ids[rng.IntN(len(ids))]
		switch r := rng.IntN(10); {
		case r < 3:
			prepare(p, a, id, `{}`)
		case r < 5:
			commit(p, a, id)
		case r < 7:
			rollback(p, a, id)
		case r < 9:
			st.sync()
		default:
			check()
			history = append(history, "crash")
			if rng.IntN(2) == 0 {
				fs.Crash()
			} else {
				fs.CrashTorn(func(name string, unsynced []byte) int { return rng.IntN(len(unsynced) + 1) })
			}
			open()
			verify()
		}
		check()
	}
	st.sync()
	check()
	verify()
}
