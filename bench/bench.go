package bench

import (
	"context"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/pprof"
	"sync"
	"time"

	"github.com/dtc-project/dtc/internal/maxprocs"
)

// Run measures dtc and its floor, all in this process on 127.0.0.1:
//
//  1. the fsync floor: write+fdatasync probes in a fresh directory under DataDir;
//  2. it starts the floor's trivial servers (floor.go), and dtc — the runtime and API
//     server of `dtc serve` (httpnet) with its log under DataDir — with K participants;
//  3. it warms up the floor, then dtc;
//  4. it measures them in Rounds alternating slices (floor, dtc, floor, dtc, …), so
//     that whatever else the machine does at the time weighs on both alike, and adds
//     the slices up.
//
// Everything it started is stopped and waited for before it returns, and its directory
// is removed. An error means the run could not be made (bad options, a port, a log
// that failed, ctx ended); transactions that failed are not errors of Run but counted
// in Result.Errors.
func Run(ctx context.Context, o Options) (res *Result, err error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	o = o.withDefaults()
	// The floor syncs nothing, so it runs with GOMAXPROCS = runtime.NumCPU: it does
	// best so (measured on 2 cores against cores+1: p50 0.17 against 0.27 ms at
	// concurrency 1, 7,770 against 7,250 transactions/s at 64). dtc's phases run with
	// one P more per syncing log (session.procs): an fdatasync holds its P while it
	// blocks (package maxprocs), and dtc and its K participants would have that as
	// K+1 separate processes, where one's sync does not take a P from the others.
	// Both are restored when Run returns. With GOMAXPROCS set in the environment,
	// both phases use it.
	defer maxprocs.Set(runtime.NumCPU())()
	dir, err := mkdirTemp(o.DataDir)
	if err != nil {
		return nil, err
	}
	defer removeAll(dir)
	res = newResult(o)
	res.FloorGoMaxProcs = runtime.GOMAXPROCS(0)

	o.progress("fsync floor: %d probes in %s", o.FsyncSamples, dir)
	fh, err := fsyncProbe(ctx, dir, o.FsyncSamples)
	if err != nil {
		return nil, err
	}
	res.FsyncP50Ms, res.FsyncP99Ms, res.FsyncMaxMs = ms(fh.Quantile(0.5)), ms(fh.Quantile(0.99)), ms(fh.Max())
	res.FsyncSamples = int64(fh.Count())

	fs, err := startFloor(o.Participants, o.RequestTimeout, dir, floorSyncs{})
	if err != nil {
		return nil, err
	}
	defer fs.close()
	floor := &poster{client: newLoadClient(o.Concurrency, o.RequestTimeout), url: fs.outer.url, body: floorSubmitBody(fs)}
	defer floor.client.CloseIdleConnections()
	// At concurrency 1 (closed loop) the sync floor too: one transaction at a time has
	// nothing to share its fsyncs with, so it is the least that that many fsyncs in a
	// row cost. At higher concurrency it would need a group commit of its own.
	var syncFloor *poster
	syncs := floorSyncs{outer: o.Log == LogDurable, inner: o.Mode == ModeDurable} // the decision; the participants' prepares
	if o.Concurrency == 1 && o.Rate == 0 && syncs.onPath() > 0 {
		sfs, err := startFloor(o.Participants, o.RequestTimeout, dir, syncs)
		if err != nil {
			return nil, err
		}
		defer sfs.close()
		syncFloor = &poster{client: newLoadClient(o.Concurrency, o.RequestTimeout), url: sfs.outer.url, body: floorSubmitBody(sfs)}
		defer syncFloor.client.CloseIdleConnections()
	}
	s, err := openSession(o, dir)
	if err != nil {
		return nil, err
	}
	defer func() {
		if cerr := s.close(); cerr != nil && err == nil {
			res, err = nil, cerr
		}
	}()

	if o.Warmup > 0 {
		o.progress("floor: warm-up %v", o.Warmup)
		o.warmup().run(ctx, floor.do, newPhase())
		if syncFloor != nil {
			o.warmup().run(ctx, syncFloor.do, newPhase())
		}
		if err := s.warm(ctx, o.warmup()); err != nil {
			return nil, err
		}
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	fl, sfl := newPhase(), newPhase()
	floorLoad := o.measured()
	floorLoad.duration = o.FloorDuration
	m := s.newMeasurement()
	o.progress("measuring in %d rounds: floor (%d exchanges per transaction), then dtc (%s loop, concurrency %d)",
		o.Rounds, 2*o.Participants+1, o.loop(), o.Concurrency)
	for i := range o.Rounds {
		runtime.GC() // neither pays for the garbage of the other
		floorLoad.slice(i, o.Rounds).run(ctx, floor.do, fl)
		if syncFloor != nil {
			runtime.GC()
			floorLoad.slice(i, o.Rounds).run(ctx, syncFloor.do, sfl)
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		runtime.GC()
		if err := s.measure(ctx, o.measured().slice(i, o.Rounds), m); err != nil {
			return nil, err
		}
	}

	res.FloorTxns, res.FloorErrors, res.FloorErrorKinds = fl.done, fl.errs.n.Load(), fl.errs.snapshot()
	res.FloorTPS = perSec(fl.committed(), fl.elapsed)
	res.FloorP50Ms, res.FloorP99Ms, res.FloorP999Ms = ms(fl.hist.Quantile(0.5)), ms(fl.hist.Quantile(0.99)), ms(fl.hist.Quantile(0.999))
	res.FloorCPUUsPerTxn = usPer(fl.use.cpu, fl.done)
	res.FloorCPUCores, res.FloorOtherCores = ratio(fl.use.cpu.Seconds(), fl.elapsed.Seconds()), fl.otherCores()
	res.FloorReadsPerTxn, res.FloorWritesPerTxn = perTxn(fl.use.syscr, fl), perTxn(fl.use.syscw, fl)
	res.FloorCtxSwitchesPerTxn = perTxn(fl.use.vcsw+fl.use.ivcsw, fl)
	res.FloorAllocsPerTxn, res.FloorAllocBytesPerTxn = perTxn(fl.use.mallocs, fl), perTxn(fl.use.allocBytes, fl)
	res.FloorGCsPerSec = perSec(fl.use.gcs, fl.elapsed)
	res.Shards = s.shards
	res.GoMaxProcs = s.gomaxprocs
	m.fill(res)
	res.Ratio = ratio(res.TPS, res.FloorTPS)
	res.P50Ratio = ratio(res.P50Ms, res.FloorP50Ms)
	res.P99Ratio = ratio(res.P99Ms, res.FloorP99Ms)
	res.CPURatio = ratio(res.CPUUsPerTxn, res.FloorCPUUsPerTxn)
	res.SyncsOnPath = syncs.onPath()
	res.DurableFloorP50Ms = res.FloorP50Ms + float64(res.SyncsOnPath)*res.FsyncP50Ms
	res.FloorFsyncP50Ms = res.FloorP50Ms + res.FsyncP50Ms
	if syncFloor != nil {
		res.SyncFloorTxns, res.SyncFloorErrors = sfl.done, sfl.errs.n.Load()
		res.SyncFloorP50Ms, res.SyncFloorP99Ms = ms(sfl.hist.Quantile(0.5)), ms(sfl.hist.Quantile(0.99))
		res.SyncFloorP50Ratio = ratio(res.P50Ms, res.SyncFloorP50Ms)
	}
	o.progress("done: %.0f txn/s, floor %.0f txn/s, ratio %.2f", res.TPS, res.FloorTPS, res.Ratio)
	return res, nil
}

// mkdirTemp makes the run's directory under parent (os.TempDir() if empty).
func mkdirTemp(parent string) (string, error) {
	dir, err := os.MkdirTemp(parent, "dtc-bench-")
	if err != nil {
		return "", fmt.Errorf("bench: making the data directory: %w", err)
	}
	return dir, nil
}

func removeAll(dir string) { _ = os.RemoveAll(dir) }

// measured is the load of a measured phase, whole.
func (o Options) measured() load {
	return load{concurrency: o.Concurrency, rate: o.Rate, duration: o.Duration, txns: int64(o.Transactions)}
}

// warmup is the load of a warm-up: the same shape, for Warmup.
func (o Options) warmup() load {
	return load{concurrency: o.Concurrency, rate: o.Rate, duration: o.Warmup}
}

func (o Options) progress(format string, a ...any) {
	if o.Progress != nil {
		fmt.Fprintf(o.Progress, "bench: "+format+"\n", a...)
	}
}

func usPer(d time.Duration, n int64) float64 {
	if n <= 0 {
		return 0
	}
	return float64(d.Microseconds()) / float64(n)
}

// floorSubmitBody is the floor's outer request: the same bytes a dtc submit would carry.
func floorSubmitBody(f *floorServers) []byte {
	var b []byte
	b = append(b, `{"participants":[`...)
	for i, s := range f.inner {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, '"')
		b = append(b, s.url+"/prepare"...)
		b = append(b, '"')
	}
	return append(b, "]}"...)
}

// session is dtc and its participants running, with the load's client.
type session struct {
	o      Options
	c      *cluster
	poster *poster
	shards int
	start  time.Time // the origin of the memory samples' times
	// procs is the GOMAXPROCS of dtc's phases (see Run); gomaxprocs is what it came to.
	procs      int
	gomaxprocs int
}

// syncingLogs is how many logs sync to disk in dtc's phases: dtc's, and each
// participant's.
func (o Options) syncingLogs() int {
	n := 0
	if o.Log == LogDurable {
		n++
	}
	if o.Mode == ModeDurable {
		n += o.Participants
	}
	return n
}

// dtcProcs sets dtc's GOMAXPROCS for one of its phases, and returns what restores the
// floor's.
func (s *session) dtcProcs() (restore func()) {
	restore = maxprocs.Set(s.procs)
	s.gomaxprocs = runtime.GOMAXPROCS(0)
	return restore
}

func openSession(o Options, dir string) (*session, error) {
	o.progress("dtc: starting %d %s participants and dtc", o.Participants, o.Mode)
	c, err := startCluster(o, dir)
	if err != nil {
		return nil, err
	}
	shards := o.Shards
	if shards == 0 {
		shards = 4
	}
	return &session{
		o:      o,
		c:      c,
		poster: &poster{client: newLoadClient(o.Concurrency, o.RequestTimeout), url: c.apiURL + "/v1/transactions", body: c.submitBody()},
		shards: shards,
		start:  time.Now(),
		procs:  maxprocs.ForLogs(o.syncingLogs()),
	}, nil
}

// close closes the load's idle connections first: a server's Shutdown waits up to 5s
// for a connection that was opened and never sent a request.
func (s *session) close() error {
	s.poster.client.CloseIdleConnections()
	return s.c.close()
}

// warm runs l against dtc and forgets what it measured.
func (s *session) warm(ctx context.Context, l load) error {
	defer s.dtcProcs()()
	s.o.progress("dtc: warm-up %v", l.duration)
	s.run(ctx, l, newPhase())
	return s.check(ctx)
}

// measurement is what the measured slices of dtc add up to, with what the logs and
// dtc's metrics said meanwhile.
type measurement struct {
	ph              *phase
	coordFS, partFS fsCounts
	partRequests    int64 // HTTP requests the participants received
	coordHist       *hist
	partHist        *hist
	metrics         dtcMetrics
	samples         []Sample
	// sampleEvery and gcSamples configure the memory sampler of each slice.
	sampleEvery time.Duration
	gcSamples   bool
	// profile, if set, gets a CPU profile of the (single) slice.
	profile io.Writer
}

func (s *session) newMeasurement() *measurement {
	return &measurement{
		ph: newPhase(), coordHist: new(hist), partHist: new(hist),
		sampleEvery: s.o.SampleEvery, profile: s.o.CPUProfile,
	}
}

// measure runs one slice l and adds what it measured to m.
func (s *session) measure(ctx context.Context, l load, m *measurement) error {
	defer s.dtcProcs()()
	if err := s.check(ctx); err != nil {
		return err
	}
	m0, err := gatherMetrics(s.c.rt.Metrics().Registry())
	if err != nil {
		return fmt.Errorf("bench: reading dtc's metrics: %w", err)
	}
	c0, p0, r0 := s.c.coordFS.counts(), s.c.partFS.counts(), s.c.partRequests.Load()
	s.c.coordFS.setSyncHist(m.coordHist)
	s.c.partFS.setSyncHist(m.partHist)
	stopSampling := startSampler(s.start, m.sampleEvery, m.gcSamples, &m.samples)
	if m.profile != nil {
		if err := pprof.StartCPUProfile(m.profile); err != nil {
			stopSampling()
			return fmt.Errorf("bench: starting the CPU profile: %w", err)
		}
	}
	s.run(ctx, l, m.ph)
	if m.profile != nil {
		pprof.StopCPUProfile()
	}
	stopSampling()
	// What finishes after the slice (phase 2 of its last transactions) is not its.
	m.coordFS = m.coordFS.add(s.c.coordFS.counts().sub(c0))
	m.partFS = m.partFS.add(s.c.partFS.counts().sub(p0))
	m.partRequests += s.c.partRequests.Load() - r0
	s.c.coordFS.setSyncHist(new(hist))
	s.c.partFS.setSyncHist(new(hist))
	m1, err := gatherMetrics(s.c.rt.Metrics().Registry())
	if err != nil {
		return fmt.Errorf("bench: reading dtc's metrics: %w", err)
	}
	m.metrics = m.metrics.add(m1.sub(m0))
	return s.check(ctx)
}

// check reports a log that failed (fatal: the run means nothing) or ctx's end.
func (s *session) check(ctx context.Context) error {
	if err := s.c.fatalErr(); err != nil {
		return fmt.Errorf("bench: a log failed: %w", err)
	}
	return ctx.Err()
}

// run runs l against dtc into ph, ending early if a log fails.
func (s *session) run(ctx context.Context, l load, ph *phase) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		select {
		case <-s.c.failed:
			cancel()
		case <-stop:
		}
	})
	l.run(ctx, s.poster.do, ph)
	close(stop)
	wg.Wait()
}

// fill puts the measurement into r.
func (m *measurement) fill(r *Result) {
	ph := m.ph
	errs := ph.errs.n.Load()
	r.Txns, r.ElapsedS = ph.done, ph.elapsed.Seconds()
	r.TPS = perSec(ph.committed(), ph.elapsed)
	h := ph.hist
	r.MeanMs, r.P50Ms, r.P90Ms = ms(h.Mean()), ms(h.Quantile(0.5)), ms(h.Quantile(0.9))
	r.P99Ms, r.P999Ms, r.MaxMs = ms(h.Quantile(0.99)), ms(h.Quantile(0.999)), ms(h.Max())
	r.CPUUsPerTxn = usPer(ph.use.cpu, ph.done)
	r.CPUCores = ratio(ph.use.cpu.Seconds(), ph.elapsed.Seconds())
	r.OtherCPUCores = ph.otherCores()
	r.ReadsPerTxn, r.WritesPerTxn = perTxn(ph.use.syscr, ph), perTxn(ph.use.syscw, ph)
	r.CtxSwitchesPerTxn = perTxn(ph.use.vcsw+ph.use.ivcsw, ph)
	r.AllocsPerTxn, r.AllocBytesPerTxn = perTxn(ph.use.mallocs, ph), perTxn(ph.use.allocBytes, ph)
	r.GCsPerSec = perSec(ph.use.gcs, ph.elapsed)

	r.SyncsPerSec = perSec(m.coordFS.syncs, ph.elapsed)
	r.RecordsPerSync = ratio(float64(m.coordFS.records), float64(m.coordFS.syncs))
	r.LogBytesPerTxn = ratio(float64(m.coordFS.bytes), float64(ph.done))
	r.LogFsyncP50Ms, r.LogFsyncP99Ms = ms(m.coordHist.Quantile(0.5)), ms(m.coordHist.Quantile(0.99))
	r.LogFsyncBusy = ratio(float64(m.coordFS.syncNs), float64(ph.elapsed))
	r.ParticipantFsyncBusy = ratio(float64(m.partFS.syncNs), float64(ph.elapsed))
	r.SyncWaitMeanMs = 1000 * ratio(m.metrics.syncWaitSeconds, m.metrics.syncedRecords)
	r.DecisionMeanMs = 1000 * ratio(m.metrics.decisionSeconds, m.metrics.decisions)
	r.ParticipantSyncsPerSec = perSec(m.partFS.syncs, ph.elapsed)
	r.ParticipantRecordsPerSync = ratio(float64(m.partFS.records), float64(m.partFS.syncs))
	r.ParticipantFsyncP50Ms = ms(m.partHist.Quantile(0.5))
	r.ParticipantRequestsPerTxn = perTxn(m.partRequests, ph)

	r.Committed, r.Aborted = int64(m.metrics.committed), int64(m.metrics.aborted)
	r.ParticipantErrors, r.Hazards = int64(m.metrics.participantErrors), int64(m.metrics.hazards)
	r.ErrorKinds = ph.errs.snapshot()
	r.Errors = errs
	// What went wrong inside dtc counts too, though its client never saw it: a
	// phase-2 request that had to be retried, a hazard, a record the log refused.
	for kind, n := range map[string]int64{
		"dtc_participant_errors": r.ParticipantErrors,
		"dtc_hazards":            r.Hazards,
		"dtc_log_refused":        int64(m.metrics.logRefused),
	} {
		if n > 0 {
			if r.ErrorKinds == nil {
				r.ErrorKinds = make(map[string]int64)
			}
			r.ErrorKinds[kind] += n
			r.Errors += n
		}
	}
	r.Samples = m.samples
}

// startSampler samples memory every d into *out (at most samplesMax samples, times
// from origin) until the returned function is called; that function waits for the
// sampler and takes one last sample.
func startSampler(origin time.Time, d time.Duration, gc bool, out *[]Sample) (stop func()) {
	quit := make(chan struct{})
	var wg sync.WaitGroup
	first := len(*out) // samples of earlier slices do not count as previous ones
	add := func(s Sample) {
		if n := len(*out); n > first {
			s.since((*out)[n-1])
		}
		if len(*out) < samplesMax {
			*out = append(*out, s)
		}
	}
	add(takeSample(origin, gc))
	wg.Go(func() {
		t := time.NewTicker(d)
		defer t.Stop()
		for {
			select {
			case <-quit:
				return
			case <-t.C:
				add(takeSample(origin, gc))
			}
		}
	})
	return func() {
		close(quit)
		wg.Wait()
		add(takeSample(origin, gc))
	}
}
