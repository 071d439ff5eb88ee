package bench

import (
	"context"
	"os"
	"testing"
	"time"
)

// RunSQL against the machine's PostgreSQL and MariaDB (DTC_TEST_PG_DSN and
// DTC_TEST_MYSQL_DSN, as sqlpart's tests): both loops commit transfers, none fails, and
// the run ends with its tables dropped and nothing left prepared (RunSQL checks and
// fails otherwise). Speeds are not judged.
func TestRunSQLMeasuresDtcAndTheFloor(t *testing.T) {
	o := SQLOptions{PostgresDSN: os.Getenv("DTC_TEST_PG_DSN"), MySQLDSN: os.Getenv("DTC_TEST_MYSQL_DSN"),
		Concurrency: 2, Duration: 300 * time.Millisecond}
	res, err := RunSQL(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	if res.DtcTPS <= 0 || res.FloorTPS <= 0 || res.DtcFailed != 0 || res.FloorFailed != 0 {
		t.Fatalf("dtc %.0f/s (%d failed), floor %.0f/s (%d failed)", res.DtcTPS, res.DtcFailed, res.FloorTPS, res.FloorFailed)
	}
	if res.Ratio != res.DtcTPS/res.FloorTPS {
		t.Errorf("ratio %v, want %v", res.Ratio, res.DtcTPS/res.FloorTPS)
	}
	// Two prepares a transfer, and phase 2: the participants offer batches, so it went
	// in them (of one op at least; how many is the load's).
	if res.DtcRequestsPerTransfer < 2 || res.DtcBatchOps < 1 {
		t.Errorf("%.2f requests per transfer, batches of %.1f ops: want 2 or more, and batches", res.DtcRequestsPerTransfer, res.DtcBatchOps)
	}
}
