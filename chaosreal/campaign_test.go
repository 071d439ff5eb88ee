package chaosreal

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dtc-project/dtc/checker"
)

var (
	buildOnce sync.Once
	built     Binaries
	buildErr  error
	buildDir  string
)

// testBinaries builds dtc and bank with failpoints once for the package's tests.
func testBinaries(t *testing.T) Binaries {
	t.Helper()
	if testing.Short() {
		t.Skip("real-process campaigns are skipped in -short mode")
	}
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("no go command to build the binaries with")
	}
	buildOnce.Do(func() {
		buildDir, buildErr = os.MkdirTemp("", "dtc-chaosreal-test-bin-")
		if buildErr != nil {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		built, buildErr = Build(ctx, "..", buildDir)
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return built
}

func TestMain(m *testing.M) {
	code := m.Run()
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

// TestTheFailpointBuildLeavesNoRewrittenSourceBehind: failpoint-toolexec rewrites copies
// in a temporary directory of its own; the tree holds no stash or binding file, and a
// normal build of the same packages has no live failpoint.
func TestTheFailpointBuildLeavesNoRewrittenSourceBehind(t *testing.T) {
	b := testBinaries(t)
	for _, bin := range []string{b.DTC, b.Bank} {
		if live, err := HasFailpoints(bin); err != nil || !live {
			t.Fatalf("%s: failpoints live %v, %v", bin, live, err)
		}
	}
	err := filepath.WalkDir("..", func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == ".git" || d.Name() == "bin") {
			return filepath.SkipDir
		}
		if strings.Contains(d.Name(), "__failpoint_stash__") || strings.Contains(d.Name(), "__failpoint_binding__") || d.Name() == "failpoint_toolexec_extra.go" {
			t.Errorf("rewritten source left in the tree: %s", path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	normal := filepath.Join(t.TempDir(), "dtc")
	cmd := exec.Command("go", "build", "-o", normal, "../cmd/dtc")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("normal build: %v\n%s", err, out)
	}
	if live, _ := HasFailpoints(normal); live {
		t.Fatal("a normal build of dtc evaluates failpoints")
	}
}

// TestARealCampaignHoldsUp is the short real campaign of make test: dtc and three banks,
// at least 30 kill -9s across them, proxy faults, failpoints armed; no violation.
func TestARealCampaignHoldsUp(t *testing.T) {
	b := testBinaries(t)
	o := Options{
		Seed:      20261125,
		Duration:  40 * time.Second,
		Kills:     34,
		Passive:   2, // q1 with a status endpoint, q2 without: only dtc resolves what they hold
		Binaries:  b,
		ReportDir: filepath.Join(t.TempDir(), "report"),
		Progress:  testWriter{t},
	}
	res, err := Run(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	logSummary(t, res)
	if !res.OK() {
		t.Fatalf("%d violations; work dir kept at %s", len(res.Violations), res.WorkDir)
	}
	if res.Kills() < 30 {
		t.Errorf("only %d kill -9s, want at least 30", res.Kills())
	}
	if res.Faults[FaultKillCoord] == 0 || res.Faults[FaultKillParticipant] == 0 {
		t.Errorf("kills must hit both the coordinator and participants: %v", res.Faults)
	}
	if res.Faults[FaultProxyDelay]+res.Faults[FaultProxyDrop]+res.Faults[FaultProxyBlackhole] == 0 {
		t.Error("no proxy fault was injected")
	}
	if res.Faults[FaultArmed] == 0 {
		t.Error("no failpoint was armed")
	}
	if res.PassiveStates["committed"] == 0 || res.PassiveStates["aborted"] == 0 || res.PassiveStates["prepared"] != 0 {
		t.Errorf("the passive participants end with %v: want commits and aborts, nothing prepared", res.PassiveStates)
	}
	if res.Committed == 0 || res.Report == nil || res.Report.Ops == 0 {
		t.Errorf("the workload did nothing: %d committed", res.Committed)
	}
	if _, err := os.Stat(res.ReportPath); err != nil {
		t.Errorf("no report: %v", err)
	}
}

// TestARealCampaignWithSQLParticipants: dtc, three banks and two dtc-sql processes,
// s1 over PostgreSQL and s2 over MariaDB, killed and behind faulty proxies like the
// banks; half the transfers have a SQL leg. No violation: the money across the banks'
// and the databases' accounts is constant, every database account holds what its
// committed transactions add up to, and nothing is left prepared. The campaign's tables
// are gone afterwards. Skipped if the databases do not answer (DTC_TEST_PG_DSN,
// DTC_TEST_MYSQL_DSN; see .ci/databases).
func TestARealCampaignWithSQLParticipants(t *testing.T) {
	b := testBinaries(t)
	o := Options{
		Seed:        20260415,
		Duration:    15 * time.Second,
		Kills:       14,
		SQL:         2,
		PostgresDSN: envOr("DTC_TEST_PG_DSN", DefaultPostgresDSN),
		MySQLDSN:    envOr("DTC_TEST_MYSQL_DSN", DefaultMySQLDSN),
		HealMax:     20 * time.Second,
		Binaries:    b,
		Progress:    testWriter{t},
	}
	res, err := Run(context.Background(), o)
	if errors.Is(err, ErrNoDatabase) {
		t.Skipf("the SQL participants' databases are not answering: %v (start them with .ci/databases, or set DTC_TEST_PG_DSN / DTC_TEST_MYSQL_DSN)", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	logSummary(t, res)
	t.Logf("SQL participants' transactions: %v", res.SQLStates)
	if !res.OK() {
		t.Fatalf("%d violations; work dir kept at %s", len(res.Violations), res.WorkDir)
	}
	if res.SQLStates["committed"] == 0 || res.SQLStates["prepared"] != 0 {
		t.Errorf("the SQL participants end with %v: want commits, nothing prepared", res.SQLStates)
	}
	if res.SQLStates["aborted"]+res.SQLStates["unknown"] == 0 {
		t.Errorf("no SQL leg aborted (an overdraft's NACK, at least): %v", res.SQLStates)
	}
	var sqlAccounts int
	for a := range res.Balances {
		if strings.HasPrefix(a, "s1/") || strings.HasPrefix(a, "s2/") {
			sqlAccounts++
		}
	}
	if sqlAccounts != 2*4 {
		t.Errorf("%d SQL accounts in the balances, want 8: %v", sqlAccounts, res.Balances)
	}
	sqlKills := 0
	for _, f := range res.Timeline {
		if f.Kind == FaultKillParticipant && strings.HasPrefix(f.Target, "s") {
			sqlKills++
		}
	}
	t.Logf("%d kill -9s hit a SQL participant", sqlKills)
	// Nothing of the campaign is left in the databases.
	like := fmt.Sprintf("chaos_%d_%d_%%", o.Seed, os.Getpid())
	for _, q := range []struct{ kind, dsn, sql string }{
		{sqlPostgres, o.PostgresDSN, "SELECT count(*) FROM information_schema.tables WHERE table_name LIKE $1"},
		{sqlMariaDB, o.MySQLDSN, "SELECT count(*) FROM information_schema.tables WHERE table_schema = DATABASE() AND table_name LIKE ?"},
	} {
		n := &sqlNode{kind: q.kind}
		db, err := openDB(q.kind, q.dsn)
		if err != nil {
			t.Fatal(err)
		}
		var tables int
		if err := db.QueryRow(q.sql, like).Scan(&tables); err != nil || tables != 0 {
			t.Errorf("%s: %d tables of the campaign left (%v)", q.kind, tables, err)
		}
		n.db = db
		for i := range o.SQL {
			n.name, n.prefix = fmt.Sprintf("s%d", i+1), gidPrefix(fmt.Sprintf("chaos-%d-%d-%d-s%d", o.Seed, os.Getpid(), campaignSeq.Load(), i+1))
			if gids, err := n.prepared(context.Background()); err != nil || len(gids) > 0 {
				t.Errorf("%s: prepared transactions of the campaign left: %v (%v)", q.kind, gids, err)
			}
		}
		db.Close()
	}
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

// TestARealCampaignCatchesABrokenBuild arms coordlog/decisionNotSynced: the decision is
// reported durable before its sync. Commits are held 150ms before they leave, longer than
// the 50ms within which the decision reaches the disk, so that a coordinator killed in
// between loses a decision that its client was already told. The campaign must say so.
func TestARealCampaignCatchesABrokenBuild(t *testing.T) {
	b := testBinaries(t)
	o := Options{
		Seed:            7,
		Duration:        20 * time.Second,
		Kills:           12,
		CoordKillShare:  0.9,
		NoProxyFaults:   true,
		NoFailpoints:    true,
		Break:           true,
		CoordFailpoints: "github.com/dtc-project/dtc/httpnet/transport/beforeCommitSend=sleep(150)",
		HealMax:         10 * time.Second, // a broken coordinator may never settle
		Binaries:        b,
		Progress:        testWriter{t},
	}
	res, err := Run(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	logSummary(t, res)
	if res.WorkDir != "" {
		os.RemoveAll(res.WorkDir)
	}
	caught := 0
	for _, v := range res.Violations {
		switch v.Kind {
		case checker.KindAtomicity, checker.KindStability, checker.KindLinearizability:
			caught++
		}
	}
	if caught == 0 {
		t.Fatalf("the broken build passed the campaign: %d kills of the coordinator, violations %v", res.Faults[FaultKillCoord], res.Violations)
	}
}

func logSummary(t *testing.T, r *Result) {
	t.Helper()
	t.Logf("seed %d: %d txns (%d calls): %d committed, %d aborted, %d unknown; faults %v; heal %v; %d violations",
		r.Seed, r.Txns, r.Calls, r.Committed, r.Aborted, r.Unknown, r.Faults, r.HealTook.Round(time.Millisecond), len(r.Violations))
	for i, v := range r.Violations {
		if i == 10 {
			t.Logf("  … %d more", len(r.Violations)-10)
			break
		}
		t.Logf("  %s", v)
	}
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
