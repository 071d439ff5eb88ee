package otlpexport

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// New wants an http(s) URL with a host, and a timeout that is not negative.
func TestNewRejectsBadOptions(t *testing.T) {
	for _, o := range []Options{
		{},
		{URL: "collector:4318"},
		{URL: "ftp://collector/v1/traces"},
		{URL: "http:///v1/traces"},
		{URL: "http://collector:4318/v1/traces", Timeout: -time.Second},
	} {
		if _, err := New(o); err == nil {
			t.Errorf("New(%+v) succeeded, want an error", o)
		}
	}
}

// An answer other than 2xx, and not one that is retried, is an error that says its
// status and the beginning of its body; it is not retried.
func TestRefusalSaysStatusAndBody(t *testing.T) {
	col := newCollector(t, func(w http.ResponseWriter, _ int) {
		http.Error(w, " no room for spans"+strings.Repeat(".", 1000), http.StatusInternalServerError)
	})
	spans, _ := everyField(t)
	err := newExporter(t, Options{URL: col.url()}).ExportSpans(context.Background(), spans)
	want := fmt.Sprintf(`otlpexport: POST %s: 500 Internal Server Error: "no room for spans...`, col.url())
	if err == nil || !strings.HasPrefix(err.Error(), want) || len(err.Error()) > len(want)+errorBodyMax {
		t.Errorf("error %v, want one that begins %s and quotes at most %d bytes of the body", err, want, errorBodyMax)
	}
	if n := len(col.all()); n != 1 {
		t.Errorf("%d requests, want 1", n)
	}
}

// A collector may answer before it reads the request: the transport may then still be
// sending the body after Client.Do returns. The exporter reuses the body's buffer only
// once the transport is done with it (the race detector checks it, with -race).
func TestAnswerBeforeTheBodyIsRead(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "too large", http.StatusRequestEntityTooLarge)
	}))
	defer srv.Close()
	exp := newExporter(t, Options{URL: srv.URL})
	spans, _ := largeSpans()
	for range 3 {
		err := exp.ExportSpans(context.Background(), spans)
		if err == nil || !strings.Contains(err.Error(), "413 Request Entity Too Large") {
			t.Errorf("error %v, want a 413", err)
		}
	}
}

// A 429, 502, 503 or 504 answer is retried, until the collector takes the spans.
func TestRetriesWhenOverloaded(t *testing.T) {
	for _, code := range []int{http.StatusTooManyRequests, http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout} {
		t.Run(http.StatusText(code), func(t *testing.T) {
			t.Parallel()
			col := newCollector(t, func(w http.ResponseWriter, n int) {
				if n == 1 {
					w.Header().Set("Retry-After", "0")
					w.WriteHeader(code)
				}
			})
			spans, _ := everyField(t)
			export(t, newExporter(t, Options{URL: col.url()}), spans)
			reqs := col.all()
			if len(reqs) != 2 || !bytes.Equal(reqs[0].body, reqs[1].body) {
				t.Fatalf("%d requests, want 2, the same", len(reqs))
			}
		})
	}
}

// A request that gets no answer (the collector restarting: connection refused) is tried
// again, until the collector takes the spans; the transport closes every body it got.
func TestRetriesWhenTheCollectorIsUnreachable(t *testing.T) {
	col := newCollector(t, func(http.ResponseWriter, int) {})
	rt := &refusing{fails: 2, next: http.DefaultTransport}
	spans, _ := everyField(t)
	export(t, newExporter(t, Options{URL: col.url(), Client: &http.Client{Transport: rt}}), spans)
	if n := rt.tries.Load(); n != 3 {
		t.Errorf("%d tries, want 3 (2 refused)", n)
	}
	if n := len(col.all()); n != 1 {
		t.Errorf("the collector received %d requests, want 1", n)
	}
}

// A collector that stays unreachable: the export ends with its timeout, and says why.
func TestUnreachableCollectorGivesUpAtTheTimeout(t *testing.T) {
	rt := &refusing{fails: 1 << 30}
	spans, _ := everyField(t)
	exp := newExporter(t, Options{URL: "http://collector.invalid:4318/v1/traces", Timeout: time.Second, Client: &http.Client{Transport: rt}})
	err := exp.ExportSpans(context.Background(), spans)
	if err == nil || !strings.Contains(err.Error(), "connection refused") || !strings.Contains(err.Error(), "gave up after attempt") {
		t.Errorf("error %v, want the refusal and that the retries gave up", err)
	}
	if n := rt.tries.Load(); n < 2 {
		t.Errorf("%d tries, want the refused request tried again", n)
	}
}

// refusing is a RoundTripper that refuses the first fails requests as a collector that
// is not listening would (connection refused), then hands them to next.
type refusing struct {
	fails int32
	next  http.RoundTripper
	tries atomic.Int32
}

func (r *refusing) RoundTrip(req *http.Request) (*http.Response, error) {
	if r.tries.Add(1) <= r.fails {
		if req.Body != nil {
			_ = req.Body.Close() // as a RoundTripper must, even on an error
		}
		return nil, &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}
	}
	return r.next.RoundTrip(req)
}

// The retries end with the context: when it is cancelled, or when the next wait would
// pass its deadline.
func TestRetriesEndWithTheContext(t *testing.T) {
	busy := func(retryAfter string) *collector {
		return newCollector(t, func(w http.ResponseWriter, _ int) {
			w.Header().Set("Retry-After", retryAfter)
			http.Error(w, "busy", http.StatusServiceUnavailable)
		})
	}
	spans, _ := everyField(t)

	col := busy("3600")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	start := time.Now()
	err := newExporter(t, Options{URL: col.url()}).ExportSpans(ctx, spans)
	if err == nil || !strings.Contains(err.Error(), `503 Service Unavailable: "busy" (gave up after attempt 1: a wait of 1h0m0s would pass the deadline)`) {
		t.Errorf("error %v, want a 503 not retried", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("gave up after %v, want at once", d)
	}

	col = busy("0")
	ctx, cancel = context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, cancel)
	err = newExporter(t, Options{URL: col.url()}).ExportSpans(ctx, spans)
	if !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "503 Service Unavailable") {
		t.Errorf("error %v, want a 503 and the context's cancellation", err)
	}
}

// An export ends with its context, with Options.Timeout, and with Shutdown, while the
// collector has not answered.
func TestExportEndsWhileTheCollectorIsSilent(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	defer srv.Close()
	defer close(release)
	spans, _ := everyField(t)

	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(50*time.Millisecond, cancel)
	if err := newExporter(t, Options{URL: srv.URL}).ExportSpans(ctx, spans); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: error %v, want context.Canceled", err)
	}

	exp := newExporter(t, Options{URL: srv.URL, Timeout: 50 * time.Millisecond})
	if err := exp.ExportSpans(context.Background(), spans); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("timed out: error %v, want context.DeadlineExceeded", err)
	}

	exp = newExporter(t, Options{URL: srv.URL})
	time.AfterFunc(50*time.Millisecond, func() { _ = exp.Shutdown(context.Background()) })
	if err := exp.ExportSpans(context.Background(), spans); !errors.Is(err, context.Canceled) {
		t.Errorf("shut down: error %v, want context.Canceled", err)
	}
}

// After Shutdown, ExportSpans fails, and sends nothing.
func TestExportAfterShutdown(t *testing.T) {
	col := newCollector(t, nil)
	exp := newExporter(t, Options{URL: col.url()})
	spans, _ := everyField(t)
	export(t, exp, spans)
	if err := exp.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := exp.ExportSpans(context.Background(), spans); !errors.Is(err, errShutdown) {
		t.Errorf("error %v, want %v", err, errShutdown)
	}
	if err := exp.ExportSpans(context.Background(), []sdktrace.ReadOnlySpan{nil}); !errors.Is(err, errShutdown) {
		t.Errorf("an empty batch: error %v, want %v", err, errShutdown)
	}
	if n := len(col.all()); n != 1 {
		t.Errorf("%d requests, want 1 (before Shutdown)", n)
	}
}
