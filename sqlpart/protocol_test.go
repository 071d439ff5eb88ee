package sqlpart_test

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dtc-project/dtc/participant"
	"github.com/dtc-project/dtc/sqlpart"
)

// httpPart drives a fixture's participant through NewHandler, as dtc would.
type httpPart struct {
	t   *testing.T
	srv *httptest.Server
}

func serve(t *testing.T, p *sqlpart.Participant) *httpPart {
	srv := httptest.NewServer(sqlpart.NewHandler(p, sqlpart.HandlerOptions{}))
	t.Cleanup(srv.Close)
	return &httpPart{t: t, srv: srv}
}

func (h *httpPart) post(endpoint string, body any) (int, string) {
	h.t.Helper()
	b, _ := json.Marshal(body)
	resp, err := http.Post(h.srv.URL+"/"+endpoint, "application/json", bytes.NewReader(b))
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, strings.TrimSpace(string(out))
}

func (h *httpPart) prepare(id string, payload json.RawMessage) participant.VoteResponse {
	h.t.Helper()
	code, body := h.post("prepare", participant.PrepareRequest{TxnID: id, Payload: payload})
	if code != 200 {
		h.t.Fatalf("prepare %s: %d %s", id, code, body)
	}
	var v participant.VoteResponse
	if err := json.Unmarshal([]byte(body), &v); err != nil {
		h.t.Fatal(err)
	}
	return v
}

// phase2 returns "200 committed", "409 aborted", ….
func (h *httpPart) phase2(endpoint, id string) string {
	h.t.Helper()
	code, body := h.post(endpoint, participant.TxnRequest{TxnID: id})
	var s participant.StateResponse
	_ = json.Unmarshal([]byte(body), &s)
	if s.State == "" {
		return fmt.Sprintf("%d %s", code, body)
	}
	return fmt.Sprintf("%d %s", code, s.State)
}

func (h *httpPart) status(id string) string {
	h.t.Helper()
	resp, err := http.Get(h.srv.URL + "/status?txn_id=" + id)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	var s participant.StateResponse
	_ = json.NewDecoder(resp.Body).Decode(&s)
	return string(s.State)
}

func vote(v participant.VoteResponse) string {
	if v.Vote == participant.VoteACK {
		return "ACK"
	}
	return "NACK " + v.Reason
}

func TestProtocol(t *testing.T) {
	for _, k := range kinds {
		t.Run(k.name, func(t *testing.T) {
			f := newFixture(t, k.dsn, nil)
			h := serve(t, f.p)
			steps := []struct{ call, id, payload, want string }{
				// prepared, repeated, committed, repeated
				{"status", "t1", "", "unknown"},
				{"prepare", "t1", "alice-10", "ACK"},
				{"status", "t1", "", "prepared"},
				{"prepare", "t1", "alice-10", "ACK"},
				{"prepare", "t1", "alice-20", "NACK"},
				{"commit", "t1", "", "200 committed"},
				{"commit", "t1", "", "200 committed"},
				{"status", "t1", "", "committed"},
				{"prepare", "t1", "alice-10", "ACK"},
				{"rollback", "t1", "", "409 committed"},
				// prepared, rolled back, then commit is a conflict and a prepare is fenced
				{"prepare", "t2", "bob-5", "ACK"},
				{"rollback", "t2", "", "200 aborted"},
				{"rollback", "t2", "", "200 aborted"},
				{"status", "t2", "", "aborted"},
				{"commit", "t2", "", "409 aborted"},
				{"prepare", "t2", "bob-5", "NACK"},
				// rollback before any prepare fences the late prepare
				{"rollback", "t3", "", "200 aborted"},
				{"prepare", "t3", "bob-7", "NACK"},
				{"status", "t3", "", "aborted"},
				// commit of a transaction never prepared
				{"commit", "t4", "", "409 unknown"},
				{"status", "t4", "", "unknown"},
			}
			payloads := map[string]json.RawMessage{
				"alice-10": f.move("alice", -10), "alice-20": f.move("alice", -20), "bob-5": f.move("bob", 5), "bob-7": f.move("bob", 7),
			}
			for i, s := range steps {
				var got string
				switch s.call {
				case "prepare":
					got = vote(h.prepare(s.id, payloads[s.payload]))
					if strings.HasPrefix(got, "NACK") && s.want == "NACK" {
						t.Logf("step %d: %s %s: %s", i, s.call, s.id, got)
						got = "NACK"
					}
				case "commit", "rollback":
					got = h.phase2(s.call, s.id)
				case "status":
					got = h.status(s.id)
				}
				if got != s.want {
					t.Fatalf("step %d: %s %s: got %q, want %q", i, s.call, s.id, got, s.want)
				}
			}
			if a, b := f.balance("alice"), f.balance("bob"); a != 90 || b != 100 {
				t.Fatalf("balances alice %d bob %d, want 90 100 (only t1 committed)", a, b)
			}
			if g := f.prepared(); len(g) != 0 {
				t.Fatalf("left prepared: %v", g)
			}
		})
	}
}

// TestNACKs: statement errors, constraint violations, a wrong row count, a timeout and
// a malformed payload are NACK with the database's (or the bound's) message, and leave
// nothing prepared and nothing changed.
func TestNACKs(t *testing.T) {
	for _, k := range kinds {
		t.Run(k.name, func(t *testing.T) {
			f := newFixture(t, k.dsn, func(c *sqlpart.Config) {
				c.StatementTimeout = 2 * time.Second // short enough for the sleep to hit it, long enough for a loaded machine
				c.StatementsMax = 3
			})
			sleep := "SELECT pg_sleep(30)"
			if !isPG(k.dsn) {
				sleep = "SELECT SLEEP(30)"
			}
			stmts := func(ss ...sqlpart.Statement) json.RawMessage {
				b, _ := json.Marshal(sqlpart.Payload{Statements: ss})
				return b
			}
			upd := fmt.Sprintf("UPDATE %s SET balance = balance + %s WHERE id = %s", f.account, f.ph(1), f.ph(2))
			cases := []struct {
				name    string
				payload json.RawMessage
				want    []string // all of these in the reason, case-insensitive
			}{
				{"syntax", stmts(sqlpart.Statement{SQL: "UPDAT " + f.account + " SET x = 1"}), []string{"statement 1", "syntax"}},
				{"no such table", stmts(sqlpart.Statement{SQL: "UPDATE no_such_table_sqlpart SET x = 1"}), []string{"statement 1", "no_such_table_sqlpart"}},
				{"check constraint", stmts(
					sqlpart.Statement{SQL: upd, Args: []json.RawMessage{[]byte("5"), []byte(`"bob"`)}},
					sqlpart.Statement{SQL: upd, Args: []json.RawMessage{[]byte("-1000"), []byte(`"alice"`)}},
				), []string{"statement 2", "_nonneg"}},
				{"duplicate key", stmts(sqlpart.Statement{SQL: "INSERT INTO " + f.account + " VALUES ('alice', 1)"}), []string{"statement 1", "duplicate"}},
				{"row count", stmts(sqlpart.Statement{SQL: upd, Args: []json.RawMessage{[]byte("5"), []byte(`"nobody"`)}, Rows: ptr(int64(1))}), []string{"affected 0 rows, want 1"}},
				{"timeout", stmts(sqlpart.Statement{SQL: upd, Args: []json.RawMessage{[]byte("5"), []byte(`"bob"`)}}, sqlpart.Statement{SQL: sleep}), []string{"statement 2", "time"}}, // PostgreSQL: "statement timeout"; MariaDB: "max_statement_time exceeded"
				{"too many statements", stmts(sqlpart.Statement{SQL: "SELECT 1"}, sqlpart.Statement{SQL: "SELECT 1"}, sqlpart.Statement{SQL: "SELECT 1"}, sqlpart.Statement{SQL: "SELECT 1"}), []string{"4 statements, at most 3"}},
				{"not json", json.RawMessage(`"UPDATE x"`), []string{"bad payload"}},
				{"object arg", stmts(sqlpart.Statement{SQL: "SELECT 1", Args: []json.RawMessage{[]byte(`{"a":1}`)}}), []string{"arrays and objects"}},
			}
			for _, c := range cases {
				v := f.p.Prepare(context.Background(), "nack-"+c.name, "", c.payload)
				if v.ACK {
					t.Fatalf("%s: ACK, want NACK", c.name)
				}
				for _, w := range c.want {
					if !strings.Contains(strings.ToLower(v.Reason), strings.ToLower(w)) {
						t.Errorf("%s: reason %q does not say %q", c.name, v.Reason, w)
					}
				}
				t.Logf("%s: NACK %s", c.name, v.Reason)
				if s, err := f.p.Status(context.Background(), "nack-"+c.name); err != nil || s != participant.StateUnknown {
					t.Errorf("%s: status %q %v, want unknown", c.name, s, err)
				}
			}
			if a, b := f.balance("alice"), f.balance("bob"); a != 100 || b != 100 {
				t.Fatalf("balances alice %d bob %d, want 100 100", a, b)
			}
			if g := f.prepared(); len(g) != 0 {
				t.Fatalf("left prepared: %v", g)
			}
			// After all these failures the pool still works.
			if v := f.p.Prepare(context.Background(), "after", "", f.move("bob", 1)); !v.ACK {
				t.Fatalf("prepare after the NACKs: %s", v.Reason)
			}
			if r := f.p.Commit(context.Background(), "after"); r.Err != nil || r.State != participant.StateCommitted {
				t.Fatalf("commit: %+v", r)
			}
		})
	}
}

// TestPreparedMax: beyond PreparedMax a prepare is NACKed; a decision frees a slot.
func TestPreparedMax(t *testing.T) {
	for _, k := range kinds {
		t.Run(k.name, func(t *testing.T) {
			f := newFixture(t, k.dsn, func(c *sqlpart.Config) { c.PreparedMax = 2 })
			ctx := context.Background()
			// Each on its own account: a prepared transaction keeps its row locks.
			for id, acct := range map[string]string{"m1": "bob", "m2": "alice"} {
				if v := f.p.Prepare(ctx, id, "", f.move(acct, 1)); !v.ACK {
					t.Fatalf("%s: %s", id, v.Reason)
				}
			}
			v := f.p.Prepare(ctx, "m3", "", f.move("bob", 1))
			if v.ACK || !strings.Contains(v.Reason, "too many prepared transactions (at most 2)") {
				t.Fatalf("third prepare: %+v", v)
			}
			if r := f.p.Rollback(ctx, "m1"); r.State != participant.StateAborted || r.Err != nil {
				t.Fatalf("rollback: %+v", r)
			}
			if v := f.p.Prepare(ctx, "m4", "", f.move("bob", 1)); !v.ACK {
				t.Fatalf("m4 after a slot was freed: %s", v.Reason)
			}
			for _, id := range []string{"m2", "m4"} {
				if r := f.p.Commit(ctx, id); r.State != participant.StateCommitted {
					t.Fatalf("commit %s: %+v", id, r)
				}
			}
			if a, b := f.balance("alice"), f.balance("bob"); a != 101 || b != 101 {
				t.Fatalf("alice %d bob %d, want 101 101", a, b)
			}
		})
	}
}

// TestInDoubtHeader: while Run runs, answers say the participant asks the coordinator
// about its transactions in doubt (so dtc may keep begin records lazy), except a
// prepare's that names no coordinator when none is configured; without Run, none do.
func TestInDoubtHeader(t *testing.T) {
	f := newFixture(t, pgDSN, nil)
	h := serve(t, f.p)
	ask := func(endpoint string, body any) string {
		t.Helper()
		b, _ := json.Marshal(body)
		resp, err := http.Post(h.srv.URL+"/"+endpoint, "application/json", bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.Header.Get(participant.HeaderInDoubt)
	}
	withCoord := participant.PrepareRequest{TxnID: "h1", Payload: f.move("alice", 1), Coordinator: "http://127.0.0.1:1"}
	if got := ask("prepare", withCoord); got != "" {
		t.Fatalf("without Run: %s %q", participant.HeaderInDoubt, got)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer func() { cancel(); wg.Wait() }()
	wg.Go(func() { f.p.Run(ctx) })
	eventually(t, "Run to start", f.p.Asks)
	if got := ask("rollback", participant.TxnRequest{TxnID: "h1"}); got != participant.InDoubtAsk {
		t.Fatalf("rollback with Run: %s %q", participant.HeaderInDoubt, got)
	}
	withCoord.TxnID = "h2"
	if got := ask("prepare", withCoord); got != participant.InDoubtAsk {
		t.Fatalf("prepare naming a coordinator, with Run: %s %q", participant.HeaderInDoubt, got)
	}
	if got := ask("commit", participant.TxnRequest{TxnID: "h2"}); got != participant.InDoubtAsk {
		t.Fatalf("commit with Run: %s %q", participant.HeaderInDoubt, got)
	}
	if got := ask("prepare", participant.PrepareRequest{TxnID: "h3", Payload: f.move("alice", 1)}); got != "" {
		t.Fatalf("prepare naming no coordinator: %s %q", participant.HeaderInDoubt, got)
	}
	if r := f.p.Rollback(context.Background(), "h3"); r.Err != nil {
		t.Fatal(r.Err)
	}
}

// TestMariaDBRowInsideTheTransaction: on MariaDB a new transaction's row is written
// inside the XA transaction, already 'committed': while prepared, a read of committed
// data finds no row (nothing was committed before the transaction, so no log flush of
// its own) and a read of uncommitted data finds it; once committed it is there for
// everyone; rolled back, it is gone and the rollback's fence says 'aborted'.
func TestMariaDBRowInsideTheTransaction(t *testing.T) {
	f := newFixture(t, myDSN, nil)
	ctx := context.Background()
	rows := func(isolation sql.IsolationLevel, gid string) []string {
		t.Helper()
		tx, err := f.admin.BeginTx(ctx, &sql.TxOptions{Isolation: isolation, ReadOnly: true})
		if err != nil {
			t.Fatal(err)
		}
		defer tx.Rollback()
		r, err := tx.QueryContext(ctx, "SELECT state FROM "+f.table+" WHERE gid = ?", gid)
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		var out []string
		for r.Next() {
			var s string
			if err := r.Scan(&s); err != nil {
				t.Fatal(err)
			}
			out = append(out, s)
		}
		return out
	}
	for _, commit := range []bool{true, false} {
		id := fmt.Sprintf("inside-%v", commit)
		gid := f.p.GID(id)
		if v := f.p.Prepare(ctx, id, "", f.move("alice", -1)); !v.ACK {
			t.Fatalf("prepare %s: %s", id, v.Reason)
		}
		if got := fmt.Sprint(rows(sql.LevelReadCommitted, gid)); got != "[]" {
			t.Fatalf("%s prepared: committed rows %s, want none", id, got)
		}
		if got := fmt.Sprint(rows(sql.LevelReadUncommitted, gid)); got != "[committed]" {
			t.Fatalf("%s prepared: uncommitted rows %s, want [committed]", id, got)
		}
		want := "[committed]"
		if commit {
			if r := f.p.Commit(ctx, id); r.Err != nil || r.State != participant.StateCommitted {
				t.Fatalf("commit %s: %+v", id, r)
			}
		} else {
			want = "[aborted]"
			if r := f.p.Rollback(ctx, id); r.Err != nil || r.State != participant.StateAborted {
				t.Fatalf("rollback %s: %+v", id, r)
			}
		}
		if got := fmt.Sprint(rows(sql.LevelReadCommitted, gid)); got != want {
			t.Fatalf("%s finished: rows %s, want %s", id, got, want)
		}
	}
	if a := f.balance("alice"); a != 99 {
		t.Fatalf("alice %d, want 99", a)
	}
}
