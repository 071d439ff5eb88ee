package sqlpart

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"regexp"
	"time"
)

// Config configures a Participant. Start from DefaultConfig; Validate says what is wrong.
type Config struct {
	// DSN names the database: "postgres://user@host:5432/db?…" (or "postgresql://") for
	// PostgreSQL through pgx, "mysql://user:password@host:3306/db?…" for MariaDB/MySQL
	// through go-sql-driver/mysql (its query parameters are the driver's).
	DSN string
	// Name tells apart several participants that share one database: it is part of
	// every global transaction id (gid) this one makes and of its rows in Table. Letters,
	// digits, '_' and '-', at most 64 bytes. Two processes must never run with the same
	// Name on the same database.
	Name string
	// Table is the table in the database that remembers transactions (created at Open
	// if missing). Letters, digits and '_'.
	Table string
	// Coordinator is the base URL asked about in-doubt transactions whose prepare named
	// no coordinator. Optional.
	Coordinator string

	// StatementsMax bounds the statements of one transaction's payload.
	StatementsMax int
	// PayloadMaxBytes bounds one prepare payload.
	PayloadMaxBytes int
	// TxnIDMaxBytes bounds a transaction id.
	TxnIDMaxBytes int
	// CoordinatorMaxBytes bounds the coordinator URL given with a prepare.
	CoordinatorMaxBytes int
	// PoolConnsMax bounds the connections to the database (prepares, phase 2, status,
	// resolution all share them; a call waits for one).
	PoolConnsMax int
	// StatementTimeout bounds each statement of a prepare (and each of the participant's
	// own queries); PrepareTimeout bounds a whole prepare. Past either the prepare is
	// NACKed and its work rolled back.
	StatementTimeout time.Duration
	PrepareTimeout   time.Duration
	// PreparedMax bounds the transactions prepared in the database by this participant
	// and not yet committed or rolled back: beyond it a prepare is NACKed. On
	// PostgreSQL it must not exceed max_prepared_transactions.
	PreparedMax int
	// InDoubtAfter: a transaction prepared longer than this is in doubt and the
	// resolver asks its coordinator about it (every prepared transaction is asked about
	// once at start).
	InDoubtAfter time.Duration
	// ResolveInterval is the time between two rounds of the resolver.
	ResolveInterval time.Duration
	// ResolvePerRoundMax bounds the transactions one round asks about; the next round
	// goes on with the rest.
	ResolvePerRoundMax int
	// ResolveConcurrencyMax bounds the coordinator queries in flight at once.
	ResolveConcurrencyMax int
	// QueryTimeout bounds one query to the coordinator.
	QueryTimeout time.Duration
	// RetainDecided is how long the rows of decided (committed, rolled back, fenced)
	// transactions are kept, so that repeated phase-2 calls, late prepares and status
	// get the same answer; after it they are deleted, GCRowsPerRoundMax at a time, and
	// the transaction is "unknown" again.
	RetainDecided     time.Duration
	GCRowsPerRoundMax int

	// LockPolicy is what a prepare's statement does when it meets a row lock held by
	// another transaction (see the package doc, "Lock waits"). LockWait (the default)
	// waits, up to StatementTimeout; on PostgreSQL the participant then tells the
	// prepare's coordinator which dtc transactions it waits for (POST /v1/waits), so
	// that the coordinator can break a deadlock across databases. LockNoWait fails the
	// statement at once: the prepare is NACKed with cause conflict.
	LockPolicy LockPolicy
	// ParticipantURL is how this participant is named in its wait reports (its prepare
	// URL, e.g. http://127.0.0.1:9101/prepare). Optional: the coordinator only quotes it.
	ParticipantURL string
	// WaitPollInterval (PostgreSQL, LockWait): a prepare's statement that has not
	// returned after this long is looked at in pg_locks, and again every
	// WaitPollInterval while it is blocked. WaitReportInterval: a wait still going on
	// is reported again this often (at once when a new transaction comes in its way).
	WaitPollInterval   time.Duration
	WaitReportInterval time.Duration
	// WaitConnsMax bounds the connections (a pool of their own) that look for the
	// blockers of waiting prepares.
	WaitConnsMax int

	// HTTPClient queries the coordinator. Default: a client of its own.
	HTTPClient *http.Client
	// Logger: default slog.Default().
	Logger *slog.Logger
}

// DefaultConfig returns limits suitable for a small service; DSN must still be set.
func DefaultConfig() Config {
	return Config{
		Name:                  "default",
		Table:                 "dtc_sqlpart_txns",
		StatementsMax:         64,
		PayloadMaxBytes:       64 << 10,
		TxnIDMaxBytes:         256,
		CoordinatorMaxBytes:   1024,
		PoolConnsMax:          16,
		StatementTimeout:      5 * time.Second,
		PrepareTimeout:        30 * time.Second,
		PreparedMax:           64,
		InDoubtAfter:          30 * time.Second,
		ResolveInterval:       5 * time.Second,
		ResolvePerRoundMax:    64,
		ResolveConcurrencyMax: 4,
		QueryTimeout:          5 * time.Second,
		RetainDecided:         24 * time.Hour,
		GCRowsPerRoundMax:     1000,
		LockPolicy:            LockWait,
		WaitPollInterval:      10 * time.Millisecond,
		WaitReportInterval:    time.Second,
		WaitConnsMax:          2,
	}
}

// LockPolicy says what a prepare's statement does when it meets a row lock.
type LockPolicy string

// The lock policies.
const (
	// LockWait: the statement waits for the lock (up to StatementTimeout); on
	// PostgreSQL the wait is reported to the coordinator.
	LockWait LockPolicy = "wait"
	// LockNoWait: the statement fails at once (PostgreSQL: lock_timeout 1 ms;
	// MariaDB: innodb_lock_wait_timeout 0, MySQL: 1 s, the least it allows) and the
	// prepare is NACKed with cause conflict.
	LockNoWait LockPolicy = "no-wait"
)

var (
	nameRE  = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)
	tableRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,62}$`)
)

// Validate reports every field that is wrong.
func (c Config) Validate() error {
	var errs []error
	bad := func(f string, a ...any) { errs = append(errs, fmt.Errorf("sqlpart: config: "+f, a...)) }
	if c.DSN == "" {
		bad("DSN is empty (want postgres://… or mysql://…)")
	} else if _, _, err := parseDSN(c.DSN); err != nil {
		errs = append(errs, err)
	}
	if !nameRE.MatchString(c.Name) {
		bad("Name %q: want 1 to 64 letters, digits, '_' or '-'", c.Name)
	}
	if !tableRE.MatchString(c.Table) {
		bad("Table %q: want a letter or '_', then letters, digits or '_', at most 63", c.Table)
	}
	positive := func(name string, v int64) {
		if v <= 0 {
			bad("%s must be positive, got %d", name, v)
		}
	}
	positive("StatementsMax", int64(c.StatementsMax))
	positive("PayloadMaxBytes", int64(c.PayloadMaxBytes))
	positive("TxnIDMaxBytes", int64(c.TxnIDMaxBytes))
	positive("CoordinatorMaxBytes", int64(c.CoordinatorMaxBytes))
	positive("PoolConnsMax", int64(c.PoolConnsMax))
	positive("StatementTimeout", int64(c.StatementTimeout))
	positive("PrepareTimeout", int64(c.PrepareTimeout))
	positive("PreparedMax", int64(c.PreparedMax))
	positive("InDoubtAfter", int64(c.InDoubtAfter))
	positive("ResolveInterval", int64(c.ResolveInterval))
	positive("ResolvePerRoundMax", int64(c.ResolvePerRoundMax))
	positive("ResolveConcurrencyMax", int64(c.ResolveConcurrencyMax))
	positive("QueryTimeout", int64(c.QueryTimeout))
	positive("RetainDecided", int64(c.RetainDecided))
	positive("GCRowsPerRoundMax", int64(c.GCRowsPerRoundMax))
	switch c.LockPolicy {
	case LockWait, LockNoWait:
	default:
		bad("LockPolicy %q: want %q or %q", c.LockPolicy, LockWait, LockNoWait)
	}
	positive("WaitPollInterval", int64(c.WaitPollInterval))
	positive("WaitReportInterval", int64(c.WaitReportInterval))
	positive("WaitConnsMax", int64(c.WaitConnsMax))
	if len(c.ParticipantURL) > 2048 {
		bad("ParticipantURL: %d bytes, at most 2048", len(c.ParticipantURL))
	}
	return errors.Join(errs...)
}
