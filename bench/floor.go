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

	"github.com/dtc-project/dtc/protocol"
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
//
// The sync floor is the same with the fsyncs a dtc transaction waits for before its
// client is answered (floorSyncs): the outer handler writes and fdatasyncs a record
// after the prepare-like round (dtc's decision), and each inner handler one before its
// prepare-like answer (a durable participant's prepare). Like dtc, and unlike the raw
// floor, it answers its client then and sends the commit-like round after, off the
// client's path: it is the least that dtc's own sequence costs. It is issue 6's floor
// for concurrency 1, "client round trip + two sequential fan-outs + one fsync",
// measured as one sequence, less the second fan-out, which dtc does not wait for.
// Summing the floor's p50 and the idle-disk fsync probe's understates it: the probe
// syncs back to back on a busy CPU, and an fdatasync issued after the CPU idled, as in
// any request-answer sequence, takes longer (on the 2-core development VM, p50 0.11 ms
// back to back and 0.18 ms after a 300 µs sleep).

// floorServers are the outer server and the K inner ones, each on its own port.
type floorServers struct {
	outer    *httpServer
	inner    []*httpServer
	client   *http.Client // the outer handler's, like httpnet's Transport
	innerURL [][2]string  // per inner server: the prepare-like and commit-like URLs
	files    []*syncFile  // the sync floor's: the outer handler's, then the inner ones'
	wg       sync.WaitGroup
}

// floorSyncs says which of the floor's handlers sync a record: the outer one after the
// prepare-like round, and the inner ones before answering a prepare-like request. The
// zero value is the raw-HTTP floor.
type floorSyncs struct{ outer, inner bool }

// onPath is how many fsyncs, one after the other, a floor transaction waits for.
func (s floorSyncs) onPath() int {
	n := 0
	if s.outer {
		n++
	}
	if s.inner {
		n++ // the inner servers sync in parallel
	}
	return n
}

// Canned bodies, the protocol's own, encoded once by package protocol.
const floorTxnID = "0123456789abcdef0123456789abcdef"

var (
	floorPrepareBody = func() []byte {
		b, err := protocol.AppendPrepareRequest(nil, &protocol.PrepareRequest{TxnID: floorTxnID, Coordinator: "http://127.0.0.1:65535"})
		if err != nil {
			panic(err)
		}
		return b
	}()
	floorCommitBody = protocol.AppendTxnRequest(nil, floorTxnID)
	voteACK         = protocol.VoteACKAnswer()
	stateCommitted  = protocol.StateAnswer(protocol.StateCommitted)
	stateAborted    = protocol.StateAnswer(protocol.StateAborted)
	stateUnknown    = protocol.StateAnswer(protocol.StateUnknown)
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

// startFloor starts the K inner servers and the outer one on 127.0.0.1. The files of
// the handlers that sync (syncs) go in dir.
func startFloor(k int, requestTimeout time.Duration, dir string, syncs floorSyncs) (*floorServers, error) {
	f := &floorServers{client: newTransportClient()}
	var outerFile *syncFile
	if syncs.outer {
		sf, err := openSyncFile(filepath.Join(dir, "floor-outer"))
		if err != nil {
			return nil, err
		}
		f.files, outerFile = append(f.files, sf), sf
	}
	prepareURLs := make([]string, 0, k)
	for i := range k {
		var h http.Handler = http.HandlerFunc(protocolNoop)
		if syncs.inner {
			sf, err := openSyncFile(filepath.Join(dir, fmt.Sprintf("floor-inner-%d", i)))
			if err != nil {
				f.close()
				return nil, err
			}
			f.files = append(f.files, sf)
			h = syncingPrepare(sf)
		}
		s, err := startHTTP(h)
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
		// The sync floor answers as dtc does, once the prepares and the decision are
		// durable, and sends the commits after, off the client's path.
		commitsAfter := syncs.onPath() > 0
		ok := f.round(r.Context(), 0, floorPrepareBody, requestTimeout) &&
			(outerFile == nil || outerFile.sync() == nil) &&
			(commitsAfter || f.round(r.Context(), 1, floorCommitBody, requestTimeout))
		if !ok {
			http.Error(w, `{"error":{"code":"internal","message":"an inner request or a sync failed"}}`, http.StatusBadGateway)
			return
		}
		writeCanned(w, view)
		if commitsAfter {
			f.wg.Go(func() { f.round(context.Background(), 1, floorCommitBody, requestTimeout) })
		}
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

// newTransportClient is a client with httpnet's Transport settings (httpnet/transport.New).
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
	for _, sf := range f.files {
		sf.close()
	}
}

// syncingPrepare is the sync floor's inner handler: protocolNoop, but a prepare-like
// request is answered only after a record is synced to sf.
func syncingPrepare(sf *syncFile) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if endpointOf(r) == protocol.EndpointPrepare {
			_, _ = io.Copy(io.Discard, r.Body)
			if err := sf.sync(); err != nil {
				writeProtocolError(w, http.StatusInternalServerError, protocol.CodeUnavailable, "the floor's sync failed: "+err.Error())
				return
			}
			writeCanned(w, voteACK)
			return
		}
		protocolNoop(w, r)
	})
}

// protocolNoop answers the participant protocol at once, with no log and no state: the
// floor's inner handler and ModeNoop's participant.
func protocolNoop(w http.ResponseWriter, r *http.Request) {
	_, _ = io.Copy(io.Discard, r.Body)
	switch endpointOf(r) {
	case protocol.EndpointPrepare:
		writeCanned(w, voteACK)
	case protocol.EndpointCommit:
		writeCanned(w, stateCommitted)
	case protocol.EndpointRollback:
		writeCanned(w, stateAborted)
	case protocol.EndpointStatus:
		writeCanned(w, stateUnknown)
	default:
		http.NotFound(w, r)
	}
}

// endpointOf is the participant endpoint r is for: the last element of its path.
func endpointOf(r *http.Request) string {
	return r.URL.Path[strings.LastIndexByte(r.URL.Path, '/')+1:]
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
	return serveOn(ln, h), nil
}

// serveOn serves h on ln, with the settings of dtc's servers.
func serveOn(ln net.Listener, h http.Handler) *httpServer {
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
	return s
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
	sf, err := openSyncFile(filepath.Join(dir, "fsync-probe"))
	if err != nil {
		return nil, err
	}
	defer sf.close()
	h := new(hist)
	deadline := time.Now().Add(fsyncProbeMax)
	for i := 0; i < n && time.Now().Before(deadline); i++ {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		t0 := time.Now()
		if err := sf.sync(); err != nil {
			return nil, err
		}
		h.Record(time.Since(t0))
	}
	if h.Count() == 0 {
		return nil, errors.New("bench: fsync probe: no sample within its time bound")
	}
	return h, nil
}

// syncFile takes small records, one at a time, each written to a preallocated file and
// then fdatasynced: a group commit of one record. The fsync probe times it; the sync
// floor's handlers wait for it.
type syncFile struct {
	mu   sync.Mutex
	f    *os.File
	name string
	off  int64
	rec  []byte
	n    int64 // records synced
}

const (
	syncFileRecordBytes = 256
	syncFileBytes       = 8 << 20
)

// openSyncFile creates name and fills it with zeros, synced, as the wal does with a new
// segment, so that later fdatasyncs flush data and not the file's growth.
func openSyncFile(name string) (*syncFile, error) {
	f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return nil, fmt.Errorf("bench: sync file: %w", err)
	}
	sf := &syncFile{f: f, name: name, rec: bytes.Repeat([]byte{'x'}, syncFileRecordBytes)}
	zeros := make([]byte, 1<<20)
	for off := int64(0); off < syncFileBytes; off += int64(len(zeros)) {
		if _, err := f.WriteAt(zeros, off); err != nil {
			sf.close()
			return nil, fmt.Errorf("bench: sync file: preallocating %s: %w", name, err)
		}
	}
	if err := f.Sync(); err != nil {
		sf.close()
		return nil, fmt.Errorf("bench: sync file: %w", err)
	}
	return sf, nil
}

// sync writes the next record and fdatasyncs it.
func (sf *syncFile) sync() error {
	sf.mu.Lock()
	defer sf.mu.Unlock()
	if _, err := sf.f.WriteAt(sf.rec, sf.off); err != nil {
		return fmt.Errorf("bench: sync file: write: %w", err)
	}
	sf.off = (sf.off + syncFileRecordBytes) % (syncFileBytes - syncFileRecordBytes)
	if err := fdatasync(sf.f); err != nil {
		return fmt.Errorf("bench: sync file: fdatasync: %w", err)
	}
	sf.n++
	return nil
}

// synced returns how many records sync has made durable.
func (sf *syncFile) synced() int64 {
	sf.mu.Lock()
	defer sf.mu.Unlock()
	return sf.n
}

// close closes and removes the file.
func (sf *syncFile) close() {
	_ = sf.f.Close()
	_ = os.Remove(sf.name)
}
