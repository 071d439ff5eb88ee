package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"time"
)

// SoakResult is what Soak measured and judged.
type SoakResult struct {
	Options  Options `json:"options"`
	Fraction float64 `json:"fraction"`
	// MaxTPS is the closed-loop throughput of the probe; Rate = Fraction × MaxTPS is
	// the open-loop arrival rate held for Options.Duration.
	MaxTPS float64 `json:"max_tps"`
	Rate   float64 `json:"rate"`
	// Settle is how long the load ran at Rate before sampling began, so that what dtc
	// and the participants remember about finished transactions reached its steady
	// state (see Soak).
	Settle string `json:"settle"`

	Txns       int64            `json:"txns"`
	Errors     int64            `json:"errors"`
	ErrorKinds map[string]int64 `json:"error_kinds,omitempty"`
	TPS        float64          `json:"tps"`
	P50Ms      float64          `json:"p50_ms"`
	P99Ms      float64          `json:"p99_ms"`
	P999Ms     float64          `json:"p999_ms"`
	MaxMs      float64          `json:"max_ms"`

	// Samples were taken every sampleEvery, each right after a GC, so HeapBytes is the
	// live heap; their times count from the start of the soak's session. The judgement
	// compares the medians of the first and the last quarter of the samples (the first
	// and last half-minute of a two-minute soak).
	Samples []Sample `json:"-"` // in JSON as part of Intervals
	// Intervals are the samples with what happened since the previous one: the
	// transactions finished per second, the worst latency, the errors, and the log
	// segments built (preallocated) meanwhile.
	Intervals []SoakInterval `json:"intervals"`
	// Builds are the log segments preallocated during the soak, coordinator's and
	// participants'.
	Builds              []SegmentBuild `json:"segment_builds,omitempty"`
	HeapFirstBytes      uint64         `json:"heap_first_bytes"`
	HeapLastBytes       uint64         `json:"heap_last_bytes"`
	HeapToleranceBytes  uint64         `json:"heap_tolerance_bytes"`
	GoroutinesFirst     int            `json:"goroutines_first"`
	GoroutinesLast      int            `json:"goroutines_last"`
	GoroutinesTolerance int            `json:"goroutines_tolerance"`
	RSSFirstBytes       int64          `json:"rss_first_bytes"`
	RSSLastBytes        int64          `json:"rss_last_bytes"`
	HeldRateFraction    float64        `json:"held_rate_fraction"` // TPS / Rate
	// OtherCoresMean and OtherCoresMax: the cores the machine's other processes kept
	// busy during the soak, on average and in the busiest interval. A soak on a busy
	// machine says as much about the machine as about dtc.
	OtherCoresMean       float64  `json:"other_cores_mean"`
	OtherCoresMax        float64  `json:"other_cores_max"`
	OK                   bool     `json:"ok"`
	Problems             []string `json:"problems,omitempty"`
	ProbeErrors          int64    `json:"probe_errors"`
	ProbeP50Ms           float64  `json:"probe_p50_ms"`
	ProbeConcurrency     int      `json:"probe_concurrency"`
	ProbeDurationSeconds float64  `json:"probe_duration_s"`
}

// SoakInterval is one row of the soak's table.
type SoakInterval struct {
	Sample
	TPS     float64 `json:"tps"`
	WorstMs float64 `json:"worst_ms"`
	Errors  int64   `json:"errors"`
	Builds  int     `json:"segment_builds"`
	// The slowest fsync of dtc's log, and of the participants' logs, in the interval.
	WorstFsyncMs            float64 `json:"worst_fsync_ms"`
	WorstParticipantFsyncMs float64 `json:"worst_participant_fsync_ms"`
}

// SegmentBuild is a log segment preallocated during a soak.
type SegmentBuild struct {
	Log        string  `json:"log"` // "dtc" or "participants"
	AtSeconds  float64 `json:"at_s"`
	DurationMs float64 `json:"duration_ms"`
}

// Defaults of a soak, which differ from Run's: see Soak.
const (
	soakDoneRetention = 10 * time.Second
	soakDecidedMax    = 10_000
	soakHeldMin       = 0.95 // the soak must achieve this fraction of its rate
	busyMachineCores  = 0.25 // other processes above this, in any interval, earn a warning
)

// Soak measures the maximum throughput (a closed loop at o.Concurrency for Duration/8,
// between 1s and 15s, after the closed loop has run long enough to reach its steady
// state: at least DoneRetention), then holds an open loop at rateFraction of it for
// o.Duration, sampling RSS, live heap and goroutines every sampleEvery (after a GC),
// prints the samples as a table and a verdict to w, and returns them.
//
// The soak passes (OK) when no transaction failed, at least 95 % of the rate was
// achieved, and neither the live heap nor the goroutines grew between the first and
// the last quarter of the samples (medians, so one slow GC or burst does not decide):
//
//   - heap tolerance: the larger of 10 % and 4 MiB. A leak of b bytes per transaction
//     grows the heap by b × Rate × ¾·Duration between the two medians: at 2,000/s over
//     two minutes that is 180,000 transactions, so 4 MiB catches anything above ~23
//     bytes per transaction, while the live heap's honest jitter (connection buffers,
//     the transactions in flight at the moment of the GC) stays well inside 10 %.
//   - goroutine tolerance: the larger of 10 % and Concurrency/2 + 8. The goroutines of
//     the transactions in flight when a sample is taken (a handler, a Send per
//     participant, the participants' handlers) vary with the arrivals; one goroutine
//     leaked per 1,000 transactions would add 180.
//
// Memory that is bounded but slow to fill would look like growth: dtc remembers a
// finished transaction for DoneRetention (10 minutes by default) and each participant
// remembers DecidedMax (100,000) decided ones. Unless o sets them, Soak lowers them to
// 10s and 10,000, and runs the load at the soak's rate for long enough to fill both
// (the "settle" phase, at least o.Warmup) before sampling starts.
//
// An error means the soak could not be run; a failed verdict is OK false with
// Problems saying why.
func Soak(ctx context.Context, o Options, rateFraction float64, sampleEvery time.Duration, w io.Writer) (*SoakResult, error) {
	if !(rateFraction > 0 && rateFraction <= 1) {
		return nil, fmt.Errorf("bench: soak rate fraction must be in (0, 1], got %v", rateFraction)
	}
	if sampleEvery < 10*time.Millisecond {
		return nil, fmt.Errorf("bench: soak sample interval must be at least 10ms, got %v", sampleEvery)
	}
	if o.DoneRetention == 0 {
		o.DoneRetention = soakDoneRetention
	}
	if o.DecidedMax == 0 {
		o.DecidedMax = soakDecidedMax
	}
	o.Rate, o.Transactions = 0, 0
	if err := o.Validate(); err != nil {
		return nil, err
	}
	o = o.withDefaults()
	if w == nil {
		w = io.Discard
	}
	ew := &errWriter{w: w}
	res := &SoakResult{Options: o, Fraction: rateFraction}

	dir, err := mkdirTemp(o.DataDir)
	if err != nil {
		return nil, err
	}
	defer removeAll(dir)
	s, err := openSession(o, dir)
	if err != nil {
		return nil, err
	}
	soakErr := s.soak(ctx, res, rateFraction, sampleEvery)
	if err := errors.Join(soakErr, s.close()); err != nil {
		return nil, err
	}
	res.judge()
	res.write(ew)
	return res, ew.err
}

func (s *session) soak(ctx context.Context, res *SoakResult, fraction float64, sampleEvery time.Duration) error {
	defer s.dtcProcs()()
	o := s.o
	probe := min(max(o.Duration/8, time.Second), 15*time.Second)
	res.ProbeConcurrency, res.ProbeDurationSeconds = o.Concurrency, probe.Seconds()
	// The maximum is measured in the state the soak runs in, not on empty logs and
	// empty memory: first the closed loop runs long enough for dtc to remember
	// DoneRetention's worth of finished transactions, for checkpoints and segment
	// builds to come around, and for the heap to grow to match. Probing right after a
	// short warm-up overestimated it (4,421 txn/s, when the same system then held
	// 3,273 on average at its 3,536 txn/s "80 %"), and the soak measured a queue.
	if pre := max(o.Warmup, o.DoneRetention+time.Second); pre > 0 {
		if err := s.warm(ctx, load{concurrency: o.Concurrency, duration: pre}); err != nil {
			return err
		}
	}
	o.progress("soak: probing the maximum throughput for %v", probe)
	pm := s.newMeasurement()
	pm.sampleEvery, pm.profile = probe, nil
	if err := s.measure(ctx, load{concurrency: o.Concurrency, duration: probe}, pm); err != nil {
		return err
	}
	res.ProbeErrors = pm.ph.errs.n.Load()
	res.ProbeP50Ms = ms(pm.ph.hist.Quantile(0.5))
	res.MaxTPS = perSec(pm.ph.done-res.ProbeErrors, pm.ph.elapsed)
	if res.MaxTPS <= 0 {
		return errors.New("bench: soak: the probe committed no transaction")
	}
	res.Rate = fraction * res.MaxTPS

	// Settle: long enough for dtc to start forgetting finished transactions and for
	// the participants' decided rings to fill, at the soak's rate.
	fill := time.Duration(float64(o.DecidedMax) / res.Rate * float64(time.Second))
	settle := max(o.Warmup, o.DoneRetention+time.Second, fill+time.Second)
	res.Settle = settle.String()
	o.progress("soak: %.0f txn/s (%.0f%% of %.0f) for %v after settling %v", res.Rate, 100*fraction, res.MaxTPS, o.Duration, settle)
	if err := s.warm(ctx, load{concurrency: o.Concurrency, rate: res.Rate, duration: settle}); err != nil {
		return err
	}
	m := s.newMeasurement()
	m.sampleEvery, m.gcSamples, m.profile = sampleEvery, true, nil
	soakStart := time.Now()
	m.ph.tl = newTimeline(soakStart, o.Duration+time.Minute, sampleEvery) // a slow tail fits too
	coordTL := newTimeline(soakStart, o.Duration+time.Minute, sampleEvery)
	partTL := newTimeline(soakStart, o.Duration+time.Minute, sampleEvery)
	s.c.coordFS.setSyncTimeline(coordTL)
	s.c.partFS.setSyncTimeline(partTL)
	err := s.measure(ctx, load{concurrency: o.Concurrency, rate: res.Rate, duration: o.Duration}, m)
	s.c.coordFS.setSyncTimeline(nil)
	s.c.partFS.setSyncTimeline(nil)
	if err != nil {
		return err
	}
	origin := soakStart.Sub(s.start) // samples are timed from the session's start
	for _, b := range s.c.coordFS.buildsSince(soakStart) {
		res.Builds = append(res.Builds, SegmentBuild{"dtc", b.At.Sub(soakStart).Seconds(), ms(b.Duration)})
	}
	for _, b := range s.c.partFS.buildsSince(soakStart) {
		res.Builds = append(res.Builds, SegmentBuild{"participants", b.At.Sub(soakStart).Seconds(), ms(b.Duration)})
	}
	prev := time.Duration(0)
	for _, smp := range m.samples {
		at := smp.At - origin
		n, errs, worst := m.ph.tl.between(prev, at)
		_, _, coordWorst := coordTL.between(prev, at)
		_, _, partWorst := partTL.between(prev, at)
		iv := SoakInterval{Sample: smp, Errors: errs, WorstMs: ms(worst),
			WorstFsyncMs: ms(coordWorst), WorstParticipantFsyncMs: ms(partWorst)}
		iv.AtSeconds = at.Seconds()
		if at > prev {
			iv.TPS = float64(n) / (at - prev).Seconds()
		}
		for _, b := range res.Builds {
			if b.AtSeconds > prev.Seconds() && b.AtSeconds <= at.Seconds() {
				iv.Builds++
			}
		}
		res.Intervals = append(res.Intervals, iv)
		prev = at
	}
	var r Result
	m.fill(&r)
	res.Txns, res.Errors, res.ErrorKinds, res.TPS = r.Txns, r.Errors, r.ErrorKinds, r.TPS
	res.P50Ms, res.P99Ms, res.P999Ms, res.MaxMs = r.P50Ms, r.P99Ms, r.P999Ms, r.MaxMs
	res.Samples = r.Samples
	return nil
}

// judge compares the first and last quarter of the samples and fills the verdict.
func (r *SoakResult) judge() {
	r.HeldRateFraction = ratio(r.TPS, r.Rate)
	var others float64
	for i, smp := range r.Samples {
		if i > 0 {
			others += smp.OtherCores
			r.OtherCoresMax = max(r.OtherCoresMax, smp.OtherCores)
		}
	}
	if len(r.Samples) > 1 {
		r.OtherCoresMean = others / float64(len(r.Samples)-1)
	}
	n := len(r.Samples)
	q := max(1, n/4)
	first, last := r.Samples[:min(q, n)], r.Samples[max(0, n-q):]
	med := func(ss []Sample, f func(Sample) float64) float64 {
		v := make([]float64, len(ss))
		for i, s := range ss {
			v[i] = f(s)
		}
		slices.Sort(v)
		if len(v) == 0 {
			return 0
		}
		if len(v)%2 == 1 {
			return v[len(v)/2]
		}
		return (v[len(v)/2-1] + v[len(v)/2]) / 2
	}
	heap := func(s Sample) float64 { return float64(s.HeapBytes) }
	gor := func(s Sample) float64 { return float64(s.Goroutines) }
	rss := func(s Sample) float64 { return float64(s.RSSBytes) }
	r.HeapFirstBytes, r.HeapLastBytes = uint64(med(first, heap)), uint64(med(last, heap))
	r.GoroutinesFirst, r.GoroutinesLast = int(med(first, gor)), int(med(last, gor))
	r.RSSFirstBytes, r.RSSLastBytes = int64(med(first, rss)), int64(med(last, rss))
	r.HeapToleranceBytes = uint64(max(0.10*float64(r.HeapFirstBytes), 4<<20))
	r.GoroutinesTolerance = max(int(math.Ceil(0.10*float64(r.GoroutinesFirst))), r.Options.Concurrency/2+8)

	var problems []string
	if r.Errors > 0 {
		problems = append(problems, fmt.Sprintf("%d errors (%s)", r.Errors, formatKinds(r.ErrorKinds)))
	}
	if r.HeldRateFraction < soakHeldMin {
		problems = append(problems, fmt.Sprintf("held only %.1f%% of the rate (%.0f of %.0f txn/s)",
			100*r.HeldRateFraction, r.TPS, r.Rate))
	}
	if r.HeapLastBytes > r.HeapFirstBytes+r.HeapToleranceBytes {
		problems = append(problems, fmt.Sprintf("live heap grew from %s to %s (tolerance %s)",
			mib(int64(r.HeapFirstBytes)), mib(int64(r.HeapLastBytes)), mib(int64(r.HeapToleranceBytes))))
	}
	if r.GoroutinesLast > r.GoroutinesFirst+r.GoroutinesTolerance {
		problems = append(problems, fmt.Sprintf("goroutines grew from %d to %d (tolerance %d)",
			r.GoroutinesFirst, r.GoroutinesLast, r.GoroutinesTolerance))
	}
	r.Problems, r.OK = problems, len(problems) == 0
}

func (r *SoakResult) write(ew *errWriter) {
	o := r.Options
	ew.printf("dtc soak: %d participants (%s), coordinator log %s, phase-2 batching %s; probe: %.0f txn/s closed loop at concurrency %d\n",
		o.Participants, o.Mode, o.Log, onOff(!o.NoBatch), r.MaxTPS, r.ProbeConcurrency)
	ew.printf("held %.0f txn/s (%.0f%% of the maximum) for %v after settling %v; done retention %v, participants' decided max %d\n\n",
		r.Rate, 100*r.Fraction, o.Duration, r.Settle, o.DoneRetention, o.DecidedMax)
	ew.printf("%7s %8s %8s %6s %7s %9s %6s %6s %9s %9s %6s %6s\n", "t (s)", "RSS MiB", "heap MiB", "gorout",
		"txn/s", "worst ms", "errors", "builds", "dtc fsync", "prt fsync", "cores", "others")
	for _, iv := range r.Intervals {
		ew.printf("%7.1f %8.1f %8.1f %6d %7.0f %9.1f %6d %6d %9.1f %9.1f %6.2f %6.2f\n", iv.AtSeconds, float64(iv.RSSBytes)/(1<<20),
			float64(iv.HeapBytes)/(1<<20), iv.Goroutines, iv.TPS, iv.WorstMs, iv.Errors, iv.Builds,
			iv.WorstFsyncMs, iv.WorstParticipantFsyncMs, iv.CPUCores, iv.OtherCores)
	}
	ew.printf("(a row: the sample, taken after a GC; then, since the row before, transactions finished per second, the worst\n" +
		" latency, errors, log segments built, the slowest fsync of dtc's log and of the participants' in ms, and the cores\n" +
		" kept busy by this process and by the machine's other processes)\n")
	for _, b := range r.Builds {
		ew.printf("segment built (%s log): at %.1fs, took %.1f ms\n", b.Log, b.AtSeconds, b.DurationMs)
	}
	ew.printf("\n%d transactions, %.0f txn/s (%.1f%% of the rate), p50 %.3f ms, p99 %.3f ms, p99.9 %.3f ms, max %.3f ms, %d errors\n",
		r.Txns, r.TPS, 100*r.HeldRateFraction, r.P50Ms, r.P99Ms, r.P999Ms, r.MaxMs, r.Errors)
	ew.printf("first vs last quarter (medians): live heap %s → %s (tolerance %s), goroutines %d → %d (tolerance %d), RSS %s → %s\n",
		mib(int64(r.HeapFirstBytes)), mib(int64(r.HeapLastBytes)), mib(int64(r.HeapToleranceBytes)),
		r.GoroutinesFirst, r.GoroutinesLast, r.GoroutinesTolerance, mib(r.RSSFirstBytes), mib(r.RSSLastBytes))
	ew.printf("other processes kept %.2f cores busy on average, %.2f in the busiest interval\n", r.OtherCoresMean, r.OtherCoresMax)
	if r.OtherCoresMax > busyMachineCores {
		ew.printf("warning: the machine was busy with other work during the soak; what it shows is partly that work\n")
	}
	if r.OK {
		ew.printf("soak: PASS\n")
		return
	}
	ew.printf("soak: FAIL: %s\n", strings.Join(r.Problems, "; "))
}
