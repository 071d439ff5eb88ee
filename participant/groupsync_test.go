package participant

import (
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/dtc-project/dtc/wal"
)

// Production wiring: concurrent prepares, commits and rollbacks through a
// wal.GroupSyncer; everything answered survives a crash.
func TestGroupCommitConcurrent(t *testing.T) {
	fs := wal.NewMemFS()
	opts := wal.Options{FS: fs, Dir: "p", SegmentSizeBytes: 16 << 10}
	cfg := testConfig()
	cfg.CheckpointAfterRecords = 50
	var fatal error
	co := wal.GroupSyncerOptions{OnFatal: func(err error) { fatal = err }}
	p, err := OpenGroupSync(cfg, newTestService(), newFakeClock(), opts, co)
	if err != nil {
		t.Fatal(err)
	}
	const n = 64
	var wg sync.WaitGroup
	results := make([]string, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id := fmt.Sprintf("t%02d", i)
			votes := make(chan Vote, 1)
			p.Prepare(id, json.RawMessage(`{}`), "", func(v Vote) { votes <- v })
			if v := <-votes; !v.ACK {
				results[i] = "NACK " + v.Reason
				return
			}
			res := make(chan Result, 1)
			if i%2 == 0 {
				p.Commit(id, func(r Result) { res <- r })
			} else {
				p.Rollback(id, func(r Result) { res <- r })
			}
			results[i] = resultString(<-res)
		}()
	}
	wg.Wait()
	for i, r := range results {
		want := "200 committed"
		if i%2 == 1 {
			want = "200 aborted"
		}
		if r != want {
			t.Fatalf("t%02d: %s, want %s", i, r, want)
		}
	}
	if st := p.Stats(); st.Checkpoints < 2 {
		t.Fatalf("stats %+v: want automatic checkpoints", st)
	}
	fs.Crash() // no Close: the syncer goroutine is abandoned with the process
	p2, svc := newMemLogFrom(fs, opts, cfg).open(t)
	defer p2.Close()
	for i := range n {
		want := StateCommitted
		if i%2 == 1 {
			want = StateAborted
		}
		expectStatus(t, p2, fmt.Sprintf("t%02d", i), want)
	}
	if svc.Committed != n/2 {
		t.Fatalf("service after restart: %v", svc)
	}
	if fatal != nil {
		t.Fatal(fatal)
	}
	p.Close()
}

// Checkpoints remove the segments before them, and a restart from the checkpoint plus
// the records after it rebuilds the same state.
func TestCheckpointCompacts(t *testing.T) {
	cfg := testConfig()
	cfg.CheckpointAfterBytes = 20 << 10
	cfg.DecidedMax = 20
	m := newMemLog(cfg)
	m.opts.SegmentSizeBytes = 32 << 10 // a checkpoint (about 18 KiB at the end) must fit a record
	p, svc := m.open(t)
	a := &answer{}
	payload := `{"pad":"` + strings.Repeat("x", 200) + `"}`
	for i := range 200 {
		id := fmt.Sprintf("t%03d", i)
		prepare(p, a, id, payload)
		if i%3 != 0 { // every third stays prepared
			commit(p, a, id)
		}
	}
	for _, s := range a.take() {
		if s[len(s)-3:] == "ACK" || s[len(s)-9:] == "committed" {
			continue
		}
		t.Fatalf("answer %s", s)
	}
	st := p.Stats()
	if st.Checkpoints < 4 || st.CheckpointFailures != 0 || st.CompactionFailures != 0 {
		t.Fatalf("stats %+v", st)
	}
	files, err := m.fs.ReadDir("p")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) > 3 { // the segment with the last checkpoint, maybe a later one, a spare
		t.Fatalf("segments not removed: %v", files)
	}
	before := svc.String()
	m.fs.Crash()
	p2, svc2 := m.open(t)
	defer p2.Close()
	if svc2.String() != before {
		t.Fatalf("service after restart:\n%s\nbefore:\n%s", svc2, before)
	}
	if p2.Stats().Prepared != 67 || p2.Stats().Decided != 20 {
		t.Fatalf("stats after restart %+v", p2.Stats())
	}
	expectStatus(t, p2, "t000", StatePrepared)
	expectStatus(t, p2, "t199", StateCommitted)
	expectStatus(t, p2, "t001", StateUnknown) // forgotten: DecidedMax
}

func TestCheckpointFailureIsNotFatal(t *testing.T) {
	cfg := testConfig()
	cfg.CheckpointAfterRecords = 2
	m := newMemLog(cfg)
	p, svc := m.open(t)
	defer p.Close()
	svc.FailSnapshot = true
	a := &answer{}
	prepare(p, a, "t1", "")
	prepare(p, a, "t2", "")
	prepare(p, a, "t3", "")
	expectAnswers(t, a, "prepare t1: ACK", "prepare t2: ACK", "prepare t3: ACK")
	var err error
	p.Checkpoint(func(e error) { err = e })
	if err == nil || p.Stats().CheckpointFailures < 2 {
		t.Fatalf("Checkpoint = %v, stats %+v", err, p.Stats())
	}
}

func newMemLogFrom(fs *wal.MemFS, opts wal.Options, cfg Config) *memLog {
	return &memLog{fs: fs, opts: opts, cfg: cfg, clock: newFakeClock()}
}
