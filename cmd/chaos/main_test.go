package main

import (
	"bytes"
	"strings"
	"testing"
)

func sim(t *testing.T, args ...string) (string, int) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(append([]string{"sim"}, args...), &out, &errb)
	return out.String() + errb.String(), code
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return lines[len(lines)-1]
}

func TestSimReplaysASeedWithItsTraceAndEndsWithItsHash(t *testing.T) {
	a, code := sim(t, "--seed", "3", "--txns", "30")
	if code != 0 {
		t.Fatalf("exit %d:\n%s", code, a)
	}
	if !strings.HasPrefix(lastLine(a), "trace-sha256: ") || len(lastLine(a)) != len("trace-sha256: ")+64 {
		t.Fatalf("last line %q is not the trace hash", lastLine(a))
	}
	if !strings.Contains(a, "coord starts: 0 records replayed") {
		t.Fatalf("no trace printed:\n%s", a)
	}
	b, _ := sim(t, "--seed", "3", "--txns", "30")
	if a != b {
		t.Fatal("the same seed printed two different traces")
	}
	c, _ := sim(t, "--seed", "4", "--txns", "30")
	if lastLine(c) == lastLine(a) {
		t.Fatalf("seeds 3 and 4 have the same hash %s", lastLine(a))
	}
	quiet, _ := sim(t, "--seed", "3", "--txns", "30", "--trace=false")
	if lastLine(quiet) != lastLine(a) || strings.Count(quiet, "\n") != 2 {
		t.Fatalf("--trace=false should print the summary and the same hash:\n%s", quiet)
	}
}

func TestSimRunsACampaignOfSeeds(t *testing.T) {
	out, code := sim(t, "--seeds", "4", "--from", "10", "--txns", "20", "--parallel", "2")
	if code != 0 {
		t.Fatalf("exit %d:\n%s", code, out)
	}
	for _, want := range []string{"seed 10:", "seed 11:", "seed 12:", "seed 13:", "4 seeds (10..13), 0 failed"} {
		if !strings.Contains(out, want) {
			t.Fatalf("missing %q in:\n%s", want, out)
		}
	}
	if strings.Index(out, "seed 10:") > strings.Index(out, "seed 13:") {
		t.Fatalf("seeds out of order:\n%s", out)
	}
}

func TestSimReportsABrokenComponentWithItsReplayCommand(t *testing.T) {
	out, code := sim(t, "--seed", "1", "--txns", "100", "--break", "no-fencing", "--trace=false", "--html", t.TempDir())
	if code != 1 {
		t.Fatalf("exit %d, want 1 for a run with violations:\n%s", code, out)
	}
	for _, want := range []string{"fencing:", "replay: go run ./cmd/chaos sim --seed 1", "--break no-fencing", "html report: "} {
		if !strings.Contains(out, want) {
			t.Fatalf("missing %q in:\n%s", want, out)
		}
	}
}

func TestSimRefusesBadFlags(t *testing.T) {
	for _, args := range [][]string{
		{},
		{"--seed", "1", "--seeds", "2"},
		{"--seed", "1", "--break", "nonsense"},
		{"--seed", "1", "--participants", "0"},
		{"--seed", "1", "extra"},
	} {
		if out, code := sim(t, args...); code != 2 {
			t.Errorf("sim %v: exit %d, want 2:\n%s", args, code, out)
		}
	}
	var out, errb bytes.Buffer
	if code := run([]string{"nope"}, &out, &errb); code != 2 {
		t.Errorf("unknown command: exit %d", code)
	}
}
