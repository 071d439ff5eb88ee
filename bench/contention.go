package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/dtc-project/dtc/client"
	"github.com/dtc-project/dtc/coordinator"
	"github.com/dtc-project/dtc/httpnet"
	"github.com/dtc-project/dtc/httpnet/apiserver"
	"github.com/dtc-project/dtc/httpnet/transport"
	"github.com/dtc-project/dtc/locks"
)

// The contention benchmark (issue 16): HotKeys hot keys at each of two participants
// that lock them from prepare to phase 2, Concurrency clients each running transfers
// that lock one random key at each participant (in a random order), for Duration per
// policy, all policies in the same run:
//
//   - timeout-only: participants wait for locks; the coordinator's detection is off, so
//     a deadlock lasts until the prepare deadline (today's behaviour);
//   - detection: participants wait and report their waits; the coordinator aborts the
//     youngest of each cycle at once;
//   - wound-wait: an older transaction wounds (aborts) a younger holder; no cycle forms.
//
// The participants are the participant library's, over a service that only names the
// key and a log in memory (libPart): the benchmark measures waiting, not disks.

// Contention policies, in the order they run.
const (
	PolicyTimeoutOnly = "timeout-only"
	PolicyDetection   = "detection"
	PolicyWoundWait   = "wound-wait"
)

// ContentionOptions configure RunContention. Zero values mean the defaults.
type ContentionOptions struct {
	HotKeys        int           // hot keys per participant; required
	Concurrency    int           // clients (closed loop); default 64
	Duration       time.Duration // per policy; default 10s
	PrepareTimeout time.Duration // the coordinator's prepare deadline; default 5s (dtc serve's)
	Logger         *slog.Logger  // default: discard
}

// ContentionResult is one policy's run.
type ContentionResult struct {
	Policy        string         `json:"policy"`
	Committed     int            `json:"committed"`
	Aborted       map[string]int `json:"aborted"` // by cause
	Errors        int            `json:"errors"`
	CommittedTPS  float64        `json:"committed_per_second"`
	AbortRate     float64        `json:"abort_rate"` // aborted / (committed + aborted)
	P50, P99      time.Duration  `json:"-"`
	P50Ms         float64        `json:"p50_ms"`
	P99Ms         float64        `json:"p99_ms"`
	Deadlocks     int            `json:"deadlocks"`
	WaitReports   map[string]int `json:"wait_reports"` // dtc_wait_reports_total by result
	ResolutionAvg time.Duration  `json:"-"`
	ResolutionMs  float64        `json:"deadlock_resolution_mean_ms"` // closing report to the victim's durable abort
	Elapsed       time.Duration  `json:"-"`
}

// RunContention runs every policy in turn and returns their results.
func RunContention(ctx context.Context, o ContentionOptions) ([]ContentionResult, error) {
	if o.HotKeys < 1 {
		return nil, errors.New("bench: --contention needs at least 1 hot key")
	}
	if o.Concurrency <= 0 {
		o.Concurrency = 64
	}
	if o.Duration <= 0 {
		o.Duration = 10 * time.Second
	}
	if o.PrepareTimeout <= 0 {
		o.PrepareTimeout = 5 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	var out []ContentionResult
	for _, p := range []string{PolicyTimeoutOnly, PolicyDetection, PolicyWoundWait} {
		r, err := runPolicy(ctx, o, p)
		if err != nil {
			return out, fmt.Errorf("bench: contention, %s: %w", p, err)
		}
		out = append(out, r)
	}
	return out, nil
}

func runPolicy(ctx context.Context, o ContentionOptions, policy string) (ContentionResult, error) {
	res := ContentionResult{Policy: policy, Aborted: map[string]int{}}
	dir, err := mkdirTemp("")
	if err != nil {
		return res, err
	}
	defer removeAll(dir)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return res, err
	}
	apiURL := "http://" + ln.Addr().String()
	eng := coordinator.DefaultConfig()
	eng.PrepareTimeout = o.PrepareTimeout
	rt, err := httpnet.Open(httpnet.Options{
		DataDir: filepath.Join(dir, "dtc"), Engine: eng, Logger: o.Logger,
		Transport:           transport.Options{AdvertiseURL: apiURL},
		NoDeadlockDetection: policy != PolicyDetection,
		OnFatal:             func(err error) { o.Logger.Error("fatal", "error", err) },
	})
	if err != nil {
		_ = ln.Close()
		return res, err
	}
	api := apiserver.NewServer(rt, apiserver.ServerOptions{Logger: o.Logger})
	sctx, stop := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() {
		served <- apiserver.Serve(sctx, ln, rt, api, apiserver.ServeOptions{Grace: time.Second, Logger: o.Logger})
	}()
	defer func() { stop(); <-served }()
	for deadline := time.Now().Add(10 * time.Second); !rt.Ready(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			return res, errors.New("dtc did not become ready within 10s")
		}
	}
	lockPolicy := locks.PolicyWait
	if policy == PolicyWoundWait {
		lockPolicy = locks.PolicyWoundWait
	}
	var urls [2]string
	for i := range urls {
		lp, err := startLibPart(lockPolicy, apiURL, o.Logger)
		if err != nil {
			return res, err
		}
		defer lp.Close()
		urls[i] = lp.url
	}
	c, err := client.New(apiURL, client.Options{HTTPClient: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: o.Concurrency * 2}}})
	if err != nil {
		return res, err
	}
	var (
		mu   sync.Mutex
		lats []time.Duration
	)
	rctx, cancel := context.WithTimeout(ctx, o.Duration)
	defer cancel()
	start := time.Now()
	g, gctx := errgroup.WithContext(rctx)
	for w := range o.Concurrency {
		g.Go(func() error {
			rng := rand.New(rand.NewPCG(uint64(w), 16))
			for gctx.Err() == nil {
				a := client.Participant{URL: urls[0], Payload: json.RawMessage(fmt.Sprintf(`{"key":"k%d"}`, rng.IntN(o.HotKeys)))}
				b := client.Participant{URL: urls[1], Payload: json.RawMessage(fmt.Sprintf(`{"key":"k%d"}`, rng.IntN(o.HotKeys)))}
				parts := []client.Participant{a, b}
				if rng.IntN(2) == 0 {
					parts = []client.Participant{b, a}
				}
				t0 := time.Now()
				// Not bound to gctx: a transaction begun runs to its outcome, so that
				// the counts are of outcomes, never of cancelled calls.
				v, err := c.Submit(context.Background(), client.Request{Participants: parts})
				lat := time.Since(t0)
				mu.Lock()
				switch {
				case err != nil:
					res.Errors++
				case v.State == client.StateCommitted:
					res.Committed++
				default:
					res.Aborted[string(v.AbortCause)]++
				}
				lats = append(lats, lat)
				mu.Unlock()
			}
			return nil
		})
	}
	_ = g.Wait()
	res.Elapsed = time.Since(start)
	res.CommittedTPS = float64(res.Committed) / res.Elapsed.Seconds()
	aborted := 0
	for _, n := range res.Aborted {
		aborted += n
	}
	if res.Committed+aborted > 0 {
		res.AbortRate = float64(aborted) / float64(res.Committed+aborted)
	}
	slices.Sort(lats)
	if len(lats) > 0 {
		res.P50, res.P99 = lats[len(lats)/2], lats[min(len(lats)-1, len(lats)*99/100)]
		res.P50Ms, res.P99Ms = durMs(res.P50), durMs(res.P99)
	}
	mfs, err := rt.Metrics().Registry().Gather()
	if err == nil {
		for _, mf := range mfs {
			switch mf.GetName() {
			case "dtc_wait_reports_total":
				res.WaitReports = map[string]int{}
				for _, m := range mf.GetMetric() {
					for _, l := range m.GetLabel() {
						if l.GetName() == "result" {
							res.WaitReports[l.GetValue()] = int(m.GetCounter().GetValue())
						}
					}
				}
			case "dtc_deadlocks_total":
				res.Deadlocks = int(mf.GetMetric()[0].GetCounter().GetValue())
			case "dtc_deadlock_resolution_seconds":
				h := mf.GetMetric()[0].GetHistogram()
				if h.GetSampleCount() > 0 {
					res.ResolutionAvg = time.Duration(h.GetSampleSum() / float64(h.GetSampleCount()) * float64(time.Second))
					res.ResolutionMs = durMs(res.ResolutionAvg)
				}
			}
		}
	}
	return res, nil
}

// WriteContention prints the results as a table, with the ratios to timeout-only.
func WriteContention(w io.Writer, o ContentionOptions, rs []ContentionResult) {
	fmt.Fprintf(w, "contention: %d hot keys at each of 2 participants, %d clients, %v per policy, prepare deadline %v\n",
		o.HotKeys, o.Concurrency, o.Duration, o.PrepareTimeout)
	fmt.Fprintf(w, "%-13s %10s %9s %8s %9s %9s %10s %12s  %s\n", "policy", "committed", "txn/s", "vs t-o", "p50", "p99", "deadlocks", "resolution", "aborts by cause")
	var base float64
	for _, r := range rs {
		if r.Policy == PolicyTimeoutOnly {
			base = r.CommittedTPS
		}
	}
	for _, r := range rs {
		ratio := "-"
		if base > 0 {
			ratio = fmt.Sprintf("%.1fx", r.CommittedTPS/base)
		}
		causes := make([]string, 0, len(r.Aborted))
		for c, n := range r.Aborted {
			causes = append(causes, fmt.Sprintf("%s %d", c, n))
		}
		sort.Strings(causes)
		res := "-"
		if r.ResolutionAvg > 0 {
			res = fmt.Sprintf("%.2fms", r.ResolutionMs)
		}
		if r.Errors > 0 {
			causes = append(causes, fmt.Sprintf("errors %d", r.Errors))
		}
		fmt.Fprintf(w, "%-13s %10d %9.1f %8s %8.1fms %8.1fms %10d %12s  %s\n", r.Policy, r.Committed, r.CommittedTPS, ratio,
			r.P50Ms, r.P99Ms, r.Deadlocks, res, strings.Join(causes, ", "))
	}
}

func durMs(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
