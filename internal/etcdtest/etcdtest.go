// Package etcdtest starts a real, single-member etcd inside the test process, listening
// on 127.0.0.1 on free ports with its data in a temporary directory, for the tests of
// the cluster mode. Nothing outside tests imports it.
package etcdtest

import (
	"fmt"
	"net"
	"net/url"
	"testing"
	"time"

	"go.etcd.io/etcd/client/pkg/v3/transport"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
)

// startTimeout bounds how long Start waits for the member to be ready. It is a guard
// against a hang, not a measure of speed: a loaded machine takes a second or two.
const startTimeout = 60 * time.Second

// Server is a running embedded etcd.
type Server struct {
	Etcd     *embed.Etcd
	Endpoint string // the client URL, http://127.0.0.1:port

	cfg     *embed.Config
	running bool
}

// Start starts an etcd member and stops it when the test ends.
func Start(t testing.TB) *Server { return start(t, TLS{}) }

// TLS are PEM files for an etcd that serves its clients over TLS: its certificate and
// key, and the CA of the client certificates it requires (ClientCA; empty: none
// required).
type TLS struct{ Cert, Key, ClientCA string }

// StartTLS starts an etcd member whose clients speak TLS (Endpoint is https://…), and
// stops it when the test ends.
func StartTLS(t testing.TB, files TLS) *Server { return start(t, files) }

func start(t testing.TB, files TLS) *Server {
	t.Helper()
	cfg := embed.NewConfig()
	cfg.Name = "test"
	cfg.Dir = t.TempDir()
	cfg.LogLevel = "fatal" // "error" prints the listeners closing at every Close
	cfg.LogOutputs = []string{"stderr"}
	client, peer := freeURL(t), freeURL(t)
	if files.Cert != "" {
		client.Scheme = "https"
		cfg.ClientTLSInfo = transport.TLSInfo{CertFile: files.Cert, KeyFile: files.Key,
			TrustedCAFile: files.ClientCA, ClientCertAuth: files.ClientCA != ""}
	}
	cfg.ListenClientUrls = []url.URL{client}
	cfg.AdvertiseClientUrls = []url.URL{client}
	cfg.ListenPeerUrls = []url.URL{peer}
	cfg.AdvertisePeerUrls = []url.URL{peer}
	cfg.InitialCluster = fmt.Sprintf("%s=%s", cfg.Name, peer.String())
	s := &Server{Endpoint: client.String(), cfg: cfg}
	s.start(t)
	t.Cleanup(s.Stop)
	return s
}

func (s *Server) start(t testing.TB) {
	t.Helper()
	e, err := embed.StartEtcd(s.cfg)
	if err != nil {
		t.Fatalf("etcdtest: starting etcd: %v", err)
	}
	select {
	case <-e.Server.ReadyNotify():
	case err := <-e.Err():
		t.Fatalf("etcdtest: etcd failed: %v", err)
	case <-time.After(startTimeout):
		t.Fatalf("etcdtest: etcd not ready after %v", startTimeout)
	}
	s.Etcd, s.running = e, true
}

// Stop stops the member, as an outage would; Restart starts it again on the same data
// and addresses.
func (s *Server) Stop() {
	if s.running {
		s.running = false
		s.Etcd.Close()
	}
}

// Restart starts a stopped member again.
func (s *Server) Restart(t testing.TB) {
	t.Helper()
	s.start(t)
}

// Client returns a client of s, closed when the test ends.
func (s *Server) Client(t testing.TB) *clientv3.Client {
	t.Helper()
	c, err := clientv3.New(clientv3.Config{Endpoints: []string{s.Endpoint}, DialTimeout: 10 * time.Second})
	if err != nil {
		t.Fatalf("etcdtest: client: %v", err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// freeURL returns http://127.0.0.1:port for a port that was free a moment ago.
func freeURL(t testing.TB) url.URL {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("etcdtest: %v", err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	return url.URL{Scheme: "http", Host: addr}
}
