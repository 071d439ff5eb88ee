package httpnet_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path"
	"strings"
	"sync"
	"testing"
	"time"
)

// batchFake is a participant that answers at once, offers batching when max is set
// (the Dtc-Batch-Max header on every answer), and answers each op of a batch as its
// single endpoint would. It is the part of package transport's batchFake
// (transport/batch_test.go) that the end-to-end trace test needs.
type batchFake struct {
	t   *testing.T
	srv *httptest.Server
	url string // its prepare URL

	mu  sync.Mutex
	max string // the header's value; "" sends none
	// batchTraceparents holds the traceparent header of each batch request, in order.
	batchTraceparents []string

	// When hold is set, every batch request is announced on arrived and then waits for
	// a token on release, or for its client to leave.
	hold    bool
	arrived chan []batchOp
	release chan struct{}
}

type batchOp struct {
	Op    string `json:"op"`
	TxnID string `json:"txn_id"`
}

func newBatchFake(t *testing.T, max string) *batchFake {
	f := &batchFake{t: t, max: max, arrived: make(chan []batchOp, 64), release: make(chan struct{}, 64)}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	f.url = f.srv.URL + "/p/prepare"
	return f
}

func (f *batchFake) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	name := path.Base(r.URL.Path)
	f.mu.Lock()
	max, hold := f.max, f.hold
	f.mu.Unlock()
	if max != "" {
		w.Header().Set("Dtc-Batch-Max", max)
	}
	switch name {
	case "prepare":
		fmt.Fprint(w, `{"vote":"ACK"}`)
	case "commit":
		fmt.Fprint(w, `{"state":"committed"}`)
	case "rollback":
		fmt.Fprint(w, `{"state":"aborted"}`)
	case "status":
		fmt.Fprint(w, `{"state":"prepared"}`)
	case "batch":
		var req struct {
			Ops []batchOp `json:"ops"`
		}
		if err := json.Unmarshal(body, &req); err != nil || r.Method != http.MethodPost {
			f.t.Errorf("batch request %s %q (%v)", r.Method, body, err)
		}
		f.mu.Lock()
		f.batchTraceparents = append(f.batchTraceparents, r.Header.Get("traceparent"))
		f.mu.Unlock()
		if hold {
			f.arrived <- req.Ops
			select {
			case <-f.release:
			case <-r.Context().Done():
				return
			}
		}
		var b strings.Builder
		b.WriteString(`{"results":[`)
		for i, op := range req.Ops {
			if i > 0 {
				b.WriteByte(',')
			}
			if op.Op == "commit" {
				b.WriteString(`{"state":"committed"}`)
			} else {
				b.WriteString(`{"state":"aborted"}`)
			}
		}
		b.WriteString("]}\n")
		fmt.Fprint(w, b.String())
	default:
		http.NotFound(w, r)
	}
}

func (f *batchFake) set(mod func(f *batchFake)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	mod(f)
}

// next waits for the next held batch request.
func (f *batchFake) next() []batchOp {
	f.t.Helper()
	select {
	case ops := <-f.arrived:
		return ops
	case <-time.After(waitDeadline):
		f.t.Fatal("no batch request arrived")
		return nil
	}
}
