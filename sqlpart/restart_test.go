package sqlpart_test

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/dtc-project/dtc/participant"
)

// TestDatabaseRestart: PostgreSQL and MariaDB are restarted between prepare and
// commit; the prepared transactions survive, the participant's pool reconnects, and
// commit (PostgreSQL) and rollback (MariaDB) finish them.
//
// It restarts the machine's database servers, which would break the other packages'
// database tests if they ran at the same time, so it runs only when
// DTC_TEST_DB_RESTART=1: make test runs it on its own, after the rest.
func TestDatabaseRestart(t *testing.T) {
	if os.Getenv("DTC_TEST_DB_RESTART") != "1" {
		t.Skip("restarts the database servers: set DTC_TEST_DB_RESTART=1 (make test does, running it alone)")
	}
	ctx := context.Background()
	fp := newFixture(t, pgDSN, nil)
	fm := newFixture(t, myDSN, nil)
	if v := fp.p.Prepare(ctx, "r1", "", fp.move("alice", -10)); !v.ACK {
		t.Fatal(v.Reason)
	}
	if v := fm.p.Prepare(ctx, "r1", "", fm.move("bob", 10)); !v.ACK {
		t.Fatal(v.Reason)
	}
	out, err := exec.Command("bash", "-c", `
		set -e
		pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql | head -1) main restart
		start-stop-daemon --stop --retry 30 --exec /usr/sbin/mariadbd
		install -d -o mysql -g mysql /run/mysqld
		start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd
	`).CombinedOutput()
	if err != nil {
		t.Fatalf("restarting the databases: %v\n%s", err, out)
	}
	t.Logf("restarted PostgreSQL and MariaDB %s", strings.TrimSpace(string(out)))
	eventually(t, "MariaDB to answer again", func() bool { return fm.admin.PingContext(ctx) == nil })
	eventually(t, "PostgreSQL to answer again", func() bool { return fp.admin.PingContext(ctx) == nil })
	if s, err := fp.p.Status(ctx, "r1"); err != nil || s != participant.StatePrepared {
		t.Fatalf("PostgreSQL status after the restart: %q %v", s, err)
	}
	if s, err := fm.p.Status(ctx, "r1"); err != nil || s != participant.StatePrepared {
		t.Fatalf("MariaDB status after the restart: %q %v", s, err)
	}
	if r := fp.p.Commit(ctx, "r1"); r.Err != nil || r.State != participant.StateCommitted {
		t.Fatalf("PostgreSQL commit after the restart: %+v", r)
	}
	if r := fm.p.Rollback(ctx, "r1"); r.Err != nil || r.State != participant.StateAborted {
		t.Fatalf("MariaDB rollback after the restart: %+v", r)
	}
	if a, b := fp.balance("alice"), fm.balance("bob"); a != 90 || b != 100 {
		t.Fatalf("alice (PostgreSQL) %d, bob (MariaDB) %d; want 90, 100", a, b)
	}
}
