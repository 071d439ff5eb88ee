package main

// Tests against real processes and the real databases of the machine: the dtc-sql and
// dtc binaries, built once in TestMain into a temporary directory, on loopback ports,
// killed with SIGKILL at chosen points. A proxy in the test process can hold a
// participant's commits, so that a kill lands between prepare and commit without timing
// games. Every wait is a bounded poll. Each test creates and drops its own tables.

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	_ "github.com/go-sql-driver/mysql"
	_ "github.com/jackc/pgx/v5/stdlib"

	"github.com/dtc-project/dtc/client"
	"github.com/dtc-project/dtc/participant"
	"github.com/dtc-project/dtc/sqlpart"
)

var binDir string

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

var (
	pgDSN = envOr("DTC_TEST_PG_DSN", "postgres://postgres@127.0.0.1:5432/test?sslmode=disable")
	myDSN = envOr("DTC_TEST_MYSQL_DSN", "mysql://root@127.0.0.1:3306/test")
)

var (
	namesMu sync.Mutex
	names   = map[string]string{} // participant name → DSN, for the final check
)

func TestMain(m *testing.M) {
	code := func() int {
		dir, err := os.MkdirTemp("", "dtc-sql-test-bin-")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer os.RemoveAll(dir)
		build := exec.Command("go", "build", "-o", dir+string(os.PathSeparator),
			"github.com/dtc-project/dtc/cmd/dtc", "github.com/dtc-project/dtc/cmd/dtc-sql")
		build.Stdout, build.Stderr = os.Stderr, os.Stderr
		if err := build.Run(); err != nil {
			fmt.Fprintln(os.Stderr, "building the binaries:", err)
			return 1
		}
		binDir = dir
		code := m.Run()
		if err := checkNoneLeft(); err != nil {
			fmt.Fprintln(os.Stderr, "FAIL:", err)
			code = 1
		}
		return code
	}()
	os.Exit(code)
}

// checkNoneLeft: no transaction prepared by a participant of these tests is left.
func checkNoneLeft() error {
	namesMu.Lock()
	defer namesMu.Unlock()
	for name, dsn := range names {
		cfg := sqlpart.DefaultConfig()
		cfg.DSN, cfg.Name = dsn, name
		cfg.Table = "sqlpart_check_" + hex.EncodeToString([]byte(name))[:8]
		p, err := sqlpart.Open(context.Background(), cfg)
		if err != nil {
			return err
		}
		db := openDB(nil, dsn)
		gids, err := listPrepared(db, dsn, p.GIDPrefix())
		_, _ = db.Exec("DROP TABLE IF EXISTS " + cfg.Table)
		db.Close()
		p.Close()
		if err != nil {
			return err
		}
		if len(gids) > 0 {
			return fmt.Errorf("prepared transactions of %s left in %s: %v", name, dsn, gids)
		}
	}
	return nil
}

func isPG(dsn string) bool { return strings.HasPrefix(dsn, "postgres") }

func openDB(t testing.TB, dsn string) *sql.DB {
	driver, d := "pgx", dsn
	if !isPG(dsn) {
		driver = "mysql"
		u, _ := url.Parse(dsn)
		d = u.User.String() + "@tcp(" + u.Host + ")" + u.Path
	}
	db, err := sql.Open(driver, d)
	if err == nil {
		err = db.Ping()
	}
	if err != nil {
		msg := fmt.Sprintf("the test database %s is not answering (%v); start it (see .ci/run)", dsn, err)
		if t == nil {
			panic(msg)
		}
		t.Fatal(msg)
	}
	if t != nil {
		t.Cleanup(func() { db.Close() })
	}
	return db
}

func listPrepared(db *sql.DB, dsn, prefix string) ([]string, error) {
	var out []string
	if isPG(dsn) {
		rows, err := db.Query("SELECT gid FROM pg_prepared_xacts WHERE left(gid, $1) = $2", len(prefix), prefix)
		if err != nil {
			return nil, err
		}
		defer rows.Close()
		for rows.Next() {
			var g string
			if err := rows.Scan(&g); err != nil {
				return nil, err
			}
			out = append(out, g)
		}
		return out, rows.Err()
	}
	rows, err := db.Query("XA RECOVER")
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var f, gl, bl int
		var data string
		if err := rows.Scan(&f, &gl, &bl, &data); err != nil {
			return nil, err
		}
		if strings.HasPrefix(data, prefix) {
			out = append(out, data)
		}
	}
	return out, rows.Err()
}

// gidPrefix is sqlpart's gid prefix for a participant name (see package sqlpart).
func gidPrefix(name string) string {
	h := sha256.Sum256([]byte(name))
	return "dtc_" + hex.EncodeToString(h[:4]) + "_"
}

func unique(prefix string) string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return prefix + hex.EncodeToString(b)
}

const (
	waitDeadline = 60 * time.Second
	pollEvery    = 20 * time.Millisecond
)

func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitDeadline)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up after %v waiting for: %s", waitDeadline, what)
		}
		time.Sleep(pollEvery)
	}
}

func freeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// proc is a process the test started; its output is shown if the test fails.
type proc struct {
	t    testing.TB
	name string
	bin  string
	args []string
	cmd  *exec.Cmd
	out  *syncBuffer
	done chan struct{}
}

func startProc(t testing.TB, name, bin string, args ...string) *proc {
	t.Helper()
	p := &proc{t: t, name: name, bin: bin, args: args, out: &syncBuffer{}}
	p.start()
	t.Cleanup(func() {
		p.kill()
		if t.Failed() {
			t.Logf("--- output of %s ---\n%s", p.name, p.out.String())
		}
	})
	return p
}

func (p *proc) start() {
	p.t.Helper()
	p.cmd = exec.Command(filepath.Join(binDir, p.bin), p.args...)
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	fmt.Fprintf(p.out, "=== start %s %s\n", p.bin, strings.Join(p.args, " "))
	if err := p.cmd.Start(); err != nil {
		p.t.Fatalf("starting %s: %v", p.name, err)
	}
	done := make(chan struct{})
	p.done = done
	cmd := p.cmd
	go func() {
		_ = cmd.Wait()
		close(done)
	}()
}

// kill sends SIGKILL and waits for the process to be gone.
func (p *proc) kill() {
	if p.cmd == nil {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
	fmt.Fprintf(p.out, "=== killed\n")
	p.cmd = nil
}

// sqlNode is a dtc-sql process on one database, with an accounts table of its own.
type sqlNode struct {
	*proc
	t       testing.TB
	dsn     string
	addr    string
	url     string // base URL
	db      *sql.DB
	account string
	name    string
}

func startSQL(t testing.TB, dsn string, extra ...string) *sqlNode {
	t.Helper()
	n := &sqlNode{t: t, dsn: dsn, addr: freeAddr(t), db: openDB(t, dsn), account: unique("dtcsql_acct_"), name: unique("dtcsql-")}
	n.url = "http://" + n.addr
	table := unique("dtcsql_txns_")
	if _, err := n.db.Exec("CREATE TABLE " + n.account + " (id VARCHAR(32) PRIMARY KEY, balance BIGINT NOT NULL, CONSTRAINT " + n.account + "_nonneg CHECK (balance >= 0))"); err != nil {
		t.Fatal(err)
	}
	if _, err := n.db.Exec("INSERT INTO " + n.account + " VALUES ('alice', 100), ('bob', 100)"); err != nil {
		t.Fatal(err)
	}
	namesMu.Lock()
	names[n.name] = dsn
	namesMu.Unlock()
	t.Cleanup(func() {
		for _, tb := range []string{n.account, table} {
			if _, err := n.db.Exec("DROP TABLE IF EXISTS " + tb); err != nil {
				t.Errorf("dropping %s: %v", tb, err)
			}
		}
	})
	args := append([]string{"--listen", n.addr, "--dsn", dsn, "--name", n.name, "--table", table, "--log-level", "debug"}, extra...)
	n.proc = startProc(t, "dtc-sql "+n.name, "dtc-sql", args...)
	t.Cleanup(func() { n.rollbackLeftovers() }) // runs before the process is killed and the tables dropped
	n.waitUp()
	return n
}

// rollbackLeftovers rolls back what a failed test left prepared.
func (n *sqlNode) rollbackLeftovers() {
	if !n.t.Failed() {
		return
	}
	cfg := sqlpart.DefaultConfig()
	cfg.Name = n.name
	p, err := sqlpart.Open(context.Background(), func() sqlpart.Config { cfg.DSN = n.dsn; cfg.Table = "sqlpart_check_x"; return cfg }())
	if err != nil {
		return
	}
	defer p.Close()
	gids, _ := listPrepared(n.db, n.dsn, p.GIDPrefix())
	for _, g := range gids {
		q := "ROLLBACK PREPARED '" + g + "'"
		if !isPG(n.dsn) {
			q = "XA ROLLBACK '" + g + "'"
		}
		_, _ = n.db.Exec(q)
	}
	_, _ = n.db.Exec("DROP TABLE IF EXISTS sqlpart_check_x")
}

func (n *sqlNode) waitUp() {
	n.t.Helper()
	eventually(n.t, n.name+" answers /healthz", func() bool {
		resp, err := http.Get(n.url + "/healthz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
}

func (n *sqlNode) restart() {
	n.kill()
	n.start()
	n.waitUp()
}

func (n *sqlNode) ph(i int) string {
	if isPG(n.dsn) {
		return fmt.Sprintf("$%d", i)
	}
	return "?"
}

// move is the payload that adds amount to account id, exactly one row.
func (n *sqlNode) move(id string, amount int64) json.RawMessage {
	b, _ := json.Marshal(sqlpart.Payload{Statements: []sqlpart.Statement{{
		SQL:  fmt.Sprintf("UPDATE %s SET balance = balance + %s WHERE id = %s", n.account, n.ph(1), n.ph(2)),
		Args: []json.RawMessage{json.RawMessage(fmt.Sprint(amount)), json.RawMessage(`"` + id + `"`)},
		Rows: func() *int64 { one := int64(1); return &one }(),
	}}})
	return b
}

func (n *sqlNode) balance(id string) int64 {
	n.t.Helper()
	var b int64
	if err := n.db.QueryRow("SELECT balance FROM "+n.account+" WHERE id = "+n.ph(1), id).Scan(&b); err != nil {
		n.t.Fatal(err)
	}
	return b
}

func (n *sqlNode) post(endpoint string, body any) (int, []byte) {
	n.t.Helper()
	b, _ := json.Marshal(body)
	resp, err := http.Post(n.url+"/"+endpoint, "application/json", bytes.NewReader(b))
	if err != nil {
		n.t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, out
}

func (n *sqlNode) status(id string) string {
	resp, err := http.Get(n.url + "/status?txn_id=" + url.QueryEscape(id))
	if err != nil {
		return err.Error()
	}
	defer resp.Body.Close()
	var s participant.StateResponse
	_ = json.NewDecoder(resp.Body).Decode(&s)
	return string(s.State)
}

var kinds = []struct{ name, dsn string }{{"postgresql", pgDSN}, {"mariadb", myDSN}}

// TestKill9BetweenPrepareAndCommit: dtc-sql ACKs a prepare, is killed with SIGKILL,
// restarts, and the commit that follows commits: the prepared transaction lived in the
// database, not in the process.
func TestKill9BetweenPrepareAndCommit(t *testing.T) {
	for _, k := range kinds {
		t.Run(k.name, func(t *testing.T) {
			n := startSQL(t, k.dsn)
			code, body := n.post("prepare", participant.PrepareRequest{TxnID: "k1", Payload: n.move("alice", -40)})
			if code != 200 || !strings.Contains(string(body), `"ACK"`) {
				t.Fatalf("prepare: %d %s", code, body)
			}
			n.restart()
			if s := n.status("k1"); s != "prepared" {
				t.Fatalf("status after kill -9 and restart: %q, want prepared", s)
			}
			code, body = n.post("commit", participant.TxnRequest{TxnID: "k1"})
			if code != 200 || !strings.Contains(string(body), "committed") {
				t.Fatalf("commit after restart: %d %s", code, body)
			}
			if a := n.balance("alice"); a != 60 {
				t.Fatalf("alice %d, want 60", a)
			}
		})
	}
}

// TestKill9ThenResolverAsksCoordinator: after kill -9 and restart, with no phase 2
// coming, the restarted dtc-sql asks the coordinator its prepare named and commits.
func TestKill9ThenResolverAsksCoordinator(t *testing.T) {
	co := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := strings.TrimPrefix(r.URL.Path, "/v1/transactions/")
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]string{"id": id, "txn_id": id, "state": "committed"})
	}))
	defer co.Close()
	for _, k := range kinds {
		t.Run(k.name, func(t *testing.T) {
			n := startSQL(t, k.dsn)
			code, body := n.post("prepare", participant.PrepareRequest{TxnID: "r1", Payload: n.move("bob", 15), Coordinator: co.URL})
			if code != 200 || !strings.Contains(string(body), `"ACK"`) {
				t.Fatalf("prepare: %d %s", code, body)
			}
			n.kill()
			n.start()
			eventually(t, "the restarted dtc-sql to commit r1 on the coordinator's word", func() bool { return n.status("r1") == "committed" })
			if b := n.balance("bob"); b != 115 {
				t.Fatalf("bob %d, want 115", b)
			}
		})
	}
}

// TestMaxPreparedAboveServerLimit: dtc-sql refuses to start with a --max-prepared that
// PostgreSQL's max_prepared_transactions cannot hold, and says how to fix it.
func TestMaxPreparedAboveServerLimit(t *testing.T) {
	cmd := exec.Command(filepath.Join(binDir, "dtc-sql"), "--listen", freeAddr(t), "--dsn", pgDSN, "--max-prepared", "100000", "--table", "dtcsql_never_created")
	out, err := cmd.CombinedOutput()
	if err == nil {
		t.Fatalf("dtc-sql started with --max-prepared 100000:\n%s", out)
	}
	if !strings.Contains(string(out), "max_prepared_transactions") {
		t.Fatalf("the error does not name max_prepared_transactions:\n%s", out)
	}
	t.Logf("%s", out)
}

// --- with the real coordinator ---

type dtcNode struct {
	*proc
	url string
	cli *client.Client
}

func startDTC(t testing.TB) *dtcNode {
	t.Helper()
	addr := freeAddr(t)
	n := &dtcNode{url: "http://" + addr}
	n.proc = startProc(t, "dtc", "dtc", "serve", "--listen", addr, "--data-dir", t.TempDir(), "--log-level", "debug",
		"--retry-backoff-max", "200ms", "--recovery-timeout", "10s")
	n.cli, _ = client.New(n.url, client.Options{})
	eventually(t, "dtc is ready", func() bool { return n.cli.Ready(context.Background()) == nil })
	return n
}

// gate is a proxy in front of a participant that can hold its commits (or another
// endpoint's calls).
type gate struct {
	srv   *httptest.Server
	mu    sync.Mutex
	what  string // the endpoint held; "commit" unless set
	hold  bool
	after bool // forward the call, then hold its reply
	held  int
	open  chan struct{}
}

func newGate(t testing.TB, target string) *gate {
	u, _ := url.Parse(target)
	rp := httputil.NewSingleHostReverseProxy(u)
	g := &gate{open: make(chan struct{})}
	g.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if g.holds(r.URL.Path) {
			g.mu.Lock()
			hold, after := g.hold, g.after
			open := g.open
			g.mu.Unlock()
			if hold && after {
				rec := httptest.NewRecorder()
				rp.ServeHTTP(rec, r)
				g.mu.Lock()
				g.held++
				g.mu.Unlock()
				select {
				case <-open:
				case <-r.Context().Done():
					return
				}
				for k, v := range rec.Header() {
					w.Header()[k] = v
				}
				w.WriteHeader(rec.Code)
				_, _ = w.Write(rec.Body.Bytes())
				return
			}
			if hold {
				g.mu.Lock()
				g.held++
				g.mu.Unlock()
			}
			if hold {
				select {
				case <-open:
				case <-r.Context().Done():
					return
				}
			}
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(func() { g.release(); g.srv.Close() })
	return g
}

func (g *gate) holdCommits() { g.holdCalls("commit") }

func (g *gate) holdCalls(endpoint string) {
	g.mu.Lock()
	g.what, g.hold = endpoint, true
	g.mu.Unlock()
}

// holdReplies forwards endpoint's calls and holds their replies.
func (g *gate) holdReplies(endpoint string) {
	g.mu.Lock()
	g.what, g.hold, g.after = endpoint, true, true
	g.mu.Unlock()
}

func (g *gate) endpoint() string {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.what == "" {
		return "commit"
	}
	return g.what
}

// holds reports whether path is a call of the endpoint held. Commits and rollbacks
// also come in POST …/batch, which dtc sends to a participant that offers it, as
// dtc-sql does; the tests run one transaction at a time, so a batch held then carries
// the call they mean to hold.
func (g *gate) holds(path string) bool {
	e := g.endpoint()
	return strings.HasSuffix(path, "/"+e) ||
		(e == "commit" || e == "rollback") && strings.HasSuffix(path, "/"+participant.EndpointBatch)
}

func (g *gate) heldCount() int { g.mu.Lock(); defer g.mu.Unlock(); return g.held }

func (g *gate) release() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.hold {
		g.hold = false
		close(g.open)
	}
}

// TestWithCoordinator moves money between a PostgreSQL table and a MariaDB table with
// the real dtc: a transfer commits on both; one that would overdraw is NACKed by the
// CHECK constraint and changes neither; and one whose PostgreSQL participant is killed
// with SIGKILL between prepare and commit ends committed on both after its restart.
func TestWithCoordinator(t *testing.T) {
	d := startDTC(t)
	pg := startSQL(t, pgDSN)
	my := startSQL(t, myDSN)
	gpg := newGate(t, pg.url)
	ctx := context.Background()
	transfer := func(id string, amount int64) client.View {
		t.Helper()
		v, err := d.cli.Submit(ctx, client.Request{ID: id, Participants: []client.Participant{
			{URL: gpg.srv.URL + "/prepare", Payload: pg.move("alice", -amount)},
			{URL: my.url + "/prepare", Payload: my.move("bob", amount)},
		}})
		if err != nil {
			t.Fatalf("%s: %v", id, err)
		}
		return v
	}
	check := func(when string, pa, mb int64) {
		t.Helper()
		if a, b := pg.balance("alice"), my.balance("bob"); a != pa || b != mb {
			t.Fatalf("%s: PostgreSQL alice %d, MariaDB bob %d; want %d, %d", when, a, b, pa, mb)
		}
	}

	if v := transfer("move-30", 30); v.State != client.StateCommitted {
		t.Fatalf("move-30: %+v", v)
	}
	eventually(t, "move-30 committed at both", func() bool {
		return pg.status(firstTxnID(t, d, "move-30")) == "committed" && my.status(firstTxnID(t, d, "move-30")) == "committed"
	})
	check("after move-30", 70, 130)

	v := transfer("move-1000", 1000)
	if v.State != client.StateAborted {
		t.Fatalf("move-1000: %+v, want aborted", v)
	}
	reasons := fmt.Sprintf("%+v", v.Participants)
	if !strings.Contains(reasons, pg.account+"_nonneg") {
		t.Fatalf("move-1000's votes do not name the CHECK constraint: %s", reasons)
	}
	t.Logf("move-1000: %s", reasons)
	check("after move-1000", 70, 130)

	gpg.holdCommits()
	if v := transfer("move-25", 25); v.State != client.StateCommitted {
		t.Fatalf("move-25: %+v", v)
	}
	eventually(t, "dtc's commit to PostgreSQL to be held", func() bool { return gpg.heldCount() > 0 })
	pg.kill()
	pg.start()
	pg.waitUp()
	gpg.release()
	id := firstTxnID(t, d, "move-25")
	eventually(t, "move-25 committed at both after the restart", func() bool { return pg.status(id) == "committed" && my.status(id) == "committed" })
	check("after move-25", 45, 155)
}

// firstTxnID is the id the participants saw for the client's id.
func firstTxnID(t testing.TB, d *dtcNode, id string) string {
	t.Helper()
	resp, err := http.Get(d.url + "/v1/transactions/" + url.PathEscape(id))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var v struct {
		TxnID string `json:"txn_id"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&v)
	if v.TxnID == "" {
		t.Fatalf("dtc's view of %s has no txn_id", id)
	}
	return v.TxnID
}

// TestKill9OfDTC: dtc is killed with SIGKILL at every step of a transfer between a
// PostgreSQL and a MariaDB table, and restarted; gates in front of the participants
// hold the step. After each, both databases agree (the transfer is on both or on
// neither), dtc's outcome matches them, and nothing of the participants is left
// prepared. A transfer without a decision ends aborted (dtc's recovery, or presumed
// abort when its begin was lazy and dtc answers 404); one with a decision ends
// committed, its phase 2 repeated where it had already been done.
func TestKill9OfDTC(t *testing.T) {
	d := startDTC(t)
	pg := startSQL(t, pgDSN, "--in-doubt-after", "500ms", "--resolve-interval", "100ms")
	my := startSQL(t, myDSN, "--in-doubt-after", "500ms", "--resolve-interval", "100ms")
	ctx := context.Background()
	alice, bob := int64(100), int64(100) // expected: PostgreSQL's alice, MariaDB's bob
	steps := []struct {
		name   string
		commit bool // the step is after the decision
		// arm sets the gates in front of PostgreSQL and MariaDB; reached says the
		// step has been reached (dtc is killed then).
		arm     func(gpg, gmy *gate)
		reached func(gpg, gmy *gate, id func() string) bool
	}{{
		name: "before any prepare is sent",
		arm:  func(gpg, gmy *gate) { gpg.holdCalls("prepare"); gmy.holdCalls("prepare") },
		reached: func(gpg, gmy *gate, _ func() string) bool {
			return gpg.heldCount() > 0 && gmy.heldCount() > 0
		},
	}, {
		name: "after MariaDB prepared, PostgreSQL's prepare held",
		arm:  func(gpg, gmy *gate) { gpg.holdCalls("prepare") },
		reached: func(gpg, gmy *gate, _ func() string) bool {
			g, err := listPrepared(my.db, my.dsn, gidPrefix(my.name))
			return gpg.heldCount() > 0 && err == nil && len(g) == 1
		},
	}, {
		name: "after the decision is durable, before any commit is sent", commit: true,
		arm: func(gpg, gmy *gate) { gpg.holdCommits(); gmy.holdCommits() },
		reached: func(gpg, gmy *gate, _ func() string) bool {
			return gpg.heldCount() > 0 && gmy.heldCount() > 0
		},
	}, {
		name: "between the two commits (MariaDB committed, PostgreSQL's held)", commit: true,
		arm: func(gpg, gmy *gate) { gpg.holdCommits() },
		reached: func(gpg, gmy *gate, id func() string) bool {
			return gpg.heldCount() > 0 && my.status(id()) == "committed"
		},
	}, {
		name: "after both commits, before dtc hears them (no end record)", commit: true,
		arm: func(gpg, gmy *gate) { gpg.holdReplies("commit"); gmy.holdReplies("commit") },
		reached: func(gpg, gmy *gate, id func() string) bool {
			return gpg.heldCount() > 0 && gmy.heldCount() > 0 && pg.status(id()) == "committed" && my.status(id()) == "committed"
		},
	}}
	for i, st := range steps {
		clientID := fmt.Sprintf("kill-%d", i)
		gpg, gmy := newGate(t, pg.url), newGate(t, my.url)
		st.arm(gpg, gmy)
		var wg sync.WaitGroup
		wg.Go(func() { // its answer may never come: dtc is killed under it
			_, _ = d.cli.Submit(ctx, client.Request{ID: clientID, Participants: []client.Participant{
				{URL: gpg.srv.URL + "/prepare", Payload: pg.move("alice", -10)},
				{URL: gmy.srv.URL + "/prepare", Payload: my.move("bob", 10)},
			}})
		})
		id := func() string { return firstTxnID(t, d, clientID) }
		eventually(t, st.name+": reached", func() bool { return st.reached(gpg, gmy, id) })
		d.proc.kill()
		wg.Wait()
		d.proc.start()
		eventually(t, st.name+": dtc ready again", func() bool { return d.cli.Ready(ctx) == nil })
		gpg.release()
		gmy.release()
		want := "aborted"
		if st.commit {
			want = "committed"
			alice, bob = alice-10, bob+10
		}
		var got string
		eventually(t, st.name+": the outcome at dtc", func() bool {
			v, err := d.cli.Get(ctx, clientID)
			switch {
			case err != nil:
				got = err.Error()
				return !st.commit && strings.Contains(got, "404") // lazy begin lost: presumed abort
			case string(v.State) != want:
				got = string(v.State)
				return false
			}
			for _, p := range v.Participants {
				if !p.Acked {
					got = "phase 2 under way"
					return false
				}
			}
			got = want
			return true
		})
		eventually(t, st.name+": nothing left prepared", func() bool {
			a, err1 := listPrepared(pg.db, pg.dsn, gidPrefix(pg.name))
			b, err2 := listPrepared(my.db, my.dsn, gidPrefix(my.name))
			return err1 == nil && err2 == nil && len(a) == 0 && len(b) == 0
		})
		if a, b := pg.balance("alice"), my.balance("bob"); a != alice || b != bob {
			t.Fatalf("%s (dtc: %s): PostgreSQL alice %d, MariaDB bob %d; want %d, %d", st.name, got, a, b, alice, bob)
		}
		t.Logf("%s: dtc says %s; alice %d, bob %d", st.name, got, alice, bob)
	}
}
