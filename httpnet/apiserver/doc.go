// Package apiserver is dtc's HTTP API (DESIGN §4) over a running httpnet.Runtime: the
// Server that routes and answers it, who may call what (auth.go), the operator's
// endpoints (/metrics, GET /v1/stats, GET /v1/openapi.json, the admin page under /ui/),
// wait reports and aborts (deadlock_api.go), a cluster node's forwarding and merged
// listings (ClusterHandler), the cluster's deadlock detector's calls to other nodes
// (cluster_deadlock.go: every wait report goes to the owner of shard 0), and Serve, which runs the http.Server until shutdown and
// then closes the runtime. It depends on the runtime (package httpnet) and the
// transport's participant allowlist (package httpnet/transport); neither depends on it.
//
//	client ──HTTP──▶ http.Server (Serve: timeouts, TLS) ──▶ [ClusterHandler: forward?] ──▶ Server
//	                                                                                         │
//	      Runtime.Submit / Get / List / Forget / Abort / ReportWaits / StatsResponse ◀──────┘
//
// # Goroutines
//
// The package starts none of its own but Serve's: the http.Server's accept loop, on a
// goroutine that Serve waits for, and net/http's goroutine per connection, which runs
// the handlers. A handler calls into the runtime, which posts the call to the shard of
// its transaction and waits for the answer (or the request's context). A cluster-wide
// listing asks the other nodes in parallel, one goroutine per node, and waits for them
// all (bounded by ClusterHandlerOptions.ListTimeout).
//
// # Bounds
//
// POST /v1/transactions being served are bounded by ServerOptions.InflightMax (429
// beyond it; a submit takes its slot only once its body is read), request bodies by
// ServerOptions.BodyMaxBytes (413 beyond it), pages of GET /v1/transactions by
// ServerOptions.ListLimitMax, and a wait report's holders by httpnet.WaitHoldersMax.
// Serve's http.Server has read, write and idle timeouts (ServeOptions) and a 64 KiB
// header limit.
//
// # Who may do what (auth.go)
//
// With ServerOptions.Auth, every request but /healthz, /readyz (and /metrics unless
// MetricsAuth) names its client: a bearer token, looked up by its SHA-256 and compared
// in constant time, or a client certificate verified by the server's TLS configuration
// (ServerTLSConfig), by its subject common name. Roles: submit begins transactions and
// reads the ones it began (coordinator.Request.Owner, kept in the log), read reads
// everything, admin does everything. A participant's in-doubt query by the id it was
// told (client id '@' 64-bit random nonce) needs no credentials and gets the state
// only. Every participant URL of a submit is normalised
// (transport.NormalizeParticipantURL) and must match ServerOptions.Participants
// (default: loopback) before the transaction begins, so no connection is ever made to
// a host the operator did not allow; two URLs with the same key are one participant
// listed twice. POST /v1/waits and POST /v1/transactions/{id}/abort take the same trust
// as that query: without credentials, a caller naming every transaction by its
// participant id is served as a participant (deadlock_api.go, asParticipant). The
// cluster's detector holds no credentials: its calls to another node carry the
// report's, or none when they name transactions by participant id; an abort with cause
// deadlock is taken only from such a forwarded call.
//
// # Tracing
//
// With the runtime's Options.TracerProvider, a submit starts its transaction's
// dtc.transaction span (under the client's traceparent, if it sent one) in the
// runtime's trace registry (Runtime.Tracing), where the transport and the shards find
// it for the transaction's child spans.
//
// # Metrics
//
// A Server counts its answers (dtc_http_requests_total by route and code,
// dtc_api_errors_total by error code) in the runtime's registry (Runtime.Metrics),
// which /metrics serves; every Server of one runtime counts into the same counters. A
// ClusterHandler counts the requests it forwards (dtc_cluster_forwarded_requests_total).
package apiserver
