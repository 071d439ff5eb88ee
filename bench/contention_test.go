package bench

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"
)

// The contention benchmark runs every policy and each aborts only for the causes its
// policy allows: timeout-only for timeouts, detection for deadlocks (and timeouts),
// wound-wait for wounds (and timeouts). Numbers are printed, not asserted.
func TestContentionPolicies(t *testing.T) {
	if testing.Short() {
		t.Skip("runs three coordinators for half a second each")
	}
	o := ContentionOptions{HotKeys: 1, Concurrency: 4, Duration: 500 * time.Millisecond, PrepareTimeout: 300 * time.Millisecond}
	rs, err := RunContention(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	allowed := map[string]string{PolicyTimeoutOnly: "timeout", PolicyDetection: "deadlock timeout", PolicyWoundWait: "wound timeout"}
	if len(rs) != 3 {
		t.Fatalf("%d results", len(rs))
	}
	for _, r := range rs {
		if r.Errors != 0 {
			t.Errorf("%s: %d errors", r.Policy, r.Errors)
		}
		for cause := range r.Aborted {
			if !strings.Contains(allowed[r.Policy], cause) {
				t.Errorf("%s: aborts for cause %q", r.Policy, cause)
			}
		}
		if r.Policy == PolicyDetection && r.Aborted["deadlock"] > r.Deadlocks {
			t.Errorf("detection: %d deadlocks found, but %d aborted for deadlock", r.Deadlocks, r.Aborted["deadlock"])
		}
	}
	var out bytes.Buffer
	WriteContention(&out, o, rs)
	t.Logf("\n%s", out.String())
	if !strings.Contains(out.String(), "wound-wait") {
		t.Fatal("the table lacks a policy")
	}
}
