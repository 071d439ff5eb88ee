package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/dtc-project/dtc/chaossim"
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
	out, code := sim(t, "--seeds", "4", "--from", "10", "--txns", "20", "--parallel", "2", "-v", "--html", t.TempDir())
	if code != 0 {
		t.Fatalf("exit %d:\n%s", code, out)
	}
	for _, want := range []string{"seed 10:", "seed 11:", "seed 12:", "seed 13:", "summary:", "crashes", "partitions",
		"messages lost", "violations               0", "4 seeds (10..13), 0 failed", "campaign report: "} {
		if !strings.Contains(out, want) {
			t.Fatalf("missing %q in:\n%s", want, out)
		}
	}
	if strings.Index(out, "seed 10:") > strings.Index(out, "seed 13:") {
		t.Fatalf("seeds out of order:\n%s", out)
	}
}

// TestASimulatedCampaignHoldsUp is the simulated campaign of make test: a few hundred
// swarm seeds, every one of them free of violations.
func TestASimulatedCampaignHoldsUp(t *testing.T) {
	out, code := sim(t, "--seeds", "300", "--from", "1", "--html", "")
	t.Log("\n" + out[strings.Index(out, "summary:"):])
	if code != 0 {
		t.Fatalf("exit %d:\n%s", code, out)
	}
	if !strings.Contains(out, "300 seeds (1..300), 0 failed") {
		t.Fatalf("unexpected summary:\n%s", out)
	}
}

func TestSimRunsForADurationAndUnderAProfile(t *testing.T) {
	out, code := sim(t, "--duration", "200ms", "--from", "5", "--txns", "20", "--html", "")
	if code != 0 || !strings.Contains(out, "seeds (5..") || !strings.Contains(out, "0 failed") {
		t.Fatalf("--duration: exit %d:\n%s", code, out)
	}
	out, code = sim(t, "--seeds", "3", "--txns", "30", "--profile", "crashes", "-v", "--html", "")
	if code != 0 || strings.Count(out, "crash=every") != 3 || strings.Contains(out, "partition=every") {
		t.Fatalf("--profile crashes: exit %d, want every seed to crash and none to partition:\n%s", code, out)
	}
	out, code = sim(t, "--seed", "3", "--txns", "30", "--profile", "calm", "--trace=false")
	if code != 0 || !strings.Contains(out, "0 crashes, 0 partitions") {
		t.Fatalf("--profile calm: exit %d:\n%s", code, out)
	}
}

// TestAFailingSeedIsShrunkAndItsShrunkCaseReplays: a campaign against a deliberate bug
// reports each failing seed with its replay command, a shrunk case with fewer transfers,
// and a report; the shrunk case, replayed from its file, still fails.
func TestAFailingSeedIsShrunkAndItsShrunkCaseReplays(t *testing.T) {
	dir := t.TempDir()
	out, code := sim(t, "--seeds", "3", "--from", "1", "--break", "commit-before-durable", "--html", dir)
	if code != 1 {
		t.Fatalf("exit %d, want 1:\n%s", code, out)
	}
	for _, want := range []string{"seed 2 failed:", "replay: go run ./cmd/chaos sim --seed 2", "--break commit-before-durable",
		"shrunk in ", "replay the shrunk case: go run ./cmd/chaos sim --replay ", "html report: ", "campaign report: ", "FAIL: 2 of 3 seeds"} {
		if !strings.Contains(out, want) {
			t.Fatalf("missing %q in:\n%s", want, out)
		}
	}
	i := strings.Index(out, "--replay ") + len("--replay ")
	file := out[i : i+strings.IndexByte(out[i:], '\n')]
	c, err := chaossim.LoadShrunk(file)
	if err != nil {
		t.Fatal(err)
	}
	if c.Txns >= 200 {
		t.Errorf("the shrunk case still has %d transfers", c.Txns)
	}
	again, code := sim(t, "--replay", file, "--html", dir)
	if code != 1 || !strings.HasPrefix(lastLine(again), "trace-sha256: ") {
		t.Fatalf("replaying the shrunk case: exit %d, want 1 (it fails):\n%s", code, lastLine(again))
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
		{"--seed", "1", "--profile", "nonsense"},
		{"--seeds", "2", "--replay", "x.json"},
		{"--replay", "/nonexistent.shrunk.json"},
	} {
		if out, code := sim(t, args...); code != 2 {
			t.Errorf("sim %v: exit %d, want 2:\n%s", args, code, out)
		}
	}
	var out, errb bytes.Buffer
	if code := run([]string{"nope"}, &out, &errb); code != 2 {
		t.Errorf("unknown command: exit %d", code)
	}
	for _, args := range [][]string{
		{"real", "--proxy", "nonsense"},
		{"real", "--failpoints", "coordlog/nope"},
		{"real", "--failpoints", "coordlog/decisionNotSynced"},
		{"real", "--failpoint-actions", "explode"},
		{"real", "--participants", "1"},
		{"real", "--participants", "sqlite"},
		{"real", "--participants", "3,sql", "--sql", "9"},
		{"real", "extra"},
	} {
		if code := run(args, &out, &errb); code != 2 {
			t.Errorf("%v: exit %d, want 2", args, code)
		}
	}
}
