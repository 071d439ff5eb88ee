package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// The raw-HTTP floor: the same HTTP exchanges as a dtc transaction with K participants,
// against handlers that do nothing, on loopback, with the same client settings:
//
//	load client ──POST──▶ outer server ─┬─POST──▶ inner server 1 ┐ K in parallel
//	                                    ├─POST──▶ inner server K ┘ (like prepares)
//	                                    ├─POST──▶ inner server 1 ┐ then K more
//	                                    └─POST──▶ inner server K ┘ (like commits)
//	            ◀──200 (a view-shaped answer)──┘
//
// The outer handler sends its inner requests like httpnet's Transport: one goroutine
// per request, a pooled keep-alive client with the Transport's settings, a context
// timeout per request, JSON-shaped bodies of the same sizes. Nothing is parsed and
// nothing is synced: what it costs is the HTTP exchanges and the goroutine handoffs
// alone. (dtc answers its client once the decision is durable, before its commits;
// this floor answers after both rounds, so its latency is if anything a stricter one.)

// floorServers are the outer server and the K inner ones, each on its own port.
type floorServers struct {
	outer    *httpServer
	inner    []*httpServer
	client   *http.Client // the outer handler's, like httpnet's Transport
	innerURL [][2]string  // per inner server: the prepare-like and commit-like URLs
	wg       sync.WaitGroup
}

// Canned bodies, shaped and sized like the protocol's.
var (
	floorPrepareBody = []byte(`{"txn_id":"0123456789abcdef0123456789abcdef","coordinator":"http://127.0.0.1:65535"}`)
	floorCommitBody  = []byte(`{"txn_id":"0123456789abcdef0123456789abcdef"}`)
	voteACK          = []byte(`{"vote":"ACK"}` + "\n")
	stateCommitted   = []byte(`{"state":"committed"}` + "\n")
	stateAborted     = []byte(`{"state":"aborted"}` + "\n")
	stateUnknown     = []byte(`{"state":"unknown"}` + "\n")
)

// floorView is the outer answer: a view of a committed transaction with k participants,
// as dtc writes it.
func floorView(urls []string) []byte {
	var b strings.Builder
	b.WriteString(`{"id":"0123456789abcdef0123456789abcdef","state":"committed","participants":[`)
	for i, u := range urls {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"url":%q,"vote":"ACK"}`, u)
	}
	b.WriteString("]}\n")
	return []byte(b.String())
}

// startFloor starts the K inner servers and the outer one on 127.0.0.1.
func startFloor(k int, requestTimeout time.Duration) (*floorServers, error) {
	f := &floorServers{client: newTransportClient()}
	prepareURLs := make([]string, 0, k)
	for range k {
		s, err := startHTTP(http.HandlerFunc(protocolNoop))
		if err != nil {
			f.close()
			return nil, err
		}
		f.inner = append(f.inner, s)
		f.innerURL = append(f.innerURL, [2]string{s.url + "/prepare", s.url + "/commit"})
		prepareURLs = append(prepareURLs, s.url+"/prepare")
	}
	view := floorView(prepareURLs)
	outer, err := startHTTP(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		if !f.round(r.Context(), 0, floorPrepareBody, requestTimeout) ||
			!f.round(r.Context(), 1, floorCommitBody, requestTimeout) {
			http.Error(w, `{"error":{"code":"internal","message":"an inner request failed"}}`, http.StatusBadGateway)
			return
		}
		writeCanned(w, view)
	}))
	if err != nil {
		f.close()
		return nil, err
	}
	f.outer = outer
	return f, nil
}

// round sends one request to every inner server in parallel, one goroutine each (as
// httpnet's Transport does per Send), and waits for all the answers.
func (f *floorServers) round(ctx context.Context, which int, body []byte, timeout time.Duration) bool {
	results := make(chan bool, len(f.inner))
	for i := range f.inner {
		u := f.innerURL[i][which]
		f.wg.Go(func() { results <- exchange(ctx, f.client, u, body, timeout) })
	}
	ok := true
	for range f.inner {
		ok = <-results && ok
	}
	return ok
}

// exchange is one request as httpnet's Transport makes it: a context with a timeout,
// JSON headers, the answer read whole and then drained.
func exchange(ctx context.Context, c *http.Client, u string, body []byte, timeout time.Duration) bool {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(body))
	if err != nil {
		return false
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "dtc-coordinator")
	resp, err := c.Do(req)
	if err != nil {
		return false
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, answerMaxBytes))
	_, _ = io.CopyN(io.Discard, resp.Body, 4<<10)
	_ = resp.Body.Close()
	return err == nil && resp.StatusCode == http.StatusOK && len(data) > 0
}

// newTransportClient is a client with httpnet's Transport settings (httpnet.NewTransport).
func newTransportClient() *http.Client {
	const perHost = 256
	dialer := &net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}
	return &http.Client{
		Transport: &http.Transport{
			Proxy:                 nil,
			DialContext:           dialer.DialContext,
			MaxIdleConns:          4 * perHost,
			MaxIdleConnsPerHost:   perHost,
			IdleConnTimeout:       90 * time.Second,
			TLSHandshakeTimeout:   5 * time.Second,
			ExpectContinueTimeout: time.Second,
			ForceAttemptHTTP2:     false,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// close stops the outer server, then the inner ones. Idle client connections go
// first: a server's Shutdown waits up to 5s for a connection that was opened and never
// sent a request.
func (f *floorServers) close() {
	if f.outer != nil {
		f.outer.close()
	}
	f.wg.Wait()
	f.client.CloseIdleConnections()
	for _, s := range f.inner {
		s.close()
	}
}

// protocolNoop answers the participant protocol at once, with no log and no state: the
// floor's inner handler and ModeNoop's participant.
func protocolNoop(w http.ResponseWriter, r *http.Request) {
	_, _ = io.Copy(io.Discard, r.Body)
	switch r.URL.Path[strings.LastIndexByte(r.URL.Path, '/')+1:] {
	case "prepare":
		writeCanned(w, voteACK)
	case "commit":
		writeCanned(w, stateCommitted)
	case "rollback":
		writeCanned(w, stateAborted)
	case "status":
		writeCanned(w, stateUnknown)
	default:
		http.NotFound(w, r)
	}
}

func writeCanned(w http.ResponseWriter, body []byte) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(body)
}

// httpServer is one loopback server the bench started, and the goroutine serving it.
type httpServer struct {
	srv  *http.Server
	url  string
	done chan error
}

// startHTTP serves h on a free port of 127.0.0.1, with the settings of dtc's servers.
func startHTTP(h http.Handler) (*httpServer, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("bench: listening on 127.0.0.1: %w", err)
	}
	s := &httpServer{
		srv: &http.Server{
			Handler:           h,
			ReadHeaderTimeout: 10 * time.Second,
			IdleTimeout:       2 * time.Minute,
			MaxHeaderBytes:    64 << 10,
		},
		url:  "http://" + ln.Addr().String(),
		done: make(chan error, 1),
	}
	go func() { s.done <- s.srv.Serve(ln) }()
	return s, nil
}

// close shuts the server down (its connections are idle once the load has stopped) and
// waits for its goroutine.
func (s *httpServer) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.srv.Shutdown(ctx); err != nil {
		_ = s.srv.Close()
	}
	<-s.done
}

// fsyncProbe is the fsync floor: n writes of a small record, each followed by an
// fdatasync, to a preallocated file in dir — what a group commit of one record costs
// the disk. Bounded by n and by fsyncProbeMax.
func fsyncProbe(ctx context.Context, dir string, n int) (*hist, error) {
	const (
		recordBytes = 256
		fileBytes   = 8 << 20
	)
	name := filepath.Join(dir, "fsync-probe")
	f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return nil, fmt.Errorf("bench: fsync probe: %w", err)
	}
	defer os.Remove(name)
	defer f.Close()
	// Preallocate with zeros and sync, as the wal does with a new segment, so that the
	// probe's fdatasyncs flush data and not the file's growth.
	zeros := make([]byte, 1<<20)
	for off := int64(0); off < fileBytes; off += int64(len(zeros)) {
		if _, err := f.WriteAt(zeros, off); err != nil {
			return nil, fmt.Errorf("bench: fsync probe: preallocating: %w", err)
		}
	}
	if err := f.Sync(); err != nil {
		return nil, fmt.Errorf("bench: fsync probe: %w", err)
	}
	rec := bytes.Repeat([]byte{'x'}, recordBytes)
	h := new(hist)
	deadline := time.Now().Add(fsyncProbeMax)
	for i := 0; i < n && time.Now().Before(deadline); i++ {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		off := int64(i*recordBytes) % (fileBytes - recordBytes)
		t0 := time.Now()
		if _, err := f.WriteAt(rec, off); err != nil {
			return nil, fmt.Errorf("bench: fsync probe: write: %w", err)
		}
		if err := fdatasync(f); err != nil {
			return nil, fmt.Errorf("bench: fsync probe: fdatasync: %w", err)
		}
		h.Record(time.Since(t0))
	}
	if h.Count() == 0 {
		return nil, errors.New("bench: fsync probe: no sample within its time bound")
	}
	return h, nil
}
