package participant

import (
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dtc-project/dtc/wal"
)

// fakeClock is a clock that moves only when told.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// testService is a deterministic Service: a payload {"nack":"why"} is refused, anything
// else reserved. It keeps what each transaction became, and a counter of commits, so
// tests can see that replay rebuilds it exactly. It implements Updater: a change is a
// note appended to Notes; "refuse" is refused.
type testService struct {
	Txns      map[string]string `json:"txns"` // id → "reserved" | "applied" | "released"
	Committed int               `json:"committed"`
	Notes     []string          `json:"notes"`
	// FailSnapshot makes Snapshot fail (not part of the state).
	FailSnapshot bool `json:"-"`
}

func newTestService() *testService { return &testService{Txns: map[string]string{}} }

func (s *testService) Prepare(id string, payload json.RawMessage) error {
	var p struct {
		Nack string `json:"nack"`
	}
	if len(payload) > 0 {
		if err := json.Unmarshal(payload, &p); err != nil {
			return fmt.Errorf("bad payload: %v", err)
		}
	}
	if p.Nack != "" {
		return errors.New(p.Nack)
	}
	if _, ok := s.Txns[id]; ok {
		panic("testService: prepare twice for " + id)
	}
	s.Txns[id] = "reserved"
	return nil
}

func (s *testService) Commit(id string) {
	if s.Txns[id] != "reserved" {
		panic("testService: commit of " + id + " in state " + s.Txns[id])
	}
	s.Txns[id] = "applied"
	s.Committed++
}

func (s *testService) Rollback(id string) {
	if s.Txns[id] != "reserved" {
		panic("testService: rollback of " + id + " in state " + s.Txns[id])
	}
	s.Txns[id] = "released"
}

func (s *testService) Update(change []byte) error {
	if string(change) == `"refuse"` {
		return errors.New("refused")
	}
	s.Notes = append(s.Notes, string(change))
	return nil
}

func (s *testService) Snapshot() ([]byte, error) {
	if s.FailSnapshot {
		return nil, errors.New("snapshot failed")
	}
	return json.Marshal(s)
}

func (s *testService) Restore(b []byte) error {
	var n testService
	if err := json.Unmarshal(b, &n); err != nil {
		return err
	}
	if n.Txns == nil {
		n.Txns = map[string]string{}
	}
	s.Txns, s.Committed, s.Notes = n.Txns, n.Committed, n.Notes
	return nil
}

func (s *testService) String() string {
	ids := make([]string, 0, len(s.Txns))
	for id := range s.Txns {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	var b strings.Builder
	for _, id := range ids {
		fmt.Fprintf(&b, "%s=%s ", id, s.Txns[id])
	}
	fmt.Fprintf(&b, "committed=%d notes=%v", s.Committed, s.Notes)
	return b.String()
}

// manualStore holds every record until the test says it is durable: it lets a test
// play any interleaving of calls and durability.
type manualStore struct {
	mu      sync.Mutex
	pending []manualRecord
	durable [][]byte
	broken  error
	removed []wal.Pos
	max     int
}

type manualRecord struct {
	data   []byte
	urgent bool
	done   func(wal.Pos, error)
}

func newManualStore() *manualStore { return &manualStore{max: 1 << 20} }

func (s *manualStore) Append(rec []byte, urgent bool, done func(wal.Pos, error)) {
	s.mu.Lock()
	if s.broken != nil {
		err := s.broken
		s.mu.Unlock()
		done(wal.Pos{}, err)
		return
	}
	s.pending = append(s.pending, manualRecord{append([]byte(nil), rec...), urgent, done})
	s.mu.Unlock()
}

// persist makes the n oldest pending records durable, in order.
func (s *manualStore) persist(t testing.TB, n int) {
	t.Helper()
	s.mu.Lock()
	if n > len(s.pending) {
		s.mu.Unlock()
		t.Fatalf("persist %d: only %d records pending", n, len(s.pending))
	}
	batch := s.pending[:n]
	s.pending = s.pending[n:]
	base := len(s.durable)
	for _, r := range batch {
		s.durable = append(s.durable, r.data)
	}
	s.mu.Unlock()
	for i, r := range batch {
		r.done(wal.Pos{Segment: uint64(base + i), Offset: 0}, nil)
	}
}

// fail breaks the store: every pending and later record fails.
func (s *manualStore) fail(err error) {
	s.mu.Lock()
	s.broken = err
	batch := s.pending
	s.pending = nil
	s.mu.Unlock()
	for _, r := range batch {
		r.done(wal.Pos{}, err)
	}
}

// urgency returns the pending records as "type:urgent" or "type:lazy", oldest first.
func (s *manualStore) urgency() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, r := range s.pending {
		rec, _ := decodeRecord(r.data)
		u := "lazy"
		if r.urgent {
			u = "urgent"
		}
		out = append(out, rec.Type+":"+u)
	}
	return out
}

func (s *manualStore) npending() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.pending)
}

func (s *manualStore) types() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, d := range s.durable {
		r, _ := decodeRecord(d)
		out = append(out, r.Type)
	}
	return out
}

func (s *manualStore) RemoveBefore(pos wal.Pos) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.removed = append(s.removed, pos)
	return nil
}

func (s *manualStore) RecordMaxBytes() int { return s.max }
func (s *manualStore) Close() error        { return nil }

// answers collects the replies of calls whose answer may come later.
type answer struct {
	mu  sync.Mutex
	got []string
}

func (a *answer) add(s string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.got = append(a.got, s)
}

func (a *answer) take() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	g := a.got
	a.got = nil
	return g
}

func voteString(v Vote) string {
	if v.ACK {
		return "ACK"
	}
	return "NACK " + v.Reason
}

func resultString(r Result) string {
	switch {
	case r.Err != nil:
		return "error " + r.Err.Error()
	case r.Conflict:
		return "409 " + string(r.State)
	default:
		return "200 " + string(r.State)
	}
}

// call helpers: they return "" when the answer is not there yet, and record it in a
// when it comes.
func prepare(p *Participant, a *answer, id, payload string) {
	p.Prepare(id, json.RawMessage(payload), "", func(v Vote) { a.add("prepare " + id + ": " + voteString(v)) })
}

func commit(p *Participant, a *answer, id string) {
	p.Commit(id, func(r Result) { a.add("commit " + id + ": " + resultString(r)) })
}

func rollback(p *Participant, a *answer, id string) {
	p.Rollback(id, func(r Result) { a.add("rollback " + id + ": " + resultString(r)) })
}

// testConfig is DefaultConfig with limits small enough to reach in a test.
func testConfig() Config {
	c := DefaultConfig()
	c.InDoubtAfter = time.Minute
	return c
}

// memLog opens participants over one wal.MemFS directory, as the simulator does.
type memLog struct {
	fs    *wal.MemFS
	opts  wal.Options
	cfg   Config
	clock *fakeClock
}

func newMemLog(cfg Config) *memLog {
	fs := wal.NewMemFS()
	return &memLog{fs: fs, opts: wal.Options{FS: fs, Dir: "p", SegmentSizeBytes: 64 << 10}, cfg: cfg, clock: newFakeClock()}
}

func (m *memLog) open(t testing.TB) (*Participant, *testService) {
	t.Helper()
	svc := newTestService()
	p, err := OpenSync(m.cfg, svc, m.clock, m.opts)
	if err != nil {
		t.Fatalf("OpenSync: %v", err)
	}
	return p, svc
}

// sync1 calls f and returns the one answer a synchronous store gives before f returns.
func sync1(t testing.TB, a *answer, f func()) string {
	t.Helper()
	f()
	got := a.take()
	if len(got) != 1 {
		t.Fatalf("want exactly one answer, got %q", got)
	}
	return got[0]
}
