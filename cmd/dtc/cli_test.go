package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/dtc-project/dtc/client"
)

// runCLI runs dtc in-process with args and returns its exit code, stdout and stderr.
func runCLI(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(context.Background(), args, &out, &errb)
	return code, out.String(), errb.String()
}

func TestHelpAndUsageErrors(t *testing.T) {
	for _, tc := range []struct {
		args     []string
		code     int
		stdout   []string
		stderr   []string
		noStdout bool
	}{
		{args: []string{"--help"}, code: 0, stdout: []string{"Usage:", "serve", "submit", "log", "DTC_DATA_DIR"}},
		{args: []string{"help", "submit"}, code: 0, stdout: []string{"Usage: dtc submit", "Exit codes", "1  aborted", "--coordinator", "[env DTC_COORDINATOR]"}},
		{args: []string{"serve", "--help"}, code: 0, stdout: []string{"Usage: dtc serve", "Example", "Exit codes", "--data-dir", "[env DTC_DATA_DIR]", "--prepare-timeout", "--no-batch"}},
		{args: []string{"get", "-h"}, code: 0, stdout: []string{"Usage: dtc get", "not found"}},
		{args: []string{"list", "--help"}, code: 0, stdout: []string{"in-doubt", "heuristic"}},
		{args: []string{"log", "--help"}, code: 0, stdout: []string{"read-only", "torn"}},
		{args: []string{"log", "dump", "--help"}, code: 0, stdout: []string{"Usage: dtc log dump", "--data-dir"}},
		{args: []string{"version"}, code: 0, stdout: []string{"dtc ", "go1."}},
		{args: []string{"bench", "--help"}, code: 0, stdout: []string{"Usage: dtc bench", "floor", "--soak", "--json", "--no-batch", "--contention"}},
		{args: []string{"bench", "--contention", "-1"}, code: 2, stderr: []string{"--contention takes a positive number"}},
		{args: []string{"bench", "--soak", "2"}, code: 2, stderr: []string{"--soak is a fraction"}},
		{args: []string{"bench", "--mode", "fast"}, code: 2, stderr: []string{`"fast"`}},
		{args: []string{"bench", "--tracing", "compare", "--tracing-turns", "0"}, code: 2, stderr: []string{"--tracing-turns 0: want 1 to 50"}},
		{args: []string{"bench", "--tracing", "sometimes"}, code: 2, stderr: []string{`--tracing "sometimes": want off, on or compare`}},
		{args: nil, code: 2, stderr: []string{"Usage:"}, noStdout: true},
		{args: []string{"frobnicate"}, code: 2, stderr: []string{`unknown command "frobnicate"`, "Usage:"}, noStdout: true},
		{args: []string{"serve", "--bogus"}, code: 2, stderr: []string{"unknown flag: --bogus", "Usage: dtc serve"}, noStdout: true},
		{args: []string{"serve", "extra"}, code: 2, stderr: []string{`unexpected argument "extra"`}},
		{args: []string{"serve", "--shards", "many"}, code: 2, stderr: []string{"--shards"}},
		{args: []string{"serve", "--log-format", "xml"}, code: 2, stderr: []string{"--log-format"}},
		{args: []string{"serve", "--segment-size", "lots"}, code: 2, stderr: []string{"segment-size"}},
		{args: []string{"serve", "--segment-size", "1KiB"}, code: 2, stderr: []string{"--segment-size"}},
		{args: []string{"serve", "--prepare-timeout", "0s"}, code: 2, stderr: []string{"PrepareTimeout"}},
		{args: []string{"submit"}, code: 2, stderr: []string{"at least one participant"}},
		{args: []string{"submit", "--payload", "{}", "--payload", "{}", "http://a/prepare"}, code: 2, stderr: []string{"2 --payload flags for 1 participants"}},
		{args: []string{"submit", "http://a/prepare={nope"}, code: 2, stderr: []string{"not valid JSON"}},
		{args: []string{"submit", "--payload", "{}", "http://a/prepare={}"}, code: 2, stderr: []string{"both after '=' and in --payload"}},
		{args: []string{"submit", "--coordinator", "nowhere", "http://a/prepare"}, code: 2, stderr: []string{"--coordinator"}},
		{args: []string{"get"}, code: 2, stderr: []string{"exactly one transaction id"}},
		{args: []string{"abort"}, code: 2, stderr: []string{"exactly one transaction id"}},
		{args: []string{"abort", "--help"}, code: 0, stdout: []string{"Usage: dtc abort", "never changed"}},
		{args: []string{"submit", "--retry", "0", "http://a/prepare"}, code: 2, stderr: []string{"--retry takes 1 to 100"}},
		{args: []string{"submit", "--retry", "2", "--async", "http://a/prepare"}, code: 2, stderr: []string{"--retry cannot go with --async"}},
		{args: []string{"serve", "--help"}, code: 0, stdout: []string{"--deadlock-detection"}},
		{args: []string{"log"}, code: 2, stderr: []string{"Usage: dtc log dump"}},
		{args: []string{"log", "rotate"}, code: 2, stderr: []string{`unknown subcommand "rotate"`}},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			code, out, errs := runCLI(t, tc.args...)
			if code != tc.code {
				t.Errorf("exit %d, want %d\nstdout: %s\nstderr: %s", code, tc.code, out, errs)
			}
			for _, s := range tc.stdout {
				if !strings.Contains(out, s) {
					t.Errorf("stdout lacks %q:\n%s", s, out)
				}
			}
			for _, s := range tc.stderr {
				if !strings.Contains(errs, s) {
					t.Errorf("stderr lacks %q:\n%s", s, errs)
				}
			}
			if tc.noStdout && out != "" {
				t.Errorf("stdout should be empty, got %q", out)
			}
		})
	}
}

func TestEnvironmentVariables(t *testing.T) {
	t.Run("a bad value names its variable", func(t *testing.T) {
		t.Setenv("DTC_SHARDS", "several")
		code, _, errs := runCLI(t, "serve")
		if code != 2 || !strings.Contains(errs, "DTC_SHARDS") || !strings.Contains(errs, "several") {
			t.Errorf("exit %d, stderr %q: want 2 naming DTC_SHARDS", code, errs)
		}
	})
	t.Run("a bad duration names its variable", func(t *testing.T) {
		t.Setenv("DTC_PREPARE_TIMEOUT", "soon")
		code, _, errs := runCLI(t, "serve")
		if code != 2 || !strings.Contains(errs, "DTC_PREPARE_TIMEOUT") {
			t.Errorf("exit %d, stderr %q", code, errs)
		}
	})
	t.Run("the flag wins over the environment", func(t *testing.T) {
		t.Setenv("DTC_SHARDS", "several")
		// --shards on the command line: the bad DTC_SHARDS is not read. The bad
		// --log-format from the environment still is, and stops serve before it listens.
		t.Setenv("DTC_LOG_FORMAT", "xml")
		code, _, errs := runCLI(t, "serve", "--shards", "2")
		if code != 2 || strings.Contains(errs, "DTC_SHARDS") || !strings.Contains(errs, "--log-format \"xml\"") {
			t.Errorf("exit %d, stderr %q", code, errs)
		}
	})
	t.Run("the environment fills a flag", func(t *testing.T) {
		t.Setenv("DTC_COORDINATOR", "not a url")
		code, _, errs := runCLI(t, "get", "x")
		if code != 2 || !strings.Contains(errs, "not a url") {
			t.Errorf("exit %d, stderr %q", code, errs)
		}
	})
}

func TestByteSize(t *testing.T) {
	for in, want := range map[string]int64{"4096": 4096, "4KiB": 4096, "64MiB": 64 << 20, "1GiB": 1 << 30, "2MB": 2e6, "10 KB": 10e3} {
		var b byteSize
		if err := b.Set(in); err != nil || int64(b) != want {
			t.Errorf("Set(%q) = %d, %v; want %d", in, b, err, want)
		}
	}
	for _, in := range []string{"", "-1", "0", "1.5MiB", "MiB", "9999999999GiB"} {
		var b byteSize
		if err := b.Set(in); err == nil {
			t.Errorf("Set(%q) accepted", in)
		}
	}
	b := byteSize(64 << 20)
	if b.String() != "64MiB" {
		t.Errorf("String() = %q", b.String())
	}
}

// dtc get's summary gives the times the admin page gives: the begin, the durable
// decision, each vote and acknowledgement, as offsets from the begin.
func TestPrintViewTimes(t *testing.T) {
	began := time.Date(2026, 12, 5, 13, 0, 0, 123_456_789, time.UTC)
	ms := func(n int) *time.Time { t := began.Add(time.Duration(n) * time.Millisecond); return &t }
	v := client.View{ID: "t1", TxnID: "t1@ab", State: client.StateAborted, Reason: "p voted NACK: no", BeganAt: began,
		DecidedAt: ms(5), Participants: []client.ParticipantView{
			{URL: "http://a/prepare", Vote: "NACK", Reason: "no", VotedAt: ms(3), Acked: true, AnsweredAt: ms(9), Phase2Requests: 1},
			{URL: "http://b/prepare", Phase2Requests: 2, Phase2Error: "HTTP 503"},
		}}
	var b strings.Builder
	printView(&b, v, false)
	out := b.String()
	for _, want := range []string{"began 2026-12-05 13:00:00.123, decision durable 2026-12-05 13:00:00.128 (+5 ms)",
		"voted +3 ms", "acked +9 ms", "phase 2 pending after 2 requests: HTTP 503"} {
		if !strings.Contains(out, want) {
			t.Errorf("dtc get's summary lacks %q:\n%s", want, out)
		}
	}
}

// dtc list says when a cluster's listing left a node out, and exits 3.
func TestListPartial(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"transactions":[{"id":"a","txn_id":"a@1","state":"committed","participants":[],"phase2_done":true,"began_at":"2026-12-05T13:00:00Z"}],` +
			`"partial":true,"unreachable":[{"node":"n3","addr":"http://n3","shards":[3,6],"error":"context deadline exceeded"}]}`))
	}))
	defer srv.Close()
	code, out, errs := runCLI(t, "list", "--coordinator", srv.URL)
	if code != 3 || !strings.Contains(out, "a") || !strings.Contains(errs, "incomplete: n3 [3 6]: context deadline exceeded") {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errs)
	}
}

// TestBenchTracingCompare runs dtc bench --tracing compare, briefly, and checks that its
// JSON holds each run, in turns, and the sums (their values are measurements: only
// their being there and consistent is checked).
func TestBenchTracingCompare(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the benchmark four times")
	}
	code, out, errs := runCLI(t, "bench", "--tracing", "compare", "--tracing-turns", "2", "--duration", "100ms",
		"--concurrency", "2", "--json")
	if code != 0 {
		t.Fatalf("exit %d\nstderr: %s", code, errs)
	}
	type run struct {
		Options struct {
			Tracing bool `json:"tracing"`
		} `json:"options"`
		Txns int64 `json:"txns"`
	}
	var c struct {
		Turns          int     `json:"turns"`
		Off            []run   `json:"tracing_off"`
		On             []run   `json:"tracing_on"`
		OffTPS         float64 `json:"tracing_off_tps"`
		OnTPS          float64 `json:"tracing_on_tps"`
		PairLossMedian float64 `json:"pair_loss_median_percent"`
		PairLossMin    float64 `json:"pair_loss_min_percent"`
		PairLossMax    float64 `json:"pair_loss_max_percent"`
	}
	if err := json.Unmarshal([]byte(out), &c); err != nil {
		t.Fatalf("%v in %s", err, out)
	}
	if c.Turns != 2 || len(c.Off) != 2 || len(c.On) != 2 {
		t.Fatalf("turns %d, %d runs off and %d on; want 2 of each", c.Turns, len(c.Off), len(c.On))
	}
	for i := range 2 {
		if c.Off[i].Options.Tracing || !c.On[i].Options.Tracing {
			t.Errorf("pair %d: tracing %v off, %v on", i+1, c.Off[i].Options.Tracing, c.On[i].Options.Tracing)
		}
		if c.Off[i].Txns == 0 || c.On[i].Txns == 0 {
			t.Errorf("pair %d: %d and %d transactions", i+1, c.Off[i].Txns, c.On[i].Txns)
		}
	}
	if c.OffTPS <= 0 || c.OnTPS <= 0 || c.PairLossMin > c.PairLossMedian || c.PairLossMedian > c.PairLossMax {
		t.Errorf("sums: %+v", c)
	}
}
