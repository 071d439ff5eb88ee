package bench

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/dtc-project/dtc/locks"
	"github.com/dtc-project/dtc/participant"
	"github.com/dtc-project/dtc/wal"
)

// libPart is the contention benchmark's participant: the participant library
// (participant/, its lock table and its Resolver reporting lock waits and wounds) over
// a service that only names keys, logging to memory (the benchmark measures how
// transactions wait for each other, not how they persist). A prepare's payload
// {"key":…} names the one key it writes: the library locks it exclusive from prepare to
// phase 2, under lock policy wait (timeout-only and detection: the waits are reported
// to the coordinator, which ignores them when its detection is off) or wound-wait.
type libPart struct {
	p    *participant.Participant
	srv  *http.Server
	url  string
	stop func()
}

// keyService is the service of libPart: nothing to reserve, one key to lock.
type keyService struct{}

type keyPayload struct {
	Key string `json:"key"`
}

func (keyService) Keys(_ string, payload json.RawMessage) (participant.KeySet, error) {
	var k keyPayload
	if err := json.Unmarshal(payload, &k); err != nil {
		return participant.KeySet{}, err
	}
	if k.Key == "" {
		return participant.KeySet{}, errors.New("payload names no key")
	}
	return participant.KeySet{Writes: []string{k.Key}}, nil
}

func (keyService) Prepare(string, json.RawMessage) error { return nil }
func (keyService) Commit(string)                         {}
func (keyService) Rollback(string)                       {}
func (keyService) Snapshot() ([]byte, error)             { return []byte("{}"), nil }
func (keyService) Restore([]byte) error                  { return nil }

// startLibPart opens a libPart under policy, serving on a loopback port, its waits
// reported to the coordinator at coord.
func startLibPart(policy locks.Policy, coord string, logger *slog.Logger) (*libPart, error) {
	cfg := participant.DefaultConfig()
	cfg.Locks = locks.DefaultConfig(policy)
	cfg.Locks.WaitersMax = 4096
	p, err := participant.OpenSync(cfg, keyService{}, participant.SystemClock{},
		wal.Options{FS: wal.NewMemFS(), Dir: "part", SegmentSizeBytes: 4 << 20})
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		_ = p.Close()
		return nil, err
	}
	lp := &libPart{p: p, url: "http://" + ln.Addr().String() + "/prepare"}
	r, err := participant.NewResolver(p, participant.ResolverOptions{
		Coordinator: coord, ParticipantURL: lp.url, Interval: time.Hour, ConcurrencyMax: 64,
		Client: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}, Logger: logger})
	if err != nil {
		_ = ln.Close()
		_ = p.Close()
		return nil, err
	}
	lp.srv = &http.Server{Handler: participant.NewHandler(p, participant.HandlerOptions{Logger: logger}), ReadHeaderTimeout: 10 * time.Second}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { r.Run(ctx) })
	wg.Go(func() { _ = lp.srv.Serve(ln) })
	lp.stop = func() {
		cancel()
		_ = lp.srv.Close()
		wg.Wait()
		_ = p.Close()
	}
	return lp, nil
}

// Close stops the server and the Resolver, then closes the participant.
func (lp *libPart) Close() { lp.stop() }
