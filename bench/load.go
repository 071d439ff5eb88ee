package bench

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// newLoadClient is the load's HTTP client, the same for dtc and for the floor: pooled
// keep-alive connections, enough idle ones for every worker, no HTTP/2, no proxy.
func newLoadClient(concurrency int, timeout time.Duration) *http.Client {
	dialer := &net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}
	return &http.Client{
		Timeout: timeout,
		Transport: &http.Transport{
			Proxy:               nil,
			DialContext:         dialer.DialContext,
			MaxIdleConns:        2 * concurrency,
			MaxIdleConnsPerHost: 2 * concurrency,
			IdleConnTimeout:     90 * time.Second,
			DisableCompression:  true,
			ForceAttemptHTTP2:   false,
		},
	}
}

// Error kinds of a transaction, as counted in Result.ErrorKinds.
const (
	errTimeout    = "timeout"    // no answer within RequestTimeout
	errConnection = "connection" // the request failed below HTTP
	errRead       = "read"       // the answer's body could not be read
	errAborted    = "aborted"    // 200, but the transaction did not commit
)

// committedMark is what a successful answer holds: dtc's view of a committed
// transaction (and the floor's canned answer, which has the same shape).
var committedMark = []byte(`"state":"committed"`)

// answerMaxBytes bounds what the load reads of an answer.
const answerMaxBytes = 64 << 10

// poster posts one fixed body to one URL and judges the answer; it is a transaction as
// the load sees it, for dtc and for the floor alike.
type poster struct {
	client *http.Client
	url    string
	body   []byte
	bufs   sync.Pool // *bytes.Buffer for answers
}

// do returns "" for a committed transaction, else the kind of error.
func (p *poster) do(ctx context.Context) string {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.url, bytes.NewReader(p.body))
	if err != nil {
		return errConnection
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	resp, err := p.client.Do(req)
	if err != nil {
		var ne net.Error
		if errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()) {
			return errTimeout
		}
		return errConnection
	}
	buf, _ := p.bufs.Get().(*bytes.Buffer)
	if buf == nil {
		buf = new(bytes.Buffer)
	}
	buf.Reset()
	_, err = buf.ReadFrom(io.LimitReader(resp.Body, answerMaxBytes))
	_ = resp.Body.Close()
	kind := ""
	switch {
	case err != nil:
		kind = errRead
	case resp.StatusCode != http.StatusOK:
		kind = "status_" + strconv.Itoa(resp.StatusCode)
	case !bytes.Contains(buf.Bytes(), committedMark):
		kind = errAborted
	}
	p.bufs.Put(buf)
	return kind
}

// errCounts counts errors by kind; safe for concurrent use.
type errCounts struct {
	mu sync.Mutex
	m  map[string]int64
	n  atomic.Int64
}

func (e *errCounts) add(kind string) {
	e.n.Add(1)
	e.mu.Lock()
	if e.m == nil {
		e.m = make(map[string]int64)
	}
	e.m[kind]++
	e.mu.Unlock()
}

func (e *errCounts) snapshot() map[string]int64 {
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(e.m) == 0 {
		return nil
	}
	out := make(map[string]int64, len(e.m))
	for k, v := range e.m {
		out[k] = v
	}
	return out
}

// load is one phase of load: its shape and its bounds. Every phase is bounded in time
// (duration) and, if txns > 0, in count.
type load struct {
	concurrency int
	rate        float64 // > 0: open loop
	duration    time.Duration
	txns        int64
}

// phase is what one phase of load measured; a phase may be run in several slices,
// whose figures add up.
type phase struct {
	hist    *hist
	errs    *errCounts
	done    int64 // transactions finished, with or without error
	elapsed time.Duration
	use     procUsage     // what this process used meanwhile
	machine time.Duration // CPU time of every process on the machine meanwhile
	tl      *timeline     // if set, completions and worst latency second by second
}

// timeline counts completions and keeps the worst latency per slot of wall time (width
// each) from its start, so that a stall can be placed in time. Bounded: at most
// timelineSlotsMax slots; what comes after the last goes in it.
type timeline struct {
	start time.Time
	width time.Duration
	secs  []tlSecond
}

const timelineSlotsMax = 10_000

type tlSecond struct {
	n, errs atomic.Int64
	worst   atomic.Int64 // nanoseconds
}

// newTimeline covers d from start in slots of width, or wider ones if that would take
// more than timelineSlotsMax.
func newTimeline(start time.Time, d, width time.Duration) *timeline {
	width = max(width, d/(timelineSlotsMax-2), time.Millisecond)
	return &timeline{start: start, width: width, secs: make([]tlSecond, int(d/width)+2)}
}

func (t *timeline) record(lat time.Duration, failed bool) {
	i := min(int(time.Since(t.start)/t.width), len(t.secs)-1)
	s := &t.secs[i]
	s.n.Add(1)
	if failed {
		s.errs.Add(1)
	}
	for {
		w := s.worst.Load()
		if int64(lat) <= w || s.worst.CompareAndSwap(w, int64(lat)) {
			return
		}
	}
}

// between sums the completions and takes the worst latency of the slots that end in
// (from, to], times since start.
func (t *timeline) between(from, to time.Duration) (n, errs int64, worst time.Duration) {
	for i := range t.secs {
		end := time.Duration(i+1) * t.width
		if end <= from || end > to {
			continue
		}
		n += t.secs[i].n.Load()
		errs += t.secs[i].errs.Load()
		worst = max(worst, time.Duration(t.secs[i].worst.Load()))
	}
	return n, errs, worst
}

// otherCores is how many cores other processes kept busy on average during ph.
func (ph *phase) otherCores() float64 {
	if ph.machine <= 0 {
		return 0
	}
	return max(0, ratio((ph.machine-ph.use.cpu).Seconds(), ph.elapsed.Seconds()))
}

func newPhase() *phase { return &phase{hist: new(hist), errs: new(errCounts)} }

// committed is the number of transactions that finished without error.
func (ph *phase) committed() int64 { return ph.done - ph.errs.n.Load() }

// run drives do under l until its bounds are reached or ctx ends, adding what it
// measures to ph. A transaction that ctx cut short is not counted. It returns when
// every worker has returned.
func (l load) run(ctx context.Context, do func(context.Context) string, ph *phase) {
	var done atomic.Int64
	record := func(lat time.Duration, kind string) {
		if ctx.Err() != nil {
			return
		}
		done.Add(1)
		if ph.tl != nil {
			ph.tl.record(lat, kind != "")
		}
		if kind != "" {
			ph.errs.add(kind)
			return
		}
		ph.hist.Record(lat)
	}
	use0, machine0 := snapshot(), machineBusy()
	start := time.Now()
	end := start.Add(l.duration)
	var wg sync.WaitGroup
	if l.rate <= 0 {
		// Closed loop: each worker runs one transaction after another.
		var issued atomic.Int64
		for range l.concurrency {
			wg.Go(func() {
				for ctx.Err() == nil {
					if l.txns > 0 && issued.Add(1) > l.txns {
						return
					}
					t0 := time.Now()
					if !t0.Before(end) {
						return
					}
					kind := do(ctx)
					record(time.Since(t0), kind)
				}
			})
		}
	} else {
		// Open loop: arrivals on a fixed schedule; a worker picks up each one. When
		// all workers are busy the schedule waits in the channel and in the
		// dispatcher, but every latency counts from the scheduled arrival.
		arrivals := make(chan time.Time, l.concurrency)
		for range l.concurrency {
			wg.Go(func() {
				for at := range arrivals {
					kind := do(ctx)
					record(time.Since(at), kind)
				}
			})
		}
		wg.Go(func() {
			defer close(arrivals)
			interval := float64(time.Second) / l.rate
			timer := time.NewTimer(time.Hour)
			defer timer.Stop()
			for i := int64(0); l.txns == 0 || i < l.txns; i++ {
				at := start.Add(time.Duration(float64(i) * interval))
				if !at.Before(end) {
					return
				}
				if wait := time.Until(at); wait > 0 {
					timer.Reset(wait)
					select {
					case <-timer.C:
					case <-ctx.Done():
						return
					}
				}
				select {
				case arrivals <- at:
				case <-ctx.Done():
					return
				}
			}
		})
	}
	wg.Wait()
	ph.elapsed += time.Since(start)
	ph.use = ph.use.add(snapshot().sub(use0))
	ph.machine += machineBusy() - machine0
	ph.done += done.Load()
}

// slice is the i-th of n equal parts of l (the last takes the remainders).
func (l load) slice(i, n int) load {
	s := l
	s.duration = l.duration / time.Duration(n)
	if i == n-1 {
		s.duration = l.duration - time.Duration(n-1)*s.duration
	}
	if l.txns > 0 {
		s.txns = l.txns / int64(n)
		if i == n-1 {
			s.txns = l.txns - int64(n-1)*s.txns
		}
	}
	return s
}
