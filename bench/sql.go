package bench

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dtc-project/dtc/client"
	"github.com/dtc-project/dtc/httpnet"
	"github.com/dtc-project/dtc/httpnet/transport"
	"github.com/dtc-project/dtc/sqlpart"
)

// SQLOptions configure RunSQL: transfers across one PostgreSQL and one MariaDB/MySQL
// table, through dtc and two sqlpart participants, against the same statements with
// the databases' own two-phase commit driven directly.
type SQLOptions struct {
	// PostgresDSN and MySQLDSN name the databases (defaults: postgres://postgres@127.0.0.1:5432/test
	// and mysql://root@127.0.0.1:3306/test). Tables of this run's own are created and
	// dropped there.
	PostgresDSN, MySQLDSN string
	// Concurrency is the transfers in flight (default 8). Each worker cycles through
	// sqlAccountsPerWorker accounts of its own (sqlAccount), so that no transfer waits on
	// the row locks of another in flight, nor of its own worker's previous ones, whose
	// commits dtc sends after answering. Duration is how long dtc, and the floor, are
	// measured (default 5s each), in turns (sqlTurns).
	Concurrency int
	Duration    time.Duration
	// Progress gets a line per step (nil: none).
	Progress io.Writer
}

func (o *SQLOptions) setDefaults() {
	if o.PostgresDSN == "" {
		o.PostgresDSN = "postgres://postgres@127.0.0.1:5432/test"
	}
	if o.MySQLDSN == "" {
		o.MySQLDSN = "mysql://root@127.0.0.1:3306/test"
	}
	if o.Concurrency == 0 {
		o.Concurrency = 8
	}
	if o.Duration == 0 {
		o.Duration = 5 * time.Second
	}
}

// Validate says which option is out of range.
func (o SQLOptions) Validate() error {
	o.setDefaults()
	var errs []error
	if !strings.HasPrefix(o.PostgresDSN, "postgres://") && !strings.HasPrefix(o.PostgresDSN, "postgresql://") {
		errs = append(errs, fmt.Errorf("PostgreSQL DSN %q: want postgres://…", o.PostgresDSN))
	}
	if !strings.HasPrefix(o.MySQLDSN, "mysql://") {
		errs = append(errs, fmt.Errorf("MySQL DSN %q: want mysql://…", o.MySQLDSN))
	}
	if o.Concurrency < 1 || o.Concurrency > 50 {
		errs = append(errs, fmt.Errorf("concurrency %d: must be 1..50 (each holds a prepared transaction; PostgreSQL's max_prepared_transactions bounds them)", o.Concurrency))
	}
	if o.Duration < 100*time.Millisecond {
		errs = append(errs, fmt.Errorf("duration %v: at least 100ms", o.Duration))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("bench: invalid SQL options: %w", err)
	}
	return nil
}

// sqlAccountsPerWorker is how many accounts (a row in each database) a worker of
// RunSQL cycles through. dtc answers a transfer once its decision is durable and sends
// the commits after, so a worker that moved money on the same rows every time would
// find its previous transfer's row locks still held (prepared, commit on its way) and
// wait for them: a contention benchmark for dtc, not for the floor, which commits
// before it returns. An account comes back to its worker only after
// sqlAccountsPerWorker-1 other transfers of that worker, long after dtc sent its commit.
const sqlAccountsPerWorker = 16

// sqlPreparedMax bounds each participant's prepared transactions in RunSQL (a part of
// PostgreSQL's max_prepared_transactions, which other clients of the server share).
const sqlPreparedMax = 48

// sqlAccount is the account of worker w's transfer number i (counted from 0), the
// same for dtc and the floor.
func sqlAccount(w, i int) string {
	return fmt.Sprintf("w%da%d", w, i%sqlAccountsPerWorker)
}

// SQLResult is what RunSQL measured.
type SQLResult struct {
	Options SQLOptions `json:"options"`
	// DtcTPS: committed transfers per second through dtc (HTTP API, its log, two
	// sqlpart participants over HTTP); FloorTPS: the same statements with PREPARE
	// TRANSACTION / XA PREPARE then COMMIT PREPARED / XA COMMIT driven directly;
	// Ratio = DtcTPS / FloorTPS.
	DtcTPS   float64 `json:"dtc_tps"`
	FloorTPS float64 `json:"floor_tps"`
	Ratio    float64 `json:"ratio"`
	// Failed counts transfers that did not commit (dtc) or failed (floor).
	DtcFailed   int64 `json:"dtc_failed"`
	FloorFailed int64 `json:"floor_failed"`
	// AccountsPerWorker is how many accounts each worker cycles through, its own
	// (sqlAccountsPerWorker).
	AccountsPerWorker int `json:"accounts_per_worker"`
	// DtcLockWaits counts dtc's PostgreSQL prepares that found themselves blocked on a
	// row lock of another dtc transaction (sqlpart's lock-wait watch, which looks after
	// a statement has run 10 ms): 0 when the workload does what it means to.
	DtcLockWaits uint64 `json:"dtc_lock_waits"`
	// DtcRequestsPerTransfer is dtc's HTTP requests to the participants per transfer
	// in its measured turns: two prepares, and phase 2 (4 in all without batches);
	// DtcBatchOps is how many commits and rollbacks a POST …/batch carried on average
	// (0: none went in batches).
	DtcRequestsPerTransfer float64 `json:"dtc_requests_per_transfer"`
	DtcBatchOps            float64 `json:"dtc_batch_ops"`
}

// RunSQL measures dtc across a PostgreSQL and a MariaDB table against the floor, in one
// run; dtc, its participants and the load run in this process, the databases as they
// are. It leaves no table and no prepared transaction of its own behind.
func RunSQL(ctx context.Context, o SQLOptions) (res *SQLResult, err error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	o.setDefaults()
	res = &SQLResult{Options: o, AccountsPerWorker: sqlAccountsPerWorker}
	progress := func(format string, args ...any) {
		if o.Progress != nil {
			fmt.Fprintf(o.Progress, format+"\n", args...)
		}
	}
	work, err := os.MkdirTemp("", "dtc-bench-sql-")
	if err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	defer os.RemoveAll(work)
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	tag := fmt.Sprintf("%d_%d", os.Getpid(), time.Now().UnixNano()%1_000_000)
	account := "dtc_bench_acct_" + tag

	// The participants, each with an account table of this run's own.
	var sides []*sqlSide
	defer func() {
		for _, s := range sides {
			if cerr := s.cleanup(account, tag); cerr != nil && err == nil {
				err = cerr
			}
		}
	}()
	for _, dsn := range []string{o.PostgresDSN, o.MySQLDSN} {
		cfg := sqlpart.DefaultConfig()
		cfg.DSN, cfg.Name, cfg.Table = dsn, "bench-"+tag, "dtc_bench_txns_"+tag
		// A worker's next prepare no longer waits for its previous transfer's commit
		// (its rows are others), so under load each worker may hold a few decided
		// transactions whose commits are still on their way: room for 4 each (at most
		// 48, below PostgreSQL's max_prepared_transactions of 64 shared with others),
		// and connections to park MariaDB's (half the pool).
		cfg.PreparedMax = min(4*o.Concurrency+4, sqlPreparedMax)
		cfg.PoolConnsMax = cfg.PreparedMax
		cfg.Logger = quiet
		p, err := sqlpart.Open(ctx, cfg)
		if err != nil {
			return nil, fmt.Errorf("bench: %w", err)
		}
		s := &sqlSide{p: p, pg: p.Kind() == sqlpart.PostgreSQL, table: cfg.Table}
		sides = append(sides, s)
		if _, err := p.DB().ExecContext(ctx, "CREATE TABLE "+account+" (id VARCHAR(32) PRIMARY KEY, balance BIGINT NOT NULL)"); err != nil {
			return nil, fmt.Errorf("bench: creating %s: %w", account, err)
		}
		var rows []string
		for w := range o.Concurrency {
			for i := range sqlAccountsPerWorker {
				rows = append(rows, fmt.Sprintf("('%s', 1000000000)", sqlAccount(w, i)))
			}
		}
		if _, err := p.DB().ExecContext(ctx, "INSERT INTO "+account+" VALUES "+strings.Join(rows, ", ")); err != nil {
			return nil, fmt.Errorf("bench: %w", err)
		}
		s.update = "UPDATE " + account + " SET balance = balance + ? WHERE id = ?"
		if s.pg {
			s.update = "UPDATE " + account + " SET balance = balance + $1 WHERE id = $2"
		}
		// Its resolver runs, as in dtc-sql: the participant then asks about its
		// transactions in doubt and says so, so dtc may keep their begin records lazy.
		rctx, stopResolver := context.WithCancel(ctx)
		var resolver sync.WaitGroup
		resolver.Go(func() { p.Run(rctx) })
		defer func() { stopResolver(); resolver.Wait() }()
		srv, err := startHTTP(sqlpart.NewHandler(p, sqlpart.HandlerOptions{Logger: quiet}))
		if err != nil {
			return nil, err
		}
		defer srv.close()
		s.url = srv.url + "/prepare"
	}
	pg, my := sides[0], sides[1]

	// dtc: the daemon's runtime and API over a local log.
	node, err := startNode(ctx, httpnet.Options{DataDir: work + "/dtc", Logger: quiet}, nil)
	if err != nil {
		return nil, err
	}
	defer node.stop(false)
	// Enough idle keep-alive connections for every worker: the default client keeps 2
	// per host, so at 8 in flight most submits opened (and closed) a TCP connection.
	cl, err := client.New(node.url, client.Options{MaxRetries: -1, HTTPClient: newLoadClient(o.Concurrency, time.Minute)})
	if err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	payload := func(s *sqlSide, amount int, row string) json.RawMessage {
		one := int64(1)
		b, _ := json.Marshal(sqlpart.Payload{Statements: []sqlpart.Statement{{SQL: s.update,
			Args: []json.RawMessage{json.RawMessage(fmt.Sprint(amount)), json.RawMessage(fmt.Sprintf("%q", row))}, Rows: &one}}})
		return b
	}
	var dtcFailed, dtcTried atomic.Int64
	dtcOne := func(w, i int) bool {
		dtcTried.Add(1)
		row := sqlAccount(w, i)
		v, err := cl.Submit(ctx, client.Request{Participants: []client.Participant{
			{URL: pg.url, Payload: payload(pg, -1, row)}, {URL: my.url, Payload: payload(my, 1, row)}}})
		if err != nil || v.State != client.StateCommitted {
			if dtcFailed.Add(1) == 1 {
				if err == nil {
					var why []string
					for _, p := range v.Participants {
						if p.Reason != "" {
							why = append(why, p.Reason)
						}
					}
					err = fmt.Errorf("%s (%s): %s", v.State, v.AbortCause, strings.Join(why, "; "))
				}
				progress("dtc: first transfer not committed: %v", err)
			}
			return false
		}
		return true
	}
	// The floor: the same statements, the databases' own 2PC, no coordinator.
	var floorFailed, seq atomic.Int64
	floorOne := func(w, i int) bool {
		row := sqlAccount(w, i)
		gid := fmt.Sprintf("dtcbenchfloor_%s_%d", tag, seq.Add(1))
		if err := floorTransfer(ctx, pg.p.DB(), my.p.DB(), pg.update, my.update, gid, row); err != nil {
			if floorFailed.Add(1) == 1 {
				progress("floor: first failure: %v", err)
			}
			return false
		}
		return true
	}

	// The two take turns, sqlTurns each (fewer in a short run), so that both see the
	// same load from the rest of the machine: measured one after the other, the floor
	// alone moved by a factor of ten between runs. Each worker's transfers are counted
	// across the turns, so its accounts keep rotating.
	turns := max(1, min(sqlTurns, int(o.Duration/time.Second)))
	slice := o.Duration / time.Duration(turns)
	next := make([]int, o.Concurrency)
	// A transfer's answer comes once its decision is durable; its commits may still be
	// on their way. The floor's turn starts once they are in (not counted).
	commitsIn := func() error {
		return waitFor(ctx, 30*time.Second, "dtc's commits delivered", func() bool {
			return pg.p.PreparedCount() == 0 && my.p.PreparedCount() == 0
		})
	}
	// First a warm-up of each, not measured (its failures are counted all the same):
	// the first transfers open the connections (the client's to dtc, dtc's to the
	// participants, the participants' pools to the databases, PostgreSQL's over TLS) and
	// grow the heaps. Without it dtc's first turn ran at about two thirds of the later
	// ones, while the floor, which shares the participants' pools, found them open.
	closedLoop(ctx, o.Concurrency, min(slice, sqlWarmup), next, dtcOne)
	if err := commitsIn(); err != nil {
		return nil, err
	}
	closedLoop(ctx, o.Concurrency, min(slice, sqlWarmup), next, floorOne)
	var dtc, floor loopTally
	sent, tried := node.rt.TransportStats(), dtcTried.Load() // after the warm-up
	for t := range turns {
		dtc.add(closedLoop(ctx, o.Concurrency, slice, next, dtcOne))
		if err := commitsIn(); err != nil {
			return nil, err
		}
		floor.add(closedLoop(ctx, o.Concurrency, slice, next, floorOne))
		progress("turn %d/%d: dtc %.0f transfers/s, floor %.0f", t+1, turns, dtc.last, floor.last)
	}
	res.DtcTPS, res.FloorTPS = dtc.rate(), floor.rate()
	res.DtcFailed, res.FloorFailed = dtcFailed.Load(), floorFailed.Load()
	res.DtcLockWaits = pg.p.LockWaitStats().Blocked
	if now, n := node.rt.TransportStats(), dtcTried.Load()-tried; n > 0 {
		requests := func(s transport.Stats) uint64 { return s.Prepare + s.Commit + s.Rollback + s.Status + s.Batch }
		res.DtcRequestsPerTransfer = float64(requests(now)-requests(sent)) / float64(n)
		if b := now.Batch - sent.Batch; b > 0 {
			res.DtcBatchOps = float64(now.BatchOps-sent.BatchOps) / float64(b)
		}
	}
	progress("dtc: %.0f transfers/s (%d did not commit, %d blocked on a row lock)", res.DtcTPS, res.DtcFailed, res.DtcLockWaits)
	progress("floor: %.0f transfers/s (%d failed)", res.FloorTPS, res.FloorFailed)
	if res.FloorTPS > 0 {
		res.Ratio = res.DtcTPS / res.FloorTPS
	}
	return res, nil
}

// sqlTurns is how many turns dtc and the floor take in RunSQL (each measured for
// Duration/sqlTurns), at most one a second of Duration.
const sqlTurns = 5

// sqlWarmup is how long each of dtc and the floor runs, unmeasured, before RunSQL's
// turns (at most a turn's time).
const sqlWarmup = time.Second

// loopTally sums closedLoop's turns of one side.
type loopTally struct {
	ok      int64
	elapsed time.Duration
	last    float64 // the last turn's successes per second
}

func (t *loopTally) add(ok int64, elapsed time.Duration) {
	t.ok += ok
	t.elapsed += elapsed
	t.last = float64(ok) / elapsed.Seconds()
}

func (t *loopTally) rate() float64 {
	if t.elapsed <= 0 {
		return 0
	}
	return float64(t.ok) / t.elapsed.Seconds()
}

// closedLoop runs one(worker, i) in a loop on c workers for d, i counting worker w's
// calls in next[w] (carried from call to call), and returns the successes and the time
// taken (until the last call in flight at d returned).
func closedLoop(ctx context.Context, c int, d time.Duration, next []int, one func(w, i int) bool) (int64, time.Duration) {
	var ok atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	end := start.Add(d)
	for w := range c {
		wg.Go(func() {
			for time.Now().Before(end) && ctx.Err() == nil {
				i := next[w]
				next[w]++
				if one(w, i) {
					ok.Add(1)
				}
			}
		})
	}
	wg.Wait()
	return ok.Load(), time.Since(start)
}

// floorTransfer moves 1 from row in PostgreSQL to row in MariaDB with the databases'
// own two-phase commit: prepare on both, then commit on both. A failure rolls back what
// was prepared.
func floorTransfer(ctx context.Context, pgDB, myDB *sql.DB, pgUpd, myUpd, gid, row string) error {
	c, err := pgDB.Conn(ctx)
	if err != nil {
		return err
	}
	_, err = c.ExecContext(ctx, "BEGIN")
	if err == nil {
		_, err = c.ExecContext(ctx, pgUpd, -1, row)
	}
	if err == nil {
		_, err = c.ExecContext(ctx, "PREPARE TRANSACTION '"+gid+"'")
	}
	if err != nil {
		_, _ = c.ExecContext(ctx, "ROLLBACK")
		c.Close()
		return fmt.Errorf("PostgreSQL: %w", err)
	}
	c.Close()
	// MariaDB: the session that prepared commits it too.
	m, err := myDB.Conn(ctx)
	if err != nil {
		_, _ = pgDB.ExecContext(ctx, "ROLLBACK PREPARED '"+gid+"'")
		return err
	}
	defer m.Close()
	for _, q := range []string{"XA START '" + gid + "'", "", "XA END '" + gid + "'", "XA PREPARE '" + gid + "'"} {
		if q == "" {
			_, err = m.ExecContext(ctx, myUpd, 1, row)
		} else {
			_, err = m.ExecContext(ctx, q)
		}
		if err != nil {
			_, _ = m.ExecContext(ctx, "XA END '"+gid+"'")
			_, _ = m.ExecContext(ctx, "XA ROLLBACK '"+gid+"'")
			_, _ = pgDB.ExecContext(ctx, "ROLLBACK PREPARED '"+gid+"'")
			return fmt.Errorf("MariaDB: %w", err)
		}
	}
	if _, err := pgDB.ExecContext(ctx, "COMMIT PREPARED '"+gid+"'"); err != nil {
		_, _ = m.ExecContext(ctx, "XA ROLLBACK '"+gid+"'")
		return fmt.Errorf("PostgreSQL: %w", err)
	}
	if _, err := m.ExecContext(ctx, "XA COMMIT '"+gid+"'"); err != nil {
		return fmt.Errorf("MariaDB (PostgreSQL committed): %w", err)
	}
	return nil
}

// sqlSide is one database of RunSQL: its participant, the URL dtc prepares it at, and
// the statement of a transfer's leg.
type sqlSide struct {
	p      *sqlpart.Participant
	url    string
	pg     bool
	table  string // the participant's own table
	update string
}

// cleanup rolls back whatever this run left prepared (none is expected; it says so
// if it finds any), drops the run's tables and closes the participant.
func (s *sqlSide) cleanup(account, tag string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	db := s.p.DB()
	var gids []string
	prefixes := []string{s.p.GIDPrefix(), "dtcbenchfloor_" + tag}
	match := func(g string) bool {
		for _, p := range prefixes {
			if strings.HasPrefix(g, p) {
				return true
			}
		}
		return false
	}
	var errs []error
	if s.pg {
		rows, err := db.QueryContext(ctx, "SELECT gid FROM pg_prepared_xacts")
		if err == nil {
			for rows.Next() {
				var g string
				if rows.Scan(&g) == nil && match(g) {
					gids = append(gids, g)
				}
			}
			rows.Close()
		}
	} else {
		rows, err := db.QueryContext(ctx, "XA RECOVER")
		if err == nil {
			for rows.Next() {
				var f, gl, bl int
				var data string
				if rows.Scan(&f, &gl, &bl, &data) == nil && match(data) {
					gids = append(gids, data)
				}
			}
			rows.Close()
		}
	}
	for _, g := range gids {
		q := "ROLLBACK PREPARED '" + g + "'"
		if !s.pg {
			q = "XA ROLLBACK '" + g + "'"
		}
		if _, err := db.ExecContext(ctx, q); err != nil {
			errs = append(errs, fmt.Errorf("bench: rolling back %s: %w", g, err))
		}
	}
	if len(gids) > 0 {
		errs = append(errs, fmt.Errorf("bench: %d transactions were left prepared (now rolled back): %v", len(gids), gids))
	}
	for _, t := range []string{account, s.table} {
		if _, err := db.ExecContext(ctx, "DROP TABLE IF EXISTS "+t); err != nil {
			errs = append(errs, fmt.Errorf("bench: dropping %s: %w", t, err))
		}
	}
	_ = s.p.Close()
	return errors.Join(errs...)
}
