package main

import (
	"context"
	"strings"
	"testing"
	"time"

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
