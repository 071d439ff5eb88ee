package participant

import (
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/dtc-project/dtc/wal"
)

// steppedStore appends to a real wal.Log at once but syncs only when the test says so,
// so a crash can fall between any two steps: records appended and not synced are lost.
type steppedStore struct {
	log     *wal.Log
	mu      sync.Mutex
	waiting []func(error)
}

func (s *steppedStore) Append(rec []byte, _ bool, done func(wal.Pos, error)) {
	pos, err := s.log.Append(rec)
	if err != nil {
		done(pos, err)
		return
	}
	s.mu.Lock()
	s.waiting = append(s.waiting, func(err error) { done(pos, err) })
	s.mu.Unlock()
}

func (s *steppedStore) sync() {
	err := s.log.Sync()
	s.mu.Lock()
	w := s.waiting
	s.waiting = nil
	s.mu.Unlock()
	for _, f := range w {
		f(err)
	}
}

func (s *steppedStore) RemoveBefore(pos wal.Pos) error { return s.log.RemoveBefore(pos.Segment) }
func (s *steppedStore) RecordMaxBytes() int            { return 1024 }
func (s *steppedStore) Close() error                   { return s.log.Close() }

// TestCrashAtEveryStep plays a workload whose records are synced in batches and crashes
// after every step. After each restart: every ACK, commit and rollback answered before
// the crash is durable (ACK never came before its record was), and the service state is
// exactly what the transaction states say.
func TestCrashAtEveryStep(t *testing.T) {
	steps := strings.Fields(`
		prepare:t1 prepare:t2 sync
		rollback:t3 commit:t1 prepare:t3 sync
		prepare:t4 rollback:t2 sync sync
		prepare:t5 prepare:t6 commit:t4 commit:t5 sync
		rollback:t6 rollback:t4 prepare:t7 prepare:t8 prepare:t9 sync
		commit:t7 rollback:t8 prepare:t10 sync`)
	cfg := testConfig()
	cfg.CheckpointAfterRecords = 4 // several checkpoints, and segments removed
	for crashAt := 0; crashAt <= len(steps); crashAt++ {
		t.Run(fmt.Sprintf("crash after %d steps", crashAt), func(t *testing.T) {
			fs := wal.NewMemFS()
			opts := wal.Options{FS: fs, Dir: "p", SegmentSizeBytes: 4096}
			svc := newTestService()
			p, err := New(cfg, svc, newFakeClock())
			if err != nil {
				t.Fatal(err)
			}
			l, err := wal.Open(opts, p.Replay)
			if err != nil {
				t.Fatal(err)
			}
			st := &steppedStore{log: l}
			startSync(t, p, st)

			a := &answer{}
			for _, step := range steps[:crashAt] {
				op, id, _ := strings.Cut(step, ":")
				switch op {
				case "prepare":
					prepare(p, a, id, `{"n":"`+id+`"}`)
				case "commit":
					commit(p, a, id)
				case "rollback":
					rollback(p, a, id)
				case "sync":
					st.sync()
				}
			}
			told := a.take()
			fs.Crash()

			svc2 := newTestService()
			p2, err := OpenSync(cfg, svc2, newFakeClock(), opts)
			if err != nil {
				t.Fatalf("reopen: %v", err)
			}
			defer p2.Close()
			for _, answer := range told {
				// "prepare t1: ACK", "commit t1: 200 committed", …
				call, reply, _ := strings.Cut(answer, ": ")
				op, id, _ := strings.Cut(call, " ")
				got := p2.Status(id)
				switch {
				case op == "prepare" && reply == "ACK":
					if got == StateUnknown {
						t.Errorf("ACKed %s but after the crash it is %s", id, got)
					}
				case op == "commit" && reply == "200 committed":
					if got != StateCommitted {
						t.Errorf("answered commit of %s but after the crash it is %s", id, got)
					}
				case op == "rollback" && reply == "200 aborted":
					if got != StateAborted {
						t.Errorf("answered rollback of %s but after the crash it is %s", id, got)
					}
				}
			}
			checkServiceMatches(t, p2, svc2)
		})
	}
}

// startSync starts p over st, syncing until the initial checkpoint is durable.
func startSync(t *testing.T, p *Participant, st *steppedStore) {
	t.Helper()
	errc := make(chan error, 1)
	go func() { errc <- p.Start(st) }()
	for {
		select {
		case err := <-errc:
			if err != nil {
				t.Fatal(err)
			}
			return
		default:
			st.sync()
		}
	}
}

// checkServiceMatches: the service holds a reservation for exactly the prepared
// transactions, and applied/released ones agree with committed/aborted.
func checkServiceMatches(t *testing.T, p *Participant, svc *testService) {
	t.Helper()
	for id, s := range svc.Txns {
		want := map[string]State{"reserved": StatePrepared, "applied": StateCommitted, "released": StateAborted}[s]
		if got := p.Status(id); got != want && !(got == StateUnknown && s != "reserved") {
			t.Errorf("service has %s %s, participant says %s", id, s, got)
		}
	}
	if got := p.Stats().Prepared; got != countOf(svc, "reserved") {
		t.Errorf("participant has %d prepared, service %d reserved", got, countOf(svc, "reserved"))
	}
}

func countOf(svc *testService, s string) int {
	n := 0
	for _, v := range svc.Txns {
		if v == s {
			n++
		}
	}
	return n
}
