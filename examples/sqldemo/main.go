// Command sqldemo moves money between an account table in PostgreSQL and one in
// MariaDB with dtc, each database a participant through its own two-phase commit
// (dtc-sql). It starts dtc and two dtc-sql processes from --bin (make build puts them in
// bin/), and shows, reading the balances back from both databases after each step:
//
//  1. a transfer that commits in both databases;
//
//  2. one that would overdraw: PostgreSQL's CHECK constraint fails, dtc-sql votes NACK
//     with the database's message, and neither database changes;
//
//  3. one whose PostgreSQL statement is slower than the transaction's prepare
//     deadline: dtc times out and aborts, and neither database changes;
//
//  4. one whose PostgreSQL participant is killed with SIGKILL after it prepared and
//     before dtc's commit reaches it (a proxy in this process holds the commit): the
//     transaction stays prepared in PostgreSQL, dtc-sql restarts, and the commit
//     dtc keeps retrying commits it.
//
//     make run-sql        (or: make build && bin/sqldemo)
//
// It needs PostgreSQL (max_prepared_transactions > 0) and MariaDB; see --help for the
// DSNs. Its tables are created at start and dropped at the end.
package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
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
	"time"

	_ "github.com/go-sql-driver/mysql"
	_ "github.com/jackc/pgx/v5/stdlib"
	"github.com/spf13/pflag"

	"github.com/dtc-project/dtc/client"
	"github.com/dtc-project/dtc/protocol"
	"github.com/dtc-project/dtc/sqlpart"
)

func main() {
	if err := run(os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return
		}
		fmt.Fprintln(os.Stderr, "sqldemo:", err)
		os.Exit(1)
	}
}

type config struct {
	bin, pgDSN, myDSN, logDir string
}

func run(args []string, stdout, stderr io.Writer) error {
	fs := pflag.NewFlagSet("sqldemo", pflag.ContinueOnError)
	fs.SetOutput(stderr)
	var c config
	fs.StringVar(&c.bin, "bin", "bin", "directory holding the dtc and dtc-sql binaries (make build)")
	fs.StringVar(&c.pgDSN, "pg-dsn", "postgres://postgres@127.0.0.1:5432/test?sslmode=disable", "PostgreSQL")
	fs.StringVar(&c.myDSN, "mysql-dsn", "mysql://root@127.0.0.1:3306/test", "MariaDB")
	fs.StringVar(&c.logDir, "log-dir", "", "where the processes' logs go (default: a temporary directory)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	for _, b := range []string{"dtc", "dtc-sql"} {
		if _, err := os.Stat(filepath.Join(c.bin, b)); err != nil {
			return fmt.Errorf("%s not found in --bin %s: run make build first", b, c.bin)
		}
	}
	if c.logDir == "" {
		d, err := os.MkdirTemp("", "sqldemo-")
		if err != nil {
			return err
		}
		c.logDir = d
	}
	d := &demo{cfg: c, out: stdout}
	defer d.cleanup()
	return d.run()
}

type demo struct {
	cfg   config
	out   io.Writer
	procs []*proc
	undo  []func()

	dtc        *client.Client
	pg, my     *node
	pgGate     *gate
	pgDB, myDB *sql.DB
}

func (d *demo) say(f string, a ...any) { fmt.Fprintf(d.out, f+"\n", a...) }

func (d *demo) cleanup() {
	for i := len(d.undo) - 1; i >= 0; i-- {
		d.undo[i]()
	}
}

func (d *demo) run() error {
	var err error
	if d.pgDB, err = openDB(d.cfg.pgDSN); err != nil {
		return err
	}
	d.undo = append(d.undo, func() { d.pgDB.Close() })
	if d.myDB, err = openDB(d.cfg.myDSN); err != nil {
		return err
	}
	d.undo = append(d.undo, func() { d.myDB.Close() })
	suffix := randHex()
	pgAcct, myAcct := "sqldemo_accounts_"+suffix, "sqldemo_accounts_"+suffix
	for _, x := range []struct {
		db   *sql.DB
		name string
	}{{d.pgDB, pgAcct}, {d.myDB, myAcct}} {
		if _, err := x.db.Exec("CREATE TABLE " + x.name + " (id VARCHAR(32) PRIMARY KEY, balance BIGINT NOT NULL, CONSTRAINT " + x.name + "_nonneg CHECK (balance >= 0))"); err != nil {
			return fmt.Errorf("creating %s: %w", x.name, err)
		}
		db, name := x.db, x.name
		d.undo = append(d.undo, func() { _, _ = db.Exec("DROP TABLE IF EXISTS " + name) })
		if _, err := x.db.Exec("INSERT INTO " + x.name + " VALUES ('alice', 100), ('bob', 100)"); err != nil {
			return err
		}
	}
	d.say("PostgreSQL table %s and MariaDB table %s: alice 100, bob 100 in each.", pgAcct, myAcct)

	dtcAddr := freeAddr()
	p, err := d.start("dtc", "dtc", "serve", "--listen", dtcAddr, "--data-dir", filepath.Join(d.cfg.logDir, "dtc-data"), "--retry-backoff-max", "200ms")
	if err != nil {
		return err
	}
	d.dtc, _ = client.New("http://"+dtcAddr, client.Options{})
	if err := waitFor("dtc", p, func() bool { return d.dtc.Ready(context.Background()) == nil }); err != nil {
		return err
	}
	txnTable := "sqldemo_txns_" + suffix
	d.undo = append(d.undo, func() {
		_, _ = d.pgDB.Exec("DROP TABLE IF EXISTS " + txnTable)
		_, _ = d.myDB.Exec("DROP TABLE IF EXISTS " + txnTable)
	})
	if d.pg, err = d.startNode("dtc-sql-pg", d.cfg.pgDSN, pgAcct, "$1", "$2", txnTable); err != nil {
		return err
	}
	if d.my, err = d.startNode("dtc-sql-mariadb", d.cfg.myDSN, myAcct, "?", "?", txnTable); err != nil {
		return err
	}
	d.pgGate = newGate(d.pg.url)
	d.undo = append(d.undo, func() { d.pgGate.release(); d.pgGate.srv.Close() })
	d.say("dtc at http://%s; dtc-sql for PostgreSQL at %s (through a proxy at %s), for MariaDB at %s; logs in %s\n",
		dtcAddr, d.pg.url, d.pgGate.srv.URL, d.my.url, d.cfg.logDir)

	ctx := context.Background()
	d.say("1. Move 30 from alice (PostgreSQL) to bob (MariaDB).")
	v, err := d.transfer(ctx, "sqldemo-commit-"+suffix, 30, 0)
	if err != nil {
		return err
	}
	d.report(v, "committed")
	if err := d.balances(70, 130); err != nil {
		return err
	}

	d.say("\n2. Move 1000: more than alice has. PostgreSQL's CHECK (balance >= 0) fails.")
	if v, err = d.transfer(ctx, "sqldemo-nack-"+suffix, 1000, 0); err != nil {
		return err
	}
	d.report(v, "aborted")
	if err := d.balances(70, 130); err != nil {
		return err
	}

	d.say("\n3. Move 10 with a PostgreSQL statement that takes 3 s, and a prepare deadline of 1 s.")
	if v, err = d.transfer(ctx, "sqldemo-timeout-"+suffix, 10, 3); err != nil {
		return err
	}
	d.report(v, "aborted")
	if err := d.balances(70, 130); err != nil {
		return err
	}

	d.say("\n4. Move 25; the proxy holds dtc's commit to PostgreSQL, and dtc-sql (PostgreSQL) is killed with SIGKILL.")
	d.pgGate.holdCommits()
	id := "sqldemo-kill-" + suffix
	if v, err = d.transfer(ctx, id, 25, 0); err != nil {
		return err
	}
	d.report(v, "committed")
	if err := waitFor("dtc's commit to reach the proxy", nil, func() bool { return d.pgGate.heldCount() > 0 }); err != nil {
		return err
	}
	d.pg.p.kill()
	var prepared int
	_ = d.pgDB.QueryRow("SELECT count(*) FROM pg_prepared_xacts WHERE left(gid, 4) = 'dtc_'").Scan(&prepared)
	d.say("   killed; pg_prepared_xacts holds %d dtc transaction(s). PostgreSQL alice is still %d. Restarting dtc-sql.", prepared, d.balance(d.pgDB, pgAcct, "alice"))
	if err := d.pg.p.start(); err != nil {
		return err
	}
	if err := waitFor("dtc-sql (PostgreSQL) after its restart", d.pg.p, d.pg.up); err != nil {
		return err
	}
	d.pgGate.release()
	tv, err := d.dtc.Get(ctx, id)
	if err != nil {
		return err
	}
	if err := waitFor("the commit to reach PostgreSQL", nil, func() bool { return d.pg.status(tv.TxnID) == "committed" }); err != nil {
		return err
	}
	if err := d.waitPhaseTwo(ctx, id); err != nil {
		return err
	}
	d.say("   dtc's retried commit reached the restarted dtc-sql: status %s.", d.pg.status(tv.TxnID))
	return d.balances(45, 155)
}

func (d *demo) transfer(ctx context.Context, id string, amount int64, slowSeconds int) (client.View, error) {
	debit := d.pg.move("alice", -amount)
	req := client.Request{ID: id}
	if slowSeconds > 0 {
		var p sqlpart.Payload
		_ = json.Unmarshal(debit, &p)
		p.Statements = append(p.Statements, sqlpart.Statement{SQL: fmt.Sprintf("SELECT pg_sleep(%d)", slowSeconds)})
		debit, _ = json.Marshal(p)
		req.PrepareTimeout = time.Second
	}
	req.Participants = []client.Participant{
		{URL: d.pgGate.srv.URL + "/prepare", Payload: debit},
		{URL: d.my.url + "/prepare", Payload: d.my.move("bob", amount)},
	}
	v, err := d.dtc.Submit(ctx, req)
	if err != nil || slowSeconds == 0 && strings.HasPrefix(id, "sqldemo-kill-") {
		return v, err
	}
	return v, d.waitPhaseTwo(ctx, id)
}

// waitPhaseTwo: dtc answers once its decision is durable; phase 2 follows. Wait until
// every participant has acknowledged it before reading the balances.
func (d *demo) waitPhaseTwo(ctx context.Context, id string) error {
	return waitFor("phase 2 of "+id, nil, func() bool {
		w, err := d.dtc.Get(ctx, id)
		if err != nil {
			return false
		}
		for _, p := range w.Participants {
			if !p.Acked {
				return false
			}
		}
		return true
	})
}

func (d *demo) report(v client.View, want string) {
	d.say("   dtc: %s", v.State)
	for _, p := range v.Participants {
		who := "MariaDB   "
		if strings.HasPrefix(p.URL, d.pgGate.srv.URL) {
			who = "PostgreSQL"
		}
		line := fmt.Sprintf("   %s voted %s", who, p.Vote)
		if p.Vote == "" {
			line = fmt.Sprintf("   %s was not asked to vote (the transaction was decided first)", who)
		}
		if p.Reason != "" {
			line += ": " + p.Reason
		}
		d.say("%s", line)
	}
	if string(v.State) != want {
		d.say("   UNEXPECTED: wanted %s", want)
	}
}

func (d *demo) balance(db *sql.DB, table, id string) int64 {
	ph := "$1"
	if db == d.myDB {
		ph = "?"
	}
	var b int64 = -1
	_ = db.QueryRow("SELECT balance FROM "+table+" WHERE id = "+ph, id).Scan(&b)
	return b
}

func (d *demo) balances(wantAlice, wantBob int64) error {
	a, b := d.balance(d.pgDB, d.pg.account, "alice"), d.balance(d.myDB, d.my.account, "bob")
	d.say("   balances read from the databases: PostgreSQL alice %d, MariaDB bob %d (total %d)", a, b, a+b)
	if a != wantAlice || b != wantBob {
		return fmt.Errorf("balances %d and %d, want %d and %d", a, b, wantAlice, wantBob)
	}
	return nil
}

// --- processes ---

type proc struct {
	name, bin string
	args      []string
	log       string
	cmd       *exec.Cmd
	done      chan struct{}
}

func (d *demo) start(name, bin string, args ...string) (*proc, error) {
	p := &proc{name: name, bin: filepath.Join(d.cfg.bin, bin), args: args, log: filepath.Join(d.cfg.logDir, name+".log")}
	if err := p.start(); err != nil {
		return nil, err
	}
	d.procs = append(d.procs, p)
	d.undo = append(d.undo, p.stop)
	return p, nil
}

func (p *proc) start() error {
	f, err := os.OpenFile(p.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	p.cmd = exec.Command(p.bin, p.args...)
	p.cmd.Stdout, p.cmd.Stderr = f, f
	if err := p.cmd.Start(); err != nil {
		f.Close()
		return fmt.Errorf("starting %s: %w", p.name, err)
	}
	p.done = make(chan struct{})
	cmd, done := p.cmd, p.done
	go func() { _ = cmd.Wait(); f.Close(); close(done) }()
	return nil
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

func (p *proc) kill() {
	if p.cmd != nil && !p.exited() {
		_ = p.cmd.Process.Signal(syscall.SIGKILL)
		<-p.done
	}
}

func (p *proc) stop() {
	if p.cmd == nil || p.exited() {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		p.kill()
	}
}

// waitFor polls cond for up to 30 s; p, when given, must not exit meanwhile.
func waitFor(what string, p *proc, cond func() bool) error {
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if p != nil && p.exited() {
			b, _ := os.ReadFile(p.log)
			return fmt.Errorf("%s exited; its log:\n%s", p.name, tail(string(b), 20))
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("gave up after 30s waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return nil
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// node is one dtc-sql process and its account table.
type node struct {
	p            *proc
	url, account string
	ph1, ph2     string
}

func (d *demo) startNode(name, dsn, account, ph1, ph2, txnTable string) (*node, error) {
	addr := freeAddr()
	p, err := d.start(name, "dtc-sql", "--listen", addr, "--dsn", dsn, "--name", "sqldemo-"+name, "--table", txnTable)
	if err != nil {
		return nil, err
	}
	n := &node{p: p, url: "http://" + addr, account: account, ph1: ph1, ph2: ph2}
	return n, waitFor(name, p, n.up)
}

func (n *node) up() bool {
	resp, err := http.Get(n.url + "/healthz")
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == 200
}

func (n *node) status(txnID string) string {
	resp, err := http.Get(n.url + "/" + protocol.EndpointStatus + "?" + protocol.StatusQuery(txnID))
	if err != nil {
		return err.Error()
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return err.Error()
	}
	st, _ := protocol.ParseState(body) // "" for an answer without a known state
	return string(st)
}

func (n *node) move(id string, amount int64) json.RawMessage {
	one := int64(1)
	b, _ := json.Marshal(sqlpart.Payload{Statements: []sqlpart.Statement{{
		SQL:  fmt.Sprintf("UPDATE %s SET balance = balance + %s WHERE id = %s", n.account, n.ph1, n.ph2),
		Args: []json.RawMessage{json.RawMessage(fmt.Sprint(amount)), json.RawMessage(`"` + id + `"`)},
		Rows: &one,
	}}})
	return b
}

// gate is a proxy in front of a participant that can hold its commits.
type gate struct {
	srv  *httptest.Server
	mu   sync.Mutex
	hold bool
	held int
	open chan struct{}
}

func newGate(target string) *gate {
	u, _ := url.Parse(target)
	rp := httputil.NewSingleHostReverseProxy(u)
	rp.ErrorLog = log.New(io.Discard, "", 0) // a held commit whose caller gave up is not news
	g := &gate{open: make(chan struct{})}
	g.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// dtc sends phase 2 to a participant that offers batches (dtc-sql does) as
		// POST …/batch: a commit comes either way.
		if strings.HasSuffix(r.URL.Path, "/commit") || strings.HasSuffix(r.URL.Path, "/batch") {
			g.mu.Lock()
			hold, open := g.hold, g.open
			if hold {
				g.held++
			}
			g.mu.Unlock()
			if hold {
				select {
				case <-open:
				case <-r.Context().Done():
					return
				}
			}
		}
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		rp.ServeHTTP(w, r)
	}))
	return g
}

func (g *gate) holdCommits() { g.mu.Lock(); g.hold = true; g.mu.Unlock() }

func (g *gate) heldCount() int { g.mu.Lock(); defer g.mu.Unlock(); return g.held }

func (g *gate) release() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.hold {
		g.hold = false
		close(g.open)
	}
}

func freeAddr() string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func randHex() string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func openDB(dsn string) (*sql.DB, error) {
	driver, d := "pgx", dsn
	if strings.HasPrefix(dsn, "mysql://") {
		u, err := url.Parse(dsn)
		if err != nil {
			return nil, err
		}
		driver, d = "mysql", u.User.String()+"@tcp("+u.Host+")"+u.Path
	}
	db, err := sql.Open(driver, d)
	if err == nil {
		err = db.Ping()
	}
	if err != nil {
		return nil, fmt.Errorf("database %s is not answering: %w (start it; .ci/databases shows how)", dsn, err)
	}
	return db, nil
}
