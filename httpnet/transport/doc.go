// Package transport is dtc's HTTP client toward its participants (DESIGN §3): the
// Transport that delivers the coordinator engines' messages (prepare, commit, rollback,
// status) and hands each reply back, phase-2 batching (POST …/batch), the participants'
// addresses (NormalizeParticipantURL, the Allowlist of where dtc may connect) and the
// TLS configuration of a client (ClientTLSConfig). It knows the coordinator's
// Transport interface and the wire protocol, not the runtime that runs the engines
// (package httpnet) nor the API server (package apiserver), which both import it.
//
//	engine (shard goroutine) ── Send(m) ──▶ idle sender, or a new one ── HTTP ──▶ participant
//	                                │  commit/rollback to a participant that batches
//	                                ▼
//	                        its batch queue ──▶ sender: POST …/batch, up to its maximum
//	reply ◀── deliver (For's func, on the sender goroutine) ◀─────────────────────────┘
//
// # Goroutines and who owns them
//
//   - The Transport owns the sender goroutines that make the requests to participants,
//     tracked by a WaitGroup: a Send goes to an idle sender, or starts one; senders stay
//     for the next request and exit when idle for a while. Every request has a timeout
//     (Message.Timeout or a default), so each ends with exactly one reply.
//     Transport.Close cancels them and waits.
//   - Phase-2 batching (batch.go): a participant that offers it (the Dtc-Batch-Max
//     header on any of its answers) gets its commits and rollbacks through POST …/batch.
//     Send puts such a message in that participant's queue, and a sender (the same
//     pool, handed the queue instead of one message) sends what is queued, at most the
//     participant's maximum (and 1024) per request, again and again until the queue is
//     empty. At most Options.BatchInflight senders work for one participant; what
//     comes while they are busy waits for the next request, unless the newest request
//     left Options.BatchSlowAfter ago or more: then it starts one more sender (at most
//     3 more). No timer: a message for an idle participant leaves at once. A queued message's reply may come later than its
//     Timeout (each request it waits for is bounded by its own), but it comes; the
//     engine sends no retry while a reply is due. Each op gets its own reply, as the
//     single endpoint's answer would have made it; a batch without a usable answer
//     fails each of its ops (the engine retries them), and a 4xx from …/batch (but 408
//     and 429) turns batching off for that participant for a minute, unless its header
//     offers batches of fewer ops than were sent (a lowered limit). Prepare and status
//     are never batched; Options.NoBatch (dtc serve --no-batch) turns batching off
//     altogether. Transport.Close cancels the batches in flight and drops what is
//     queued, without a reply.
//   - Transport.Stats counts the requests of each kind and the ops batches carried,
//     and says how many participants get batches and how many ops wait in their queues;
//     Transport.Collector reports them to Prometheus (dtc_participant_requests_total,
//     dtc_participant_batch_ops_total, dtc_participant_batching,
//     dtc_participant_batch_queued), with the requests that got no usable answer
//     (dtc_participant_errors_total).
//   - With Options.Tracing, each request to a participant of a traced transaction gets
//     a span, and its traceparent goes with the request (httpnet/internal/tracing).
//
// # Bounds
//
// Idle senders are bounded by sendersMax; busy ones by the requests in flight, which
// the engines' limits bound (InflightMax transactions per shard, one outstanding
// request per participant). Phase-2 and status requests in flight to one host are
// bounded by Options.HostRetriesMax (one more fails at once, without a connection). A
// participant's batch queue holds the phase-2 messages the engines sent it and not yet
// sent on, bounded by the same engine limits; at most 1024 participants are remembered
// as offering batching (those with nothing queued are forgotten when the table is
// full). Responses are read up to Options.ResponseMaxBytes (a batch's, 1 KiB more per
// op), their status line and headers up to Options.ResponseHeaderMaxBytes.
//
// # What participants and API clients learn
//
// A participant's answer is never shown to API clients beyond a NACK's cleaned reason:
// a failed request's error is generic (its details go to the log, ReplyErrorDetail).
// Every participant URL of a submit is normalised (NormalizeParticipantURL) and must
// match an Allowlist before the transaction begins (the API server checks it), so no
// connection is ever made to a host the operator did not allow. The Transport may use
// TLS with a client certificate (Options.TLS, ClientTLSConfig) and sign its requests
// (Options.Signer).
//
// Error messages still begin "httpnet: ", as they did when this package was part of
// httpnet: they reach the CLI and the API's answers unchanged.
package transport
