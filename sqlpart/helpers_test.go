package sqlpart_test

// Tests against the real databases of the machine (never mocks): PostgreSQL at
// $DTC_TEST_PG_DSN and MariaDB at $DTC_TEST_MYSQL_DSN (defaults below). Each test makes
// its own uniquely named tables and participant Name, and drops them at the end;
// TestMain checks that no transaction prepared under any of the tests' gid prefixes is
// left in either database.

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dtc-project/dtc/sqlpart"
	_ "github.com/go-sql-driver/mysql"
	_ "github.com/jackc/pgx/v5/stdlib"
)

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

// kinds are the databases every protocol test runs against.
var kinds = []struct {
	name string
	dsn  string
}{{"postgresql", pgDSN}, {"mariadb", myDSN}}

var (
	prefixesMu sync.Mutex
	prefixes   = map[string]string{} // gid prefix → DSN, of every participant a test opened
)

func TestMain(m *testing.M) {
	code := m.Run()
	if err := checkNoneLeft(); err != nil {
		fmt.Fprintln(os.Stderr, "FAIL:", err)
		code = 1
	}
	os.Exit(code)
}

// checkNoneLeft fails the run if a transaction prepared by any test is still prepared.
func checkNoneLeft() error {
	prefixesMu.Lock()
	defer prefixesMu.Unlock()
	var left []string
	for prefix, dsn := range prefixes {
		db := rawDB(nil, dsn)
		gids, err := listPrepared(db, dsn, prefix)
		db.Close()
		if err != nil {
			return err
		}
		left = append(left, gids...)
	}
	if len(left) > 0 {
		return fmt.Errorf("prepared transactions left in the databases: %v", left)
	}
	return nil
}

// rawDB opens a plain connection pool (not the participant's) for setup and checks.
func rawDB(t testing.TB, dsn string) *sql.DB {
	driver, d := "pgx", dsn
	if strings.HasPrefix(dsn, "mysql://") {
		driver = "mysql"
		d = strings.TrimPrefix(dsn, "mysql://")
		at := strings.LastIndexByte(d, '@')
		slash := strings.IndexByte(d[at:], '/')
		d = d[:at+1] + "tcp(" + d[at+1:at+slash] + ")" + d[at+slash:]
	}
	db, err := sql.Open(driver, d)
	if err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err = db.PingContext(ctx)
		cancel()
	}
	if err != nil {
		msg := fmt.Sprintf("the test database %s is not answering (%v); start it (see .ci/run) or set DTC_TEST_PG_DSN / DTC_TEST_MYSQL_DSN", dsn, err)
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

func isPG(dsn string) bool { return strings.HasPrefix(dsn, "postgres") }

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

func unique(prefix string) string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return prefix + hex.EncodeToString(b)
}

// fixture is one test's participant and its accounts table.
type fixture struct {
	t       testing.TB
	dsn     string
	cfg     sqlpart.Config
	p       *sqlpart.Participant
	admin   *sql.DB
	table   string // the participant's table
	account string // accounts(id, balance CHECK >= 0)
	prefix  string // the participant's gid prefix
}

func newFixture(t testing.TB, dsn string, tweak func(*sqlpart.Config)) *fixture {
	t.Helper()
	f := &fixture{t: t, dsn: dsn, admin: rawDB(t, dsn), table: unique("sqlpart_txns_"), account: unique("sqlpart_acct_")}
	ctx := context.Background()
	if _, err := f.admin.ExecContext(ctx, "CREATE TABLE "+f.account+" (id VARCHAR(32) PRIMARY KEY, balance BIGINT NOT NULL, CONSTRAINT "+f.account+"_nonneg CHECK (balance >= 0))"); err != nil {
		t.Fatal(err)
	}
	if _, err := f.admin.ExecContext(ctx, "INSERT INTO "+f.account+" VALUES ('alice', 100), ('bob', 100), ('carol', 100)"); err != nil {
		t.Fatal(err)
	}
	f.cfg = sqlpart.DefaultConfig()
	f.cfg.DSN = dsn
	f.cfg.Name = unique("t-")
	f.cfg.Table = f.table
	f.cfg.StatementTimeout = 10 * time.Second
	if tweak != nil {
		tweak(&f.cfg)
	}
	// Registered before the participant opens: an Open that fails (t.Fatal) must not
	// leave the tables behind.
	t.Cleanup(func() {
		if f.p != nil {
			f.p.Close()
		}
		// Finish whatever a failed test left prepared, so that the databases stay clean
		// (none without a prefix: that would be every test's, every session's).
		var gids []string
		if f.prefix != "" {
			gids, _ = listPrepared(f.admin, dsn, f.prefix)
		}
		for _, g := range gids {
			q := "ROLLBACK PREPARED '" + g + "'"
			if !isPG(dsn) {
				q = "XA ROLLBACK '" + g + "'"
			}
			if _, err := f.admin.Exec(q); err != nil {
				t.Errorf("cleaning up %s: %v", g, err)
			}
		}
		for _, tb := range []string{f.table, f.account} {
			if _, err := f.admin.Exec("DROP TABLE IF EXISTS " + tb); err != nil {
				t.Errorf("dropping %s: %v", tb, err)
			}
		}
	})
	f.open()
	return f
}

// open (re)opens the participant on the fixture's config, as a restarted process would.
func (f *fixture) open() {
	f.t.Helper()
	p, err := sqlpart.Open(context.Background(), f.cfg)
	if err != nil {
		f.t.Fatal(err)
	}
	f.p = p
	f.prefix = p.GIDPrefix()
	prefixesMu.Lock()
	prefixes[p.GIDPrefix()] = f.dsn
	prefixesMu.Unlock()
}

// ph is the i-th placeholder of the fixture's database.
func (f *fixture) ph(i int) string {
	if isPG(f.dsn) {
		return fmt.Sprintf("$%d", i)
	}
	return "?"
}

// move is a payload that adds amount to account id (guarded: exactly one row).
func (f *fixture) move(id string, amount int64) json.RawMessage {
	p := sqlpart.Payload{Statements: []sqlpart.Statement{{
		SQL:  fmt.Sprintf("UPDATE %s SET balance = balance + %s WHERE id = %s", f.account, f.ph(1), f.ph(2)),
		Args: []json.RawMessage{json.RawMessage(fmt.Sprint(amount)), json.RawMessage(`"` + id + `"`)},
		Rows: ptr(int64(1)),
	}}}
	b, _ := json.Marshal(p)
	return b
}

func ptr[T any](v T) *T { return &v }

func (f *fixture) balance(id string) int64 {
	f.t.Helper()
	var b int64
	if err := f.admin.QueryRow("SELECT balance FROM "+f.account+" WHERE id = "+f.ph(1), id).Scan(&b); err != nil {
		f.t.Fatal(err)
	}
	return b
}

func (f *fixture) prepared() []string {
	f.t.Helper()
	gids, err := listPrepared(f.admin, f.dsn, f.p.GIDPrefix())
	if err != nil {
		f.t.Fatal(err)
	}
	return gids
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up after 30s waiting for: %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
