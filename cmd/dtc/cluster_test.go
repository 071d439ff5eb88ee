package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/dtc-project/dtc/client"
	"github.com/dtc-project/dtc/cluster"
	"github.com/dtc-project/dtc/internal/etcdtest"
)

// Bad cluster flags are refused up front, naming the flag.
func TestServeClusterFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--cluster", "a/b", "--etcd-endpoints", "http://127.0.0.1:1", "--node-id", "n"}, "--cluster"},
		{[]string{"--cluster", "c", "--node-id", "n"}, "--etcd-endpoints is required"},
		{[]string{"--cluster", "c", "--etcd-endpoints", "127.0.0.1:2379", "--node-id", "n"}, "not an http(s) URL"},
		{[]string{"--cluster", "c", "--etcd-endpoints", "http://127.0.0.1:1"}, "--node-id"},
		{[]string{"--cluster", "c", "--etcd-endpoints", "http://127.0.0.1:1", "--node-id", "n", "--lease-ttl", "1500ms"}, "--lease-ttl"},
		{[]string{"--cluster", "c", "--etcd-endpoints", "http://127.0.0.1:1", "--node-id", "n", "--cluster-shards", "0"}, "--cluster-shards"},
		{[]string{"--cluster", "c", "--etcd-endpoints", "http://127.0.0.1:1", "--node-id", "n", "--etcd-ca", "/nonexistent"}, "need https://"},
		{[]string{"--cluster", "c", "--etcd-endpoints", "https://127.0.0.1:1", "--node-id", "n", "--etcd-ca", "/nonexistent"}, "--etcd-ca"},
		{[]string{"--cluster", "c", "--etcd-endpoints", "https://127.0.0.1:1,http://127.0.0.1:2", "--node-id", "n"}, "mixes"},
	} {
		code, _, stderr := runCLI(t, append([]string{"serve"}, tc.args...)...)
		if code != exitError || !strings.Contains(stderr, tc.want) {
			t.Errorf("serve %v: exit %d, stderr %q; want exit %d mentioning %q", tc.args, code, stderr, exitError, tc.want)
		}
	}
}

// dtc cluster status shows the shard count, the live nodes and the owners.
func TestClusterStatus(t *testing.T) {
	srv := etcdtest.Start(t)
	c := srv.Client(t)
	ctx := context.Background()
	if code, _, stderr := runCLI(t, "cluster", "status", "--cluster", "none", "--etcd-endpoints", srv.Endpoint); code != exitError || !strings.Contains(stderr, `no cluster "none"`) {
		t.Fatalf("status of a missing cluster: exit %d, %q", code, stderr)
	}
	n, err := cluster.NewNode(cluster.NodeOptions{Client: c, Cluster: "st", NodeID: "n1", APIAddr: "http://10.0.0.1:7070", Shards: 4, Handler: nopHandler{}})
	if err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- n.Run(rctx) }()
	defer func() { cancel(); <-done }()
	deadline := time.Now().Add(30 * time.Second)
	for len(n.Owned()) != 4 {
		if time.Now().After(deadline) {
			t.Fatal("the node did not take the shards")
		}
		time.Sleep(10 * time.Millisecond)
	}
	code, stdout, stderr := runCLI(t, "cluster", "status", "--cluster", "st", "--etcd-endpoints", srv.Endpoint)
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	for _, want := range []string{"cluster st: 4 shards, 1 nodes", "n1", "http://10.0.0.1:7070", "4: 0,1,2,3"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("status lacks %q:\n%s", want, stdout)
		}
	}
}

type nopHandler struct{}

func (nopHandler) StartShard(context.Context, int, int64) error { return nil }
func (nopHandler) HandOffShard(context.Context, int)            {}
func (nopHandler) LoseShard(int, error)                         {}

// A node reaches etcd over TLS with a client certificate (etcd requires one): it takes
// the shards and commits a transaction, and dtc cluster status reads the cluster over
// the same TLS. TLS flags with http:// endpoints are refused up front.
func TestClusterOverTLSToEtcd(t *testing.T) {
	dir := t.TempDir()
	ca, srvCert, srvKey, cliCert, cliKey := writeCerts(t, dir, "dtc-node")
	srv := etcdtest.StartTLS(t, etcdtest.TLS{Cert: srvCert, Key: srvKey, ClientCA: ca})
	if !strings.HasPrefix(srv.Endpoint, "https://") {
		t.Fatalf("etcd endpoint %s is not https", srv.Endpoint)
	}
	tlsArgs := []string{"--etcd-endpoints", srv.Endpoint, "--etcd-ca", ca, "--etcd-cert", cliCert, "--etcd-key", cliKey}
	addr := freeAddr(t)
	startProc(t, "dtc", "dtc", append([]string{"serve", "--listen", addr, "--cluster", "tls", "--node-id", "n1",
		"--cluster-shards", "2"}, tlsArgs...)...)
	cli, err := client.New("http://"+addr, client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "the node owns its shards", func() bool {
		code, out, _ := runCLI(t, append([]string{"cluster", "status", "--cluster", "tls"}, tlsArgs...)...)
		return code == exitOK && strings.Contains(out, "2: 0,1")
	})
	eventually(t, "the node is ready", func() bool { return cli.Ready(context.Background()) == nil })
	v, err := cli.Submit(context.Background(), client.Request{ID: "tls-etcd-1", Participants: []client.Participant{{URL: ackServer(t)}}})
	if err != nil || v.State != client.StateCommitted {
		t.Fatalf("submit through a node on TLS etcd: %+v, %v", v, err)
	}
	code, _, stderr := runCLI(t, "cluster", "status", "--cluster", "tls", "--etcd-endpoints", "http://127.0.0.1:1", "--etcd-ca", ca)
	if code != exitError || !strings.Contains(stderr, "need https://") {
		t.Fatalf("--etcd-ca with an http:// endpoint: exit %d, %q", code, stderr)
	}
}
