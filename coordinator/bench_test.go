package coordinator

import (
	"fmt"
	"testing"
	"time"
)

// benchEnv is the cheapest environment an engine can run in: a clock that only moves
// when told, timers dropped (the benchmark never needs one to fire), a log that accepts
// everything, and a network that queues messages for the benchmark to answer. What the
// benchmark measures is then the engine's own work per transaction.
type benchEnv struct {
	now  time.Time
	sent []Message
	lsn  uint64
}

func (b *benchEnv) Now() time.Time                { return b.now }
func (b *benchEnv) SetTimer(time.Duration, Timer) {}
func (b *benchEnv) Send(m Message)                { b.sent = append(b.sent, m) }
func (b *benchEnv) Append(*Record, bool) error    { b.lsn++; return nil }
func (b *benchEnv) Uint64() uint64                { return 42 }
func (b *benchEnv) answer(e *Engine, ok func(Message) Reply) {
	msgs := b.sent
	b.sent = b.sent[len(b.sent):]
	for _, m := range msgs {
		e.Step(ok(m))
	}
}

// commit runs req through e to its end: submitted (its begin made durable if it must be),
// every prepare answered ACK, the
// decision made durable, every commit acknowledged, the end made durable.
func (b *benchEnv) commit(e *Engine, req Request, done func(View)) error {
	if _, err := e.Submit(req, done); err != nil {
		return err
	}
	// Until the participants have said that they ask about transactions in doubt, the
	// begin record is synced before the prepares leave.
	e.Step(LogSynced{Through: b.lsn})
	b.answer(e, func(m Message) Reply {
		return Reply{Txn: m.Txn, Participant: m.Participant, Seq: m.Seq, Kind: m.Kind, Vote: VoteACK, Asks: true}
	})
	e.Step(LogSynced{Through: b.lsn})
	b.answer(e, func(m Message) Reply {
		return Reply{Txn: m.Txn, Participant: m.Participant, Seq: m.Seq, Kind: m.Kind, State: PCommitted}
	})
	e.Step(LogSynced{Through: b.lsn})
	return nil
}

// BenchmarkEngineCommit runs whole committed transactions with two participants through
// one engine: Submit, both prepares answered ACK, the decision made durable, both
// commits acknowledged, the end made durable. Run with -benchmem: allocs/op is the
// engine's allocations per transaction.
func BenchmarkEngineCommit(b *testing.B) {
	env := &benchEnv{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	cfg := DefaultConfig()
	e, err := New(cfg, Env{Clock: env, Transport: env, Log: env, Rand: env})
	if err != nil {
		b.Fatal(err)
	}
	e.Start()
	req := Request{Participants: []ParticipantSpec{
		{URL: "http://127.0.0.1:9001/prepare"}, {URL: "http://127.0.0.1:9002/prepare"},
	}}
	ids := make([]string, b.N)
	for i := range ids {
		ids[i] = fmt.Sprintf("%032x", i)
	}
	decided := 0
	done := func(v View) { decided++ }
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		req.ID = ids[i]
		if err := env.commit(e, req, done); err != nil {
			b.Fatal(err)
		}
		env.now = env.now.Add(time.Microsecond)
	}
	b.StopTimer()
	if decided != b.N {
		b.Fatalf("%d transactions decided, want %d", decided, b.N)
	}
}
