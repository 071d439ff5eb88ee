package sqlpart

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"database/sql/driver"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dtc-project/dtc/participant"
	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5/pgconn"
	"golang.org/x/sync/errgroup"
)

// Sentinel errors.
var (
	// ErrNoTwoPhase: the database cannot prepare transactions as configured (PostgreSQL
	// with max_prepared_transactions = 0, or below PreparedMax).
	ErrNoTwoPhase = errors.New("sqlpart: the database cannot prepare transactions")
	// ErrUnavailable wraps a database error that leaves a phase-2 call or a status
	// query unanswered for now; the caller retries.
	ErrUnavailable = errors.New("sqlpart: database unavailable")
)

// States of a transaction's row in Table.
const (
	rowPreparing = "preparing" // written before the transaction starts; may or may not be prepared
	rowCommitted = "committed" // written inside the prepared transaction: visible once it commits
	rowAborted   = "aborted"   // rolled back, or fenced before any prepare
)

// gidPrefixBase starts every gid sqlpart makes, so that an orphan scan (and a person
// reading pg_prepared_xacts or XA RECOVER) tells dtc's apart.
const gidPrefixBase = "dtc_"

// phase2AttemptsMax bounds the tries of one commit or rollback: a dropped connection is
// tried again on another, and on MariaDB a transaction whose preparing connection is
// still being closed answers "unknown XID" for a moment while XA RECOVER lists it.
const phase2AttemptsMax = 50

// Participant takes part in dtc's two-phase commit with a SQL database's own: prepare
// runs the transaction's statements and prepares it in the database under a gid derived
// from dtc's transaction id; commit and rollback finish the prepared transaction. All
// of its state is in the database (the prepared transactions and Table), so a process
// restarted after a crash knows everything it knew. See the package doc.
type Participant struct {
	cfg    Config
	d      dialect
	db     *sql.DB
	log    *slog.Logger
	client *http.Client
	prefix string // gidPrefixBase, a hash of Name, '_'

	locksMu sync.Mutex
	locks   map[string]*txnLock // see lock

	mu       sync.Mutex
	prepared int // prepared by this participant and not decided, as last counted, plus reservations

	parkMu sync.Mutex
	parked map[string]parkedConn // by gid: sessions holding their prepared transaction (park.go)
	closed bool                  // Close has run: nothing more is parked
	sids   map[any]int64         // session id by driver connection (sessionID)

	resolvers atomic.Int32 // Run calls in progress: while one runs, the participant asks (Asks)

	roundMu sync.Mutex // one resolver round at a time
	next    int        // where the next round starts in the prepared list

	run    running   // prepares that a rollback may cancel (waits.go)
	watch  bool      // PostgreSQL and LockWait: blocked prepares are reported
	waitDB *sql.DB   // the pool that looks for blockers (watch only)
	wstats waitStats // LockWaitStats
}

// Open connects to the database, checks that it can prepare transactions, creates Table
// if it is missing and counts the prepared transactions left from an earlier run. Call
// Run (or ResolveOnce) to finish those.
func Open(ctx context.Context, cfg Config) (*Participant, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Coordinator != "" {
		if err := participant.CheckCoordinatorURL(cfg.Coordinator, cfg.CoordinatorMaxBytes); err != nil {
			return nil, fmt.Errorf("sqlpart: config: %w", err)
		}
	}
	kind, dsn, err := parseDSN(cfg.DSN)
	if err != nil {
		return nil, err
	}
	var d dialect
	driverName := "pgx"
	if kind == PostgreSQL {
		d = pgDialect{statementTimeout: cfg.StatementTimeout, noWait: cfg.LockPolicy == LockNoWait}
	} else {
		driverName = "mysql"
		var maria bool
		if dsn, maria, err = mysqlDSN(ctx, dsn, cfg.StatementTimeout); err != nil {
			return nil, fmt.Errorf("sqlpart: connecting to %s: %w", redactDSN(cfg.DSN), err)
		}
		d = myDialect{mariaDB: maria, noWait: cfg.LockPolicy == LockNoWait}
	}
	db, err := sql.Open(driverName, dsn)
	if err != nil {
		return nil, fmt.Errorf("sqlpart: opening %s: %w", redactDSN(cfg.DSN), err)
	}
	db.SetMaxOpenConns(cfg.PoolConnsMax)
	db.SetMaxIdleConns(cfg.PoolConnsMax)
	db.SetConnMaxIdleTime(time.Minute)
	p := &Participant{cfg: cfg, d: d, db: db, log: cfg.Logger, client: cfg.HTTPClient, locks: map[string]*txnLock{}, parked: map[string]parkedConn{}, sids: map[any]int64{},
		run: running{byGID: map[string]*runningPrepare{}, byPID: map[uint32]*runningPrepare{}}}
	if kind == PostgreSQL && cfg.LockPolicy == LockWait {
		if p.waitDB, err = sql.Open(driverName, dsn); err != nil {
			db.Close()
			return nil, fmt.Errorf("sqlpart: opening %s: %w", redactDSN(cfg.DSN), err)
		}
		p.waitDB.SetMaxOpenConns(cfg.WaitConnsMax)
		p.waitDB.SetMaxIdleConns(cfg.WaitConnsMax)
		p.waitDB.SetConnMaxIdleTime(time.Minute)
		p.watch = true
	}
	if p.log == nil {
		p.log = slog.Default()
	}
	if p.client == nil {
		p.client = &http.Client{}
	}
	h := sha256.Sum256([]byte(cfg.Name))
	p.prefix = gidPrefixBase + hex.EncodeToString(h[:4]) + "_"
	if err := p.init(ctx); err != nil {
		p.closePools()
		return nil, err
	}
	return p, nil
}

// mysqlDSN asks the server what it is: on MariaDB the DSN gets max_statement_time.
// It reports whether the server is MariaDB.
func mysqlDSN(ctx context.Context, dsn string, timeout time.Duration) (string, bool, error) {
	db, err := sql.Open("mysql", dsn)
	if err != nil {
		return "", false, err
	}
	defer db.Close()
	ctx, cancel := context.WithTimeout(ctx, 4*timeout)
	defer cancel()
	var v string
	if err := db.QueryRowContext(ctx, "SELECT VERSION()").Scan(&v); err != nil {
		return "", false, err
	}
	if !strings.Contains(strings.ToLower(v), "mariadb") {
		return dsn, false, nil
	}
	dsn, err = mariaDBTimeoutDSN(dsn, timeout)
	return dsn, true, err
}

func (p *Participant) init(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 4*p.cfg.StatementTimeout)
	defer cancel()
	if err := p.db.PingContext(ctx); err != nil {
		return fmt.Errorf("sqlpart: connecting to %s: %w", redactDSN(p.cfg.DSN), err)
	}
	if err := p.d.check(ctx, p.db, p.cfg.PreparedMax); err != nil {
		return err
	}
	if _, err := p.db.ExecContext(ctx, p.d.createTable(p.cfg.Table)); err != nil {
		return fmt.Errorf("sqlpart: creating table %s: %w", p.cfg.Table, err)
	}
	gids, err := p.listPrepared(ctx, p.prefix)
	if err != nil {
		return fmt.Errorf("sqlpart: listing prepared transactions: %w", err)
	}
	p.prepared = len(gids)
	if len(gids) > 0 {
		p.log.Info("sqlpart: prepared transactions left from an earlier run; asking their coordinator", "count", len(gids))
	}
	return nil
}

// Close closes the connection pool. Prepared transactions stay prepared in the database.
func (p *Participant) Close() error {
	p.closeParked()
	return p.closePools()
}

func (p *Participant) closePools() error {
	if p.waitDB != nil {
		_ = p.waitDB.Close()
	}
	return p.db.Close()
}

// Kind says which database the participant speaks to.
func (p *Participant) Kind() Kind { return p.d.kind() }

// DB is the participant's connection pool (for reading balances in tests and demos).
func (p *Participant) DB() *sql.DB { return p.db }

// GIDPrefix starts every gid of this participant (it depends on Config.Name only).
func (p *Participant) GIDPrefix() string { return p.prefix }

// GID is the global transaction id under which txnID is prepared in the database:
// GIDPrefix and 32 hex digits of SHA-256(Name, txnID). It is the same for the same
// Name and txnID in every run, at most 45 bytes (MariaDB allows 64, PostgreSQL 200),
// and made of characters that need no quoting.
func (p *Participant) GID(txnID string) string {
	h := sha256.New()
	h.Write([]byte(p.cfg.Name))
	h.Write([]byte{0})
	h.Write([]byte(txnID))
	return p.prefix + hex.EncodeToString(h.Sum(nil)[:16])
}

// PreparedCount is the number of transactions this participant has prepared and not
// yet decided, as it last counted them (recounted from the database every resolver
// round).
func (p *Participant) PreparedCount() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.prepared
}

// lock serializes the calls for one transaction. It is one mutex per gid, not a mutex
// shared by several: a prepare may wait long for a row lock held by another prepared
// transaction, whose commit must not wait behind it.
func (p *Participant) lock(gid string) func() {
	p.locksMu.Lock()
	e := p.locks[gid]
	if e == nil {
		e = &txnLock{}
		p.locks[gid] = e
	}
	e.refs++
	p.locksMu.Unlock()
	e.mu.Lock()
	return func() {
		e.mu.Unlock()
		p.locksMu.Lock()
		if e.refs--; e.refs == 0 {
			delete(p.locks, gid)
		}
		p.locksMu.Unlock()
	}
}

// txnLock is the mutex of one transaction, with the number of calls that hold or wait
// for it: the map holds one entry per transaction with a call in progress.
type txnLock struct {
	mu   sync.Mutex
	refs int
}

func (p *Participant) reserve() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.prepared >= p.cfg.PreparedMax {
		return false
	}
	p.prepared++
	return true
}

func (p *Participant) release() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.prepared > 0 {
		p.prepared--
	}
}

func nack(f string, a ...any) participant.Vote {
	return participant.Vote{Reason: fmt.Sprintf(f, a...)}
}

var ack = participant.Vote{ACK: true}

// Prepare runs the statements of payload (see Payload) in a new database transaction
// and prepares it under GID(txnID). The vote is ACK only once the database has prepared
// it; a statement error, a broken bound, a lost connection or a timeout before that is
// NACK with the reason (the database's own message for a statement). coordinator is
// the base URL asked if the transaction is left in doubt (may be empty).
//
// Repeated: ACK again while prepared or after commit (with the same payload), NACK
// after a rollback (the transaction is fenced).
func (p *Participant) Prepare(ctx context.Context, txnID, coordinator string, payload json.RawMessage) participant.Vote {
	stmts, err := parsePayload(payload, p.cfg.StatementsMax, p.cfg.PayloadMaxBytes)
	if err != nil {
		return nack("%v", err)
	}
	return p.prepare(ctx, txnID, coordinator, digest(payload), func(ctx context.Context, q Execer) error {
		return runStatements(ctx, q, stmts, p.cfg.StatementTimeout)
	})
}

// PrepareFunc is Prepare for a transaction written in Go: fn runs the transaction's
// work on the connection it is given, inside the database transaction that is then
// prepared (fn must not commit, roll back or begin). An error from fn is NACK with its
// message. fingerprint identifies the work (e.g. a hash of its inputs): a repeated
// prepare of the same txnID with another fingerprint is NACKed; it may be empty.
func (p *Participant) PrepareFunc(ctx context.Context, txnID, coordinator, fingerprint string, fn func(ctx context.Context, q Execer) error) participant.Vote {
	if len(fingerprint) > 64 {
		fingerprint = digest([]byte(fingerprint))
	}
	return p.prepare(ctx, txnID, coordinator, fingerprint, fn)
}

func (p *Participant) prepare(ctx context.Context, txnID, coordinator, fp string, fn func(context.Context, Execer) error) participant.Vote {
	if err := participant.ValidateTxnID(txnID, p.cfg.TxnIDMaxBytes); err != nil {
		return nack("%v", err)
	}
	if coordinator != "" {
		if err := participant.CheckCoordinatorURL(coordinator, p.cfg.CoordinatorMaxBytes); err != nil {
			return nack("%v", err)
		}
	}
	gid := p.GID(txnID)
	defer p.lock(gid)()
	ctx, cancel := context.WithTimeout(ctx, p.cfg.PrepareTimeout)
	defer cancel()
	// Until its statements are done, the prepare is cancelled by its transaction's
	// rollback (waits.go): a statement blocked on a lock must not hold up the abort.
	ctx, cancelRun := context.WithCancelCause(ctx)
	defer cancelRun(nil)
	base := coordinator
	if base == "" {
		base = p.cfg.Coordinator
	}
	rp := &runningPrepare{txnID: txnID, coordinator: base, cancel: cancelRun}
	p.run.add(gid, rp)
	defer p.run.remove(gid)

	// The usual case, a new transaction: begun with its row written in one go where
	// the dialect can (beginNew; on MariaDB the row is inside the transaction itself,
	// no commit and no log flush of its own).
	if p.d.beginsNew() {
		if v, ok := p.prepareNew(ctx, gid, txnID, coordinator, fp, rp, fn); ok {
			return v
		}
		// The row is there already (a repeated prepare, a fenced one), or the gid is
		// prepared: the usual way below reads the row and decides.
	}
	if v, decided := p.existing(ctx, gid, txnID, fp); decided {
		return v
	}
	if !p.reserve() {
		return nack("sqlpart: too many prepared transactions (at most %d)", p.cfg.PreparedMax)
	}
	pc := &prepConn{}
	defer p.endPrepare(pc)
	if err := p.writeIntent(ctx, gid, txnID, coordinator, fp); err != nil {
		return nack("sqlpart: recording the transaction: %v", err)
	}
	var err error
	if pc.conn, err = p.db.Conn(ctx); err != nil {
		return nack("sqlpart: no database connection: %v", err)
	}
	if pc.sid, err = p.sessionID(ctx, pc.conn); err != nil {
		pc.discard = true
		return nack("sqlpart: asking for the session id: %v", err)
	}
	sctx, c := context.WithTimeout(ctx, p.cfg.StatementTimeout)
	n, err := p.d.beginClaim(sctx, pc.conn, p.cfg.Table, gid)
	c()
	if err != nil {
		return p.abortPrepare(ctx, pc, gid, nack("sqlpart: starting the transaction and claiming its row: %v", err))
	}
	if n != 1 {
		return p.abortPrepare(ctx, pc, gid, nack("sqlpart: transaction %s was rolled back here before this prepare (fenced)", txnID))
	}
	return p.runPrepare(ctx, pc, gid, txnID, rp, fn)
}

// existing reads the row of a transaction that has one (a repeated prepare, a fenced
// one) and decides its vote if it can: ACK when it is committed or prepared here with
// the same payload, NACK when it was rolled back here first or the payload differs.
// Not decided (false): prepare it.
func (p *Participant) existing(ctx context.Context, gid, txnID, fp string) (participant.Vote, bool) {
	r, err := p.readRow(ctx, gid)
	if err != nil {
		return nack("sqlpart: reading the transaction's state: %v", err), true
	}
	if r != nil {
		switch r.state {
		case rowCommitted:
			if r.digest != fp {
				return nack("sqlpart: transaction %s committed here with a different payload", txnID), true
			}
			return ack, true
		case rowAborted:
			return nack("sqlpart: transaction %s was rolled back here before this prepare (fenced)", txnID), true
		}
	}
	prepared, err := p.isPrepared(ctx, gid)
	if err != nil {
		return nack("sqlpart: looking for the prepared transaction: %v", err), true
	}
	if !prepared {
		return participant.Vote{}, false
	}
	if r == nil && p.d.rowInside() {
		// Prepared with its row inside: the row is visible to reads of uncommitted data only.
		if r, err = p.readRowUncommitted(ctx, gid); err != nil {
			return nack("sqlpart: reading the prepared transaction's row: %v", err), true
		}
	}
	if r == nil || r.digest != fp {
		return nack("sqlpart: transaction %s is prepared here with a different payload", txnID), true
	}
	return ack, true
}

// prepareNew is the usual prepare on a dialect that begins a new transaction in one
// go (beginNew): it starts the transaction with its row written, runs fn and
// prepares. Not handled (false): gid has a row already, or is prepared; nothing was
// reserved and nothing is left open, and the caller goes the usual way.
func (p *Participant) prepareNew(ctx context.Context, gid, txnID, coordinator, fp string, rp *runningPrepare,
	fn func(context.Context, Execer) error) (participant.Vote, bool) {
	if !p.reserve() {
		return nack("sqlpart: too many prepared transactions (at most %d)", p.cfg.PreparedMax), true
	}
	pc := &prepConn{}
	defer p.endPrepare(pc)
	var err error
	if pc.conn, err = p.db.Conn(ctx); err != nil {
		return nack("sqlpart: no database connection: %v", err), true
	}
	if pc.sid, err = p.sessionID(ctx, pc.conn); err != nil {
		pc.discard = true
		return nack("sqlpart: asking for the session id: %v", err), true
	}
	sctx, c := context.WithTimeout(ctx, p.cfg.StatementTimeout)
	inserted, err := p.d.beginNew(sctx, pc.conn, p.cfg.Table, gid, p.cfg.Name, txnID, coordinator, fp)
	c()
	if err != nil {
		// beginNew rolled back what it started, or could not: the session is
		// closed either way (never XA ROLLBACK here: the gid may be another
		// session's prepared transaction).
		pc.discard = true
		return nack("sqlpart: starting the transaction and recording it: %v", err), true
	}
	if !inserted {
		return participant.Vote{}, false // endPrepare releases the reservation
	}
	return p.runPrepare(ctx, pc, gid, txnID, rp, fn), true
}

// prepConn is a prepare's connection and what becomes of it at the end (endPrepare).
type prepConn struct {
	conn    *sql.Conn // nil until taken
	sid     int64     // its session id (MariaDB/MySQL)
	discard bool      // closed, not given back to the pool
	parked  bool      // held for phase 2 (park.go)
	done    bool      // prepared: the reservation stays
}

// endPrepare releases the reservation of a prepare that did not prepare, and gives its
// connection back, closes it, or leaves it parked.
func (p *Participant) endPrepare(pc *prepConn) {
	if !pc.done {
		p.release()
	}
	if pc.conn == nil || pc.parked {
		return
	}
	if pc.discard {
		// The connection's session may still hold the transaction (or, on MariaDB,
		// holds the prepared one, which another connection can finish only once this
		// one is gone): close it rather than give it back to the pool.
		_ = pc.conn.Raw(func(any) error { return driver.ErrBadConn })
	}
	_ = pc.conn.Close()
}

// abortPrepare rolls back the unprepared transaction on pc and returns v.
func (p *Participant) abortPrepare(ctx context.Context, pc *prepConn, gid string, v participant.Vote) participant.Vote {
	actx, c := context.WithTimeout(context.WithoutCancel(ctx), p.cfg.StatementTimeout)
	defer c()
	if err := p.d.abort(actx, pc.conn, gid); err != nil {
		pc.discard = true
	}
	return v
}

// runPrepare runs fn in the transaction begun on pc (its row written or claimed) and
// prepares it as gid.
func (p *Participant) runPrepare(ctx context.Context, pc *prepConn, gid, txnID string, rp *runningPrepare,
	fn func(context.Context, Execer) error) participant.Vote {
	conn := pc.conn
	abortVote := func(v participant.Vote) participant.Vote { return p.abortPrepare(ctx, pc, gid, v) }
	abort := func(reason string) participant.Vote { return abortVote(nack("%s", reason)) }
	if p.watch {
		p.run.setPID(rp, backendPID(conn))
	}
	var watchers sync.WaitGroup
	wctx, stopWatch := context.WithCancel(ctx)
	if p.watch && rp.pid != 0 && rp.coordinator != "" { // no coordinator, nobody to tell
		watchers.Go(func() { p.watchWaits(wctx, rp) })
	}
	err := fn(ctx, conn)
	stopWatch()
	watchers.Wait()
	p.run.remove(gid) // a rollback from now on waits for the prepare's end
	if err2 := p.d.endStatements(ctx, conn); err2 != nil {
		pc.discard = true // its session's lock wait timeout is unknown
		if err == nil {
			err = fmt.Errorf("sqlpart: restoring the session's lock wait timeout: %w", err2)
		}
	}
	if err != nil {
		switch {
		case errors.Is(context.Cause(ctx), errRolledBack):
			p.wstats.cancelled.Add(1)
			pc.discard = true
			return abort(fmt.Sprintf("%v: %v", errRolledBack, err))
		case ctx.Err() != nil:
			return abort(fmt.Sprintf("sqlpart: prepare timed out or was cancelled: %v", err))
		case lockConflict(err):
			p.wstats.conflicts.Add(1)
			return abortVote(participant.Vote{Reason: fmt.Sprintf("sqlpart: lock conflict (policy %s): %v", p.cfg.LockPolicy, err), Cause: participant.CauseConflict})
		}
		return abort(err.Error())
	}
	if err := p.d.prepare(ctx, conn, gid); err != nil {
		// Perhaps the database prepared it and only the answer was lost: NACK all the
		// same. The coordinator then aborts, and its rollback (or the resolver, which
		// finds the gid in the prepared list) rolls it back.
		return abort(fmt.Sprintf("sqlpart: preparing the transaction: %v", err))
	}
	if p.d.holdsPrepared() && p.park(gid, conn, pc.sid) {
		pc.parked, pc.done = true, true
		return ack
	}
	if err := p.d.detach(ctx, p.db, conn, pc.sid); err != nil {
		// Prepared, but perhaps not yet finishable by another connection: NACK, which
		// is always safe; the coordinator's rollback (or the resolver) finishes it.
		return nack("sqlpart: waiting for the prepared transaction's session to close: %v", err)
	}
	pc.done = true
	return ack
}

type txnRow struct {
	txnID, coordinator, digest, state string
	ageSeconds                        float64
}

// queryAttemptsMax bounds the tries of one of the participant's own reads when the
// pooled connection it got turns out to be dead (the server closed it, an operator
// killed it): the pool then drops it and the next try gets another.
const queryAttemptsMax = 3

// retry runs fn, each try within StatementTimeout, again after a connection error.
func (p *Participant) retry(ctx context.Context, fn func(ctx context.Context) error) error {
	var err error
	for range queryAttemptsMax {
		qctx, cancel := context.WithTimeout(ctx, p.cfg.StatementTimeout)
		err = fn(qctx)
		cancel()
		if err == nil || !connectionError(err) || ctx.Err() != nil {
			return err
		}
	}
	return err
}

// connectionError reports whether err is about the connection rather than the query.
func connectionError(err error) bool {
	if errors.Is(err, driver.ErrBadConn) || errors.Is(err, mysql.ErrInvalidConn) {
		return true
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return strings.HasPrefix(pe.Code, "08") || strings.HasPrefix(pe.Code, "57P") // connection exception, operator intervention
	}
	var me *mysql.MySQLError
	if errors.As(err, &me) {
		return me.Number == 1927 || me.Number == 1053 // connection killed, server shutdown
	}
	return !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled)
}

func (p *Participant) readRow(ctx context.Context, gid string) (*txnRow, error) {
	var r txnRow
	found := false
	err := p.retry(ctx, func(ctx context.Context) error {
		var err error
		found, err = p.scanRow(ctx, p.db, gid, &r)
		return err
	})
	if err != nil || !found {
		return nil, err
	}
	return &r, nil
}

// scanRow reads gid's row through q into r; found is false when there is none.
func (p *Participant) scanRow(ctx context.Context, q interface {
	QueryRowContext(context.Context, string, ...any) *sql.Row
}, gid string, r *txnRow) (found bool, err error) {
	err = q.QueryRowContext(ctx, p.d.rowSQL(p.cfg.Table), gid).Scan(&r.txnID, &r.coordinator, &r.digest, &r.state, &r.ageSeconds)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	return err == nil, err
}

// readRowUncommitted reads gid's row as readRow does, but also when the transaction
// that wrote it has not committed: on a dialect that writes the row inside the
// transaction (rowInside), the row of a prepared transaction. Only for a gid that is
// prepared, or about to be listed as prepared: a row it finds may yet be rolled back.
func (p *Participant) readRowUncommitted(ctx context.Context, gid string) (*txnRow, error) {
	var r txnRow
	found := false
	err := p.retry(ctx, func(ctx context.Context) error {
		tx, err := p.db.BeginTx(ctx, &sql.TxOptions{Isolation: sql.LevelReadUncommitted, ReadOnly: true})
		if err != nil {
			return err
		}
		defer func() { _ = tx.Rollback() }()
		found, err = p.scanRow(ctx, tx, gid, &r)
		return err
	})
	if err != nil || !found {
		return nil, err
	}
	return &r, nil
}

func (p *Participant) listPrepared(ctx context.Context, prefix string) ([]string, error) {
	var gids []string
	err := p.retry(ctx, func(ctx context.Context) error {
		var err error
		gids, err = p.d.listPrepared(ctx, p.db, prefix)
		return err
	})
	return gids, err
}

func (p *Participant) isPrepared(ctx context.Context, gid string) (bool, error) {
	gids, err := p.listPrepared(ctx, gid)
	if err != nil {
		return false, err
	}
	for _, g := range gids {
		if g == gid {
			return true, nil
		}
	}
	return false, nil
}

// writeIntent records, before the transaction starts, which dtc transaction gid is, so
// that an orphan found prepared after a crash can be asked about. On PostgreSQL it is
// committed without waiting for the disk: the prepare that follows syncs the log up to
// and past it, and a transaction that never prepared needs no record.
func (p *Participant) writeIntent(ctx context.Context, gid, txnID, coordinator, fp string) error {
	return p.retry(ctx, func(ctx context.Context) error { return p.writeIntentOnce(ctx, gid, txnID, coordinator, fp) })
}

func (p *Participant) writeIntentOnce(ctx context.Context, gid, txnID, coordinator, fp string) error {
	q := p.d.intentSQL(p.cfg.Table)
	if p.d.kind() != PostgreSQL {
		_, err := p.db.ExecContext(ctx, q, gid, p.cfg.Name, txnID, coordinator, fp)
		return err
	}
	tx, err := p.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback() }()
	if _, err := tx.ExecContext(ctx, "SET LOCAL synchronous_commit = off"); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, q, gid, p.cfg.Name, txnID, coordinator, fp); err != nil {
		return err
	}
	return tx.Commit()
}

// Commit commits the transaction prepared for txnID, looking it up in the database's
// prepared transactions: 200 committed when it was prepared or is already committed;
// a conflict (State aborted or unknown) when it was rolled back or never prepared.
// A database error is Result.Err (retry later): it is never a reason to roll back.
func (p *Participant) Commit(ctx context.Context, txnID string) participant.Result {
	return p.phase2(ctx, txnID, true)
}

// Rollback rolls the transaction prepared for txnID back. One that was never prepared
// here is fenced: a row says it aborted, so a late prepare is NACKed. Rollback of a
// committed transaction is a conflict.
func (p *Participant) Rollback(ctx context.Context, txnID string) participant.Result {
	if err := participant.ValidateTxnID(txnID, p.cfg.TxnIDMaxBytes); err == nil && p.d.kind() == PostgreSQL {
		// A prepare still running its statements (blocked on a lock, perhaps behind a
		// transaction waiting for this one) is cancelled: it answers NACK, its work is
		// rolled back, and the rollback below gets the transaction's lock. (Not on
		// MariaDB/MySQL: there a cancelled statement's session goes on waiting for its
		// lock, with the transaction's row claimed, until its own timeout.)
		if p.run.cancel(p.GID(txnID), errRolledBack) {
			p.log.Debug("sqlpart: rollback cancelled the transaction's running prepare", "txn_id", txnID)
		}
	}
	return p.phase2(ctx, txnID, false)
}

func (p *Participant) phase2(ctx context.Context, txnID string, commit bool) participant.Result {
	if err := participant.ValidateTxnID(txnID, p.cfg.TxnIDMaxBytes); err != nil {
		return participant.Result{Err: err}
	}
	gid := p.GID(txnID)
	defer p.lock(gid)()
	finished := false // by the session that prepared it
	if pc, ok := p.unpark(gid); ok {
		q := p.d.rollbackPrepared(gid)
		if commit {
			q = p.d.commitPrepared(gid)
		}
		if err := p.finishParked(ctx, pc, q); err != nil {
			p.log.Info("sqlpart: finishing on the session that prepared failed; going on with another", "txn_id", txnID, "err", err)
		} else {
			finished = true
		}
	}
	var lastErr error
	for attempt := 0; attempt < phase2AttemptsMax; attempt++ {
		if attempt > 0 {
			if err := sleepCtx(ctx, backoff(attempt)); err != nil {
				return participant.Result{Err: fmt.Errorf("%w: %v (last error: %v)", ErrUnavailable, err, lastErr)}
			}
		}
		res, err := p.phase2Once(ctx, txnID, gid, commit, finished)
		finished = false // a second try finishes (or finds finished) on its own
		if err == nil {
			return res
		}
		lastErr = err
	}
	return participant.Result{Err: fmt.Errorf("%w: %v", ErrUnavailable, lastErr)}
}

func backoff(attempt int) time.Duration {
	return min(time.Duration(attempt)*10*time.Millisecond, 200*time.Millisecond)
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// phase2Once makes one try; an error means "try again".
// finished says the session that prepared it has just finished it.
func (p *Participant) phase2Once(ctx context.Context, txnID, gid string, commit, finished bool) (participant.Result, error) {
	// Finish it first and look only if the database says there is nothing to finish:
	// the usual case costs one statement. COMMIT PREPARED / XA COMMIT of a gid that is
	// prepared is what the lookup would lead to anyway; one that is not fails with
	// "no such prepared transaction" and changes nothing.
	var err error
	if !finished {
		q := p.d.rollbackPrepared(gid)
		if commit {
			q = p.d.commitPrepared(gid)
		}
		sctx, cancel := context.WithTimeout(ctx, p.cfg.StatementTimeout)
		_, err = p.db.ExecContext(sctx, q)
		cancel()
	}
	prepared := err == nil
	if err != nil && !p.d.notPrepared(err) {
		return participant.Result{}, err
	}
	if !prepared {
		listed, err := p.isPrepared(ctx, gid)
		if err != nil {
			return participant.Result{}, err
		}
		if listed {
			// Listed but not finishable yet: try again.
			return participant.Result{}, fmt.Errorf("sqlpart: %s is prepared but the database refused to finish it yet", gid)
		}
	}
	if prepared {
		p.release()
		if commit {
			p.log.Debug("sqlpart: committed", "txn_id", txnID, "gid", gid)
			return participant.Result{State: participant.StateCommitted}, nil
		}
	}
	r, err := p.readRow(ctx, gid)
	if err != nil {
		return participant.Result{}, err
	}
	state := participant.StateUnknown
	if r != nil {
		switch r.state {
		case rowCommitted:
			state = participant.StateCommitted
		case rowAborted:
			state = participant.StateAborted
		}
	}
	if commit && r != nil && r.state == rowPreparing && p.d.holdsPrepared() {
		// Only an ACKed (so prepared) transaction is committed; on MariaDB/MySQL one
		// whose session is still being torn down (its process was killed) is for a
		// moment neither finishable nor listed by XA RECOVER: look again.
		return participant.Result{}, fmt.Errorf("sqlpart: %s is neither committed nor listed as prepared yet", gid)
	}
	if commit && r == nil && p.d.rowInside() {
		// The same, for a row written inside the transaction: there while the
		// transaction is, visible to reads of uncommitted data only.
		u, err := p.readRowUncommitted(ctx, gid)
		if err != nil {
			return participant.Result{}, err
		}
		if u != nil {
			return participant.Result{}, fmt.Errorf("sqlpart: %s is neither committed nor listed as prepared yet", gid)
		}
	}
	if commit {
		return participant.Result{State: state, Conflict: state != participant.StateCommitted}, nil
	}
	if state == participant.StateCommitted {
		return participant.Result{State: state, Conflict: true}, nil
	}
	if state != participant.StateAborted {
		// Rolled back just now, or never prepared: the row says aborted from now on,
		// which fences a late prepare of the same transaction.
		sctx, cancel := context.WithTimeout(ctx, p.cfg.StatementTimeout)
		_, err := p.db.ExecContext(sctx, p.d.fenceSQL(p.cfg.Table), gid, p.cfg.Name, txnID)
		cancel()
		if err != nil {
			return participant.Result{}, err
		}
		if r, err = p.readRow(ctx, gid); err != nil {
			return participant.Result{}, err
		}
		if r == nil || r.state != rowAborted {
			return participant.Result{}, fmt.Errorf("sqlpart: the fence of %s did not hold (row %+v)", gid, r)
		}
	}
	return participant.Result{State: participant.StateAborted}, nil
}

// Status says what the database knows of txnID: committed or aborted from Table,
// prepared from the database's prepared transactions, unknown otherwise.
func (p *Participant) Status(ctx context.Context, txnID string) (participant.State, error) {
	if err := participant.ValidateTxnID(txnID, p.cfg.TxnIDMaxBytes); err != nil {
		return "", err
	}
	gid := p.GID(txnID)
	defer p.lock(gid)()
	r, err := p.readRow(ctx, gid)
	if err != nil {
		return "", fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	if r != nil {
		switch r.state {
		case rowCommitted:
			return participant.StateCommitted, nil
		case rowAborted:
			return participant.StateAborted, nil
		}
	}
	prepared, err := p.isPrepared(ctx, gid)
	if err != nil {
		return "", fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	if prepared {
		return participant.StatePrepared, nil
	}
	return participant.StateUnknown, nil
}

// Run resolves in-doubt transactions and deletes old rows every ResolveInterval until
// ctx is done; its first round, at once, asks about every prepared transaction
// whatever its age (they are orphans of an earlier run). Run it on a goroutine its
// owner waits for.
func (p *Participant) Run(ctx context.Context) {
	p.resolvers.Add(1)
	defer p.resolvers.Add(-1)
	p.ResolveOnce(ctx, true)
	t := time.NewTicker(p.cfg.ResolveInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		p.ResolveOnce(ctx, false)
		if err := p.GC(ctx); err != nil && ctx.Err() == nil {
			p.log.Warn("sqlpart: deleting old rows", "err", err)
		}
	}
}

// Asks reports whether the participant asks the coordinator about the transactions it
// holds in doubt: while Run runs. Its handler then says so on its answers
// (participant.HeaderInDoubt), which lets dtc keep the begin record of a transaction
// lazy (not synced before the first prepare): if dtc crashes before its decision, the
// transaction is unknown to it, and the resolver's question is answered "not found",
// presumed abort.
func (p *Participant) Asks() bool { return p.resolvers.Load() > 0 }

// ResolveOnce runs one round: it lists the transactions this participant has prepared
// in the database, and for up to ResolvePerRoundMax of those prepared longer than
// InDoubtAfter (all of them if all is set) asks the coordinator
// (participant.AskCoordinator: 404 "not_found" is presumed abort) and commits or rolls
// back. It also recounts the prepared transactions.
func (p *Participant) ResolveOnce(ctx context.Context, all bool) []participant.Resolution {
	p.roundMu.Lock()
	defer p.roundMu.Unlock()
	gids, err := p.listPrepared(ctx, p.prefix)
	if err != nil {
		p.log.Warn("sqlpart: listing prepared transactions", "err", err)
		return nil
	}
	p.mu.Lock()
	p.prepared = len(gids)
	p.mu.Unlock()
	if len(gids) == 0 {
		p.next = 0
		return nil
	}
	if p.next >= len(gids) {
		p.next = 0
	}
	n := min(len(gids), p.cfg.ResolvePerRoundMax)
	batch := make([]string, n)
	for i := range n {
		batch[i] = gids[(p.next+i)%len(gids)]
	}
	p.next = (p.next + n) % len(gids)
	out := make([]participant.Resolution, n)
	var g errgroup.Group
	g.SetLimit(p.cfg.ResolveConcurrencyMax)
	for i, gid := range batch {
		g.Go(func() error {
			out[i] = p.resolve(ctx, gid, all)
			return nil
		})
	}
	_ = g.Wait()
	res := out[:0]
	for _, r := range out {
		if r.Outcome != "" {
			res = append(res, r)
		}
	}
	return res
}

func (p *Participant) resolve(ctx context.Context, gid string, all bool) participant.Resolution {
	r, err := p.readRow(ctx, gid)
	if err == nil && r == nil && p.d.rowInside() {
		r, err = p.readRowUncommitted(ctx, gid) // its row was written inside it
	}
	if err != nil {
		return participant.Resolution{TxnID: gid, Outcome: participant.ResolvedError, Detail: err.Error()}
	}
	if r == nil {
		p.log.Error("sqlpart: a prepared transaction with this participant's gid has no row; finish it by hand", "gid", gid)
		return participant.Resolution{TxnID: gid, Outcome: participant.ResolvedPending, Detail: "no row for gid " + gid}
	}
	if !all && r.ageSeconds < p.cfg.InDoubtAfter.Seconds() {
		return participant.Resolution{} // not in doubt yet
	}
	res := participant.Resolution{TxnID: r.txnID}
	base := r.coordinator
	if base == "" {
		base = p.cfg.Coordinator
	}
	if base == "" {
		res.Outcome, res.Detail = participant.ResolvedPending, "no coordinator known for it"
		p.log.Warn("sqlpart: transaction in doubt and no coordinator to ask", "txn_id", r.txnID, "gid", gid)
		return res
	}
	verdict, detail := participant.AskCoordinator(ctx, p.client, base, r.txnID, p.cfg.QueryTimeout, 1<<20)
	res.Detail = detail
	var x participant.Result
	switch verdict {
	case participant.StateCommitted:
		x = p.Commit(ctx, r.txnID)
	case participant.StateAborted:
		x = p.Rollback(ctx, r.txnID)
	default:
		res.Outcome = participant.ResolvedPending
		return res
	}
	switch {
	case x.Err != nil:
		res.Outcome, res.Detail = participant.ResolvedError, x.Err.Error()
	case x.Conflict:
		res.Outcome = participant.ResolvedConflict
		res.Detail = fmt.Sprintf("coordinator says %s, database has %s", verdict, x.State)
		p.log.Error("sqlpart: heuristic hazard while resolving", "txn_id", r.txnID, "coordinator", verdict, "database", x.State)
	case verdict == participant.StateCommitted:
		res.Outcome = participant.ResolvedCommitted
		p.log.Info("sqlpart: resolved in-doubt transaction", "txn_id", r.txnID, "outcome", "committed", "why", detail)
	default:
		res.Outcome = participant.ResolvedRolledBack
		p.log.Info("sqlpart: resolved in-doubt transaction", "txn_id", r.txnID, "outcome", "rolled back", "why", detail)
	}
	return res
}

// GC deletes up to GCRowsPerRoundMax rows of transactions decided longer than
// RetainDecided ago, and of prepares that failed that long ago; it never touches the
// row of a transaction that is prepared.
func (p *Participant) GC(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 4*p.cfg.StatementTimeout)
	defer cancel()
	secs := p.cfg.RetainDecided.Seconds()
	if _, err := p.db.ExecContext(ctx, p.d.gcDecidedSQL(p.cfg.Table), p.cfg.Name, secs, p.cfg.GCRowsPerRoundMax); err != nil {
		return fmt.Errorf("sqlpart: deleting decided rows: %w", err)
	}
	rows, err := p.db.QueryContext(ctx, p.d.gcCandidatesSQL(p.cfg.Table), p.cfg.Name, secs, p.cfg.GCRowsPerRoundMax)
	if err != nil {
		return fmt.Errorf("sqlpart: finding old rows: %w", err)
	}
	var cands []string
	for rows.Next() {
		var g string
		if err := rows.Scan(&g); err != nil {
			rows.Close()
			return fmt.Errorf("sqlpart: finding old rows: %w", err)
		}
		cands = append(cands, g)
	}
	rows.Close()
	for _, gid := range cands {
		if err := p.deleteIfNotPrepared(ctx, gid); err != nil {
			return err
		}
	}
	return nil
}

func (p *Participant) deleteIfNotPrepared(ctx context.Context, gid string) error {
	defer p.lock(gid)()
	prepared, err := p.isPrepared(ctx, gid)
	if err != nil || prepared {
		return err
	}
	_, err = p.db.ExecContext(ctx, p.d.deletePreparingSQL(p.cfg.Table), gid)
	return err
}
