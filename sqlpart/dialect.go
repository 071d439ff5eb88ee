package sqlpart

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib" // also registers the "pgx" database/sql driver
)

// Kind is the database product a DSN names.
type Kind string

// The databases sqlpart speaks to.
const (
	PostgreSQL Kind = "postgresql"
	MySQL      Kind = "mysql" // MariaDB or MySQL
)

// parseDSN tells the database from the DSN's scheme and returns the driver name and the
// DSN in that driver's form.
func parseDSN(dsn string) (Kind, string, error) {
	scheme, _, ok := strings.Cut(dsn, "://")
	if !ok {
		return "", "", fmt.Errorf("sqlpart: DSN %q: want postgres://… or mysql://…", redactDSN(dsn))
	}
	switch strings.ToLower(scheme) {
	case "postgres", "postgresql":
		if _, err := pgx.ParseConfig(dsn); err != nil {
			return "", "", fmt.Errorf("sqlpart: DSN %q: %w", redactDSN(dsn), err)
		}
		return PostgreSQL, dsn, nil
	case "mysql", "mariadb":
		u, err := url.Parse(dsn)
		if err != nil {
			return "", "", fmt.Errorf("sqlpart: DSN %q: %w", redactDSN(dsn), err)
		}
		c := mysql.NewConfig()
		if u.User != nil {
			c.User = u.User.Username()
			c.Passwd, _ = u.User.Password()
		}
		c.Net = "tcp"
		c.Addr = u.Host
		if u.Port() == "" {
			c.Addr = u.Host + ":3306"
		}
		// Arguments go inside the statement text, escaped by the driver: one round trip
		// a statement instead of three (prepare, execute, close). The DSN may say
		// interpolateParams=false.
		c.InterpolateParams = true
		c.DBName = strings.TrimPrefix(u.Path, "/")
		if c.DBName == "" {
			return "", "", fmt.Errorf("sqlpart: DSN %q: no database name (mysql://user@host:3306/DBNAME)", redactDSN(dsn))
		}
		s := c.FormatDSN()
		if u.RawQuery != "" {
			sep := "?"
			if strings.Contains(s, "?") {
				sep = "&"
			}
			s += sep + u.RawQuery
		}
		if _, err := mysql.ParseDSN(s); err != nil {
			return "", "", fmt.Errorf("sqlpart: DSN %q: %w", redactDSN(dsn), err)
		}
		return MySQL, s, nil
	default:
		return "", "", fmt.Errorf("sqlpart: DSN scheme %q: want postgres://… or mysql://…", scheme)
	}
}

// redactDSN hides the password of a URL-shaped DSN, for error messages.
func redactDSN(dsn string) string {
	u, err := url.Parse(dsn)
	if err != nil || u.User == nil {
		return dsn
	}
	if _, ok := u.User.Password(); ok {
		u.User = url.UserPassword(u.User.Username(), "xxx")
	}
	return u.String()
}

// dialect is what differs between the databases: their two-phase commit commands, how
// prepared transactions are listed, and the SQL of the participant's own table. Every
// gid passed to it is made by gidFor: a prefix and hex digits, safe to quote as is.
type dialect interface {
	kind() Kind
	// check verifies at Open that the database can prepare transactions at all.
	check(ctx context.Context, db *sql.DB, preparedMax int) error
	createTable(table string) string
	// beginClaim, on a dedicated connection, starts the transaction to be prepared as
	// gid and runs claimSQL in it: the rows it changed (1, or 0 when the transaction is
	// fenced). prepare ends it and prepares it; abort rolls back an unprepared one.
	beginClaim(ctx context.Context, c *sql.Conn, table, gid string) (int64, error)
	prepare(ctx context.Context, c *sql.Conn, gid string) error
	// endStatements undoes, after the transaction's statements, what beginClaim set for
	// them alone in the session (MariaDB/MySQL no-wait: the lock wait timeout).
	endStatements(ctx context.Context, c *sql.Conn) error
	abort(ctx context.Context, c *sql.Conn, gid string) error
	// sessionID is what detach needs to know of the connection, taken before begin.
	sessionID(ctx context.Context, c *sql.Conn) (int64, error)
	// detach makes the prepared transaction finishable by any connection, and returns
	// once it is. PostgreSQL: nothing to do. MariaDB/MySQL: the connection that
	// prepared an XA transaction holds it until the server has closed that session
	// (another connection's XA COMMIT says "unknown XID" meanwhile, and XA RECOVER may
	// not list it while the session is being torn down), so the connection is closed
	// and the server's process list polled until the session is gone.
	detach(ctx context.Context, db *sql.DB, c *sql.Conn, sessionID int64) error
	// holdsPrepared: the session that prepared a transaction holds it until it ends
	// (MariaDB/MySQL), so the participant parks that connection for phase 2 (park.go).
	holdsPrepared() bool
	// awaitSessionEnd returns once the server no longer lists session sessionID.
	awaitSessionEnd(ctx context.Context, db *sql.DB, sessionID int64) error
	commitPrepared(gid string) string
	rollbackPrepared(gid string) string
	// notPrepared reports whether err says the gid is not (or not yet, for another
	// connection) a prepared transaction.
	notPrepared(err error) bool
	// listPrepared returns the gids of the prepared transactions that start with prefix.
	listPrepared(ctx context.Context, db *sql.DB, prefix string) ([]string, error)
	// rowInside: a new transaction's row is written inside the transaction itself
	// (beginNew), not committed before it (writeIntent, then beginClaim). While the
	// transaction is prepared its row is then visible to reads of uncommitted data only
	// (readRowUncommitted). MariaDB: its autocommitted row cost a commit with a log
	// flush of its own on every prepare.
	rowInside() bool
	// beginsNew: the dialect has beginNew, the usual prepare's quick start.
	beginsNew() bool
	// beginNew, on a dedicated connection, starts the transaction to be prepared as
	// gid with its row written, for a new transaction, in as few round trips as the
	// database allows. MariaDB: the row is inserted inside the transaction, already
	// 'committed' (it becomes visible exactly when the transaction commits).
	// PostgreSQL: the row is committed 'preparing' first and claimed inside the
	// transaction (beginClaim), all in one round trip. It reports false, with nothing
	// left open on c, when gid has a row already (that it could not claim) or is a
	// transaction the database knows (prepared, perhaps by another session): the
	// caller then reads the row and goes the way of beginClaim. On an error the caller
	// closes c, never reuses it: what beginNew started may still be open, and ending
	// it by gid from another session could end someone else's.
	beginNew(ctx context.Context, c *sql.Conn, table, gid, name, txnID, coordinator, fp string) (bool, error)
	// SQL of the participant's table, with the dialect's placeholders.
	intentSQL(table string) string // gid, name, txn_id, coordinator, payload_sha256
	fenceSQL(table string) string  // gid, name, txn_id
	claimSQL(table string) string  // gid
	rowSQL(table string) string    // gid → txn_id, coordinator, payload_sha256, state, age in seconds
	gcDecidedSQL(table string) string
	gcCandidatesSQL(table string) string // name, retain seconds, limit → gid
	deletePreparingSQL(table string) string
}

// --- PostgreSQL ---

type pgDialect struct {
	statementTimeout time.Duration // also set in the server, which then stops the statement itself
	noWait           bool          // LockNoWait: lock_timeout 1 ms for the transaction
}

func (pgDialect) kind() Kind { return PostgreSQL }

func (pgDialect) check(ctx context.Context, db *sql.DB, preparedMax int) error {
	var s string
	if err := db.QueryRowContext(ctx, "SHOW max_prepared_transactions").Scan(&s); err != nil {
		return fmt.Errorf("sqlpart: reading max_prepared_transactions: %w", err)
	}
	n, err := strconv.Atoi(s)
	if err != nil {
		return fmt.Errorf("sqlpart: max_prepared_transactions is %q, not a number", s)
	}
	if n == 0 {
		return fmt.Errorf("%w: PostgreSQL's max_prepared_transactions is 0, so it cannot PREPARE TRANSACTION; "+
			"set it, e.g. psql -c 'ALTER SYSTEM SET max_prepared_transactions = 64', then restart PostgreSQL "+
			"(pg_ctlcluster <version> main restart, or systemctl restart postgresql)", ErrNoTwoPhase)
	}
	if preparedMax > n {
		return fmt.Errorf("%w: the prepared-transaction limit %d exceeds PostgreSQL's max_prepared_transactions %d; "+
			"lower it (--max-prepared) or raise max_prepared_transactions", ErrNoTwoPhase, preparedMax, n)
	}
	return nil
}

func (pgDialect) createTable(t string) string {
	return `CREATE TABLE IF NOT EXISTS ` + t + ` (
	gid varchar(64) PRIMARY KEY,
	name varchar(64) NOT NULL,
	txn_id text NOT NULL,
	coordinator text NOT NULL DEFAULT '',
	payload_sha256 char(64) NOT NULL DEFAULT '',
	state varchar(16) NOT NULL,
	created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
	updated_at timestamptz NOT NULL DEFAULT clock_timestamp())`
}

// beginClaim sends BEGIN, SET LOCAL statement_timeout (and, under no-wait, SET LOCAL
// lock_timeout = 1 ms: PostgreSQL's 0 means no limit) and the claim as one simple-
// protocol string (the gid, made by GID of hex digits, needs no quoting): one round
// trip. Its result is the last statement's, the claim's.
func (d pgDialect) beginClaim(ctx context.Context, c *sql.Conn, t, gid string) (int64, error) {
	noWait := ""
	if d.noWait {
		noWait = "SET LOCAL lock_timeout = 1; "
	}
	res, err := c.ExecContext(ctx, fmt.Sprintf("BEGIN; SET LOCAL statement_timeout = %d; %s"+
		"UPDATE %s SET state = 'committed', updated_at = clock_timestamp() WHERE gid = '%s' AND state = 'preparing'",
		max(1, d.statementTimeout.Milliseconds()), noWait, t, gid))
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

func (pgDialect) prepare(ctx context.Context, c *sql.Conn, gid string) error {
	_, err := c.ExecContext(ctx, "PREPARE TRANSACTION '"+gid+"'")
	return err
}

func (pgDialect) endStatements(context.Context, *sql.Conn) error { return nil }

func (pgDialect) abort(ctx context.Context, c *sql.Conn, _ string) error {
	_, err := c.ExecContext(ctx, "ROLLBACK")
	return err
}

func (pgDialect) sessionID(context.Context, *sql.Conn) (int64, error)     { return 0, nil }
func (pgDialect) detach(context.Context, *sql.DB, *sql.Conn, int64) error { return nil }
func (pgDialect) holdsPrepared() bool                                     { return false }
func (pgDialect) awaitSessionEnd(context.Context, *sql.DB, int64) error   { return nil }
func (pgDialect) commitPrepared(gid string) string                        { return "COMMIT PREPARED '" + gid + "'" }
func (pgDialect) rollbackPrepared(gid string) string                      { return "ROLLBACK PREPARED '" + gid + "'" }

func (pgDialect) notPrepared(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "42704" // undefined_object: no such prepared transaction
}

func (pgDialect) listPrepared(ctx context.Context, db *sql.DB, prefix string) ([]string, error) {
	rows, err := db.QueryContext(ctx,
		"SELECT gid FROM pg_prepared_xacts WHERE database = current_database() AND left(gid, $1) = $2 ORDER BY prepared",
		len(prefix), prefix)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var g string
		if err := rows.Scan(&g); err != nil {
			return nil, err
		}
		out = append(out, g)
	}
	return out, rows.Err()
}

func (pgDialect) intentSQL(t string) string {
	return `INSERT INTO ` + t + ` (gid, name, txn_id, coordinator, payload_sha256, state) VALUES ($1, $2, $3, $4, $5, 'preparing')
	ON CONFLICT (gid) DO UPDATE SET coordinator = EXCLUDED.coordinator, payload_sha256 = EXCLUDED.payload_sha256,
	updated_at = clock_timestamp() WHERE ` + t + `.state = 'preparing'`
}

func (pgDialect) beginsNew() bool { return true }

// beginNew sends, as one pipelined batch (one round trip): the row's own transaction
// (BEGIN, SET LOCAL synchronous_commit = off: the prepare that follows syncs the log up
// to and past the row, and a transaction that never prepared needs none; an INSERT …
// ON CONFLICT DO NOTHING; COMMIT), then the transaction to be prepared: BEGIN, its
// statement timeout, and the claim (which also sets the row's coordinator and payload
// digest, for a row left 'preparing' by an earlier try that never prepared). Both the
// insert and the claim wait at most 100 ms for a row lock: a row claimed by a prepared
// transaction of the same gid stays locked until it is finished, and the slow way
// finds it prepared. After the claim the lock timeout is the policy's.
func (d pgDialect) beginNew(ctx context.Context, c *sql.Conn, t, gid, name, txnID, coordinator, fp string) (bool, error) {
	lockPolicy := "SET LOCAL lock_timeout TO DEFAULT"
	if d.noWait {
		lockPolicy = "SET LOCAL lock_timeout = 1" // PostgreSQL's 0 means no limit
	}
	var claimed int64
	err := c.Raw(func(dc any) error {
		sc, ok := dc.(*stdlib.Conn)
		if !ok {
			return fmt.Errorf("sqlpart: unexpected driver connection %T", dc)
		}
		b := &pgx.Batch{}
		b.Queue("BEGIN")
		b.Queue("SET LOCAL synchronous_commit = off")
		b.Queue("SET LOCAL lock_timeout = 100")
		b.Queue(`INSERT INTO `+t+` (gid, name, txn_id, coordinator, payload_sha256, state) VALUES ($1, $2, $3, $4, $5, 'preparing')
	ON CONFLICT (gid) DO NOTHING`, gid, name, txnID, coordinator, fp)
		b.Queue("COMMIT")
		b.Queue("BEGIN")
		b.Queue(fmt.Sprintf("SET LOCAL statement_timeout = %d", max(1, d.statementTimeout.Milliseconds())))
		b.Queue("SET LOCAL lock_timeout = 100")
		b.Queue(`UPDATE `+t+` SET state = 'committed', coordinator = $2, payload_sha256 = $3, updated_at = clock_timestamp()
	WHERE gid = $1 AND state = 'preparing'`, gid, coordinator, fp)
		b.Queue(lockPolicy)
		claimAt := b.Len() - 2
		br := sc.Conn().SendBatch(ctx, b)
		for i := range b.Len() {
			tag, err := br.Exec()
			if err != nil {
				_ = br.Close()
				return err
			}
			if i == claimAt {
				claimed = tag.RowsAffected()
			}
		}
		return br.Close()
	})
	if err == nil && claimed == 1 {
		return true, nil
	}
	// Not claimed, or failed: end what is open on c (the second transaction, or a
	// failed one), so that the slow way may use another connection.
	if _, rerr := c.ExecContext(context.WithoutCancel(ctx), "ROLLBACK"); rerr != nil {
		return false, errors.Join(err, rerr)
	}
	if err != nil && !lockConflict(err) {
		return false, err
	}
	return false, nil // the row is there already, or locked: the slow way decides
}

// rowInside: PostgreSQL cannot read uncommitted data, and its row costs no log flush
// of its own (synchronous_commit off).
func (pgDialect) rowInside() bool { return false }

func (pgDialect) fenceSQL(t string) string {
	return `INSERT INTO ` + t + ` (gid, name, txn_id, state) VALUES ($1, $2, $3, 'aborted')
	ON CONFLICT (gid) DO UPDATE SET state = 'aborted', updated_at = clock_timestamp() WHERE ` + t + `.state = 'preparing'`
}

func (pgDialect) claimSQL(t string) string {
	return `UPDATE ` + t + ` SET state = 'committed', updated_at = clock_timestamp() WHERE gid = $1 AND state = 'preparing'`
}

func (pgDialect) rowSQL(t string) string {
	return `SELECT txn_id, coordinator, payload_sha256, state, EXTRACT(EPOCH FROM clock_timestamp() - created_at)::float8
	FROM ` + t + ` WHERE gid = $1`
}

func (pgDialect) gcDecidedSQL(t string) string {
	return `DELETE FROM ` + t + ` WHERE gid IN (SELECT gid FROM ` + t + ` WHERE name = $1 AND state IN ('committed', 'aborted')
	AND updated_at < clock_timestamp() - make_interval(secs => $2) LIMIT $3)`
}

func (pgDialect) gcCandidatesSQL(t string) string {
	return `SELECT gid FROM ` + t + ` WHERE name = $1 AND state = 'preparing'
	AND updated_at < clock_timestamp() - make_interval(secs => $2) LIMIT $3`
}

func (pgDialect) deletePreparingSQL(t string) string {
	return `DELETE FROM ` + t + ` WHERE gid = $1 AND state = 'preparing'`
}

// --- MariaDB / MySQL ---

type myDialect struct {
	mariaDB bool // MariaDB, not MySQL: SET STATEMENT … FOR, max_statement_time
	noWait  bool // LockNoWait: innodb_lock_wait_timeout 0 (MySQL: 1) for the statements
}

func (myDialect) kind() Kind { return MySQL }

func (myDialect) check(ctx context.Context, db *sql.DB, _ int) error {
	rows, err := db.QueryContext(ctx, "XA RECOVER")
	if err != nil {
		return fmt.Errorf("%w: XA RECOVER failed (is this MariaDB/MySQL with InnoDB, and may this user run XA?): %w", ErrNoTwoPhase, err)
	}
	return rows.Close()
}

func (myDialect) createTable(t string) string {
	return `CREATE TABLE IF NOT EXISTS ` + t + ` (
	gid VARCHAR(64) NOT NULL PRIMARY KEY,
	name VARCHAR(64) NOT NULL,
	txn_id VARCHAR(1024) NOT NULL,
	coordinator VARCHAR(1024) NOT NULL DEFAULT '',
	payload_sha256 CHAR(64) NOT NULL DEFAULT '',
	state VARCHAR(16) NOT NULL,
	created_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
	updated_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6)) ENGINE=InnoDB`
}

func (myDialect) begin(ctx context.Context, c *sql.Conn, gid string) error {
	_, err := c.ExecContext(ctx, "XA START '"+gid+"'")
	return err
}

func (d myDialect) beginClaim(ctx context.Context, c *sql.Conn, t, gid string) (int64, error) {
	if err := d.begin(ctx, c, gid); err != nil {
		return 0, err
	}
	res, err := c.ExecContext(ctx, d.claimSQL(t), gid)
	if err != nil {
		return 0, err
	}
	n, err := res.RowsAffected()
	if err != nil || n != 1 {
		return n, err // fenced: no statements, nothing to set back
	}
	if d.noWait {
		// For the transaction's statements only (endStatements sets it back): the
		// participant's own statements on pooled connections keep the server's wait.
		// MariaDB ≥ 10.3 takes 0 (no wait at all); MySQL's least is 1 s.
		timeout := 1
		if d.mariaDB {
			timeout = 0
		}
		if _, err := c.ExecContext(ctx, fmt.Sprintf("SET SESSION innodb_lock_wait_timeout = %d", timeout)); err != nil {
			return 0, err
		}
	}
	return n, nil
}

func (d myDialect) endStatements(ctx context.Context, c *sql.Conn) error {
	if !d.noWait {
		return nil
	}
	_, err := c.ExecContext(ctx, "SET SESSION innodb_lock_wait_timeout = DEFAULT")
	return err
}

func (myDialect) prepare(ctx context.Context, c *sql.Conn, gid string) error {
	if _, err := c.ExecContext(ctx, "XA END '"+gid+"'"); err != nil {
		return err
	}
	_, err := c.ExecContext(ctx, "XA PREPARE '"+gid+"'")
	return err
}

func (myDialect) abort(ctx context.Context, c *sql.Conn, gid string) error {
	_, _ = c.ExecContext(ctx, "XA END '"+gid+"'") // fails if already ended; the rollback says
	_, err := c.ExecContext(ctx, "XA ROLLBACK '"+gid+"'")
	return err
}

func (myDialect) sessionID(ctx context.Context, c *sql.Conn) (int64, error) {
	var id int64
	err := c.QueryRowContext(ctx, "SELECT CONNECTION_ID()").Scan(&id)
	return id, err
}

func (myDialect) detach(ctx context.Context, db *sql.DB, c *sql.Conn, sessionID int64) error {
	_ = c.Raw(func(any) error { return driver.ErrBadConn }) // closed, not put back in the pool
	_ = c.Close()
	return myDialect{}.awaitSessionEnd(ctx, db, sessionID)
}

func (myDialect) holdsPrepared() bool { return true }

func (myDialect) awaitSessionEnd(ctx context.Context, db *sql.DB, sessionID int64) error {
	for wait := 100 * time.Microsecond; ; wait = min(2*wait, 20*time.Millisecond) {
		var n int
		if err := db.QueryRowContext(ctx, "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE ID = ?", sessionID).Scan(&n); err != nil {
			return err
		}
		if n == 0 {
			return nil
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
}
func (myDialect) commitPrepared(gid string) string   { return "XA COMMIT '" + gid + "'" }
func (myDialect) rollbackPrepared(gid string) string { return "XA ROLLBACK '" + gid + "'" }

func (myDialect) notPrepared(err error) bool {
	var me *mysql.MySQLError
	return errors.As(err, &me) && me.Number == 1397 // XAER_NOTA
}

func (myDialect) listPrepared(ctx context.Context, db *sql.DB, prefix string) ([]string, error) {
	rows, err := db.QueryContext(ctx, "XA RECOVER")
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var format, gtridLen, bqualLen int64
		var data []byte
		if err := rows.Scan(&format, &gtridLen, &bqualLen, &data); err != nil {
			return nil, err
		}
		if format == 1 && bqualLen == 0 && strings.HasPrefix(string(data), prefix) {
			out = append(out, string(data))
		}
	}
	return out, rows.Err()
}

func (myDialect) intentSQL(t string) string {
	return `INSERT INTO ` + t + ` (gid, name, txn_id, coordinator, payload_sha256, state) VALUES (?, ?, ?, ?, ?, 'preparing')
	ON DUPLICATE KEY UPDATE coordinator = IF(state = 'preparing', VALUES(coordinator), coordinator),
	payload_sha256 = IF(state = 'preparing', VALUES(payload_sha256), payload_sha256),
	updated_at = IF(state = 'preparing', NOW(6), updated_at)`
}

// rowInside: on MariaDB, where SET STATEMENT bounds the insert's lock wait (MySQL
// keeps the row committed first).
func (d myDialect) rowInside() bool { return d.mariaDB }

// beginsNew: on MariaDB (MySQL keeps the row committed first).
func (d myDialect) beginsNew() bool { return d.mariaDB }

// beginNew sends XA START and the row's INSERT (waiting at most 1 s for a row lock:
// a row locked by another transaction of the same gid sends the caller the slow way).
func (d myDialect) beginNew(ctx context.Context, c *sql.Conn, t, gid, name, txnID, coordinator, fp string) (bool, error) {
	if err := d.begin(ctx, c, gid); err != nil {
		if myErrorNumber(err) == 1440 { // XAER_DUPID: gid is a transaction the server knows
			return false, nil
		}
		return false, err
	}
	_, err := c.ExecContext(ctx, `SET STATEMENT innodb_lock_wait_timeout = 1 FOR INSERT INTO `+t+
		` (gid, name, txn_id, coordinator, payload_sha256, state) VALUES (?, ?, ?, ?, ?, 'committed')`,
		gid, name, txnID, coordinator, fp)
	if err != nil {
		// This session started gid's transaction, so ending it by gid ends its own.
		_, _ = c.ExecContext(ctx, "XA END '"+gid+"'")
		if _, rerr := c.ExecContext(ctx, "XA ROLLBACK '"+gid+"'"); rerr != nil {
			return false, errors.Join(err, rerr)
		}
		switch myErrorNumber(err) {
		case 1062, 1205: // a duplicate key: gid has a row; a lock wait timeout: its row is locked
			return false, nil
		}
		return false, err
	}
	if d.noWait {
		// As in beginClaim: for the transaction's statements only.
		timeout := 1
		if d.mariaDB {
			timeout = 0
		}
		if _, err := c.ExecContext(ctx, fmt.Sprintf("SET SESSION innodb_lock_wait_timeout = %d", timeout)); err != nil {
			return false, err
		}
	}
	return true, nil
}

// myErrorNumber is the server's error number in err, 0 if none.
func myErrorNumber(err error) uint16 {
	var me *mysql.MySQLError
	if errors.As(err, &me) {
		return me.Number
	}
	return 0
}

func (myDialect) fenceSQL(t string) string {
	return `INSERT INTO ` + t + ` (gid, name, txn_id, state) VALUES (?, ?, ?, 'aborted')
	ON DUPLICATE KEY UPDATE updated_at = IF(state = 'preparing', NOW(6), updated_at),
	state = IF(state = 'preparing', 'aborted', state)`
}

func (myDialect) claimSQL(t string) string {
	return `UPDATE ` + t + ` SET state = 'committed', updated_at = NOW(6) WHERE gid = ? AND state = 'preparing'`
}

func (myDialect) rowSQL(t string) string {
	return `SELECT txn_id, coordinator, payload_sha256, state, TIMESTAMPDIFF(MICROSECOND, created_at, NOW(6)) / 1e6
	FROM ` + t + ` WHERE gid = ?`
}

func (myDialect) gcDecidedSQL(t string) string {
	return `DELETE FROM ` + t + ` WHERE name = ? AND state IN ('committed', 'aborted')
	AND updated_at < NOW(6) - INTERVAL ? SECOND LIMIT ?`
}

func (myDialect) gcCandidatesSQL(t string) string {
	return `SELECT gid FROM ` + t + ` WHERE name = ? AND state = 'preparing' AND updated_at < NOW(6) - INTERVAL ? SECOND LIMIT ?`
}

func (myDialect) deletePreparingSQL(t string) string {
	return `DELETE FROM ` + t + ` WHERE gid = ? AND state = 'preparing'`
}

// mariaDBTimeoutDSN adds MariaDB's max_statement_time (the server stops a statement
// that runs longer: a client that gives up on a statement does not stop it there) to a
// go-sql-driver DSN that does not set it.
func mariaDBTimeoutDSN(dsn string, timeout time.Duration) (string, error) {
	c, err := mysql.ParseDSN(dsn)
	if err != nil {
		return "", err
	}
	if c.Params == nil {
		c.Params = map[string]string{}
	}
	if _, ok := c.Params["max_statement_time"]; !ok {
		c.Params["max_statement_time"] = strconv.FormatFloat(timeout.Seconds(), 'f', 3, 64)
	}
	return c.FormatDSN(), nil
}
