package sqlpart_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dtc-project/dtc/client"
	"github.com/dtc-project/dtc/coordinator"
	"github.com/dtc-project/dtc/httpnet"
	"github.com/dtc-project/dtc/httpnet/apiserver"
	"github.com/dtc-project/dtc/httpnet/transport"
	"github.com/dtc-project/dtc/participant"
	"github.com/dtc-project/dtc/sqlpart"
)

// Lock waits (issue 16): the mapping of PostgreSQL's lock holders to dtc transactions,
// the no-wait policy, and the two-service deadlock across two PostgreSQL databases
// broken by a real coordinator.

// blockOn begins a transaction on a connection of f.admin and runs an UPDATE of row id
// on it, on a goroutine the test's cleanup waits for; it returns the backend's pid.
// The caller ends the transaction with the returned function (ROLLBACK) once the UPDATE
// has returned.
func blockOn(t *testing.T, f *fixture, id string) (pid uint32, done chan error, end func()) {
	t.Helper()
	ctx := context.Background()
	c, err := f.admin.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.QueryRowContext(ctx, "SELECT pg_backend_pid()").Scan(&pid); err != nil {
		t.Fatal(err)
	}
	if _, err := c.ExecContext(ctx, "BEGIN"); err != nil {
		t.Fatal(err)
	}
	done = make(chan error, 1)
	var wg sync.WaitGroup
	wg.Go(func() {
		_, err := c.ExecContext(ctx, "UPDATE "+f.account+" SET balance = balance + 1 WHERE id = $1", id)
		done <- err
	})
	ended := false
	end = func() {
		if ended {
			return
		}
		ended = true
		wg.Wait()
		_, _ = c.ExecContext(ctx, "ROLLBACK")
		c.Close()
	}
	t.Cleanup(end)
	return pid, done, end
}

func isBlocked(t *testing.T, f *fixture, pid uint32) bool {
	t.Helper()
	var n int
	if err := f.admin.QueryRow("SELECT cardinality(pg_blocking_pids($1))", int64(pid)).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n > 0
}

// A statement blocked on a row of a prepared transaction is mapped, through pg_locks
// and pg_prepared_xacts, from the gid back to the dtc transaction id, for the
// coordinator that transaction belongs to only; a blocker that is not a dtc
// transaction is not reported.
func TestBlockersMapPreparedGIDToTxnID(t *testing.T) {
	f := newFixture(t, pgDSN, nil)
	ctx := context.Background()
	const coord, other = "http://coord.example:7070", "http://other.example:7070"
	if v := f.p.Prepare(ctx, "holder-1@00ab", coord, f.move("alice", -1)); !v.ACK {
		t.Fatalf("prepare holder-1: %s", v.Reason)
	}
	defer f.p.Rollback(ctx, "holder-1@00ab")

	pid, done, end := blockOn(t, f, "alice")
	eventually(t, "the plain session to block on alice", func() bool { return isBlocked(t, f, pid) })
	holders, key, err := f.p.Blockers(ctx, pid, coord+"/")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(holders, []string{"holder-1@00ab"}) || key == "" {
		t.Fatalf("blockers of a session waiting for holder-1's row: %q (key %q), want [holder-1@00ab]", holders, key)
	}
	t.Logf("waits for %v on %q", holders, key)
	if holders, _, err := f.p.Blockers(ctx, pid, other); err != nil || len(holders) != 0 {
		t.Fatalf("blockers for another coordinator: %q, %v; want none", holders, err)
	}

	// A plain session holding bob: the session waiting for it has no dtc blocker.
	_, _, endHolder := func() (uint32, chan error, func()) {
		c, err := f.admin.Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.ExecContext(ctx, "BEGIN"); err != nil {
			t.Fatal(err)
		}
		if _, err := c.ExecContext(ctx, "UPDATE "+f.account+" SET balance = balance + 1 WHERE id = 'bob'"); err != nil {
			t.Fatal(err)
		}
		var once sync.Once
		return 0, nil, func() { once.Do(func() { _, _ = c.ExecContext(ctx, "ROLLBACK"); c.Close() }) }
	}()
	defer endHolder() // before the cleanups, which wait for the blocked session
	pid2, done2, end2 := blockOn(t, f, "bob")
	eventually(t, "the second session to block on bob", func() bool { return isBlocked(t, f, pid2) })
	if holders, key, err := f.p.Blockers(ctx, pid2, coord); err != nil || len(holders) != 0 || key == "" {
		t.Fatalf("blockers of a session waiting for a plain session: %q (key %q), %v; want none", holders, key, err)
	}
	endHolder()
	if err := <-done2; err != nil {
		t.Fatal(err)
	}
	end2()

	if r := f.p.Rollback(ctx, "holder-1@00ab"); r.Err != nil || r.State != participant.StateAborted {
		t.Fatalf("rollback holder-1: %+v", r)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	end()
	if holders, key, err := f.p.Blockers(ctx, pid, coord); err != nil || len(holders) != 0 || key != "" {
		t.Fatalf("blockers of a session no longer waiting: %q (key %q), %v", holders, key, err)
	}
}

// A rollback that comes while the transaction's prepare is blocked on a row lock (the
// coordinator aborted it: a deadlock's victim) cancels the prepare, which NACKs, and
// the rollback answers at once, without waiting for the lock; the holder commits.
func TestRollbackCancelsBlockedPrepare(t *testing.T) {
	f := newFixture(t, pgDSN, func(c *sqlpart.Config) { c.StatementTimeout = 30 * time.Second })
	ctx := context.Background()
	// Nothing listens there: the wait's reports fail, which changes nothing here.
	const coord = "http://127.0.0.1:9"
	if v := f.p.Prepare(ctx, "rb-holder", coord, f.move("alice", -1)); !v.ACK {
		t.Fatalf("prepare rb-holder: %s", v.Reason)
	}
	votes := make(chan participant.Vote, 1)
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Go(func() { votes <- f.p.Prepare(ctx, "rb-waiter", coord, f.move("alice", -2)) })
	// Its first report (made once it is found blocked) has failed: a report cut short
	// by the rollback below would not count.
	eventually(t, "rb-waiter's prepare to be found blocked behind rb-holder, and reported", func() bool {
		s := f.p.LockWaitStats()
		return s.Blocked == 1 && s.ReportFails > 0
	})
	if r := f.p.Rollback(ctx, "rb-waiter"); r.Err != nil || r.State != participant.StateAborted {
		t.Fatalf("rollback rb-waiter: %+v", r)
	}
	v := <-votes
	if v.ACK || !strings.Contains(v.Reason, "rolled back") {
		t.Fatalf("rb-waiter's prepare: %+v, want NACK because it was rolled back", v)
	}
	if r := f.p.Commit(ctx, "rb-holder"); r.Err != nil || r.State != participant.StateCommitted {
		t.Fatalf("commit rb-holder: %+v", r)
	}
	if b := f.balance("alice"); b != 99 {
		t.Fatalf("alice: %d, want 99", b)
	}
	if s := f.p.LockWaitStats(); s.Cancelled != 1 || s.Reports != 0 {
		t.Fatalf("stats %+v: want one cancelled prepare and no report taken", s)
	}
	if left := f.prepared(); len(left) != 0 {
		t.Fatalf("left prepared: %v", left)
	}
}

// Under the no-wait policy a prepare whose statement meets a row locked by a prepared
// transaction is NACKed at once with cause conflict, the database's message in its
// reason, and the first transaction still commits.
func TestNoWaitConflictNACKsAtOnce(t *testing.T) {
	for _, k := range kinds {
		t.Run(k.name, func(t *testing.T) {
			const stmtTimeout = 20 * time.Second
			f := newFixture(t, k.dsn, func(c *sqlpart.Config) {
				c.LockPolicy = sqlpart.LockNoWait
				c.StatementTimeout = stmtTimeout
			})
			ctx := context.Background()
			if v := f.p.Prepare(ctx, "nw-1", "", f.move("alice", -10)); !v.ACK {
				t.Fatalf("prepare nw-1: %s", v.Reason)
			}
			start := time.Now()
			v := f.p.Prepare(ctx, "nw-2", "", f.move("alice", -5))
			took := time.Since(start)
			t.Logf("conflicting prepare answered in %v: %+v", took, v)
			if v.ACK || v.Cause != participant.CauseConflict {
				t.Fatalf("conflicting prepare: %+v, want NACK with cause conflict", v)
			}
			if took >= stmtTimeout/2 {
				t.Fatalf("conflicting prepare took %v: it waited for the lock", took)
			}
			if r := f.p.Commit(ctx, "nw-1"); r.Err != nil || r.State != participant.StateCommitted {
				t.Fatalf("commit nw-1: %+v", r)
			}
			if r := f.p.Rollback(ctx, "nw-2"); r.Err != nil || r.State != participant.StateAborted {
				t.Fatalf("rollback nw-2: %+v", r)
			}
			if b := f.balance("alice"); b != 90 {
				t.Fatalf("alice: %d, want 90", b)
			}
			// The row is free again: a new prepare takes it at once.
			if v := f.p.Prepare(ctx, "nw-3", "", f.move("alice", -1)); !v.ACK {
				t.Fatalf("prepare nw-3: %s", v.Reason)
			}
			if r := f.p.Commit(ctx, "nw-3"); r.Err != nil || r.State != participant.StateCommitted {
				t.Fatalf("commit nw-3: %+v", r)
			}
			if !strings.HasPrefix(k.dsn, "postgres") {
				// The statements' own lock wait timeout was set back: the pool's sessions
				// wait as the server says.
				for range 4 {
					var session, global int
					if err := f.p.DB().QueryRow("SELECT @@SESSION.innodb_lock_wait_timeout, @@GLOBAL.innodb_lock_wait_timeout").Scan(&session, &global); err != nil {
						t.Fatal(err)
					}
					if session != global {
						t.Fatalf("a pooled session's innodb_lock_wait_timeout is %d, the server's %d", session, global)
					}
				}
			}
			if s := f.p.LockWaitStats(); s.Conflicts != 1 {
				t.Fatalf("stats %+v: want one conflict", s)
			}
			if left := f.prepared(); len(left) != 0 {
				t.Fatalf("left prepared: %v", left)
			}
		})
	}
}

// --- the two-service deadlock across two PostgreSQL databases ---

// orderer holds the prepare of a transaction named in after until the prepare of
// another one (after's value) was answered ACK here, so that the test builds the
// deadlock in a known order; it notes when it let each held prepare in.
type orderer struct {
	next http.Handler

	mu    sync.Mutex
	after map[string]string // client txn id -> client txn id it goes in after
	acked map[string]chan struct{}
	let   map[string]time.Time
}

func newOrderer(next http.Handler) *orderer {
	return &orderer{next: next, after: map[string]string{}, acked: map[string]chan struct{}{}, let: map[string]time.Time{}}
}

func (o *orderer) ackedCh(id string) chan struct{} {
	ch := o.acked[id]
	if ch == nil {
		ch = make(chan struct{})
		o.acked[id] = ch
	}
	return ch
}

func (o *orderer) hold(id, after string) {
	o.mu.Lock()
	o.after[id] = after
	o.mu.Unlock()
}

func (o *orderer) letAt(id string) (time.Time, bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	at, ok := o.let[id]
	return at, ok
}

func (o *orderer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if path.Base(r.URL.Path) != "prepare" || r.Method != http.MethodPost {
		o.next.ServeHTTP(w, r)
		return
	}
	body, _ := io.ReadAll(r.Body)
	r.Body = io.NopCloser(bytes.NewReader(body))
	var m struct {
		TxnID string `json:"txn_id"`
	}
	_ = json.Unmarshal(body, &m)
	id, _, _ := coordinator.SplitTxnID(m.TxnID)
	o.mu.Lock()
	first, held := o.after[id]
	var wait, mine chan struct{}
	if held {
		wait = o.ackedCh(first)
	} else {
		mine = o.ackedCh(id)
	}
	o.mu.Unlock()
	if held {
		select {
		case <-wait:
		case <-r.Context().Done():
			http.Error(w, "gave up", http.StatusServiceUnavailable)
			return
		}
		o.mu.Lock()
		o.let[id] = time.Now()
		o.mu.Unlock()
		o.next.ServeHTTP(w, r)
		return
	}
	rec := httptest.NewRecorder()
	o.next.ServeHTTP(rec, r)
	if strings.Contains(rec.Body.String(), `"ACK"`) {
		o.mu.Lock()
		select {
		case <-mine:
		default:
			close(mine)
		}
		o.mu.Unlock()
	}
	for k, v := range rec.Header() {
		w.Header()[k] = v
	}
	w.WriteHeader(rec.Code)
	_, _ = w.Write(rec.Body.Bytes())
}

// startCoordinator runs a real dtc coordinator (httpnet, deadlock detection on) on a
// loopback port and returns its URL and a client.
func startCoordinator(t *testing.T) (string, *client.Client) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	u := "http://" + ln.Addr().String()
	eng := coordinator.DefaultConfig()
	eng.RetryBackoffMin = 10 * time.Millisecond
	eng.RetryBackoffMax = 100 * time.Millisecond
	rt, err := httpnet.Open(httpnet.Options{
		DataDir:           t.TempDir(),
		Shards:            2,
		Engine:            eng,
		LazyFlushInterval: 5 * time.Millisecond,
		Transport:         transport.Options{AdvertiseURL: u},
		Logger:            testLogger(t),
		OnFatal:           func(err error) { t.Errorf("coordinator fatal: %v", err) },
	})
	if err != nil {
		ln.Close()
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(apiserver.NewServer(rt, apiserver.ServerOptions{Logger: testLogger(t)}))
	srv.Listener.Close()
	srv.Listener = ln
	srv.Start()
	t.Cleanup(func() {
		srv.CloseClientConnections()
		srv.Close()
		if err := rt.Close(); err != nil {
			t.Errorf("closing the coordinator: %v", err)
		}
	})
	cli, err := client.New(u, client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "the coordinator is ready", func() bool { return cli.Ready(context.Background()) == nil })
	return u, cli
}

// createPGDatabase creates a database with a unique name, dropped at the end of the
// test, and returns its DSN.
func createPGDatabase(t *testing.T) string {
	t.Helper()
	admin := rawDB(t, pgDSN)
	name := unique("sqlpart_dl_")
	if _, err := admin.Exec("CREATE DATABASE " + name); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if _, err := admin.Exec("DROP DATABASE IF EXISTS " + name + " WITH (FORCE)"); err != nil {
			t.Errorf("dropping database %s: %v", name, err)
		}
	})
	u, err := url.Parse(pgDSN)
	if err != nil {
		t.Fatal(err)
	}
	u.Path = "/" + name
	return u.String()
}

// sqlService is a sqlpart participant served over HTTP behind an orderer.
type sqlService struct {
	f     *fixture
	order *orderer
	url   string
}

func newSQLService(t *testing.T, dsn, label string, prepareTimeout time.Duration) *sqlService {
	t.Helper()
	s := &sqlService{}
	s.f = newFixture(t, dsn, func(c *sqlpart.Config) {
		c.StatementTimeout = prepareTimeout
		c.PrepareTimeout = prepareTimeout
		c.ParticipantURL = label
		c.Logger = testLogger(t)
	})
	// pg_prepared_xacts is the whole server's: TestMain looks for leftovers through the
	// test database, which outlives this one.
	prefixesMu.Lock()
	prefixes[s.f.prefix] = pgDSN
	prefixesMu.Unlock()
	s.order = newOrderer(sqlpart.NewHandler(s.f.p, sqlpart.HandlerOptions{Logger: testLogger(t)}))
	srv := httptest.NewServer(s.order)
	t.Cleanup(srv.Close)
	s.url = srv.URL + "/prepare"
	return s
}

// TestDeadlockAcrossTwoPostgreSQLDatabases is issue 16's two-service deadlock with
// real databases: T1 moves 1 from alice at A to alice at B, T2 from alice at B to alice
// at A. T1's prepare at A and T2's at B go first and are prepared (each holds its row
// until phase 2); then T1's prepare at B blocks on T2's prepared row and T2's at A on
// T1's. Each participant reports its wait; the coordinator finds the cycle and aborts
// the younger, T2, with cause deadlock; its rollback at A cancels its blocked prepare,
// its rollback at B frees the row, and T1 commits. Repeated; the time from the closing
// prepare going in to the victim's abort decision is logged, not asserted.
func TestDeadlockAcrossTwoPostgreSQLDatabases(t *testing.T) {
	const (
		rounds         = 10
		prepareTimeout = 30 * time.Second
		abortWithin    = 5 * time.Second
	)
	coordURL, cli := startCoordinator(t)
	a := newSQLService(t, pgDSN, "sqlpart-a (database test)", prepareTimeout)
	b := newSQLService(t, createPGDatabase(t), "sqlpart-b (database of its own)", prepareTimeout)
	t.Logf("coordinator %s, A %s, B %s", coordURL, a.url, b.url)
	ctx := context.Background()
	view := func(id string) client.View {
		t.Helper()
		var v client.View
		deadline := time.Now().Add(2 * prepareTimeout)
		for {
			var err error
			v, err = cli.Get(ctx, id)
			if err == nil && v.Final() {
				return v
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s not decided after %v: %+v, %v", id, 2*prepareTimeout, v, err)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	var took []time.Duration
	for round := range rounds {
		t1, t2 := fmt.Sprintf("sql-t1-%d", round), fmt.Sprintf("sql-t2-%d", round)
		a.order.hold(t2, t1) // at A, T2 goes in once T1 is prepared
		b.order.hold(t1, t2) // at B, T1 goes in once T2 is prepared
		if _, err := cli.SubmitAsync(ctx, client.Request{ID: t1, PrepareTimeout: prepareTimeout, Participants: []client.Participant{
			{URL: a.url, Payload: a.f.move("alice", -1)}, {URL: b.url, Payload: b.f.move("alice", 1)}}}); err != nil {
			t.Fatal(err)
		}
		if _, err := cli.SubmitAsync(ctx, client.Request{ID: t2, PrepareTimeout: prepareTimeout, Participants: []client.Participant{
			{URL: b.url, Payload: b.f.move("alice", -1)}, {URL: a.url, Payload: a.f.move("alice", 1)}}}); err != nil {
			t.Fatal(err)
		}
		v1, v2 := view(t1), view(t2)
		if v1.State != client.StateCommitted || v2.State != client.StateAborted || v2.AbortCause != coordinator.CauseDeadlock {
			t.Fatalf("round %d: t1 %s (%s: %s), t2 %s (%s: %s)", round, v1.State, v1.AbortCause, v1.Reason, v2.State, v2.AbortCause, v2.Reason)
		}
		if !strings.Contains(v2.Reason, "victim "+t2) {
			t.Fatalf("round %d: reason %q does not name %s the victim", round, v2.Reason, t2)
		}
		atA, okA := a.order.letAt(t2)
		atB, okB := b.order.letAt(t1)
		if !okA || !okB {
			t.Fatalf("round %d: the held prepares did not both go in (A %v, B %v)", round, okA, okB)
		}
		closed := atA
		if atB.After(atA) {
			closed = atB
		}
		d := v2.DecidedAt.Sub(closed)
		if d >= abortWithin {
			t.Fatalf("round %d: the victim was aborted %v after the cycle closed (prepare timeout %v)", round, d, prepareTimeout)
		}
		took = append(took, d)
		// T1's commits may still be on their way: the next round starts from free rows.
		for _, s := range []*sqlService{a, b} {
			eventually(t, "the round's phase 2 done", func() bool { return len(s.f.prepared()) == 0 })
		}
	}
	slices.Sort(took)
	t.Logf("PostgreSQL participants, %d deadlocks: closing prepare in -> victim's abort decided: median %v, max %v, min %v (all: %v)",
		rounds, took[len(took)/2], took[len(took)-1], took[0], took)
	t.Logf("A: %+v; B: %+v", a.f.p.LockWaitStats(), b.f.p.LockWaitStats())
	// A decision is final before its phase 2 is done: the last commit may still be on
	// its way.
	for _, s := range []*sqlService{a, b} {
		eventually(t, "nothing left prepared", func() bool { return len(s.f.prepared()) == 0 })
		if st := s.f.p.LockWaitStats(); st.Reports == 0 {
			t.Errorf("%s reported no wait: %+v", s.url, st)
		}
	}
	if got := a.f.balance("alice"); got != 100-rounds {
		t.Errorf("alice at A: %d, want %d", got, 100-rounds)
	}
	if got := b.f.balance("alice"); got != 100+rounds {
		t.Errorf("alice at B: %d, want %d", got, 100+rounds)
	}
}

// testLogger logs to the test with -v, else nowhere.
func testLogger(t *testing.T) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(b), "\n"))
	return len(b), nil
}
