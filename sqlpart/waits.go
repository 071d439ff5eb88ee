package sqlpart

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/dtc-project/dtc/participant"
)

// Lock waits (issue 16). A prepare's statement that meets a row lock held by another
// transaction waits for it (LockWait) or fails at once (LockNoWait). A wait across two
// databases can be a deadlock that neither database sees: T1 holds x at A and waits for
// y at B while T2 holds y at B and waits for x at A. Only the coordinator sees both
// waits, so on PostgreSQL the participant tells it what each of its prepares waits
// for, as the participant library does:
//
//	POST {coordinator}/v1/waits  {"participant","waiter","holders":[…],"key"}  → 202
//
// at once when a statement is found blocked, at once again when a transaction it was
// not told of comes in its way, and every WaitReportInterval while the wait lasts.
//
// Finding the blockers: a statement still running after WaitPollInterval is looked at,
// and again every WaitPollInterval, on a pool of its own (WaitConnsMax connections):
// pg_blocking_pids of the backend running it names the sessions in its way; a session
// running another prepare of this participant is that prepare's transaction (pid →
// transaction, kept while the prepare runs), and a prepared transaction (pid 0 in
// pg_blocking_pids) is found through pg_locks: the lock the statement waits for,
// granted to a lock holder without a pid, whose transaction id lock leads to
// pg_prepared_xacts' gid, whose row in Table gives the dtc transaction id. Only
// transactions of the same coordinator are reported; a blocker that is not a dtc
// transaction known to this participant (another client, another participant's
// session still running its statements) is not.
//
// A rollback of a transaction whose prepare is still running (the coordinator aborted
// it: a deadlock's victim, a timeout) cancels the prepare's context: the blocked
// statement is cancelled (pgx sends the server a cancel request and closes the
// connection), the prepare answers NACK and its work is rolled back, and the rollback
// then fences the transaction as usual.

// LockWaitStats counts what the participant saw of lock waits.
type LockWaitStats struct {
	Blocked     uint64 // prepares found blocked behind a dtc transaction
	Reports     uint64 // wait reports the coordinator accepted (202)
	ReportFails uint64 // wait reports that failed (made again at the next interval)
	Cancelled   uint64 // prepares cancelled by the transaction's rollback
	Conflicts   uint64 // prepares NACKed with cause conflict (a lock not granted, a deadlock the database broke)
}

type waitStats struct {
	blocked, reports, reportFails, cancelled, conflicts atomic.Uint64
}

// LockWaitStats returns the counters of lock waits.
func (p *Participant) LockWaitStats() LockWaitStats {
	s := &p.wstats
	return LockWaitStats{Blocked: s.blocked.Load(), Reports: s.reports.Load(), ReportFails: s.reportFails.Load(),
		Cancelled: s.cancelled.Load(), Conflicts: s.conflicts.Load()}
}

// errRolledBack is the cause of a prepare cancelled by its transaction's rollback.
var errRolledBack = errors.New("sqlpart: the transaction was rolled back (by its coordinator) while its prepare ran")

// runningPrepare is a prepare between taking its transaction's lock and PREPARE
// TRANSACTION / XA PREPARE: the part that a rollback may cancel.
type runningPrepare struct {
	txnID       string
	coordinator string // where its waits are reported: its prepare's, or Config.Coordinator
	pid         uint32 // PostgreSQL backend running its statements, 0 until known
	cancel      context.CancelCauseFunc
}

// running is the registry of running prepares, by gid and by backend pid.
type running struct {
	mu    sync.Mutex
	byGID map[string]*runningPrepare
	byPID map[uint32]*runningPrepare
}

func (r *running) add(gid string, rp *runningPrepare) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, dup := r.byGID[gid]; dup {
		panic(fmt.Sprintf("sqlpart: two prepares of gid %s running at once (they hold its lock)", gid))
	}
	r.byGID[gid] = rp
}

func (r *running) setPID(rp *runningPrepare, pid uint32) {
	r.mu.Lock()
	defer r.mu.Unlock()
	rp.pid = pid
	r.byPID[pid] = rp
}

// remove unregisters gid's prepare; it may be called again.
func (r *running) remove(gid string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	rp := r.byGID[gid]
	if rp == nil {
		return
	}
	delete(r.byGID, gid)
	if rp.pid != 0 && r.byPID[rp.pid] == rp {
		delete(r.byPID, rp.pid)
	}
}

// cancel cancels gid's running prepare, if there is one, and reports whether there was.
func (r *running) cancel(gid string, cause error) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	rp := r.byGID[gid]
	if rp == nil {
		return false
	}
	rp.cancel(cause)
	return true
}

// byBackend is the transaction (and its coordinator) a running prepare runs on pid.
func (r *running) byBackend(pid uint32) (txnID, coordinator string, ok bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	rp := r.byPID[pid]
	if rp == nil {
		return "", "", false
	}
	return rp.txnID, rp.coordinator, true
}

// backendPID is the PostgreSQL backend of conn (known to the driver: no round trip).
func backendPID(conn *sql.Conn) uint32 {
	var pid uint32
	_ = conn.Raw(func(dc any) error {
		if sc, ok := dc.(*stdlib.Conn); ok {
			pid = sc.Conn().PgConn().PID()
		}
		return nil
	})
	return pid
}

// lockConflict reports whether err says a statement did not get a lock: not granted at
// once under no-wait, or chosen by the database to break a deadlock it saw.
func lockConflict(err error) bool {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code == "55P03" || pe.Code == "40P01" // lock_not_available, deadlock_detected
	}
	var me *mysql.MySQLError
	if errors.As(err, &me) {
		// ER_LOCK_WAIT_TIMEOUT, ER_LOCK_DEADLOCK, ER_LOCK_NOWAIT (MySQL's NOWAIT)
		return me.Number == 1205 || me.Number == 1213 || me.Number == 3572
	}
	return false
}

// sameCoordinator compares two coordinator base URLs, a trailing '/' aside.
func sameCoordinator(a, b string) bool {
	return strings.TrimSuffix(a, "/") == strings.TrimSuffix(b, "/")
}

// blockersSQL lists what blocks backend $1: the pids of pg_blocking_pids other than 0
// (kind 'pid'), the dtc transactions of the prepared transactions among them (kind
// 'prepared': txn id and coordinator from Table; only when pg_blocking_pids has a 0,
// a prepared transaction), and a description of the lock it waits for (kind 'key'): the
// row (a waiter for a row lock holds, or waits for, the row's tuple lock while it waits
// for the holder's transaction id), else the lock's type and relation.
func blockersSQL(table string) string {
	return `WITH b AS MATERIALIZED (SELECT pg_blocking_pids($1::int) AS pids),
w AS MATERIALIZED (SELECT * FROM pg_locks WHERE pid = $1::int AND NOT granted)
SELECT 'pid', u.pid, '', '' FROM b, unnest(b.pids) AS u(pid) WHERE u.pid <> 0
UNION ALL
SELECT 'prepared', 0, t.txn_id, t.coordinator
FROM b, w
JOIN pg_locks h ON h.granted AND h.pid IS NULL AND h.locktype = w.locktype
	AND h.database IS NOT DISTINCT FROM w.database AND h.relation IS NOT DISTINCT FROM w.relation
	AND h.page IS NOT DISTINCT FROM w.page AND h.tuple IS NOT DISTINCT FROM w.tuple
	AND h.virtualxid IS NOT DISTINCT FROM w.virtualxid AND h.transactionid IS NOT DISTINCT FROM w.transactionid
	AND h.classid IS NOT DISTINCT FROM w.classid AND h.objid IS NOT DISTINCT FROM w.objid
	AND h.objsubid IS NOT DISTINCT FROM w.objsubid
JOIN pg_locks xl ON xl.virtualtransaction = h.virtualtransaction AND xl.pid IS NULL AND xl.granted
	AND xl.locktype = 'transactionid'
JOIN pg_prepared_xacts x ON x.transaction = xl.transactionid
JOIN ` + table + ` t ON t.gid = x.gid
WHERE 0 = ANY(b.pids)
UNION ALL
SELECT 'key', 0, coalesce((SELECT 'row ' || l.relation::regclass::text || ' (' || l.page || ',' || l.tuple || ')'
	FROM pg_locks l WHERE l.pid = $1::int AND l.locktype = 'tuple' ORDER BY l.granted LIMIT 1),
	w.locktype || coalesce(' on ' || w.relation::regclass::text, '')), '' FROM w`
}

// blockers returns the dtc transactions of coordinator that backend pid waits for
// (sorted, without self, the waiter), and what lock it waits for ("" if it waits for
// none).
func (p *Participant) blockers(ctx context.Context, pid uint32, self, coordinator string) ([]string, string, error) {
	ctx, cancel := context.WithTimeout(ctx, p.cfg.StatementTimeout)
	defer cancel()
	rows, err := p.waitDB.QueryContext(ctx, blockersSQL(p.cfg.Table), int64(pid))
	if err != nil {
		return nil, "", err
	}
	defer rows.Close()
	var holders []string
	key := ""
	add := func(id, c string) {
		if c == "" {
			c = p.cfg.Coordinator
		}
		if id != self && sameCoordinator(c, coordinator) && !slices.Contains(holders, id) {
			holders = append(holders, id)
		}
	}
	for rows.Next() {
		var kind, txnID, coord string
		var bpid int64
		if err := rows.Scan(&kind, &bpid, &txnID, &coord); err != nil {
			return nil, "", err
		}
		switch kind {
		case "pid":
			if id, c, ok := p.run.byBackend(uint32(bpid)); ok {
				add(id, c)
			}
		case "prepared":
			add(txnID, coord)
		case "key":
			if key == "" {
				key = "postgresql " + txnID
			}
		}
	}
	if err := rows.Err(); err != nil {
		return nil, "", err
	}
	slices.Sort(holders)
	return holders, key, nil
}

// watchWaits looks, while ctx lasts, at whether rp's statements are blocked behind dtc
// transactions, and reports them to its coordinator (see the top of this file).
func (p *Participant) watchWaits(ctx context.Context, rp *runningPrepare) {
	t := time.NewTimer(p.cfg.WaitPollInterval)
	defer t.Stop()
	var told []string // what the coordinator was last told it waits for
	var toldAt time.Time
	blocked := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		holders, key, err := p.blockers(ctx, rp.pid, rp.txnID, rp.coordinator)
		switch {
		case err != nil:
			if ctx.Err() == nil {
				p.log.Debug("sqlpart: looking for the blockers of a prepare", "txn_id", rp.txnID, "err", err)
			}
		case len(holders) == 0:
			told = nil
		default:
			if !blocked {
				blocked = true
				p.wstats.blocked.Add(1)
			}
			if newIn(holders, told) || time.Since(toldAt) >= p.cfg.WaitReportInterval {
				// A report that failed is made again at the next interval, as the
				// library does, not at every poll.
				p.reportWait(ctx, rp, holders, key)
				told, toldAt = holders, time.Now()
			}
		}
		t.Reset(p.cfg.WaitPollInterval)
	}
}

// newIn reports whether sorted a holds an id that sorted b does not.
func newIn(a, b []string) bool {
	for _, id := range a {
		if _, found := slices.BinarySearch(b, id); !found {
			return true
		}
	}
	return false
}

// reportWait tells rp's coordinator that it waits for holders (a failure is counted).
func (p *Participant) reportWait(ctx context.Context, rp *runningPrepare, holders []string, key string) {
	if rp.coordinator == "" {
		return
	}
	body, _ := json.Marshal(participant.WaitReport{Participant: p.cfg.ParticipantURL, Waiter: rp.txnID, Holders: holders, Key: key})
	ctx, cancel := context.WithTimeout(ctx, p.cfg.QueryTimeout)
	defer cancel()
	u := strings.TrimSuffix(rp.coordinator, "/") + "/v1/waits"
	fail := func(why string) {
		if ctx.Err() == nil {
			p.wstats.reportFails.Add(1)
			p.log.Debug("sqlpart: lock wait report failed", "url", u, "txn_id", rp.txnID, "why", why)
		}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(body))
	if err != nil {
		fail(err.Error())
		return
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := p.client.Do(req)
	if err != nil {
		fail(err.Error())
		return
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		fail(resp.Status)
		return
	}
	p.wstats.reports.Add(1)
	p.log.Debug("sqlpart: reported a lock wait", "txn_id", rp.txnID, "holders", holders, "key", key)
}
