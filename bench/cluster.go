package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/trace"
	"golang.org/x/sync/errgroup"

	"github.com/dtc-project/dtc/coordinator"
	"github.com/dtc-project/dtc/httpnet"
	"github.com/dtc-project/dtc/httpnet/apiserver"
	"github.com/dtc-project/dtc/httpnet/transport"
	"github.com/dtc-project/dtc/participant"
	"github.com/dtc-project/dtc/wal"
)

// cluster is dtc and its K participants, all in this process on 127.0.0.1, as the
// daemon and the bank binary wire them (cmd/dtc serve, examples/bank/cmd/bank).
type cluster struct {
	rt      *httpnet.Runtime
	apiURL  string
	stopAPI context.CancelFunc
	served  chan error // apiserver.Serve's result

	parts   []*httpServer
	cores   []*participant.Participant // nil entries in ModeNoop
	coordFS *countFS
	partFS  *countFS // shared by every participant's log
	// partRequests counts the HTTP requests the participants received, of every kind:
	// with phase-2 batching, fewer than the floor's 2K per transaction.
	partRequests atomic.Int64

	// resolvers run one participant.Resolver per durable participant, unless
	// Options.Passive: as the bank binary does, they ask dtc about transactions left in
	// doubt, and their participants say so, which lets dtc keep its begins lazy.
	resolvers     errgroup.Group
	stopResolvers context.CancelFunc

	fatalOnce sync.Once
	failed    chan struct{} // closed when a log failed; fatal says why
	fatal     error

	tracing *tracing // Options.Tracing; nil without
}

// ackService is a participant.Service that holds nothing and always votes ACK: the
// participant's own work (log, fencing, idempotence) is all there is to measure.
type ackService struct{}

func (ackService) Prepare(string, json.RawMessage) error { return nil }
func (ackService) Commit(string)                         {}
func (ackService) Rollback(string)                       {}
func (ackService) Snapshot() ([]byte, error)             { return []byte("{}"), nil }
func (ackService) Restore([]byte) error                  { return nil }

// counted counts h's requests in c.partRequests.
func (c *cluster) counted(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c.partRequests.Add(1)
		h.ServeHTTP(w, r)
	})
}

// participantSegmentBytes is the participants' segment size, as the bank binary's.
const participantSegmentBytes = 16 << 20

// startCluster starts K participants, then dtc, and waits until dtc is ready.
func startCluster(o Options, dir string) (c *cluster, err error) {
	c = &cluster{
		coordFS: newCountFS(wal.OSFS(), o.Log == LogNoSync),
		partFS:  newCountFS(wal.OSFS(), false),
		failed:  make(chan struct{}),
	}
	defer func() {
		if err != nil {
			c.close()
			c = nil
		}
	}()
	onFatal := func(err error) {
		c.fatalOnce.Do(func() {
			c.fatal = err
			close(c.failed)
		})
	}

	resolveCtx, stopResolvers := context.WithCancel(context.Background())
	c.stopResolvers = stopResolvers
	urls := make([]string, o.Participants)
	for i := range o.Participants {
		var h http.Handler = noopParticipant(o)
		if o.Mode == ModeDurable {
			cfg := participant.DefaultConfig()
			if o.DecidedMax > 0 {
				cfg.DecidedMax = o.DecidedMax
			}
			p, err := participant.OpenGroupSync(cfg, ackService{}, participant.SystemClock{},
				wal.Options{FS: c.partFS, Dir: filepath.Join(dir, fmt.Sprintf("participant-%d", i)), SegmentSizeBytes: participantSegmentBytes},
				wal.GroupSyncerOptions{LazyFlushInterval: 10 * time.Millisecond, OnFatal: onFatal})
			if err != nil {
				return nil, fmt.Errorf("bench: starting participant %d: %w", i, err)
			}
			c.cores = append(c.cores, p)
			h = participant.NewHandler(p, participant.HandlerOptions{Logger: o.Logger})
			if !o.Passive {
				r, err := participant.NewResolver(p, participant.ResolverOptions{Logger: o.Logger})
				if err != nil {
					return nil, fmt.Errorf("bench: participant %d's resolver: %w", i, err)
				}
				c.resolvers.Go(func() error { r.Run(resolveCtx); return nil })
			}
		}
		s, err := startHTTP(c.counted(h))
		if err != nil {
			return nil, err
		}
		c.parts = append(c.parts, s)
		urls[i] = s.url + "/prepare"
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("bench: listening on 127.0.0.1: %w", err)
	}
	c.apiURL = "http://" + ln.Addr().String()
	eng := coordinator.DefaultConfig()
	shards := o.Shards
	if shards == 0 {
		shards = 4 // httpnet's default, needed here to split the in-flight limit as dtc serve does
	}
	const inflightMax = 8192 // dtc serve's --max-inflight default
	eng.InflightMax = (inflightMax + shards - 1) / shards
	if o.DoneRetention > 0 {
		eng.DoneRetention = o.DoneRetention
	}
	var tp trace.TracerProvider
	if o.Tracing {
		if c.tracing, err = startTracing(o.TracingSampleRatio); err != nil {
			_ = ln.Close()
			return nil, err
		}
		tp = c.tracing.tp
	}
	ro := httpnet.Options{
		DataDir:   filepath.Join(dir, "dtc"),
		FS:        c.coordFS,
		Shards:    shards,
		Engine:    eng,
		Transport: transport.Options{AdvertiseURL: c.apiURL, NoBatch: o.NoBatch},
		Logger:    o.Logger,
		OnFatal:   onFatal,
	}
	ro.TracerProvider = tp
	rt, err := httpnet.Open(ro)
	if err != nil {
		_ = ln.Close()
		return nil, fmt.Errorf("bench: starting dtc: %w", err)
	}
	c.rt = rt
	api := apiserver.NewServer(rt, apiserver.ServerOptions{InflightMax: inflightMax, Logger: o.Logger})
	ctx, cancel := context.WithCancel(context.Background())
	c.stopAPI, c.served = cancel, make(chan error, 1)
	go func() {
		c.served <- apiserver.Serve(ctx, ln, rt, api, apiserver.ServeOptions{Grace: 5 * time.Second, Logger: o.Logger})
	}()

	// A fresh log has nothing to recover: ready as soon as the shards have started.
	deadline := time.Now().Add(10 * time.Second)
	for !rt.Ready() {
		if time.Now().After(deadline) {
			return nil, errors.New("bench: dtc did not become ready within 10s")
		}
		time.Sleep(time.Millisecond)
	}
	return c, nil
}

// submitBody is the load's request to dtc: the K participants as prepare URLs.
func (c *cluster) submitBody() []byte {
	urls := make([]string, len(c.parts))
	for i, s := range c.parts {
		urls[i] = s.url + "/prepare"
	}
	b, err := json.Marshal(map[string][]string{"participants": urls})
	if err != nil {
		panic(fmt.Sprintf("bench: encoding a submit body: %v", err))
	}
	return b
}

// fatalErr returns the first fatal error of a log, or nil.
func (c *cluster) fatalErr() error {
	select {
	case <-c.failed:
		return c.fatal
	default:
		return nil
	}
}

// close stops dtc (its API, then the runtime: shards, transport, log), then the
// participants' servers and cores, and waits for all of them. Phase-2 requests still
// in flight when dtc stops are cut off: they would resume at dtc's next start.
func (c *cluster) close() error {
	var errs []error
	if c.stopAPI != nil {
		c.stopAPI()
		if err := <-c.served; err != nil {
			errs = append(errs, fmt.Errorf("bench: stopping dtc: %w", err))
		}
	} else if c.rt != nil {
		errs = append(errs, c.rt.Close())
	}
	if c.tracing != nil {
		c.tracing.close()
	}
	for _, s := range c.parts {
		s.close()
	}
	if c.stopResolvers != nil {
		c.stopResolvers()
		_ = c.resolvers.Wait()
	}
	for _, p := range c.cores {
		if err := p.Close(); err != nil {
			errs = append(errs, fmt.Errorf("bench: closing a participant: %w", err))
		}
	}
	return errors.Join(errs...)
}
