package bench

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"
)

// shortOptions are a run small enough for CI: no assertion in this file is about speed.
func shortOptions(t *testing.T, mode string) Options {
	return Options{
		Participants: 2,
		Concurrency:  4,
		Transactions: 200,
		Duration:     60 * time.Second, // a safety bound; 200 transactions end the run
		Mode:         mode,
		DataDir:      t.TempDir(),
		Warmup:       100 * time.Millisecond,
		FsyncSamples: 20,
		SampleEvery:  50 * time.Millisecond,
	}
}

func TestRunShort(t *testing.T) {
	for _, mode := range []string{ModeDurable, ModeNoop} {
		t.Run(mode, func(t *testing.T) {
			base := runtime.NumGoroutine()
			res, err := Run(context.Background(), shortOptions(t, mode))
			if err != nil {
				t.Fatal(err)
			}
			var text bytes.Buffer
			if err := res.WriteText(&text); err != nil {
				t.Fatal(err)
			}
			t.Logf("\n%s", text.String())
			if res.Txns != 200 || res.Errors != 0 || res.FloorTxns != 200 || res.FloorErrors != 0 {
				t.Fatalf("txns %d errors %d (%v), floor txns %d errors %d (%v); want 200 and 0",
					res.Txns, res.Errors, res.ErrorKinds, res.FloorTxns, res.FloorErrors, res.FloorErrorKinds)
			}
			checkSane(t, res)
			if res.SyncFloorTxns != 0 {
				t.Errorf("the sync floor ran at concurrency %d (%d transactions); it is for concurrency 1 only", res.Options.Concurrency, res.SyncFloorTxns)
			}
			if !strings.Contains(text.String(), "phase-2 batching on") {
				t.Errorf("the report does not say batching is on:\n%s", text.String())
			}
			// Every transaction sends K prepares; phase 2 may ride in batches, so at
			// most K more requests, at least none.
			if k := float64(res.Options.Participants); res.ParticipantRequestsPerTxn < k || res.ParticipantRequestsPerTxn > 2*k {
				t.Errorf("%.2f participant requests per transaction, want between %v and %v", res.ParticipantRequestsPerTxn, k, 2*k)
			}
			if _, set := os.LookupEnv("GOMAXPROCS"); !set {
				// dtc with one P per syncing log (dtc's, and each durable participant's)
				// above the cores; the floor, which syncs nothing, with the cores.
				logs := 1
				if mode == ModeDurable {
					logs += res.Options.Participants
				}
				if want := runtime.NumCPU() + logs; res.GoMaxProcs != want {
					t.Errorf("dtc ran with GOMAXPROCS %d, want %d", res.GoMaxProcs, want)
				}
				if want := runtime.NumCPU(); res.FloorGoMaxProcs != want {
					t.Errorf("the floor ran with GOMAXPROCS %d, want %d", res.FloorGoMaxProcs, want)
				}
			}
			waitGoroutines(t, base)
		})
	}
}

// At concurrency 1 the run measures the sync floor too, with the fsyncs a transaction
// waits for: the participants' prepares (durable mode) and dtc's decision.
func TestRunConcurrencyOneMeasuresTheSyncFloor(t *testing.T) {
	for _, tc := range []struct {
		mode  string
		syncs int
	}{{ModeDurable, 2}, {ModeNoop, 1}} {
		t.Run(tc.mode, func(t *testing.T) {
			o := shortOptions(t, tc.mode)
			o.Concurrency, o.Transactions = 1, 40
			res, err := Run(context.Background(), o)
			if err != nil {
				t.Fatal(err)
			}
			var text bytes.Buffer
			if err := res.WriteText(&text); err != nil {
				t.Fatal(err)
			}
			if res.Txns != 40 || res.Errors != 0 || res.SyncFloorTxns != 40 || res.SyncFloorErrors != 0 {
				t.Fatalf("dtc %d transactions, %d errors; sync floor %d, %d errors: want 40 and 0 for both",
					res.Txns, res.Errors, res.SyncFloorTxns, res.SyncFloorErrors)
			}
			if res.SyncsOnPath != tc.syncs {
				t.Errorf("%d fsyncs on the path, want %d", res.SyncsOnPath, tc.syncs)
			}
			if !(0 < res.SyncFloorP50Ms && res.SyncFloorP50Ms <= res.SyncFloorP99Ms) || res.SyncFloorP50Ratio != res.P50Ms/res.SyncFloorP50Ms {
				t.Errorf("sync floor p50 %v p99 %v, ratio %v (dtc p50 %v)", res.SyncFloorP50Ms, res.SyncFloorP99Ms, res.SyncFloorP50Ratio, res.P50Ms)
			}
			if !strings.Contains(text.String(), "sync floor (measured") {
				t.Errorf("the report does not show the sync floor:\n%s", text.String())
			}
		})
	}
}

func checkSane(t *testing.T, r *Result) {
	t.Helper()
	if !(r.TPS > 0 && r.FloorTPS > 0 && r.Ratio > 0) {
		t.Errorf("tps %v floor %v ratio %v: want all positive", r.TPS, r.FloorTPS, r.Ratio)
	}
	if !(0 < r.P50Ms && r.P50Ms <= r.P99Ms && r.P99Ms <= r.P999Ms && r.P999Ms <= r.MaxMs) {
		t.Errorf("percentiles not ordered: p50 %v p99 %v p99.9 %v max %v", r.P50Ms, r.P99Ms, r.P999Ms, r.MaxMs)
	}
	if !(0 < r.FloorP50Ms && r.FloorP50Ms <= r.FloorP99Ms && r.FloorP99Ms <= r.FloorP999Ms) {
		t.Errorf("floor percentiles not ordered: p50 %v p99 %v p99.9 %v", r.FloorP50Ms, r.FloorP99Ms, r.FloorP999Ms)
	}
	if !(r.FsyncP50Ms > 0 && r.FsyncP50Ms <= r.FsyncP99Ms) {
		t.Errorf("fsync p50 %v p99 %v", r.FsyncP50Ms, r.FsyncP99Ms)
	}
	if r.Committed < r.Txns {
		t.Errorf("dtc's metrics count %d commits, the client %d", r.Committed, r.Txns)
	}
	if r.SyncsPerSec <= 0 || r.RecordsPerSync < 1 {
		t.Errorf("coordinator log: %v syncs/s, %v records/sync", r.SyncsPerSec, r.RecordsPerSync)
	}
}

// waitGoroutines polls (bounded) until the goroutine count is back near base: closed
// connections end their goroutines asynchronously.
func waitGoroutines(t *testing.T, base int) {
	t.Helper()
	const slack = 5
	deadline := time.Now().Add(10 * time.Second)
	for runtime.NumGoroutine() > base+slack {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("%d goroutines left, %d before the run:\n%s", runtime.NumGoroutine(), base, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestResultJSON(t *testing.T) {
	r := newResult(Options{Participants: 2}.withDefaults())
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{`"tps"`, `"floor_tps"`, `"ratio"`, `"p50_ms"`, `"p99_ms"`, `"p999_ms"`,
		`"floor_p50_ms"`, `"floor_p99_ms"`, `"fsync_p50_ms"`, `"syncs_per_sec"`, `"records_per_sync"`,
		`"cpu_us_per_txn"`, `"errors"`, `"txns"`, `"options"`, `"duration":"10s"`,
		`"floor_fsync_p50_ms"`, `"participant_requests_per_txn"`, `"gomaxprocs"`, `"floor_gomaxprocs"`} {
		if !strings.Contains(string(b), key) {
			t.Errorf("JSON lacks %s: %s", key, b)
		}
	}
}

func TestValidate(t *testing.T) {
	if err := (Options{}).Validate(); err != nil {
		t.Fatalf("the zero Options (all defaults) are invalid: %v", err)
	}
	for _, tc := range []struct {
		name string
		o    Options
		want string
	}{
		{"participants", Options{Participants: 33}, "Participants"},
		{"concurrency", Options{Concurrency: -1}, "Concurrency"},
		{"duration", Options{Duration: -time.Second}, "Duration"},
		{"rate", Options{Rate: -1}, "Rate"},
		{"mode", Options{Mode: "bank"}, "Mode"},
		{"log", Options{Log: "fast"}, "Log"},
		{"shards", Options{Shards: 2000}, "Shards"},
		{"transactions", Options{Transactions: -5}, "Transactions"},
		{"rounds", Options{Transactions: 3, Rounds: 4}, "Transactions (3) must be at least Rounds"},
		{"profile", Options{CPUProfile: &bytes.Buffer{}, Rounds: 2}, "CPUProfile"},
		{"sample", Options{SampleEvery: time.Millisecond}, "SampleEvery"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.o.Validate()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Validate() = %v, want an error naming %s", err, tc.want)
			}
		})
	}
	d := Options{Transactions: 10}.withDefaults()
	if d.Rounds != 1 || d.Participants != 2 || d.Concurrency != 64 || d.Mode != ModeDurable {
		t.Errorf("defaults: %+v", d)
	}
	if d := (Options{}).withDefaults(); d.Rounds != defaultRounds {
		t.Errorf("rounds by duration: %d, want %d", d.Rounds, defaultRounds)
	}
}

// The floor answers every transaction, and the sync floor syncs one record per
// transaction where it says: in the outer handler, in each inner one, or both.
func TestFloor(t *testing.T) {
	base := runtime.NumGoroutine()
	for _, syncs := range []floorSyncs{{}, {outer: true}, {inner: true}, {outer: true, inner: true}} {
		for _, k := range []int{1, 3} {
			f, err := startFloor(k, 5*time.Second, t.TempDir(), syncs)
			if err != nil {
				t.Fatal(err)
			}
			p := &poster{client: newLoadClient(4, 5*time.Second), url: f.outer.url, body: floorSubmitBody(f)}
			ph := newPhase()
			load{concurrency: 4, duration: time.Minute, txns: 50}.run(context.Background(), p.do, ph)
			load{concurrency: 4, rate: 2000, duration: time.Minute, txns: 50}.run(context.Background(), p.do, ph)
			p.client.CloseIdleConnections()
			var synced []int64
			for _, sf := range f.files {
				synced = append(synced, sf.synced())
			}
			f.close()
			if ph.done != 100 || ph.errs.n.Load() != 0 || ph.hist.Count() != 100 {
				t.Fatalf("%+v K=%d: %d done, %d errors (%v), %d latencies; want 100, 0, 100", syncs, k, ph.done, ph.errs.n.Load(), ph.errs.snapshot(), ph.hist.Count())
			}
			files := 0
			if syncs.outer {
				files++
			}
			if syncs.inner {
				files += k
			}
			if len(synced) != files {
				t.Fatalf("%+v K=%d: %d sync files, want %d", syncs, k, len(synced), files)
			}
			for i, n := range synced {
				if n != 100 {
					t.Errorf("%+v K=%d: sync file %d synced %d records, want one per transaction (100)", syncs, k, i, n)
				}
			}
		}
	}
	waitGoroutines(t, base)
}

func TestFsyncProbe(t *testing.T) {
	h, err := fsyncProbe(context.Background(), t.TempDir(), 10)
	if err != nil {
		t.Fatal(err)
	}
	if h.Count() != 10 || h.Quantile(0.5) <= 0 {
		t.Fatalf("%d samples, p50 %v", h.Count(), h.Quantile(0.5))
	}
}

func TestHist(t *testing.T) {
	var h hist
	for i := 1; i <= 1000; i++ {
		h.Record(time.Duration(i) * time.Microsecond)
	}
	for _, tc := range []struct {
		q    float64
		want time.Duration
	}{{0.5, 500 * time.Microsecond}, {0.99, 990 * time.Microsecond}, {0.999, 999 * time.Microsecond}, {1, time.Millisecond}} {
		got := h.Quantile(tc.q)
		if diff := float64(got-tc.want) / float64(tc.want); diff < -0.01 || diff > 0.01 {
			t.Errorf("q%v = %v, want %v within 1%%", tc.q, got, tc.want)
		}
	}
	if h.Max() != time.Millisecond || h.Mean() != 500500*time.Nanosecond {
		t.Errorf("max %v mean %v", h.Max(), h.Mean())
	}
	for _, v := range []int64{0, 1, 127, 128, 255, 256, 1000, 1 << 20, 1<<40 + 12345, 1 << 62} {
		i := histIndex(v)
		if i < 0 || i >= histBuckets {
			t.Fatalf("index of %d is %d", v, i)
		}
		if got := histValue(i); v < 1<<40 && (float64(got) < float64(v)*0.99 || float64(got) > float64(v)*1.01+1) {
			t.Errorf("value of the bucket of %d is %d", v, got)
		}
	}
}

func TestCountFrames(t *testing.T) {
	var b []byte
	for _, p := range []string{`{"a":1}`, `{"type":"begin"}`, "x"} {
		b = binary.LittleEndian.AppendUint32(b, uint32(len(p)))
		b = binary.LittleEndian.AppendUint32(b, 0)
		b = append(b, p...)
	}
	if n := countFrames(b); n != 3 {
		t.Errorf("countFrames = %d, want 3", n)
	}
	if n := countFrames(make([]byte, 4096)); n != 0 {
		t.Errorf("countFrames(zeros) = %d, want 0", n)
	}
}

func TestSoakTiny(t *testing.T) {
	base := runtime.NumGoroutine()
	var out bytes.Buffer
	res, err := Soak(context.Background(), Options{
		Participants:  2,
		Concurrency:   4,
		Duration:      time.Second, // the probe then lasts its minimum, 1s
		DataDir:       t.TempDir(),
		Warmup:        -1,
		DoneRetention: 100 * time.Millisecond,
		DecidedMax:    100,
	}, 0.5, 100*time.Millisecond, &out)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("\n%s", out.String())
	if res.MaxTPS <= 0 || res.Rate <= 0 || res.Txns == 0 || len(res.Samples) < 4 {
		t.Fatalf("max %v rate %v txns %d samples %d", res.MaxTPS, res.Rate, res.Txns, len(res.Samples))
	}
	if res.Errors != 0 {
		t.Fatalf("%d errors: %v", res.Errors, res.ErrorKinds)
	}
	// Not judged here: a one-second soak on a shared CI machine says nothing about
	// leaks. That the verdict is computed and printed is what is tested.
	if !strings.Contains(out.String(), "soak: PASS") && !strings.Contains(out.String(), "soak: FAIL") {
		t.Errorf("no verdict in the output")
	}
	if _, err := json.Marshal(res); err != nil {
		t.Fatal(err)
	}
	waitGoroutines(t, base)
}

func TestSoakJudge(t *testing.T) {
	mk := func(heaps []uint64, gs []int) *SoakResult {
		r := &SoakResult{Options: Options{Concurrency: 64}, Rate: 100, TPS: 100}
		for i := range heaps {
			r.Samples = append(r.Samples, Sample{HeapBytes: heaps[i], Goroutines: gs[i]})
		}
		r.judge()
		return r
	}
	const mb = 1 << 20
	if r := mk([]uint64{50 * mb, 52 * mb, 49 * mb, 51 * mb, 53 * mb, 50 * mb, 52 * mb, 51 * mb}, []int{500, 520, 480, 510, 530, 490, 505, 515}); !r.OK {
		t.Errorf("flat memory judged as growth: %v", r.Problems)
	}
	if r := mk([]uint64{50 * mb, 52 * mb, 60 * mb, 70 * mb, 80 * mb, 90 * mb, 95 * mb, 99 * mb}, []int{500, 500, 500, 500, 500, 500, 500, 500}); r.OK {
		t.Errorf("heap growth not seen")
	}
	if r := mk([]uint64{50 * mb, 50 * mb, 50 * mb, 50 * mb, 50 * mb, 50 * mb, 50 * mb, 50 * mb}, []int{500, 500, 600, 700, 800, 900, 1000, 1100}); r.OK {
		t.Errorf("goroutine growth not seen")
	}
	r := mk([]uint64{50 * mb, 50 * mb}, []int{500, 500})
	r.Errors, r.ErrorKinds = 1, map[string]int64{"timeout": 1}
	r.judge()
	if r.OK {
		t.Errorf("an error did not fail the soak")
	}
}
