package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/dtc-project/dtc/coordinator"
	"github.com/dtc-project/dtc/httpnet"
	"github.com/dtc-project/dtc/httpnet/apiserver"
	"github.com/dtc-project/dtc/httpnet/transport"
	"github.com/dtc-project/dtc/internal/dirlock"
	"github.com/dtc-project/dtc/internal/maxprocs"
	"github.com/dtc-project/dtc/participant"
)

const serveHelp = `Usage: dtc serve [flags]

Runs the coordinator: the HTTP API (POST/GET /v1/transactions, /v1/stats, /metrics,
/healthz, /readyz; its OpenAPI description at /v1/openapi.json), the admin page at
/ui/, the durable log in --data-dir, and the engines that drive two-phase commit with
the participants.

With --otlp-endpoint every transaction begun through the API is traced with
OpenTelemetry (a span per transaction, under the client's W3C traceparent, with one
per prepare, the decision's sync and each phase-2 request) and the spans are exported
over OTLP/HTTP; participants get traceparent with their requests.

At startup it replays the log: transactions that were decided resume phase 2 (commit or
rollback is retried until every participant acknowledges it); transactions that were
begun but not decided ask every participant for its status and commit only if all of
them are prepared, else roll back. /readyz answers 503 until that is done.

On SIGTERM or SIGINT it stops accepting connections, lets requests in flight finish for
up to --shutdown-grace, makes what the log holds pending durable and exits 0.
Transactions still in flight resume after the next start.

Security: with --tokens FILE every API request but /healthz, /readyz (and /metrics,
unless --metrics-auth) needs a client: a bearer token or a client certificate listed
in FILE with its role (submit, read, admin; see 'dtc token --help' for the format).
FILE is read again on SIGHUP. Without --tokens the API is open to anyone who can
reach it: dtc then listens only on a loopback address, unless --insecure is given.
--tls-cert/--tls-key serve the API over HTTPS, --client-ca verifies client
certificates (mTLS). Participants are reached only at addresses --allow-participant
allows (default: loopback only), over HTTPS with --participant-ca and, for mTLS,
--participant-cert/--participant-key.

With --participant-secret-file, every request to a participant is signed with the
file's first key (HMAC-SHA256, headers Dtc-Timestamp, Dtc-Signature and Dtc-Key-Id;
see the README, "Participant request signing"): participants that hold the same file
refuse requests from anyone else. The file has one key a line, "SECRET" or
"KEY_ID SECRET", a secret at least 32 characters long (e.g. openssl rand -hex 32).

Deadlocks (issue 16): participants that make a prepare wait for a lock report it
(POST /v1/waits); dtc keeps one wait-for graph over all its shards and, when a report
closes a cycle, aborts the cycle's youngest transaction at once (abort cause deadlock).
--deadlock-detection=false ignores the reports. In a cluster each node finds only the
cycles whose transactions all live on it. POST /v1/waits and POST
/v1/transactions/{id}/abort (Dtc-Abort-Cause: wound) are accepted from participants
without a token when they name transactions by the id they were told (id@nonce).

Examples:
  dtc serve --listen 127.0.0.1:7070 --data-dir /var/lib/dtc
  dtc serve --listen 10.0.0.5:7070 --data-dir /var/lib/dtc --advertise-url https://10.0.0.5:7070 \
      --tokens /etc/dtc/tokens --tls-cert /etc/dtc/api.pem --tls-key /etc/dtc/api.key \
      --allow-participant 'https://10.0.1.0/24:8443'

Cluster mode (--cluster NAME --etcd-endpoints URL,… --node-id ID): the shards' logs
live in etcd instead of --data-dir, and each shard is run by one node at a time, held
through the node's etcd lease (--lease-ttl). Live nodes share the shards; when a node
dies, the others take its shards over after its lease expires and resume them from
their logs. Any node answers any request: one about a shard another node owns is
forwarded to it once. Tell participants the cluster's shared address (a load balancer
or DNS name) with --advertise-url, and each node's own address with --node-url. Give
etcd https:// endpoints to reach it over TLS: --etcd-ca is the CA of its server
certificate, --etcd-cert and --etcd-key a client certificate if etcd asks for one.

Exit codes:
  0  stopped cleanly after SIGTERM or SIGINT
  1  could not start (bad log, port in use) or the log failed (an fsync error is fatal)
  2  bad flags or environment variables
`

func runServe(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	def := coordinator.DefaultConfig()
	fs := newFlags("serve")
	var (
		listen          = fs.String("listen", "127.0.0.1:7070", "address the API listens on (host:port; port 0 picks a free one)")
		dataDir         = fs.String("data-dir", "./data", "directory of the coordinator's log")
		advertise       = fs.String("advertise-url", "", "base URL participants reach this coordinator at, sent with every prepare (default http://<listen address>)")
		shards          = fs.Int("shards", 4, "engines running in parallel; transactions are spread by id (may change between restarts)")
		maxInflight     = fs.Int("max-inflight", 8192, "transactions begun and not finished, split evenly across the shards (a shard answers 429 beyond its share, rounded up); also the most transaction requests served at once")
		prepareTimeout  = fs.Duration("prepare-timeout", def.PrepareTimeout, "default prepare deadline; a request may ask for another with prepare_timeout_ms")
		prepareMax      = fs.Duration("prepare-timeout-max", def.PrepareTimeoutMax, "largest prepare deadline a request may ask for")
		recoveryTimeout = fs.Duration("recovery-timeout", def.RecoveryTimeout, "after a restart, how long to wait for the status of an undecided transaction before rolling it back")
		requestTimeout  = fs.Duration("request-timeout", def.RequestTimeout, "timeout of one commit, rollback or status request to a participant")
		backoffMax      = fs.Duration("retry-backoff-max", def.RetryBackoffMax, "longest wait between two phase-2 retries to one participant")
		secretFile      = fs.String("participant-secret-file", "", "file of keys shared with the participants: every request to them is signed with its first key")
		deadlocks       = fs.Bool("deadlock-detection", true, "keep a wait-for graph from the participants' wait reports (POST /v1/waits) and abort the youngest transaction of each cycle at once (cause deadlock); false: reports are ignored and deadlocks end at the prepare deadline")
		noBatch         = fs.Bool("no-batch", false, "never use POST …/batch, even with participants that offer it (Dtc-Batch-Max): every commit and rollback is a request of its own")
		retention       = fs.Duration("done-retention", def.DoneRetention, "how long a finished transaction is remembered (its id stays reserved)")
		doneMax         = fs.Int("done-max", 100_000, "most finished transactions remembered, split evenly across the shards (about 1 KiB each); beyond it the oldest is forgotten before --done-retention")
		segmentSize     = byteSize(64 << 20)
		lazyFlush       = fs.Duration("lazy-flush", 50*time.Millisecond, "longest wait of a begin or end record before it is synced")
		grace           = fs.Duration("shutdown-grace", 10*time.Second, "how long requests in flight may take to finish at shutdown")
		bodyMax         = byteSize(4 << 20)
		logFormat       = fs.String("log-format", "text", "log format on stderr: text or json")
		logLevel        = fs.String("log-level", "info", "log level: debug, info, warn or error")
		tokensFile      = fs.String("tokens", "", "file of the API's clients: role, name, and the SHA-256 of a bearer token or a client certificate's common name, one per line (see dtc token); read again on SIGHUP. Without it the API is unauthenticated")
		insecure        = fs.Bool("insecure", false, "serve an unauthenticated API (no --tokens) on an address other than loopback: anyone who reaches it can begin and read transactions")
		metricsAuth     = fs.Bool("metrics-auth", false, "with --tokens, /metrics needs a read or admin client too (default: open, like /healthz)")
		tlsCert         = fs.String("tls-cert", "", "PEM certificate (chain) of the API: serve HTTPS")
		tlsKey          = fs.String("tls-key", "", "PEM private key of --tls-cert")
		clientCA        = fs.String("client-ca", "", "PEM CA that signs client certificates (mTLS); a verified certificate's common name is looked up in --tokens (cn:NAME)")
		participantCA   = fs.String("participant-ca", "", "PEM CA that signs the https:// participants' certificates (default: the system's roots)")
		participantCert = fs.String("participant-cert", "", "PEM client certificate dtc presents to https:// participants (mTLS)")
		participantKey  = fs.String("participant-key", "", "PEM private key of --participant-cert")
		readHeaderTO    = fs.Duration("read-header-timeout", 10*time.Second, "longest time a client may take to send a request's headers")
		readTO          = fs.Duration("read-timeout", 30*time.Second, "longest time a client may take to send a whole request, body included; a slower one is cut off")
		writeTO         = fs.Duration("write-timeout", 0, "longest time from a request's headers to the end of its answer; must exceed --prepare-timeout-max, as a submit waits for its outcome (default: --prepare-timeout-max + 1m)")
		idleTO          = fs.Duration("idle-timeout", 2*time.Minute, "how long a keep-alive connection may wait for its next request")
		allowRules      = fs.StringArray("allow-participant", nil, "participants a transaction may name: [http|https://]HOST[:PORT], HOST an IP, a CIDR prefix ([fd00::/8] for IPv6), a host name or *.domain, PORT a number or *; repeat for more (default: 127.0.0.0/8, [::1] and localhost, any port)")
		otlpEndpoint    = fs.String("otlp-endpoint", "", "export OpenTelemetry traces of the transactions over OTLP/HTTP to this collector (http://host:4318 or host:port); off when empty")
		otlpRatio       = fs.Float64("otlp-sample-ratio", 1, "with --otlp-endpoint: the fraction of transactions traced, unless the client's traceparent says whether to")
	)
	cf := addClusterFlags(fs) // cluster mode: cluster.go
	fs.Var(&segmentSize, "segment-size", "size of a log segment file (e.g. 64MiB, 4MiB); at least 4KiB")
	fs.Var(&bodyMax, "max-body", "largest request body the API accepts; larger is answered 413")
	if ok, code := parse(fs, serveHelp, args, nil, stdout, stderr); !ok {
		return code
	}
	if fs.NArg() > 0 {
		return usageError(stderr, "serve", "unexpected argument %q", fs.Arg(0))
	}
	lg, err := newLogger(stderr, *logFormat, *logLevel)
	if err != nil {
		return usageError(stderr, "serve", "%v", err)
	}
	if segmentSize < 4<<10 || segmentSize > 1<<30 {
		return usageError(stderr, "serve", "--segment-size %v: must be between 4KiB and 1GiB", &segmentSize)
	}
	if *shards < 1 || *maxInflight < 1 || *doneMax < 1 {
		return usageError(stderr, "serve", "--shards, --max-inflight and --done-max must be positive")
	}
	if *advertise != "" {
		if u, err := url.Parse(*advertise); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" {
			return usageError(stderr, "serve", "--advertise-url %q is not an absolute http(s) base URL", *advertise)
		}
	}
	if *writeTO == 0 {
		*writeTO = *prepareMax + time.Minute
	}
	if *writeTO <= *prepareMax {
		return usageError(stderr, "serve", "--write-timeout %v must exceed --prepare-timeout-max %v: a submit waits for its outcome", *writeTO, *prepareMax)
	}
	if *readHeaderTO <= 0 || *readTO <= 0 || *idleTO <= 0 {
		return usageError(stderr, "serve", "--read-header-timeout, --read-timeout and --idle-timeout must be positive")
	}
	var auth *apiserver.Auth
	if *tokensFile != "" {
		creds, err := apiserver.LoadCredentials(*tokensFile)
		if err != nil {
			return usageError(stderr, "serve", "--tokens: %v", err)
		}
		if creds.Len() == 0 {
			return usageError(stderr, "serve", "--tokens %s lists no client: nobody could use the API", *tokensFile)
		}
		auth = apiserver.NewAuth(creds)
	} else if *metricsAuth {
		return usageError(stderr, "serve", "--metrics-auth needs --tokens")
	}
	if auth == nil && !*insecure && !loopbackAddr(*listen) {
		return usageError(stderr, "serve", "--listen %s is not a loopback address and the API has no authentication: "+
			"give --tokens (see dtc token), or --insecure to serve it open to anyone who can reach it", *listen)
	}
	allow, err := transport.NewAllowlist(*allowRules...)
	if err != nil {
		return usageError(stderr, "serve", "--allow-participant: %v", err)
	}
	var serverTLS, participantTLS *tls.Config
	if *tlsCert != "" || *tlsKey != "" || *clientCA != "" {
		if serverTLS, err = apiserver.ServerTLSConfig(*tlsCert, *tlsKey, *clientCA); err != nil {
			return usageError(stderr, "serve", "--tls-cert, --tls-key, --client-ca: %v", err)
		}
	}
	if *participantCA != "" || *participantCert != "" || *participantKey != "" {
		if participantTLS, err = transport.ClientTLSConfig(*participantCA, *participantCert, *participantKey); err != nil {
			return usageError(stderr, "serve", "--participant-ca, --participant-cert, --participant-key: %v", err)
		}
	}
	var signer *participant.Signer
	if *secretFile != "" {
		keys, err := participant.ReadKeyFile(*secretFile)
		if err != nil {
			return usageError(stderr, "serve", "--participant-secret-file: %v", err)
		}
		if signer, err = participant.NewSigner(keys[0]); err != nil {
			return usageError(stderr, "serve", "--participant-secret-file: %v", err)
		}
	}
	if cf.enabled() {
		if err := cf.check(); err != nil {
			return usageError(stderr, "serve", "%v", err)
		}
	}
	cfg := def
	cfg.InflightMax = (*maxInflight + *shards - 1) / *shards
	cfg.PrepareTimeout = *prepareTimeout
	cfg.PrepareTimeoutMax = *prepareMax
	cfg.RecoveryTimeout = *recoveryTimeout
	cfg.RequestTimeout = *requestTimeout
	cfg.RetryBackoffMax = *backoffMax
	cfg.RetryBackoffMin = min(cfg.RetryBackoffMin, *backoffMax)
	cfg.DoneRetention = *retention
	cfg.DoneMax = (*doneMax + *shards - 1) / *shards
	if err := cfg.Validate(); err != nil {
		return usageError(stderr, "serve", "%v", err)
	}

	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		lg.Error("cannot listen", "address", *listen, "error", err)
		return exitNo
	}
	addr := ln.Addr().String()
	if *advertise == "" {
		scheme := "http://"
		if serverTLS != nil {
			scheme = "https://"
		}
		*advertise = scheme + advertiseHost(addr)
		if host, _, _ := net.SplitHostPort(*listen); host == "" || net.ParseIP(host).IsUnspecified() {
			lg.Warn("listening on all interfaces without --advertise-url: participants are told "+*advertise+
				", which only works on this machine", "listen", addr)
		}
	}
	var clusterOpts httpnet.Options // o.Cluster, in cluster mode: no data directory
	if cf.enabled() {
		ec, err := cf.options(&clusterOpts, addr)
		if err != nil {
			ln.Close()
			lg.Error("cannot start", "error", err)
			return exitNo
		}
		defer ec.Close()
	} else {
		unlock, err := dirlock.Lock(*dataDir)
		if err != nil {
			ln.Close()
			lg.Error("cannot lock the data directory", "error", err)
			return exitNo
		}
		defer unlock()
	}
	// One P more than there are cores: an fdatasync holds its P while it blocks, until
	// sysmon hands it on (see package maxprocs). Left alone when GOMAXPROCS is set in
	// the environment.
	defer maxprocs.Raise()()
	var tracing trace.TracerProvider
	if *otlpEndpoint != "" {
		tp, shutdown, err := newOTLPTracing(*otlpEndpoint, version, *otlpRatio)
		if err != nil {
			_ = ln.Close()
			return usageError(stderr, "serve", "%v", err)
		}
		defer shutdown()
		tracing = tp
	}
	rt, err := httpnet.Open(httpnet.Options{
		DataDir:           *dataDir,
		Shards:            *shards,
		Engine:            cfg,
		Transport:         transport.Options{AdvertiseURL: strings.TrimSuffix(*advertise, "/"), RequestTimeout: *requestTimeout, NoBatch: *noBatch, TLS: participantTLS, Signer: signer},
		SegmentSizeBytes:  int64(segmentSize),
		LazyFlushInterval: *lazyFlush,
		Logger:            lg,
		TracerProvider:    tracing,
		Cluster:           clusterOpts.Cluster,

		NoDeadlockDetection: !*deadlocks,
	})
	if err != nil {
		_ = ln.Close()
		lg.Error("cannot start", "error", err)
		return exitNo
	}
	api := apiserver.NewServer(rt, apiserver.ServerOptions{
		InflightMax:  *maxInflight,
		BodyMaxBytes: int64(bodyMax),
		Logger:       lg,
		Auth:         auth,
		MetricsAuth:  *metricsAuth,
		Participants: allow,
	})
	var handler http.Handler = api
	if cf.enabled() {
		handler = apiserver.NewClusterHandler(rt, api, apiserver.ClusterHandlerOptions{BodyMaxBytes: int64(bodyMax)})
	}
	if auth == nil {
		lg.Warn("the API is unauthenticated: anyone who can reach "+addr+" may begin and read transactions; give --tokens to require clients", "listen", addr)
	} else {
		stopReload := reloadOnHUP(*tokensFile, auth, lg)
		defer stopReload()
	}
	lg.Info("serving", "listen", addr, "advertise", *advertise, "data_dir", *dataDir, "shards", *shards,
		"max_inflight", *maxInflight, "prepare_timeout", *prepareTimeout, "phase2_batching", !*noBatch, "signed_participant_requests", signer != nil, "deadlock_detection", *deadlocks,
		"auth", auth != nil, "tls", serverTLS != nil, "mtls", *clientCA != "",
		"participants_allowed", strings.Join(allow.Rules(), " "), "otlp_endpoint", *otlpEndpoint)
	so := apiserver.ServeOptions{Grace: *grace, Logger: lg, TLS: serverTLS,
		ReadHeaderTimeout: *readHeaderTO, ReadTimeout: *readTO, WriteTimeout: *writeTO, IdleTimeout: *idleTO}
	if err := apiserver.Serve(ctx, ln, rt, handler, so); err != nil {
		lg.Error("shutdown", "error", err)
		return exitNo
	}
	return exitOK
}

// loopbackAddr reports whether a --listen address binds loopback only: localhost or a
// loopback IP (not an empty or unspecified host, which is every interface).
func loopbackAddr(listen string) bool {
	host, _, err := net.SplitHostPort(listen)
	if err != nil {
		return false
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// reloadOnHUP reads the tokens file again on every SIGHUP and swaps the clients in; a
// file that does not parse is logged and the clients in use are kept. The returned
// function stops it and waits for its goroutine.
func reloadOnHUP(path string, auth *apiserver.Auth, lg *slog.Logger) (stop func()) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	done, exited := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(exited)
		for {
			select {
			case <-done:
				return
			case <-hup:
				creds, err := apiserver.LoadCredentials(path)
				switch {
				case err != nil:
					lg.Error("SIGHUP: the tokens file does not load; the clients in use are kept", "error", err)
				case creds.Len() == 0:
					lg.Error("SIGHUP: the tokens file lists no client; the clients in use are kept", "file", path)
				default:
					auth.Replace(creds)
					lg.Info("SIGHUP: tokens file reloaded", "file", path, "clients", creds.Len())
				}
			}
		}
	}()
	return func() {
		signal.Stop(hup)
		close(done)
		<-exited
	}
}

// advertiseHost turns a listening address into one a participant on this machine can
// reach: an unspecified host (0.0.0.0, ::) becomes loopback.
func advertiseHost(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port)
}

func newLogger(w io.Writer, format, level string) (*slog.Logger, error) {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level %q: use debug, info, warn or error", level)
	}
	o := &slog.HandlerOptions{Level: lvl}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, o)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, o)), nil
	}
	return nil, fmt.Errorf("--log-format %q: use text or json", format)
}

// byteSize is a flag holding a size in bytes: 4096, 64KiB, 4MiB, 1GiB (also KB, MB, GB
// as powers of 1000).
type byteSize int64

func (b *byteSize) String() string {
	v := int64(*b)
	for _, u := range []struct {
		suffix string
		n      int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if v >= u.n && v%u.n == 0 {
			return strconv.FormatInt(v/u.n, 10) + u.suffix
		}
	}
	return strconv.FormatInt(v, 10)
}

func (b *byteSize) Set(s string) error {
	units := []struct {
		suffix string
		n      int64
	}{
		{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10},
		{"GB", 1e9}, {"MB", 1e6}, {"KB", 1e3}, {"kB", 1e3}, {"B", 1},
	}
	num, mult := strings.TrimSpace(s), int64(1)
	for _, u := range units {
		if strings.HasSuffix(num, u.suffix) {
			num, mult = strings.TrimSpace(strings.TrimSuffix(num, u.suffix)), u.n
			break
		}
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n <= 0 || n > (1<<62)/mult {
		return fmt.Errorf("%q is not a positive size such as 4096, 512KiB or 64MiB", s)
	}
	*b = byteSize(n * mult)
	return nil
}

func (b *byteSize) Type() string { return "size" }
