// Command dtc-sql makes a SQL database a dtc participant: it serves the participant
// protocol (DESIGN §3) and carries each transaction out with the database's own
// two-phase commit, PostgreSQL's PREPARE TRANSACTION or MariaDB/MySQL's XA (package
// sqlpart).
//
//	dtc-sql --listen 127.0.0.1:9101 --dsn 'postgres://postgres@127.0.0.1:5432/test'
//	dtc-sql --listen 127.0.0.1:9102 --dsn 'mysql://root@127.0.0.1:3306/test'
//
// It offers dtc the batch endpoint (POST /batch, the commits and rollbacks of many
// transactions in one request; --batch-max-ops). A prepare's payload lists the
// transaction's statements (sqlpart.Payload):
//
//	{"statements":[{"sql":"UPDATE accounts SET balance = balance - $1 WHERE id = $2","args":[10,"alice"],"rows":1}]}
//
// It also serves GET /healthz. It stops gracefully on SIGTERM or SIGINT; transactions it
// prepared stay prepared in the database, and the next start finishes them by asking
// their coordinator.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/spf13/pflag"

	"github.com/dtc-project/dtc/sqlpart"
)

func main() {
	if err := run(os.Args[1:], os.Stderr); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return
		}
		fmt.Fprintln(os.Stderr, "dtc-sql:", err)
		os.Exit(1)
	}
}

const usage = `dtc-sql: a SQL database as a dtc participant, through its own two-phase commit.

Usage:
  dtc-sql --listen ADDR --dsn postgres://USER@HOST:5432/DB?…   (PostgreSQL, via pgx)
  dtc-sql --listen ADDR --dsn mysql://USER:PASS@HOST:3306/DB?… (MariaDB/MySQL, XA)

dtc names it by its prepare URL, http://ADDR/prepare; a prepare's payload is
  {"statements":[{"sql":"UPDATE t SET v = v + $1 WHERE id = $2","args":[5,"a"],"rows":1},…]}
(placeholders as the database writes them: $1 for PostgreSQL, ? for MariaDB; "rows",
optional, is the number of rows the statement must affect, else NACK).

PostgreSQL must have max_prepared_transactions > 0 (and >= --max-prepared):
  psql -c 'ALTER SYSTEM SET max_prepared_transactions = 64', then restart PostgreSQL.

Lock waits (--lock-policy): a prepare's statement that meets a row lock held by
another transaction
  wait     waits (up to --statement-timeout). On PostgreSQL, dtc-sql finds in
           pg_locks which dtc transactions it waits for (other prepares of this
           dtc-sql, transactions it has prepared) and reports them to the prepare's
           coordinator (POST /v1/waits), which breaks deadlocks across databases by
           aborting the youngest; a rollback cancels a prepare still blocked. Blockers
           that are not dtc transactions of this dtc-sql are not reported. MariaDB/MySQL
           waits are not reported.
  no-wait  fails at once (PostgreSQL lock_timeout 1 ms; MariaDB innodb_lock_wait_timeout
           0, MySQL 1 s): the vote is NACK with cause conflict and the database's message.

Flags:
`

func run(args []string, stderr io.Writer) error {
	def := sqlpart.DefaultConfig()
	flags := pflag.NewFlagSet("dtc-sql", pflag.ContinueOnError)
	flags.SetOutput(stderr)
	flags.Usage = func() {
		fmt.Fprint(stderr, usage)
		flags.PrintDefaults()
	}
	listen := flags.String("listen", "127.0.0.1:9101", "address to serve the participant protocol on")
	dsn := flags.String("dsn", "", "the database: postgres://… or mysql://… (required)")
	name := flags.String("name", def.Name, "tells apart participants sharing one database: part of every gid and of their rows in --table; one process per name and database")
	table := flags.String("table", def.Table, "table in the database where transactions are remembered (created if missing)")
	coordinator := flags.String("coordinator", "", "coordinator asked about in-doubt transactions whose prepare named none (e.g. http://127.0.0.1:7070)")
	maxPrepared := flags.Int("max-prepared", def.PreparedMax, "transactions prepared and not yet decided, at most; beyond it a prepare is NACKed (PostgreSQL: at most max_prepared_transactions)")
	maxStatements := flags.Int("max-statements", def.StatementsMax, "statements in one transaction's payload, at most")
	maxPayload := flags.Int("max-payload-bytes", def.PayloadMaxBytes, "bytes of one prepare payload, at most")
	poolConns := flags.Int("pool-conns", def.PoolConnsMax, "database connections, at most")
	stmtTimeout := flags.Duration("statement-timeout", def.StatementTimeout, "each statement's time limit (also set in the server: statement_timeout / max_statement_time)")
	prepareTimeout := flags.Duration("prepare-timeout", def.PrepareTimeout, "a whole prepare's time limit")
	inDoubtAfter := flags.Duration("in-doubt-after", def.InDoubtAfter, "a transaction prepared this long without phase 2 is asked about")
	resolveEvery := flags.Duration("resolve-interval", def.ResolveInterval, "how often to look for in-doubt transactions")
	retain := flags.Duration("retain-decided", def.RetainDecided, "how long the rows of decided transactions are kept (repeated calls and late prepares get the same answer)")
	lockPolicy := flags.String("lock-policy", string(def.LockPolicy), "what a prepare's statement does on a row lock held by another transaction: wait (reported to the coordinator on PostgreSQL) or no-wait (NACK at once, cause conflict)")
	batchMax := flags.Int("batch-max-ops", sqlpart.DefaultBatchMaxOps, "commits and rollbacks in one POST /batch, at most (offered to dtc in the Dtc-Batch-Max header; dtc then sends phase 2 in batches); 0 turns batches off")
	logLevel := flags.String("log-level", "info", "debug, info, warn or error")
	if err := flags.Parse(args); err != nil {
		return err
	}
	if flags.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", flags.Args())
	}
	if *dsn == "" {
		return errors.New("--dsn is required (postgres://… or mysql://…); see --help")
	}
	if *batchMax < 0 {
		return fmt.Errorf("--batch-max-ops %d: want 0 (no batches) or more", *batchMax)
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		return fmt.Errorf("--log-level: %w", err)
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	cfg := def
	cfg.DSN, cfg.Name, cfg.Table, cfg.Coordinator = *dsn, *name, *table, *coordinator
	cfg.PreparedMax, cfg.StatementsMax, cfg.PayloadMaxBytes, cfg.PoolConnsMax = *maxPrepared, *maxStatements, *maxPayload, *poolConns
	cfg.StatementTimeout, cfg.PrepareTimeout = *stmtTimeout, *prepareTimeout
	cfg.InDoubtAfter, cfg.ResolveInterval, cfg.RetainDecided = *inDoubtAfter, *resolveEvery, *retain
	cfg.LockPolicy = sqlpart.LockPolicy(*lockPolicy)
	cfg.ParticipantURL = "http://" + *listen + "/prepare" // how its wait reports name it
	cfg.Logger = log

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	p, err := sqlpart.Open(ctx, cfg)
	if err != nil {
		return err
	}
	defer p.Close()
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		c, cancel := context.WithTimeout(r.Context(), cfg.StatementTimeout)
		defer cancel()
		if err := p.DB().PingContext(c); err != nil {
			http.Error(w, "database: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintf(w, "ok %s prepared=%d\n", p.Kind(), p.PreparedCount())
	})
	ho := sqlpart.HandlerOptions{Logger: log, BatchMaxOps: *batchMax}
	if *batchMax == 0 {
		ho.BatchMaxOps = -1 // off
	}
	mux.Handle("/", sqlpart.NewHandler(p, ho))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}

	var wg sync.WaitGroup
	runCtx, stopRun := context.WithCancel(context.Background())
	wg.Go(func() { p.Run(runCtx) })
	served := make(chan error, 1)
	wg.Go(func() { served <- srv.Serve(ln) })
	log.Info("dtc-sql: listening", "addr", ln.Addr().String(), "database", p.Kind(), "gid_prefix", p.GIDPrefix())

	var runErr error
	select {
	case <-ctx.Done():
		log.Info("dtc-sql: shutting down")
	case runErr = <-served:
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		log.Warn("dtc-sql: shutdown", "err", err)
	}
	stopRun()
	wg.Wait()
	if errors.Is(runErr, http.ErrServerClosed) {
		runErr = nil
	}
	return runErr
}
