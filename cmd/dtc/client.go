package main

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/pflag"

	"github.com/dtc-project/dtc/client"
	"github.com/dtc-project/dtc/httpnet/transport"
)

const defaultCoordinator = "http://127.0.0.1:7070"

const submitHelp = `Usage: dtc submit [flags] PREPARE_URL[=JSON_PAYLOAD]...

Runs one transaction: every participant, named by its prepare URL, is asked to prepare;
if all vote ACK the coordinator commits, otherwise it rolls back. It waits for the
outcome (durable in the coordinator's log) and prints it, with each participant's vote.

A participant's payload (passed to its prepare) is given after '=' or with --payload,
matched to the URLs in order.

Examples:
  dtc submit http://127.0.0.1:9001/prepare http://127.0.0.1:9002/prepare
  dtc submit --id order-7 \
      'http://127.0.0.1:9001/prepare={"account":"alice","amount":-10}' \
      'http://127.0.0.1:9002/prepare={"account":"bob","amount":10}'
  dtc submit --payload '{"sku":"x1"}' --payload '{"sku":"x1"}' URL1 URL2
  dtc submit --retry 5 --retry-backoff 100ms URL1 URL2

With --retry N, a transaction aborted for a conflict, a deadlock or a timeout is run
again as a new transaction (with --id, the later attempts are ID-r2, ID-r3, …) after a
backoff that doubles from --retry-backoff (jittered, capped at 2s), N attempts in all.
Each aborted attempt is reported on stderr; the last one is printed.

Exit codes:
  0  committed (with --async: accepted)
  1  aborted (a participant voted NACK, timed out or failed)
  2  error: bad arguments, coordinator unreachable, request refused
`

// apiFlags are the flags of the commands that talk to the API: where it is and how to
// authenticate.
type apiFlags struct {
	coord, token, tokenFile, caCert, cert, key *string
}

// clientEnv are the flags of apiFlags that their DTC_… environment variables set.
var clientEnv = []string{"coordinator", "token", "token-file", "ca-cert", "cert", "key"}

// clientFlags returns the flag set of a command that talks to the API, with the flags
// they share.
func clientFlags(name string) (api *apiFlags, asJSON *bool, fs *pflag.FlagSet) {
	f := newFlags(name)
	api = &apiFlags{
		coord:     f.String("coordinator", defaultCoordinator, "base URL of the coordinator's API (https:// for a coordinator with --tls-cert)"),
		token:     f.String("token", "", "bearer token for a coordinator that requires one (dtc serve --tokens)"),
		tokenFile: f.String("token-file", "", "file holding the bearer token (its first line)"),
		caCert:    f.String("ca-cert", "", "PEM file of the CA that signed the coordinator's certificate (default: the system's)"),
		cert:      f.String("cert", "", "PEM client certificate, for a coordinator that authenticates clients by certificate"),
		key:       f.String("key", "", "PEM private key of --cert"),
	}
	asJSON = f.Bool("json", false, "print the coordinator's JSON answer instead of a summary")
	return api, asJSON, f
}

func newClient(stderr io.Writer, cmd string, api *apiFlags) (*client.Client, int) {
	token := *api.token
	if *api.tokenFile != "" {
		if token != "" {
			return nil, usageError(stderr, cmd, "give --token or --token-file, not both")
		}
		b, err := os.ReadFile(*api.tokenFile)
		if err != nil {
			return nil, usageError(stderr, cmd, "--token-file: %v", err)
		}
		token, _, _ = strings.Cut(string(b), "\n")
		token = strings.TrimSpace(token)
		if token == "" {
			return nil, usageError(stderr, cmd, "--token-file %s: the first line is empty", *api.tokenFile)
		}
	}
	o := client.Options{Token: token}
	if *api.caCert != "" || *api.cert != "" || *api.key != "" {
		tc, err := transport.ClientTLSConfig(*api.caCert, *api.cert, *api.key)
		if err != nil {
			return nil, usageError(stderr, cmd, "%v", err)
		}
		o.HTTPClient = &http.Client{Transport: &http.Transport{TLSClientConfig: tc, Proxy: http.ProxyFromEnvironment}}
	}
	c, err := client.New(*api.coord, o)
	if err != nil {
		return nil, usageError(stderr, cmd, "--coordinator: %v", err)
	}
	return c, exitOK
}

func runSubmit(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	coord, asJSON, fs := clientFlags("submit")
	var (
		id       = fs.String("id", "", "transaction id (letters, digits, . _ ~ : -); makes the call idempotent")
		timeout  = fs.Duration("timeout", 0, "prepare deadline of this transaction (default: the coordinator's)")
		payloads = fs.StringArray("payload", nil, "JSON payload of the next participant, in order (repeat per participant)")
		async    = fs.Bool("async", false, "return as soon as the transaction has begun (exit 0), without waiting for the outcome")
		wait     = fs.Duration("wait", 2*time.Minute, "give up waiting for the answer after this long (the transaction still completes)")
		retry    = fs.Int("retry", 1, "attempts in all: retry a transaction aborted for conflict, deadlock or timeout as a new one (1: no retry; at most 100)")
		backoff  = fs.Duration("retry-backoff", 50*time.Millisecond, "wait before the first retry; doubles after each (jittered, capped at 2s)")
	)
	if ok, code := parse(fs, submitHelp, args, clientEnv, stdout, stderr); !ok {
		return code
	}
	if fs.NArg() == 0 {
		return usageError(stderr, "submit", "name at least one participant by its prepare URL")
	}
	if *retry < 1 || *retry > 100 || *backoff <= 0 || (*async && *retry > 1) {
		return usageError(stderr, "submit", "--retry takes 1 to 100 attempts and --retry-backoff a positive duration, and --retry cannot go with --async")
	}
	if len(*payloads) > fs.NArg() {
		return usageError(stderr, "submit", "%d --payload flags for %d participants", len(*payloads), fs.NArg())
	}
	req := client.Request{ID: *id, PrepareTimeout: *timeout}
	for i, arg := range fs.Args() {
		u, payload, inline := strings.Cut(arg, "=")
		p := client.Participant{URL: u}
		if inline {
			p.Payload = json.RawMessage(payload)
		}
		if i < len(*payloads) && (*payloads)[i] != "" {
			if inline {
				return usageError(stderr, "submit", "participant %d (%s) has a payload both after '=' and in --payload", i+1, u)
			}
			p.Payload = json.RawMessage((*payloads)[i])
		}
		if len(p.Payload) > 0 && !json.Valid(p.Payload) {
			return usageError(stderr, "submit", "the payload of participant %d (%s) is not valid JSON: %s", i+1, u, p.Payload)
		}
		req.Participants = append(req.Participants, p)
	}
	c, code := newClient(stderr, "submit", coord)
	if c == nil {
		return code
	}
	ctx, cancel := context.WithTimeout(ctx, *wait)
	defer cancel()
	var (
		v   client.View
		err error
	)
	switch {
	case *async:
		v, err = c.SubmitAsync(ctx, req)
	case *retry > 1:
		v, _, err = c.SubmitRetry(ctx, req, client.RetryOptions{Attempts: *retry, Backoff: *backoff,
			OnRetry: func(attempt int, v client.View, wait time.Duration) {
				fmt.Fprintf(stderr, "dtc submit: attempt %d (%s) aborted (%s): %s; retrying in %v\n",
					attempt, v.ID, v.AbortCause, v.Reason, wait.Round(time.Millisecond))
			}})
	default:
		v, err = c.Submit(ctx, req)
	}
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) && req.ID != "" {
			fmt.Fprintf(stderr, "dtc submit: no answer within %v; the transaction goes on: see 'dtc get %s'\n", *wait, req.ID)
			return exitError
		}
		fmt.Fprintf(stderr, "dtc submit: %v\n", err)
		return exitError
	}
	printView(stdout, v, *asJSON)
	switch {
	case *async:
		return exitOK
	case v.State == client.StateCommitted:
		return exitOK
	case v.State == client.StateAborted:
		return exitNo
	}
	fmt.Fprintf(stderr, "dtc submit: unexpected state %q in the answer\n", v.State)
	return exitError
}

const getHelp = `Usage: dtc get [flags] TXN_ID

Shows one transaction: its state, the decision and why, each participant's vote and
whether it acknowledged phase 2, and any heuristic hazard (a participant that
contradicted the decision).

Example:
  dtc get order-7 --coordinator http://127.0.0.1:7070

Exit codes:
  0  found
  1  not found: the coordinator has no record of it (never begun, or finished and
     forgotten); a participant in doubt takes this as aborted
  2  error
`

func runGet(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	coord, asJSON, fs := clientFlags("get")
	if ok, code := parse(fs, getHelp, args, clientEnv, stdout, stderr); !ok {
		return code
	}
	if fs.NArg() != 1 {
		return usageError(stderr, "get", "give exactly one transaction id")
	}
	c, code := newClient(stderr, "get", coord)
	if c == nil {
		return code
	}
	v, err := c.Get(ctx, fs.Arg(0))
	if err != nil {
		fmt.Fprintf(stderr, "dtc get: %v\n", err)
		if client.IsNotFound(err) {
			return exitNo
		}
		return exitError
	}
	printView(stdout, v, *asJSON)
	return exitOK
}

const abortHelp = `Usage: dtc abort [flags] TXN_ID [--reason TEXT]

Aborts a transaction that is not decided yet: its participants are rolled back, and
dtc get shows abort cause "client". A decided transaction is never changed: dtc abort
then prints it as it is (committed, or aborted for its own cause), so it is safe to
repeat. Needs a submit client (its own transactions) or an admin client when dtc serve
has --tokens.

Example:
  dtc abort order-7 --reason "customer cancelled"

Exit codes:
  0  aborted (now or before)
  1  not found, or committed before the abort came
  2  error
`

func runAbort(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	coord, asJSON, fs := clientFlags("abort")
	reason := fs.String("reason", "", "why (optional; it goes to the log and the transaction's reason)")
	if ok, code := parse(fs, abortHelp, args, clientEnv, stdout, stderr); !ok {
		return code
	}
	if fs.NArg() != 1 {
		return usageError(stderr, "abort", "give exactly one transaction id")
	}
	c, code := newClient(stderr, "abort", coord)
	if c == nil {
		return code
	}
	v, err := c.Abort(ctx, fs.Arg(0), *reason)
	if err != nil {
		fmt.Fprintf(stderr, "dtc abort: %v\n", err)
		if client.IsNotFound(err) {
			return exitNo
		}
		return exitError
	}
	printView(stdout, v, *asJSON)
	if v.State != client.StateAborted {
		return exitNo
	}
	return exitOK
}

const forgetHelp = `Usage: dtc forget [flags] TXN_ID --reason TEXT

Ends a decided transaction whose phase 2 cannot finish because a participant is gone
for good (decommissioned, its data lost). dtc otherwise retries the commit or rollback
to it for ever, as atomicity requires. Each participant that has not acknowledged is
marked with a heuristic hazard, "forgotten by an operator: TEXT": it may never learn the
outcome, and dtc get, dtc list --state heuristic and /metrics show it. The hazard and
the end of the transaction are written to dtc's log. An undecided transaction cannot be
forgotten (its prepare deadline aborts it). Needs an admin client when dtc serve has
--tokens.

Example:
  dtc forget order-7 --reason "bank2 decommissioned, ticket OPS-42"

Exit codes:
  0  forgotten (or done already)
  1  not found, or not decided yet
  2  error
`

func runForget(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	coord, asJSON, fs := clientFlags("forget")
	reason := fs.String("reason", "", "why the transaction is forgotten (required; it goes to the log)")
	if ok, code := parse(fs, forgetHelp, args, clientEnv, stdout, stderr); !ok {
		return code
	}
	if fs.NArg() != 1 {
		return usageError(stderr, "forget", "give exactly one transaction id")
	}
	if *reason == "" {
		return usageError(stderr, "forget", "--reason is required: say why the transaction is forgotten")
	}
	c, code := newClient(stderr, "forget", coord)
	if c == nil {
		return code
	}
	v, err := c.Forget(ctx, fs.Arg(0), *reason)
	if err != nil {
		fmt.Fprintf(stderr, "dtc forget: %v\n", err)
		if client.IsNotFound(err) || client.IsUndecided(err) {
			return exitNo
		}
		return exitError
	}
	printView(stdout, v, *asJSON)
	return exitOK
}

const listHelp = `Usage: dtc list [flags]

Lists the transactions the coordinator remembers, in id order, one per line.

States: preparing, committing, aborting, committed, aborted; and the filters in-doubt
(not yet acknowledged by every participant) and heuristic (a participant contradicted
the decision).

Under a transaction that is not yet acknowledged by every participant, one line per
participant still owing an answer says what it last answered dtc and when ("never" if
it has not answered since dtc started), so an operator sees which service holds what.

Examples:
  dtc list --state in-doubt
  dtc list --state heuristic --json | jq .

On a node of a cluster the listing covers the whole cluster. If a node did not answer
(or shards had no owner), the rest is listed and stderr names what is missing, with
exit code 3.

Exit codes:
  0  listed (possibly nothing)
  2  error
  3  listed, but part of the cluster did not answer (named on stderr)
`

func runList(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	coord, asJSON, fs := clientFlags("list")
	var (
		state = fs.String("state", "", "only transactions in this state or matching this filter")
		limit = fs.Int("limit", 0, "at most this many (default: all)")
		after = fs.String("after", "", "start after this id (the cursor of a previous page)")
	)
	if ok, code := parse(fs, listHelp, args, clientEnv, stdout, stderr); !ok {
		return code
	}
	if fs.NArg() > 0 {
		return usageError(stderr, "list", "unexpected argument %q", fs.Arg(0))
	}
	if *limit < 0 {
		return usageError(stderr, "list", "--limit must not be negative")
	}
	c, code := newClient(stderr, "list", coord)
	if c == nil {
		return code
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	if !*asJSON {
		fmt.Fprintln(tw, "ID\tSTATE\tPHASE2\tPARTICIPANTS\tBEGAN\tREASON")
	}
	cursor, n := *after, 0
	missing := map[string]bool{} // parts of a cluster a page could not cover
	for {
		page := 1000
		if *limit > 0 {
			page = min(page, *limit-n)
		}
		p, err := c.List(ctx, client.ListOptions{State: *state, After: cursor, Limit: page})
		if err != nil {
			tw.Flush()
			fmt.Fprintf(stderr, "dtc list: %v\n", err)
			return exitError
		}
		for _, v := range p.Transactions {
			if *asJSON {
				b, _ := json.Marshal(v)
				fmt.Fprintf(stdout, "%s\n", b)
				continue
			}
			phase2 := "pending"
			if v.PhaseTwoDone {
				phase2 = "done"
			}
			if v.Hazard {
				phase2 += ",HAZARD"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\n", v.ID, v.State, phase2, len(v.Participants),
				v.BeganAt.Format(time.RFC3339), v.Reason)
			if !v.PhaseTwoDone {
				for _, p := range v.Participants {
					if !p.Acked {
						fmt.Fprintf(tw, "\t\t\t\t\t└ %s last said %s at %s\n", p.URL, lastSaid(p), saidAt(p))
					}
				}
			}
		}
		for _, u := range p.Unreachable {
			missing[fmt.Sprintf("%s %v: %s", cmp.Or(u.Node, "no owner"), u.Shards, u.Error)] = true
		}
		n += len(p.Transactions)
		cursor = p.Next
		if cursor == "" || (*limit > 0 && n >= *limit) {
			break
		}
	}
	tw.Flush()
	if len(missing) > 0 {
		for _, m := range slices.Sorted(maps.Keys(missing)) {
			fmt.Fprintf(stderr, "dtc list: incomplete: %s\n", m)
		}
		return exitPartial
	}
	return exitOK
}

// exitPartial is dtc list's exit code when part of a cluster did not answer.
const exitPartial = 3

// lastSaid is what a participant last answered dtc about a transaction, for people.
func lastSaid(p client.ParticipantView) string {
	if p.LastSaid == "" {
		return "nothing yet"
	}
	return p.LastSaid
}

// saidAt is when it said it.
func saidAt(p client.ParticipantView) string {
	if p.LastSaidAt == nil {
		return "never"
	}
	return p.LastSaidAt.Format(time.RFC3339Nano)
}

// printView prints a transaction as a short summary, or as the API's JSON.
func printView(w io.Writer, v client.View, asJSON bool) {
	if asJSON {
		b, _ := json.MarshalIndent(v, "", "  ")
		fmt.Fprintf(w, "%s\n", b)
		return
	}
	fmt.Fprintf(w, "%s %s\n", v.State, v.ID)
	if v.TxnID != "" && v.TxnID != v.ID {
		fmt.Fprintf(w, "  participants know it as: %s\n", v.TxnID)
	}
	if v.Reason != "" {
		fmt.Fprintf(w, "  reason: %s\n", v.Reason)
	}
	if v.AbortCause != "" {
		fmt.Fprintf(w, "  abort cause: %s\n", v.AbortCause)
	}
	if v.Priority != 0 {
		fmt.Fprintf(w, "  priority: %d (smaller is older)\n", v.Priority)
	}
	// Times as the admin page writes them: UTC to the millisecond, and offsets from
	// the begin.
	at := func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05.000") }
	since := func(t *time.Time) string {
		return fmt.Sprintf("+%d ms", t.UnixMilli()-v.BeganAt.UnixMilli())
	}
	times := "  began " + at(v.BeganAt)
	if v.DecidedAt != nil {
		times += ", decision durable " + at(*v.DecidedAt) + " (" + since(v.DecidedAt) + ")"
	}
	if v.EndedAt != nil {
		times += ", ended " + at(*v.EndedAt) + " (" + since(v.EndedAt) + ")"
	}
	fmt.Fprintln(w, times)
	if v.Final() {
		if v.PhaseTwoDone {
			fmt.Fprintf(w, "  phase 2: acknowledged by every participant\n")
		} else {
			fmt.Fprintf(w, "  phase 2: under way (retried until every participant acknowledges; see dtc get)\n")
		}
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, p := range v.Participants {
		vote := string(p.Vote)
		if vote == "" {
			vote = "-"
		}
		line := fmt.Sprintf("  %s\t%s", vote, p.URL)
		if p.VotedAt != nil {
			line += "\tvoted " + since(p.VotedAt)
		} else {
			line += "\t"
		}
		switch {
		case p.Acked && p.AnsweredAt != nil:
			line += "\tacked " + since(p.AnsweredAt)
		case p.Acked:
			line += "\tacked"
		case p.Phase2Error != "":
			line += fmt.Sprintf("\tphase 2 pending after %d requests: %s", p.Phase2Requests, p.Phase2Error)
		default:
			line += "\t"
		}
		if p.Reason != "" {
			line += "\t" + p.Reason
		}
		if p.Hazard != "" {
			line += "\tHAZARD: " + p.Hazard
		}
		if !p.Acked {
			line += "\tlast said " + lastSaid(p) + " at " + saidAt(p)
		}
		fmt.Fprintln(tw, line)
	}
	tw.Flush()
}
