package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"path"
	"sync"
	"time"
)

// lockPart is the contention benchmark's participant: in memory, no log (it measures
// how transactions wait for each other, not how they persist). A prepare takes an
// exclusive lock on the key its payload names ({"key":…}) until phase 2. When the key is
// held it follows its policy:
//
//   - policyWait: it waits, and reports the wait to the coordinator (POST /v1/waits) at
//     once, again at once whenever the key passes to another holder, and every
//     waitReportEvery while it waits (the timeout-only policy is
//     this one against a coordinator with --deadlock-detection=false);
//   - policyWoundWait: an older requester (smaller priority) asks the coordinator to
//     abort the younger holder (POST …/abort, Dtc-Abort-Cause: wound) and waits; a
//     younger one waits. No cycle can form.
//
// A rollback ends a waiting prepare (NACK) and fences the transaction.
type lockPart struct {
	policy string
	coord  string // the coordinator's base URL
	hc     *http.Client
	srv    *http.Server

	mu      sync.Mutex
	changed chan struct{}
	holder  map[string]lockHeld // key -> holder
	done    map[string]bool     // txn ids decided here (committed or rolled back)
	aborted map[string]bool     // txn ids rolled back (fenced)
	wounded map[string]bool     // holders this participant asked to abort
}

type lockHeld struct {
	txn      string
	priority int64
}

const (
	policyWait      = "wait"
	policyWoundWait = "wound-wait"
	waitReportEvery = time.Second
)

func newLockPart(policy, coord string) *lockPart {
	return &lockPart{policy: policy, coord: coord, changed: make(chan struct{}),
		hc:     &http.Client{Timeout: 5 * time.Second},
		holder: map[string]lockHeld{}, done: map[string]bool{}, aborted: map[string]bool{}, wounded: map[string]bool{}}
}

func (p *lockPart) notify() {
	close(p.changed)
	p.changed = make(chan struct{})
}

func (p *lockPart) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var body struct {
		TxnID    string `json:"txn_id"`
		Priority int64  `json:"priority"`
		Payload  struct {
			Key string `json:"key"`
		} `json:"payload"`
	}
	if r.Method == http.MethodPost {
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
	} else {
		body.TxnID = r.URL.Query().Get("txn_id")
	}
	id := body.TxnID
	w.Header().Set("Content-Type", "application/json")
	switch path.Base(r.URL.Path) {
	case "prepare":
		fmt.Fprint(w, p.prepare(r.Context(), id, body.Payload.Key, body.Priority))
	case "commit", "rollback":
		st := "committed"
		p.mu.Lock()
		if path.Base(r.URL.Path) == "rollback" {
			st = "aborted"
			p.aborted[id] = true
		}
		p.done[id] = true
		for k, h := range p.holder {
			if h.txn == id {
				delete(p.holder, k)
			}
		}
		delete(p.wounded, id)
		p.notify()
		p.mu.Unlock()
		fmt.Fprintf(w, `{"state":%q}`, st)
	default:
		fmt.Fprint(w, `{"state":"unknown"}`)
	}
}

func (p *lockPart) prepare(ctx context.Context, id, key string, prio int64) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var (
		lastReport   time.Time
		lastReported string // the holder last reported: a new one is reported at once
	)
	for {
		h, held := p.holder[key]
		switch {
		case p.aborted[id]:
			return `{"vote":"NACK","reason":"rolled back"}`
		case !held || h.txn == id:
			p.holder[key] = lockHeld{txn: id, priority: prio}
			return `{"vote":"ACK"}`
		case p.policy == policyWoundWait:
			if prio != 0 && prio < h.priority && !p.wounded[h.txn] {
				p.wounded[h.txn] = true
				go p.wound(h.txn, id, key)
			}
		case h.txn != lastReported || time.Since(lastReport) >= waitReportEvery:
			lastReport, lastReported = time.Now(), h.txn
			go p.report(id, h.txn, key)
		}
		ch := p.changed
		p.mu.Unlock()
		t := time.NewTimer(waitReportEvery)
		select {
		case <-ch:
		case <-t.C:
		case <-ctx.Done():
		}
		t.Stop()
		p.mu.Lock()
		if ctx.Err() != nil {
			return `{"vote":"NACK","reason":"gave up waiting"}`
		}
	}
}

func (p *lockPart) post(url string, hdr http.Header, body []byte) {
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return
	}
	req.Header = hdr
	req.Header.Set("Content-Type", "application/json")
	resp, err := p.hc.Do(req)
	if err != nil {
		return
	}
	resp.Body.Close()
}

func (p *lockPart) report(waiter, holder, key string) {
	b, _ := json.Marshal(map[string]any{"participant": "bench", "waiter": waiter, "holders": []string{holder}, "key": key})
	p.post(p.coord+"/v1/waits", http.Header{}, b)
}

func (p *lockPart) wound(holder, by, key string) {
	b, _ := json.Marshal(map[string]string{"reason": fmt.Sprintf("%s (older) wants key %s", by, key)})
	p.post(p.coord+"/v1/transactions/"+holder+"/abort", http.Header{"Dtc-Abort-Cause": {"wound"}}, b)
}
