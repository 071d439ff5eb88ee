package main

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/pflag"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/dtc-project/dtc/cluster"
	"github.com/dtc-project/dtc/httpnet"
	"github.com/dtc-project/dtc/httpnet/transport"
)

// clusterFlags are the flags of dtc serve that make it a node of a cluster.
type clusterFlags struct {
	name      *string
	endpoints *string
	nodeID    *string
	nodeURL   *string
	leaseTTL  *time.Duration
	shards    *int
	tls       etcdTLSFlags
}

// etcdTLSFlags are the flags of TLS toward etcd, shared by dtc serve and dtc cluster.
type etcdTLSFlags struct{ ca, cert, key *string }

func addEtcdTLSFlags(fs *pflag.FlagSet) etcdTLSFlags {
	return etcdTLSFlags{
		ca:   fs.String("etcd-ca", "", "PEM CA that signs etcd's server certificate (https:// endpoints; default: the system's roots)"),
		cert: fs.String("etcd-cert", "", "PEM client certificate dtc presents to etcd (etcd's --client-cert-auth)"),
		key:  fs.String("etcd-key", "", "PEM private key of --etcd-cert"),
	}
}

// config is the TLS configuration toward etcd: nil for http:// endpoints without TLS
// flags. TLS flags need https:// endpoints, and https:// endpoints get TLS (the
// system's roots unless --etcd-ca).
func (f etcdTLSFlags) config(endpoints []string) (*tls.Config, error) {
	given := *f.ca != "" || *f.cert != "" || *f.key != ""
	secure := 0
	for _, e := range endpoints {
		if strings.HasPrefix(e, "https://") {
			secure++
		}
	}
	switch {
	case secure > 0 && secure < len(endpoints):
		return nil, errors.New("--etcd-endpoints: mixes http:// and https:// URLs; use one scheme")
	case given && secure == 0:
		return nil, errors.New("--etcd-ca, --etcd-cert and --etcd-key need https:// --etcd-endpoints")
	case secure == 0:
		return nil, nil
	}
	c, err := transport.ClientTLSConfig(*f.ca, *f.cert, *f.key)
	if err != nil {
		return nil, fmt.Errorf("--etcd-ca, --etcd-cert, --etcd-key: %w", err)
	}
	return c, nil
}

func addClusterFlags(fs *pflag.FlagSet) *clusterFlags {
	return &clusterFlags{
		name:      fs.String("cluster", "", "run as a node of this cluster, with the shards' logs in etcd instead of --data-dir (needs --etcd-endpoints and --node-id)"),
		endpoints: fs.String("etcd-endpoints", "", "comma-separated etcd client URLs (cluster mode)"),
		nodeID:    fs.String("node-id", "", "this node's id in the cluster: letters, digits, '-', '_', '.' (cluster mode)"),
		nodeURL:   fs.String("node-url", "", "base URL other nodes forward requests to (cluster mode; default http://<listen address>); --advertise-url should be the cluster's shared address"),
		leaseTTL:  fs.Duration("lease-ttl", 2*time.Second, "the node's etcd lease: how long a dead node's shards wait before others take them over (whole seconds; cluster mode)"),
		shards:    fs.Int("cluster-shards", 64, "number of shards when this node creates the cluster; an existing cluster keeps its own (cluster mode)"),
		tls:       addEtcdTLSFlags(fs),
	}
}

// enabled reports whether cluster mode was asked for.
func (c *clusterFlags) enabled() bool { return *c.name != "" }

// check says what is wrong with the cluster flags.
func (c *clusterFlags) check() error {
	if err := cluster.CheckName("--cluster", *c.name); err != nil {
		return err
	}
	if err := cluster.CheckName("--node-id", *c.nodeID); err != nil {
		return err
	}
	eps, err := parseEndpoints(*c.endpoints)
	if err != nil {
		return err
	}
	if _, err := c.tls.config(eps); err != nil {
		return err
	}
	if *c.leaseTTL < time.Second || *c.leaseTTL%time.Second != 0 {
		return fmt.Errorf("--lease-ttl %v: must be a whole number of seconds, at least 1s", *c.leaseTTL)
	}
	if *c.shards < 1 || *c.shards > cluster.ShardsMax {
		return fmt.Errorf("--cluster-shards %d: must be between 1 and %d", *c.shards, cluster.ShardsMax)
	}
	if *c.nodeURL != "" {
		if u, err := url.Parse(*c.nodeURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("--node-url %q is not an absolute http(s) URL", *c.nodeURL)
		}
	}
	return nil
}

func parseEndpoints(s string) ([]string, error) {
	var out []string
	for _, e := range strings.Split(s, ",") {
		if e = strings.TrimSpace(e); e == "" {
			continue
		}
		if u, err := url.Parse(e); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("--etcd-endpoints: %q is not an http(s) URL such as http://127.0.0.1:2379", e)
		}
		out = append(out, e)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("--etcd-endpoints is required: comma-separated etcd client URLs")
	}
	return out, nil
}

// etcdClient connects to etcd, over TLS with https:// endpoints; its own logs go
// nowhere (dtc logs what matters).
func etcdClient(endpoints string, tf etcdTLSFlags) (*clientv3.Client, error) {
	eps, err := parseEndpoints(endpoints)
	if err != nil {
		return nil, err
	}
	tc, err := tf.config(eps)
	if err != nil {
		return nil, err
	}
	c, err := clientv3.New(clientv3.Config{Endpoints: eps, TLS: tc, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		return nil, fmt.Errorf("connecting to etcd at %s: %w", endpoints, err)
	}
	return c, nil
}

// options fills o.Cluster; the caller closes the returned client after the runtime.
func (c *clusterFlags) options(o *httpnet.Options, listenAddr string) (*clientv3.Client, error) {
	ec, err := etcdClient(*c.endpoints, c.tls)
	if err != nil {
		return nil, err
	}
	nodeURL := *c.nodeURL
	if nodeURL == "" {
		nodeURL = "http://" + advertiseHost(listenAddr)
	}
	o.Cluster = &httpnet.ClusterOptions{
		Client: ec, Name: *c.name, NodeID: *c.nodeID, APIAddr: strings.TrimSuffix(nodeURL, "/"),
		Shards: *c.shards, LeaseTTL: *c.leaseTTL,
	}
	return ec, nil
}

const clusterHelp = `Usage: dtc cluster status --cluster NAME --etcd-endpoints URL[,URL…] [--etcd-ca FILE [--etcd-cert FILE --etcd-key FILE]]

Shows a cluster as etcd holds it: its number of shards, the live nodes (id, API
address, when they joined, the time left on their lease) and which node owns each shard.
`

func runCluster(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || (args[0] != "status" && !strings.HasPrefix(args[0], "-")) {
		return usageError(stderr, "cluster", "use 'dtc cluster status'")
	}
	if args[0] == "status" {
		args = args[1:]
	}
	fs := newFlags("cluster")
	name := fs.String("cluster", "", "the cluster's name")
	endpoints := fs.String("etcd-endpoints", "", "comma-separated etcd client URLs")
	asJSON := fs.Bool("json", false, "print JSON instead of a table")
	tf := addEtcdTLSFlags(fs)
	if ok, code := parse(fs, clusterHelp, args, nil, stdout, stderr); !ok {
		return code
	}
	if err := cluster.CheckName("--cluster", *name); err != nil {
		return usageError(stderr, "cluster", "%v", err)
	}
	ec, err := etcdClient(*endpoints, tf)
	if err != nil {
		return usageError(stderr, "cluster", "%v", err)
	}
	defer ec.Close()
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	st, err := cluster.ReadStatus(ctx, ec, *name)
	if err != nil {
		fmt.Fprintf(stderr, "dtc cluster: %v\n", err)
		return exitError
	}
	if *asJSON {
		b, _ := json.MarshalIndent(st, "", "  ")
		fmt.Fprintln(stdout, string(b))
		return exitOK
	}
	fmt.Fprintf(stdout, "cluster %s: %d shards, %d nodes\n\n", st.Cluster, st.Shards, len(st.Nodes))
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE\tADDRESS\tJOINED\tLEASE LEFT\tSHARDS")
	for _, n := range st.Nodes {
		var mine []string
		for sh, owner := range st.Owners {
			if owner == n.ID {
				mine = append(mine, strconv.Itoa(sh))
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d: %s\n", n.ID, n.Addr, time.UnixMilli(n.Started).UTC().Format(time.RFC3339),
			n.LeaseLeft, len(mine), strings.Join(mine, ","))
	}
	_ = tw.Flush()
	var free []string
	for sh, owner := range st.Owners {
		if owner == "" {
			free = append(free, strconv.Itoa(sh))
		}
	}
	if len(free) > 0 {
		fmt.Fprintf(stdout, "\nshards without an owner: %s\n", strings.Join(free, ","))
	}
	return exitOK
}
