package sqlpart_test

// Throughput of a transfer across one PostgreSQL and one MariaDB table, through sqlpart
// (prepare on both, then commit on both; no coordinator, no HTTP) against its floor:
// the same statements with the databases' own two-phase commit driven directly.
//
//	go test ./sqlpart -run '^$' -bench . -benchtime 400x -cpu 8
//
// -cpu is the number of transfers in flight at once (RunParallel). Each worker moves
// money between rows of its own, so that the transactions do not wait on each other's
// row locks.

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/dtc-project/dtc/sqlpart"
)

const benchRows = 256

func benchFixtures(b *testing.B) (pg, my *fixture) {
	mk := func(dsn string) *fixture {
		f := newFixture(b, dsn, func(c *sqlpart.Config) { c.PoolConnsMax = 32; c.PreparedMax = 60 })
		for i := range benchRows {
			if _, err := f.admin.Exec(fmt.Sprintf("INSERT INTO %s VALUES ('w%d', 1000000)", f.account, i)); err != nil {
				b.Fatal(err)
			}
		}
		return f
	}
	return mk(pgDSN), mk(myDSN)
}

// withConn runs fn on a connection of its own; closed after it if discard is set.
func withConn(ctx context.Context, db *sql.DB, discard bool, fn func(*sql.Conn) error) error {
	c, err := db.Conn(ctx)
	if err != nil {
		return err
	}
	err = fn(c)
	if discard || err != nil {
		_ = c.Raw(func(any) error { return driver.ErrBadConn })
	}
	_ = c.Close()
	return err
}

func BenchmarkTransferSQLPart(b *testing.B) {
	pg, my := benchFixtures(b)
	var seq, worker atomic.Int64
	ctx := context.Background()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		row := fmt.Sprintf("w%d", worker.Add(1)%benchRows)
		for pb.Next() {
			id := fmt.Sprintf("bench-%d", seq.Add(1))
			if v := pg.p.Prepare(ctx, id, "", pg.move(row, -1)); !v.ACK {
				b.Error(v.Reason)
				return
			}
			if v := my.p.Prepare(ctx, id, "", my.move(row, 1)); !v.ACK {
				b.Error(v.Reason)
				return
			}
			for _, f := range []*fixture{pg, my} {
				if r := f.p.Commit(ctx, id); r.Err != nil || r.Conflict {
					b.Errorf("commit: %+v", r)
					return
				}
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "txn/s")
}

func BenchmarkTransferFloor(b *testing.B) {
	pg, my := benchFixtures(b)
	pg.p.DB().SetMaxOpenConns(32)
	var seq, worker atomic.Int64
	ctx := context.Background()
	upd := func(f *fixture) string {
		return fmt.Sprintf("UPDATE %s SET balance = balance + %s WHERE id = %s", f.account, f.ph(1), f.ph(2))
	}
	pgUpd, myUpd := upd(pg), upd(my)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		row := fmt.Sprintf("w%d", worker.Add(1)%benchRows)
		for pb.Next() {
			gid := fmt.Sprintf("%sfloor%d", pg.prefix, seq.Add(1))
			mgid := my.prefix + gid[len(pg.prefix):]
			if err := withConn(ctx, pg.p.DB(), false, func(c *sql.Conn) error {
				if _, err := c.ExecContext(ctx, "BEGIN"); err != nil {
					return err
				}
				if _, err := c.ExecContext(ctx, pgUpd, -1, row); err != nil {
					return err
				}
				_, err := c.ExecContext(ctx, "PREPARE TRANSACTION '"+gid+"'")
				return err
			}); err != nil {
				b.Error(err)
				return
			}
			// MariaDB: the session that prepared commits it too (another one could only
			// once this session is closed, as sqlpart must allow for a crash).
			c, err := my.p.DB().Conn(ctx)
			if err != nil {
				b.Error(err)
				return
			}
			for _, q := range []string{"XA START '" + mgid + "'", "", "XA END '" + mgid + "'", "XA PREPARE '" + mgid + "'"} {
				if q == "" {
					_, err = c.ExecContext(ctx, myUpd, 1, row)
				} else {
					_, err = c.ExecContext(ctx, q)
				}
				if err != nil {
					break
				}
			}
			if err == nil {
				_, err = pg.p.DB().ExecContext(ctx, "COMMIT PREPARED '"+gid+"'")
			}
			if err == nil {
				_, err = c.ExecContext(ctx, "XA COMMIT '"+mgid+"'")
			}
			c.Close()
			if err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "txn/s")
}
