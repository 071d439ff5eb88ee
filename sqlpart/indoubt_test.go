package sqlpart_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/dtc-project/dtc/participant"
	"github.com/dtc-project/dtc/sqlpart"
)

// testCoordinator answers GET /v1/transactions/{id} as the test tells it to.
type testCoordinator struct {
	mu      sync.Mutex
	answers map[string]string // txn id → "committed", "aborted", "preparing", "404", "bare404"
	asked   map[string]int
	srv     *httptest.Server
}

func newTestCoordinator(t *testing.T) *testCoordinator {
	c := &testCoordinator{answers: map[string]string{}, asked: map[string]int{}}
	c.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, ok := strings.CutPrefix(r.URL.Path, "/v1/transactions/")
		if !ok || r.Method != http.MethodGet {
			http.Error(w, "no such route", http.StatusTeapot)
			return
		}
		c.mu.Lock()
		a := c.answers[id]
		c.asked[id]++
		c.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		switch a {
		case "404":
			w.WriteHeader(http.StatusNotFound)
			_ = json.NewEncoder(w).Encode(participant.ErrorResponse{Error: participant.ErrorBody{Code: participant.CodeTxnNotFound, Message: "no such transaction"}})
		case "bare404":
			http.NotFound(w, r)
		case "":
			w.WriteHeader(http.StatusServiceUnavailable)
		default:
			_ = json.NewEncoder(w).Encode(map[string]string{"id": id, "txn_id": id, "state": a})
		}
	}))
	t.Cleanup(c.srv.Close)
	return c
}

func (c *testCoordinator) set(id, answer string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.answers[id] = answer
}

// TestOrphansResolvedAtStart: transactions left prepared by a participant that went
// away are found in the database by the next one (same Name) and finished by asking
// their coordinator: committed → commit, 404 not_found → rollback (presumed abort),
// still in progress or a bare 404 (not the coordinator's) → left prepared and asked
// again.
func TestOrphansResolvedAtStart(t *testing.T) {
	for _, k := range kinds {
		t.Run(k.name, func(t *testing.T) {
			f := newFixture(t, k.dsn, nil)
			co := newTestCoordinator(t)
			ctx := context.Background()
			txns := []struct{ id, acct, answer string }{
				{"c1", "alice", "committed"},
				{"a1", "bob", "404"},
				{"p1", "carol", "preparing"},
			}
			for _, x := range txns {
				co.set(x.id, x.answer)
				if v := f.p.Prepare(ctx, x.id, co.srv.URL, f.move(x.acct, -10)); !v.ACK {
					t.Fatalf("prepare %s: %s", x.id, v.Reason)
				}
			}
			// The process "dies": its pool goes, the prepared transactions stay.
			f.p.Close()
			f.open()
			if n := f.p.PreparedCount(); n != 3 {
				t.Fatalf("PreparedCount after restart %d, want 3", n)
			}
			got := map[string]string{}
			for _, r := range f.p.ResolveOnce(ctx, true) {
				got[r.TxnID] = r.Outcome
			}
			want := map[string]string{"c1": participant.ResolvedCommitted, "a1": participant.ResolvedRolledBack, "p1": participant.ResolvedPending}
			for id, w := range want {
				if got[id] != w {
					t.Errorf("%s: resolved %q, want %q (all: %v)", id, got[id], w, got)
				}
			}
			if a, b, c := f.balance("alice"), f.balance("bob"), f.balance("carol"); a != 90 || b != 100 || c != 100 {
				t.Fatalf("balances %d %d %d, want 90 100 100", a, b, c)
			}
			for id, w := range map[string]participant.State{"c1": participant.StateCommitted, "a1": participant.StateAborted, "p1": participant.StatePrepared} {
				if s, err := f.p.Status(ctx, id); err != nil || s != w {
					t.Errorf("status %s: %q %v, want %q", id, s, err, w)
				}
			}
			// A bare 404 is not the coordinator's answer: never a reason to roll back.
			co.set("p1", "bare404")
			if r := f.p.ResolveOnce(ctx, true); len(r) != 1 || r[0].Outcome != participant.ResolvedPending {
				t.Fatalf("bare 404: %+v", r)
			}
			// A round that is not the first asks only about transactions in doubt
			// (InDoubtAfter is 30s by default): p1 is not, so nobody is asked.
			co.set("p1", "committed")
			before := co.asked["p1"]
			if r := f.p.ResolveOnce(ctx, false); len(r) != 0 || co.asked["p1"] != before {
				t.Fatalf("a round asked about a transaction not in doubt: %+v", r)
			}
			if r := f.p.ResolveOnce(ctx, true); len(r) != 1 || r[0].Outcome != participant.ResolvedCommitted {
				t.Fatalf("p1 once the coordinator has committed it: %+v", r)
			}
			if c := f.balance("carol"); c != 90 {
				t.Fatalf("carol %d, want 90", c)
			}
			if g := f.prepared(); len(g) != 0 {
				t.Fatalf("left prepared: %v", g)
			}
		})
	}
}

// TestInDoubtAfter: with a short InDoubtAfter, Run's periodic rounds finish a
// transaction whose phase 2 never comes.
func TestRunResolvesInDoubt(t *testing.T) {
	for _, k := range kinds {
		t.Run(k.name, func(t *testing.T) {
			co := newTestCoordinator(t)
			f := newFixture(t, k.dsn, func(c *sqlpart.Config) {
				c.InDoubtAfter = 1e6 // 1ms
				c.ResolveInterval = 20e6
				c.Coordinator = co.srv.URL // the prepare names none: the fallback is asked
			})
			co.set("d1", "committed")
			ctx, cancel := context.WithCancel(context.Background())
			var wg sync.WaitGroup
			defer func() { cancel(); wg.Wait() }()
			if v := f.p.Prepare(ctx, "d1", "", f.move("alice", 7)); !v.ACK {
				t.Fatal(v.Reason)
			}
			wg.Add(1)
			go func() { defer wg.Done(); f.p.Run(ctx) }()
			eventually(t, "d1 committed by the resolver", func() bool {
				s, _ := f.p.Status(context.Background(), "d1")
				return s == participant.StateCommitted
			})
			if a := f.balance("alice"); a != 107 {
				t.Fatalf("alice %d, want 107", a)
			}
		})
	}
}

// TestLostConnectionAfterPrepare: the database connection that prepared a transaction
// is killed (pg_terminate_backend) after the ACK; the transaction stays prepared, and
// the commit that follows succeeds on another connection. Nothing rolls it back.
func TestLostConnectionAfterPrepare(t *testing.T) {
	app := unique("sqlpart_lost_")
	f := newFixture(t, pgDSN, func(c *sqlpart.Config) { c.DSN = pgDSN + "&application_name=" + app })
	ctx := context.Background()
	if v := f.p.Prepare(ctx, "l1", "", f.move("bob", 25)); !v.ACK {
		t.Fatal(v.Reason)
	}
	var killed int
	if err := f.admin.QueryRow("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = $1", app).Scan(&killed); err != nil {
		t.Fatal(err)
	}
	if killed == 0 {
		t.Fatal("no backend of the participant to kill")
	}
	eventually(t, "the backends to be gone", func() bool {
		var n int
		_ = f.admin.QueryRow("SELECT count(*) FROM pg_stat_activity WHERE application_name = $1", app).Scan(&n)
		return n == 0
	})
	t.Logf("killed %d backend(s) of the participant after its ACK", killed)
	if g := f.prepared(); len(g) != 1 || g[0] != f.p.GID("l1") {
		t.Fatalf("after the kill, prepared %v, want [%s]", g, f.p.GID("l1"))
	}
	if s, err := f.p.Status(ctx, "l1"); err != nil || s != participant.StatePrepared {
		t.Fatalf("status after the kill: %q %v", s, err)
	}
	if r := f.p.Commit(ctx, "l1"); r.Err != nil || r.State != participant.StateCommitted || r.Conflict {
		t.Fatalf("commit after the kill: %+v", r)
	}
	if b := f.balance("bob"); b != 125 {
		t.Fatalf("bob %d, want 125", b)
	}
	_ = sqlpart.PostgreSQL
}

// TestLostConnectionBeforePrepare: the connection running a transaction's statements
// is killed before the prepare; the vote is NACK and nothing is left prepared or
// changed.
func TestLostConnectionBeforePrepare(t *testing.T) {
	app := unique("sqlpart_lostbefore_")
	f := newFixture(t, pgDSN, func(c *sqlpart.Config) { c.DSN = pgDSN + "&application_name=" + app })
	payload, _ := json.Marshal(sqlpart.Payload{Statements: []sqlpart.Statement{
		{SQL: "UPDATE " + f.account + " SET balance = balance + 1 WHERE id = 'bob'"},
		{SQL: "SELECT pg_sleep(60)"},
	}})
	votes := make(chan participant.Vote, 1)
	go func() { votes <- f.p.Prepare(context.Background(), "lb1", "", payload) }()
	eventually(t, "the transaction to be sleeping in its second statement", func() bool {
		var n int
		_ = f.admin.QueryRow("SELECT count(*) FROM pg_stat_activity WHERE application_name = $1 AND query LIKE 'SELECT pg_sleep%'", app).Scan(&n)
		return n == 1
	})
	if _, err := f.admin.Exec("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1 AND query LIKE 'SELECT pg_sleep%'", app); err != nil {
		t.Fatal(err)
	}
	v := <-votes
	if v.ACK {
		t.Fatal("ACK after the connection was lost before the prepare")
	}
	t.Logf("NACK %s", v.Reason)
	if s, err := f.p.Status(context.Background(), "lb1"); err != nil || s != participant.StateUnknown {
		t.Fatalf("status %q %v, want unknown", s, err)
	}
	if g := f.prepared(); len(g) != 0 {
		t.Fatalf("left prepared: %v", g)
	}
	if b := f.balance("bob"); b != 100 {
		t.Fatalf("bob %d, want 100", b)
	}
}

// TestLostParkedConnectionAfterPrepare: on MariaDB the session that prepared a
// transaction is kept for its phase 2; it is killed (KILL CONNECTION) after the ACK.
// The transaction stays prepared, and the commit that follows succeeds on another
// connection. Nothing rolls it back.
func TestLostParkedConnectionAfterPrepare(t *testing.T) {
	f := newFixture(t, myDSN, nil)
	ctx := context.Background()
	if v := f.p.Prepare(ctx, "k1", "", f.move("bob", 25)); !v.ACK {
		t.Fatal(v.Reason)
	}
	sid, ok := f.p.ParkedSessionID(f.p.GID("k1"))
	if !ok {
		t.Fatal("the session that prepared k1 is not kept for its phase 2")
	}
	if _, err := f.admin.Exec(fmt.Sprintf("KILL CONNECTION %d", sid)); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the killed session to be gone", func() bool {
		var n int
		_ = f.admin.QueryRow("SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE ID = ?", sid).Scan(&n)
		return n == 0
	})
	if g := f.prepared(); len(g) != 1 || g[0] != f.p.GID("k1") {
		t.Fatalf("after the kill, prepared %v, want [%s]", g, f.p.GID("k1"))
	}
	if s, err := f.p.Status(ctx, "k1"); err != nil || s != participant.StatePrepared {
		t.Fatalf("status after the kill: %q %v", s, err)
	}
	if r := f.p.Commit(ctx, "k1"); r.Err != nil || r.State != participant.StateCommitted || r.Conflict {
		t.Fatalf("commit after the kill: %+v", r)
	}
	if b := f.balance("bob"); b != 125 {
		t.Fatalf("bob %d, want 125", b)
	}
	if n := f.p.ParkedCount(); n != 0 {
		t.Fatalf("%d connections still parked", n)
	}
	if r := f.p.Commit(ctx, "k1"); r.Err != nil || r.State != participant.StateCommitted || r.Conflict {
		t.Fatalf("repeated commit: %+v", r)
	}
}

// TestParkedBound: on MariaDB at most half the pool is kept for phase 2; a prepare
// beyond that closes its connection and awaits its session's end before the ACK, as
// before. Both kinds commit.
func TestParkedBound(t *testing.T) {
	f := newFixture(t, myDSN, func(c *sqlpart.Config) { c.PoolConnsMax = 2 })
	ctx := context.Background()
	if v := f.p.Prepare(ctx, "b1", "", f.move("alice", 1)); !v.ACK {
		t.Fatal(v.Reason)
	}
	if v := f.p.Prepare(ctx, "b2", "", f.move("bob", 2)); !v.ACK {
		t.Fatal(v.Reason)
	}
	_, parked1 := f.p.ParkedSessionID(f.p.GID("b1"))
	_, parked2 := f.p.ParkedSessionID(f.p.GID("b2"))
	if !parked1 || parked2 || f.p.ParkedCount() != 1 {
		t.Fatalf("parked: b1 %v, b2 %v, count %d; want only b1", parked1, parked2, f.p.ParkedCount())
	}
	for _, id := range []string{"b2", "b1"} {
		if r := f.p.Commit(ctx, id); r.Err != nil || r.State != participant.StateCommitted || r.Conflict {
			t.Fatalf("commit %s: %+v", id, r)
		}
	}
	if a, b := f.balance("alice"), f.balance("bob"); a != 101 || b != 102 {
		t.Fatalf("alice %d, bob %d; want 101, 102", a, b)
	}
	if g := f.prepared(); len(g) != 0 || f.p.ParkedCount() != 0 {
		t.Fatalf("left prepared %v, parked %d", g, f.p.ParkedCount())
	}
}
