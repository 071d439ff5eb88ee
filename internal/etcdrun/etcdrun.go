// Package etcdrun starts a real, single-member etcd inside the calling process, on free
// loopback ports with its data in a directory of the caller's, for the programs that
// need one of their own: chaos real --cluster and dtc bench --cluster. Tests use
// internal/etcdtest.
package etcdrun

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"go.etcd.io/etcd/server/v3/embed"
)

// StartMax bounds the wait for the member to be ready: a guard against a hang, not a
// measure of speed.
const StartMax = time.Minute

// Server is a running embedded etcd.
type Server struct {
	e *embed.Etcd
	// Endpoint is its client URL, http://127.0.0.1:port.
	Endpoint string
}

// Start starts a member with its data in dir/data and its own log in dir/etcd.log.
func Start(ctx context.Context, dir string) (*Server, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("etcdrun: %w", err)
	}
	cfg := embed.NewConfig()
	cfg.Name = "dtc"
	cfg.Dir = filepath.Join(dir, "data")
	cfg.LogLevel = "error"
	cfg.LogOutputs = []string{filepath.Join(dir, "etcd.log")}
	var urls [2]url.URL
	for i := range urls {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("etcdrun: %w", err)
		}
		urls[i] = url.URL{Scheme: "http", Host: ln.Addr().String()}
		_ = ln.Close()
	}
	cfg.ListenClientUrls, cfg.AdvertiseClientUrls = []url.URL{urls[0]}, []url.URL{urls[0]}
	cfg.ListenPeerUrls, cfg.AdvertisePeerUrls = []url.URL{urls[1]}, []url.URL{urls[1]}
	cfg.InitialCluster = cfg.Name + "=" + urls[1].String()
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		return nil, fmt.Errorf("etcdrun: starting etcd: %w", err)
	}
	select {
	case <-e.Server.ReadyNotify():
	case err := <-e.Err():
		e.Close()
		return nil, fmt.Errorf("etcdrun: etcd failed: %w", err)
	case <-time.After(StartMax):
		e.Close()
		return nil, fmt.Errorf("etcdrun: etcd not ready after %v", StartMax)
	case <-ctx.Done():
		e.Close()
		return nil, ctx.Err()
	}
	return &Server{e: e, Endpoint: urls[0].String()}, nil
}

// Close stops the member.
func (s *Server) Close() { s.e.Close() }
