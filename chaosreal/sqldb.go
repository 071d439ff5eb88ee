package chaosreal

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/go-sql-driver/mysql"
	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx"

	"github.com/dtc-project/dtc/sqlpart"
)

// The SQL participants (Options.SQL). Each sN is a dtc-sql process over a database of
// its own kind with two tables made for the campaign: the accounts the workload moves
// money in, and the table where dtc-sql remembers transactions (--table). The harness
// reads both, and the database's prepared transactions, straight from the database,
// never through dtc-sql: the final balances, what each transaction became there
// (committed and aborted rows; prepared gids), and that nothing is left prepared.
//
// Names: tables chaos_<seed>_<pid>_<n>_sK and chaos_<seed>_<pid>_<n>_sK_txns, dtc-sql
// --name chaos-<seed>-<pid>-<n>-sK, where n counts the campaigns of this process; every
// gid of that dtc-sql starts with "dtc_" + 8 hex digits of SHA-256(name) + "_" (sqlpart's
// GIDPrefix). The tables are dropped and every prepared transaction under that prefix
// rolled back when the campaign ends, whatever its verdict.

// ErrNoDatabase is wrapped by Run's error when a SQL participant's database does not
// answer: a campaign with Options.SQL needs PostgreSQL and MariaDB running.
var ErrNoDatabase = errors.New("chaosreal: database not answering")

// Kinds of SQL participant.
const (
	sqlPostgres = "postgresql"
	sqlMariaDB  = "mariadb"
)

// campaignSeq tells apart the campaigns of one process in the SQL object names.
var campaignSeq atomic.Int64

// sqlNode is one SQL participant's database side.
type sqlNode struct {
	name     string // s1, …
	kind     string // sqlPostgres or sqlMariaDB
	dsn      string // as dtc-sql takes it
	partName string // dtc-sql --name
	prefix   string // the gids of its transactions start with it
	accounts string // the account table
	txns     string // dtc-sql's table of transactions
	db       *sql.DB
}

// placeholders are the database's first two statement parameters.
func (n *sqlNode) placeholders() (string, string) {
	if n.kind == sqlPostgres {
		return "$1", "$2"
	}
	return "?", "?"
}

// move is the payload of a SQL leg: amount (negative: a debit) added to account, which
// must exist. An overdraft breaks the table's CHECK: the statement fails, dtc-sql NACKs.
func (n *sqlNode) move(account string, amount int64) json.RawMessage {
	one := int64(1)
	p1, p2 := n.placeholders()
	b, _ := json.Marshal(sqlpart.Payload{Statements: []sqlpart.Statement{{
		SQL:  "UPDATE " + n.accounts + " SET balance = balance + " + p1 + " WHERE id = " + p2,
		Args: []json.RawMessage{json.RawMessage(fmt.Sprint(amount)), json.RawMessage(`"` + account + `"`)},
		Rows: &one,
	}}})
	return b
}

// gidPrefix is sqlpart's GIDPrefix of a participant named name (sqlpart's package doc).
func gidPrefix(name string) string {
	h := sha256.Sum256([]byte(name))
	return "dtc_" + hex.EncodeToString(h[:4]) + "_"
}

// openSQLNode connects to the database of SQL participant i (0-based) and makes its
// account table: accounts a0..aK-1 with InitialBalance each.
func openSQLNode(ctx context.Context, o Options, seq int64, i int) (*sqlNode, error) {
	n := &sqlNode{name: fmt.Sprintf("s%d", i+1), kind: sqlPostgres, dsn: o.PostgresDSN}
	if i%2 == 1 {
		n.kind, n.dsn = sqlMariaDB, o.MySQLDSN
	}
	base := fmt.Sprintf("chaos_%d_%d_%d_%s", o.Seed, os.Getpid(), seq, n.name)
	n.accounts, n.txns = base, base+"_txns"
	n.partName = strings.ReplaceAll(base, "_", "-")
	n.prefix = gidPrefix(n.partName)
	db, err := openDB(n.kind, n.dsn)
	if err != nil {
		return nil, fmt.Errorf("chaosreal: %s: %w", n.name, err)
	}
	n.db = db
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := db.PingContext(pctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("%w: %s (%s, for %s): %v", ErrNoDatabase, redact(n.dsn), n.kind, n.name, err)
	}
	// Leftovers of a dead campaign of the same seed, pid and number: ours.
	n.drop(ctx)
	stmts := []string{
		"CREATE TABLE " + n.accounts + " (id VARCHAR(32) PRIMARY KEY, balance BIGINT NOT NULL, CONSTRAINT " + n.accounts + "_nonneg CHECK (balance >= 0))",
	}
	var values []string
	for k := range o.Accounts {
		values = append(values, fmt.Sprintf("('a%d', %d)", k, o.InitialBalance))
	}
	stmts = append(stmts, "INSERT INTO "+n.accounts+" (id, balance) VALUES "+strings.Join(values, ", "))
	for _, s := range stmts {
		if _, err := db.ExecContext(pctx, s); err != nil {
			n.close(ctx)
			return nil, fmt.Errorf("chaosreal: %s (%s): %.80s…: %w", n.name, n.kind, s, err)
		}
	}
	return n, nil
}

// openDB opens the harness's own connections to a database of kind at dsn.
func openDB(kind, dsn string) (*sql.DB, error) {
	driver := "pgx"
	if kind == sqlMariaDB {
		d, err := mysqlDriverDSN(dsn)
		if err != nil {
			return nil, err
		}
		driver, dsn = "mysql", d
	}
	db, err := sql.Open(driver, dsn)
	if err != nil {
		return nil, err
	}
	db.SetMaxOpenConns(4)
	return db, nil
}

// mysqlDriverDSN turns mysql://user:pass@host:port/db?params into the driver's DSN.
func mysqlDriverDSN(dsn string) (string, error) {
	u, err := url.Parse(dsn)
	if err != nil {
		return "", fmt.Errorf("chaosreal: MySQL DSN: %w", err)
	}
	c := mysql.NewConfig()
	if u.User != nil {
		c.User = u.User.Username()
		c.Passwd, _ = u.User.Password()
	}
	c.Net, c.Addr = "tcp", u.Host
	if u.Port() == "" {
		c.Addr = u.Host + ":3306"
	}
	c.DBName = strings.TrimPrefix(u.Path, "/")
	if c.DBName == "" {
		return "", fmt.Errorf("chaosreal: MySQL DSN %s: no database name", redact(dsn))
	}
	return c.FormatDSN(), nil
}

// redact hides a DSN's password.
func redact(dsn string) string {
	u, err := url.Parse(dsn)
	if err != nil {
		return "(unparsable DSN)"
	}
	return u.Redacted()
}

// balances reads the account table: account → cents.
func (n *sqlNode) balances(ctx context.Context) (map[string]int64, error) {
	rows, err := n.db.QueryContext(ctx, "SELECT id, balance FROM "+n.accounts)
	if err != nil {
		return nil, fmt.Errorf("chaosreal: %s: reading its balances: %w", n.name, err)
	}
	defer rows.Close()
	out := map[string]int64{}
	for rows.Next() {
		var id string
		var b int64
		if err := rows.Scan(&id, &b); err != nil {
			return nil, fmt.Errorf("chaosreal: %s: %w", n.name, err)
		}
		out[id] = b
	}
	return out, rows.Err()
}

// txnRow is a row of dtc-sql's table of transactions.
type txnRow struct{ gid, state string }

// rows reads dtc-sql's table of transactions: txn id → its row.
func (n *sqlNode) rows(ctx context.Context) (map[string]txnRow, error) {
	rs, err := n.db.QueryContext(ctx, "SELECT gid, txn_id, state FROM "+n.txns)
	if err != nil {
		return nil, fmt.Errorf("chaosreal: %s: reading %s: %w", n.name, n.txns, err)
	}
	defer rs.Close()
	out := map[string]txnRow{}
	for rs.Next() {
		var r txnRow
		var id string
		if err := rs.Scan(&r.gid, &id, &r.state); err != nil {
			return nil, fmt.Errorf("chaosreal: %s: %w", n.name, err)
		}
		out[id] = r
	}
	return out, rs.Err()
}

// prepared lists the gids of this participant's transactions the database holds
// prepared (pg_prepared_xacts, XA RECOVER), sorted.
func (n *sqlNode) prepared(ctx context.Context) ([]string, error) {
	var out []string
	if n.kind == sqlPostgres {
		rs, err := n.db.QueryContext(ctx, "SELECT gid FROM pg_prepared_xacts WHERE database = current_database() AND left(gid, $1) = $2",
			len(n.prefix), n.prefix)
		if err != nil {
			return nil, fmt.Errorf("chaosreal: %s: pg_prepared_xacts: %w", n.name, err)
		}
		defer rs.Close()
		for rs.Next() {
			var g string
			if err := rs.Scan(&g); err != nil {
				return nil, err
			}
			out = append(out, g)
		}
		if err := rs.Err(); err != nil {
			return nil, err
		}
	} else {
		rs, err := n.db.QueryContext(ctx, "XA RECOVER")
		if err != nil {
			return nil, fmt.Errorf("chaosreal: %s: XA RECOVER: %w", n.name, err)
		}
		defer rs.Close()
		for rs.Next() {
			var format, gtridLen, bqualLen int64
			var data []byte
			if err := rs.Scan(&format, &gtridLen, &bqualLen, &data); err != nil {
				return nil, err
			}
			if strings.HasPrefix(string(data), n.prefix) {
				out = append(out, string(data[:min(int(gtridLen), len(data))]))
			}
		}
		if err := rs.Err(); err != nil {
			return nil, err
		}
	}
	slices.Sort(out)
	return out, nil
}

// states is what the database says of every transaction dtc-sql recorded, as its
// status endpoint would: committed and aborted from the rows, prepared if the database
// holds the gid prepared, unknown otherwise (a NACK, or a prepare cut short).
func (n *sqlNode) states(rows map[string]txnRow, prepared []string) map[string]string {
	out := make(map[string]string, len(rows))
	for id, r := range rows {
		switch {
		case r.state == "committed" || r.state == "aborted":
			out[id] = r.state
		case slices.Contains(prepared, r.gid):
			out[id] = "prepared"
		default:
			out[id] = "unknown"
		}
	}
	return out
}

// rollbackLeftovers rolls back whatever the database still holds prepared under this
// participant's prefix (dtc-sql must be stopped: on MariaDB another session cannot
// finish a prepared transaction its session still holds). It returns the gids.
func (n *sqlNode) rollbackLeftovers(ctx context.Context) []string {
	gids, err := n.prepared(ctx)
	if err != nil {
		return nil
	}
	for _, g := range gids {
		q := "ROLLBACK PREPARED '" + g + "'"
		if n.kind == sqlMariaDB {
			q = "XA ROLLBACK '" + g + "'"
		}
		_, _ = n.db.ExecContext(ctx, q)
	}
	return gids
}

// drop drops both tables.
func (n *sqlNode) drop(ctx context.Context) {
	for _, t := range []string{n.accounts, n.txns} {
		_, _ = n.db.ExecContext(ctx, "DROP TABLE IF EXISTS "+t)
	}
}

// close rolls back what is left prepared, drops the tables and closes the connection:
// the campaign leaves nothing in the database. Bounded by 20s.
func (n *sqlNode) close(ctx context.Context) []string {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 20*time.Second)
	defer cancel()
	left := n.rollbackLeftovers(ctx)
	n.drop(ctx)
	n.db.Close()
	return left
}
