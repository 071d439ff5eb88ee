package participant

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dtc-project/dtc/wal"
)

// newManual returns a started participant over a manualStore, as if its log held just
// an empty checkpoint.
func newManual(t *testing.T, cfg Config) (*Participant, *manualStore, *testService) {
	t.Helper()
	svc := newTestService()
	p, err := New(cfg, svc, newFakeClock())
	if err != nil {
		t.Fatal(err)
	}
	snap, _ := svc.Snapshot()
	c := encodeRecord(logRecord{Type: recCheckpoint, Checkpoint: &checkpoint{Service: snap}})
	if err := p.Replay(wal.Pos{}, c); err != nil {
		t.Fatal(err)
	}
	st := newManualStore()
	if err := p.Start(st); err != nil {
		t.Fatal(err)
	}
	return p, st, svc
}

func expectAnswers(t *testing.T, a *answer, want ...string) {
	t.Helper()
	got := a.take()
	if !slices.Equal(got, want) {
		t.Fatalf("answers:\n got %q\nwant %q", got, want)
	}
}

func expectStatus(t *testing.T, p *Participant, id string, want State) {
	t.Helper()
	if got := p.Status(id); got != want {
		t.Fatalf("status %s = %s, want %s", id, got, want)
	}
}

// A rollback that arrives while the prepare record is still being persisted: the
// prepare is answered NACK, never ACK, and the transaction can never commit here.
func TestRollbackWhilePrepareIsPersisted(t *testing.T) {
	p, st, svc := newManual(t, testConfig())
	a := &answer{}
	prepare(p, a, "t1", `{}`)
	expectAnswers(t, a) // nothing before the record is durable
	expectStatus(t, p, "t1", StateUnknown)
	rollback(p, a, "t1")
	commit(p, a, "t1") // a confused coordinator: must not commit
	expectAnswers(t, a)

	st.persist(t, 1) // the prepare record
	expectAnswers(t, a, "prepare t1: NACK rolled back while the prepare record was being persisted")
	expectStatus(t, p, "t1", StatePrepared) // the rollback is not durable yet

	st.persist(t, 1) // the rollback record
	expectAnswers(t, a, "rollback t1: 200 aborted", "commit t1: 409 aborted")
	expectStatus(t, p, "t1", StateAborted)
	if got := st.types(); !slices.Equal(got, []string{"prepare", "rollback"}) {
		t.Fatalf("log = %v", got)
	}
	if svc.Txns["t1"] != "released" {
		t.Fatalf("service: %v", svc)
	}
	prepare(p, a, "t1", `{}`)
	expectAnswers(t, a, "prepare t1: NACK already rolled back")
}

// A rollback before any prepare writes a fence; a prepare racing with the fence's
// persisting is NACKed at once (NACK needs nothing durable).
func TestFenceWhilePersisted(t *testing.T) {
	p, st, _ := newManual(t, testConfig())
	a := &answer{}
	rollback(p, a, "t1")
	prepare(p, a, "t1", `{}`)
	expectAnswers(t, a, "prepare t1: NACK fenced: rolled back before prepare")
	expectStatus(t, p, "t1", StateUnknown)
	rollback(p, a, "t1") // a repeat waits for the same record
	expectAnswers(t, a)
	st.persist(t, 1)
	expectAnswers(t, a, "rollback t1: 200 aborted", "rollback t1: 200 aborted")
	expectStatus(t, p, "t1", StateAborted)
}

// Repeated prepares and commits while records are in flight all get the answer of the
// first, once it is durable.
func TestRepeatsWhilePersisted(t *testing.T) {
	p, st, _ := newManual(t, testConfig())
	a := &answer{}
	prepare(p, a, "t1", `{"a":1}`)
	prepare(p, a, "t1", `{"a": 1}`)
	commit(p, a, "t1") // only a confused coordinator commits before the ACK
	commit(p, a, "t1")
	rollback(p, a, "t1")
	expectAnswers(t, a)
	st.persist(t, 1)
	expectAnswers(t, a, "prepare t1: ACK", "prepare t1: ACK")
	expectStatus(t, p, "t1", StatePrepared)
	prepare(p, a, "t1", `{"a":1}`) // the commit is in flight, the prepare durable
	expectAnswers(t, a, "prepare t1: ACK")
	st.persist(t, 1)
	expectAnswers(t, a, "commit t1: 200 committed", "commit t1: 200 committed", "rollback t1: 409 committed")
	if n := st.npending(); n != 0 {
		t.Fatalf("%d records pending", n)
	}
}

// When the log fails, nothing waiting on it is told success, and the participant stops
// answering.
func TestLogFailure(t *testing.T) {
	p, st, _ := newManual(t, testConfig())
	a := &answer{}
	prepare(p, a, "t1", `{}`)
	st.persist(t, 1)
	expectAnswers(t, a, "prepare t1: ACK")
	prepare(p, a, "t2", `{}`)
	commit(p, a, "t1")
	st.fail(errors.New("disk on fire"))
	expectAnswers(t, a,
		"prepare t2: NACK participant unavailable: participant: log failed: disk on fire",
		"commit t1: error participant: log failed: disk on fire")
	rollback(p, a, "t1")
	prepare(p, a, "t3", `{}`)
	expectAnswers(t, a,
		"rollback t1: error participant: log failed: disk on fire",
		"prepare t3: NACK participant unavailable: participant: log failed: disk on fire")
	if p.Err() == nil {
		t.Fatal("Err() is nil after a log failure")
	}
	expectStatus(t, p, "t1", StatePrepared) // what is durable, still
}

// Records handed to the store before Close are still answered; calls after Close get
// ErrClosed.
func TestClose(t *testing.T) {
	p, st, _ := newManual(t, testConfig())
	a := &answer{}
	prepare(p, a, "t1", `{}`)
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	st.persist(t, 1)
	expectAnswers(t, a, "prepare t1: ACK")
	commit(p, a, "t1")
	prepare(p, a, "t2", `{}`)
	expectAnswers(t, a, "commit t1: error participant: closed", "prepare t2: NACK participant unavailable: participant: closed")
}

func TestBounds(t *testing.T) {
	t.Run("InflightMax", func(t *testing.T) {
		cfg := testConfig()
		cfg.InflightMax = 2
		p, st, _ := newManual(t, cfg)
		a := &answer{}
		prepare(p, a, "t1", `{}`)
		prepare(p, a, "t2", `{}`)
		prepare(p, a, "t3", `{}`)
		rollback(p, a, "t4")
		expectAnswers(t, a,
			"prepare t3: NACK too busy: too many records waiting to be persisted",
			"rollback t4: error "+ErrBusy.Error())
		st.persist(t, 2)
		expectAnswers(t, a, "prepare t1: ACK", "prepare t2: ACK")
		rollback(p, a, "t4")
		st.persist(t, 1)
		expectAnswers(t, a, "rollback t4: 200 aborted")
	})
	t.Run("PreparedMax", func(t *testing.T) {
		cfg := testConfig()
		cfg.PreparedMax = 2
		m := newMemLog(cfg)
		got := run(t, m, `
			prepare t1
			prepare t2
			prepare t3
			commit t1
			prepare t3
			restart
			prepare t4
			rollback t2
			prepare t4`)
		want := []string{
			"prepare t1 → ACK",
			"prepare t2 → ACK",
			"prepare t3 → NACK too many prepared transactions",
			"commit t1 → 200 committed",
			"prepare t3 → ACK",
			"restart → ok",
			"prepare t4 → NACK too many prepared transactions",
			"rollback t2 → 200 aborted",
			"prepare t4 → ACK",
		}
		if !slices.Equal(got, want) {
			t.Fatalf("got:\n%s", strings.Join(got, "\n"))
		}
	})
	t.Run("DecidedMax", func(t *testing.T) {
		cfg := testConfig()
		cfg.DecidedMax = 2
		m := newMemLog(cfg)
		got := run(t, m, `
			rollback a
			prepare b
			commit b
			rollback c
			status a
			status b
			status c
			restart
			status a
			status b
			checkpoint
			rollback d
			crash
			status b
			status c
			status d
			prepare a`)
		want := []string{
			"rollback a → 200 aborted",
			"prepare b → ACK",
			"commit b → 200 committed",
			"rollback c → 200 aborted",
			"status a → unknown", // forgotten: the window holds b and c
			"status b → committed",
			"status c → aborted",
			"restart → ok",
			"status a → unknown",
			"status b → committed",
			"checkpoint → <nil>",
			"rollback d → 200 aborted",
			"crash → ok",
			"status b → unknown",
			"status c → aborted",
			"status d → aborted",
			"prepare a → ACK", // the fence was forgotten: the resolver cleans up
		}
		if !slices.Equal(got, want) {
			t.Fatalf("got:\n%s", strings.Join(got, "\n"))
		}
	})
}

func TestConfigValidate(t *testing.T) {
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatal(err)
	}
	c := DefaultConfig()
	c.PreparedMax = 0
	c.InDoubtAfter = -time.Second
	err := c.Validate()
	if err == nil || !strings.Contains(err.Error(), "PreparedMax") || !strings.Contains(err.Error(), "InDoubtAfter") {
		t.Fatalf("Validate = %v", err)
	}
	if _, err := New(c, newTestService(), newFakeClock()); err == nil {
		t.Fatal("New accepted an invalid config")
	}
}

func TestUpdate(t *testing.T) {
	m := newMemLog(testConfig())
	p, svc := m.open(t)
	var errs []string
	p.Update([]byte(` "freeze alice" `), func(err error) { errs = append(errs, fmt.Sprint(err)) })
	p.Update([]byte(`"refuse"`), func(err error) { errs = append(errs, fmt.Sprint(err)) })
	if !slices.Equal(errs, []string{"<nil>", "refused"}) {
		t.Fatalf("Update answers %q", errs)
	}
	p.Close()
	m.fs.Crash()
	p, svc2 := m.open(t)
	defer p.Close()
	if svc.String() != svc2.String() || !slices.Equal(svc2.Notes, []string{`"freeze alice"`}) {
		t.Fatalf("after restart %v, before %v", svc2, svc)
	}
}

// Only the records an answer on the critical path or a caller waits for are urgent: a
// prepare's (its vote), an Update's, and a checkpoint asked for with Checkpoint.
// Phase-2 records, fences and the checkpoints the log's growth starts may wait to share
// a sync with the next urgent one.
func TestRecordUrgency(t *testing.T) {
	p, st, _ := newManual(t, testConfig())
	a := &answer{}
	prepare(p, a, "t1", `{}`)
	prepare(p, a, "t2", `{}`)
	if got := st.urgency(); !slices.Equal(got, []string{"prepare:urgent", "prepare:urgent"}) {
		t.Fatalf("pending records: %v", got)
	}
	st.persist(t, 2)
	commit(p, a, "t1")
	rollback(p, a, "t2")
	rollback(p, a, "t3") // never prepared: a fence
	p.Update([]byte(`"freeze alice"`), func(error) {})
	p.Checkpoint(func(error) {})
	want := []string{"commit:lazy", "rollback:lazy", "fence:lazy", "update:urgent", "checkpoint:urgent"}
	if got := st.urgency(); !slices.Equal(got, want) {
		t.Fatalf("pending records:\n got %v\nwant %v", got, want)
	}
	st.persist(t, len(want))
	expectAnswers(t, a, "prepare t1: ACK", "prepare t2: ACK", "commit t1: 200 committed", "rollback t2: 200 aborted", "rollback t3: 200 aborted")

	cfg := testConfig()
	cfg.CheckpointAfterRecords = 2
	p, st, _ = newManual(t, cfg)
	prepare(p, a, "u1", `{}`)
	prepare(p, a, "u2", `{}`)
	want = []string{"prepare:urgent", "prepare:urgent", "checkpoint:lazy"}
	if got := st.urgency(); !slices.Equal(got, want) {
		t.Fatalf("pending records with a checkpoint every 2 records:\n got %v\nwant %v", got, want)
	}
}
