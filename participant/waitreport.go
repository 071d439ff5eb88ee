package participant

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Lock waits reported to the coordinator (issue 16). A prepare that waits for locks
// tells its coordinator "T waits for U" so that the coordinator, which alone sees every
// participant, can find a deadlock across them:
//
//	POST {coordinator}/v1/waits  {"participant":P,"waiter":T,"holders":[U,…],"key":K}  → 202
//
// at once when the wait begins, at once again whenever a transaction it was not told
// of comes in its way (the key passes to a new holder: that may close a cycle), and
// again every WaitReportInterval (≤ 1 s) while it lasts, with what it waits for then
// (the coordinator lets edges expire). Under
// wound-wait the participant also asks, for every younger holder U in the way,
//
//	POST {coordinator}/v1/transactions/{U}/abort  with header Dtc-Abort-Cause: wound  → 200
//
// which aborts U if it is not decided yet; its rollback then frees the lock. Both go
// with the in-doubt queries' client and bearer token. A report that fails is counted
// (ResolverStats.ReportFails) and made again at the next interval.

// HeaderAbortCause names why an abort is asked for; a participant wounding a younger
// holder sends AbortCauseWound.
const (
	HeaderAbortCause = "Dtc-Abort-Cause"
	AbortCauseWound  = "wound"
)

// WaitReport is the body of POST /v1/waits.
type WaitReport struct {
	Participant string   `json:"participant,omitempty"`
	Waiter      string   `json:"waiter"`
	Holders     []string `json:"holders"`
	Key         string   `json:"key"`
}

// waitReportsQueueMax bounds the waits that began and are not reported yet; beyond it
// they wait for the next interval.
const waitReportsQueueMax = 256

type lockObserverFunc func(LockWait)

func (f lockObserverFunc) LockWaiting(w LockWait) { f(w) }

// runWaitReports reports lock waits until ctx is done.
func (r *Resolver) runWaitReports(ctx context.Context) {
	began := make(chan LockWait, waitReportsQueueMax)
	r.p.SetLockObserver(lockObserverFunc(func(w LockWait) {
		select {
		case began <- w:
		default: // the next interval reports it
		}
	}))
	defer r.p.SetLockObserver(nil)
	sem := make(chan struct{}, r.o.ConcurrencyMax)
	done := make(chan struct{})
	inflight := 0
	// Reports that found ConcurrencyMax in flight wait here, the latest per waiter, and
	// go as soon as one in flight ends: dropping them until the next interval would leave
	// a cycle they close standing up to a second.
	var (
		queue  []string            // waiters, in order
		queued map[string]LockWait // waiter -> its latest wait
	)
	queued = make(map[string]LockWait)
	send := func(w LockWait) {
		inflight++
		go func() {
			defer func() { <-sem; done <- struct{}{} }()
			r.reportWait(ctx, w)
		}()
	}
	report := func(w LockWait) {
		select {
		case sem <- struct{}{}:
			send(w)
			return
		default:
		}
		if _, ok := queued[w.TxnID]; !ok {
			if len(queue) >= waitReportsQueueMax {
				return // the next interval reports it
			}
			queue = append(queue, w.TxnID)
			r.count(func(s *ResolverStats) { s.ReportsQueued++ })
		}
		queued[w.TxnID] = w
	}
	t := time.NewTicker(r.o.WaitReportInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			for ; inflight > 0; inflight-- {
				<-done
			}
			return
		case <-done:
			inflight--
			if len(queue) > 0 {
				w := queued[queue[0]]
				delete(queued, queue[0])
				queue = queue[1:]
				sem <- struct{}{} // one just ended: a slot is free
				send(w)
			}
		case w := <-began:
			report(w)
		case <-t.C:
			for _, w := range r.p.LockWaits() {
				report(w)
			}
		}
	}
}

// reportWait tells w's coordinator about it, and wounds the younger holders.
func (r *Resolver) reportWait(ctx context.Context, w LockWait) {
	base := w.Coordinator
	if base == "" {
		base = r.o.Coordinator
	}
	if base != "" {
		body, _ := json.Marshal(WaitReport{Participant: r.o.ParticipantURL, Waiter: w.TxnID, Holders: w.WaitsFor, Key: w.Key})
		r.post(ctx, strings.TrimSuffix(base, "/")+"/v1/waits", body, nil, http.StatusAccepted, func(s *ResolverStats) { s.WaitReports++ })
	}
	for i, id := range w.Wound {
		base := w.WoundCoordinator[i]
		if base == "" {
			base = r.o.Coordinator
		}
		if base == "" {
			continue
		}
		body, _ := json.Marshal(struct {
			Reason string `json:"reason"`
		}{fmt.Sprintf("wounded by older transaction %s waiting for key %s", w.TxnID, w.Key)})
		r.post(ctx, strings.TrimSuffix(base, "/")+"/v1/transactions/"+url.PathEscape(id)+"/abort", body,
			map[string]string{HeaderAbortCause: AbortCauseWound}, http.StatusOK, func(s *ResolverStats) { s.Wounds++ })
	}
}

// post sends one report and counts it by its answer.
func (r *Resolver) post(ctx context.Context, u string, body []byte, header map[string]string, want int, ok func(*ResolverStats)) {
	ctx, cancel := context.WithTimeout(ctx, r.o.QueryTimeout)
	defer cancel()
	fail := func(why string) {
		r.count(func(s *ResolverStats) { s.ReportFails++ })
		r.log.Debug("participant: lock wait report failed", "url", u, "why", why)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(body))
	if err != nil {
		fail(err.Error())
		return
	}
	req.Header.Set("Content-Type", "application/json")
	if r.o.BearerToken != "" {
		req.Header.Set("Authorization", "Bearer "+r.o.BearerToken)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := r.o.Client.Do(req)
	if err != nil {
		fail(err.Error())
		return
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, r.o.ResponseMaxBytes))
	resp.Body.Close()
	if resp.StatusCode != want {
		fail(resp.Status)
		return
	}
	r.count(ok)
}
