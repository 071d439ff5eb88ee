// Command passive is a participant written only from the participant protocol (DESIGN
// §3, README "The participant protocol"), without dtc's participant package: the kind of
// service a user already has. It answers prepare, commit, rollback and, unless
// --no-status, status; it keeps every state change in a file that it syncs before it
// answers; and it never asks the coordinator about anything. What it holds prepared
// after a coordinator crash, only the coordinator can resolve: the tests and the real
// chaos campaigns use it to show that dtc does.
//
//	passive --listen 127.0.0.1:9101 --data data/passive1.log [--no-status]
//
// A prepare whose payload is {"nack":"reason"} is refused with that reason. GET /states
// lists every transaction it knows with its state, for tests; GET /healthz answers ok.
//
// The log is one line of JSON per change, {"txn_id":…,"state":…}, appended and synced
// (fdatasync) under one lock, so it is slow by design: a reference, not a fast service.
// A torn last line (a crash mid-write) is cut off at start; a bad line before it stops
// the start with its offset.
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/spf13/pflag"
)

func main() {
	if err := run(os.Args[1:], os.Stderr); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return
		}
		fmt.Fprintln(os.Stderr, "passive:", err)
		os.Exit(1)
	}
}

func run(args []string, stderr io.Writer) error {
	flags := pflag.NewFlagSet("passive", pflag.ContinueOnError)
	flags.SetOutput(stderr)
	listen := flags.String("listen", "127.0.0.1:9101", "address to serve on")
	data := flags.String("data", "data/passive.log", "the file that keeps every state change (created if missing)")
	noStatus := flags.Bool("no-status", false, "serve no status endpoint (GET /status answers 404), like a service that has none")
	if err := flags.Parse(args); err != nil {
		return err
	}
	if flags.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", flags.Args())
	}
	st, err := openStore(*data)
	if err != nil {
		return err
	}
	defer st.close()
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	srv := &http.Server{
		Handler:           &server{st: st, noStatus: *noStatus},
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      10 * time.Second,
		IdleTimeout:       time.Minute,
	}
	fmt.Fprintf(stderr, "passive: serving on %s, log %s, %d transactions known, status endpoint %v\n",
		ln.Addr(), *data, st.count(), !*noStatus)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return srv.Shutdown(shutdown)
}

// The protocol's states.
const (
	stUnknown   = "unknown"
	stPrepared  = "prepared"
	stCommitted = "committed"
	stAborted   = "aborted"
)

// store is the durable table txn → state.
type store struct {
	mu    sync.Mutex
	f     *os.File
	state map[string]string
}

type change struct {
	TxnID string `json:"txn_id"`
	State string `json:"state"`
}

func openStore(path string) (*store, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, err
	}
	st := &store{f: f, state: map[string]string{}}
	r := bufio.NewReader(f)
	var off int64
	for {
		line, err := r.ReadBytes('\n')
		if errors.Is(err, io.EOF) {
			if len(line) > 0 { // a torn last line: the crash came mid-write
				if err := f.Truncate(off); err != nil {
					return nil, err
				}
			}
			break
		}
		if err != nil {
			return nil, err
		}
		var c change
		if err := json.Unmarshal(line, &c); err != nil || c.TxnID == "" || !known(c.State) {
			return nil, fmt.Errorf("%s: bad record at offset %d: %q", path, off, bytes.TrimSpace(line))
		}
		st.state[c.TxnID] = c.State
		off += int64(len(line))
	}
	if _, err := f.Seek(off, io.SeekStart); err != nil {
		return nil, err
	}
	return st, nil
}

func known(s string) bool { return s == stPrepared || s == stCommitted || s == stAborted }

func (st *store) get(id string) string {
	st.mu.Lock()
	defer st.mu.Unlock()
	if s, ok := st.state[id]; ok {
		return s
	}
	return stUnknown
}

// transition applies to txn id the change next(current) asks for, durably, and returns
// the state it ends in and whether next accepted. next returns the new state, or "" to
// refuse and keep the current one.
func (st *store) transition(id string, next func(cur string) string) (string, bool, error) {
	st.mu.Lock()
	defer st.mu.Unlock()
	cur, ok := st.state[id]
	if !ok {
		cur = stUnknown
	}
	to := next(cur)
	if to == "" {
		return cur, false, nil
	}
	if to == cur {
		return cur, true, nil
	}
	line, _ := json.Marshal(change{TxnID: id, State: to})
	if _, err := st.f.Write(append(line, '\n')); err != nil {
		return cur, false, err
	}
	if err := st.f.Sync(); err != nil {
		// Never retry a failed sync: what reached the disk is unknown. Stop.
		fmt.Fprintln(os.Stderr, "passive: sync failed, exiting:", err)
		os.Exit(1)
	}
	st.state[id] = to
	return to, true, nil
}

func (st *store) count() int {
	st.mu.Lock()
	defer st.mu.Unlock()
	return len(st.state)
}

func (st *store) snapshot() map[string]string {
	st.mu.Lock()
	defer st.mu.Unlock()
	m := make(map[string]string, len(st.state))
	for k, v := range st.state {
		m[k] = v
	}
	return m
}

func (st *store) close() { _ = st.f.Close() }

type server struct {
	st       *store
	noStatus bool
}

const bodyMaxBytes = 1 << 20

func (s *server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch {
	case r.Method == http.MethodPost && r.URL.Path == "/prepare":
		s.prepare(w, r)
	case r.Method == http.MethodPost && r.URL.Path == "/commit":
		s.phase2(w, r, stCommitted)
	case r.Method == http.MethodPost && r.URL.Path == "/rollback":
		s.phase2(w, r, stAborted)
	case r.Method == http.MethodGet && r.URL.Path == "/status" && !s.noStatus:
		id := r.URL.Query().Get("txn_id")
		if id == "" {
			writeJSON(w, http.StatusBadRequest, map[string]any{"error": map[string]string{"code": "missing_field", "message": "txn_id is required"}})
			return
		}
		writeJSON(w, http.StatusOK, map[string]string{"state": s.st.get(id)})
	case r.Method == http.MethodGet && r.URL.Path == "/states":
		writeJSON(w, http.StatusOK, s.st.snapshot())
	case r.Method == http.MethodGet && r.URL.Path == "/healthz":
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	default:
		http.NotFound(w, r)
	}
}

type request struct {
	TxnID   string          `json:"txn_id"`
	Payload json.RawMessage `json:"payload"`
}

func (s *server) decode(w http.ResponseWriter, r *http.Request) (request, bool) {
	var req request
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, bodyMaxBytes)).Decode(&req); err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]any{"error": map[string]string{"code": "malformed", "message": err.Error()}})
		return req, false
	}
	if req.TxnID == "" || strings.ContainsAny(req.TxnID, "\n\r") {
		writeJSON(w, http.StatusBadRequest, map[string]any{"error": map[string]string{"code": "invalid_field", "message": "txn_id: empty or has a line break"}})
		return req, false
	}
	return req, true
}

func (s *server) prepare(w http.ResponseWriter, r *http.Request) {
	req, ok := s.decode(w, r)
	if !ok {
		return
	}
	var p struct {
		NACK string `json:"nack"`
	}
	if len(req.Payload) > 0 {
		_ = json.Unmarshal(req.Payload, &p) // any other payload is accepted as it is
	}
	reason := ""
	st, _, err := s.st.transition(req.TxnID, func(cur string) string {
		switch {
		case cur == stAborted:
			reason = "rolled back already" // the rollback fenced this late prepare
			return ""
		case cur != stUnknown:
			return cur // a repeated prepare, or one after the commit: ACK again
		case p.NACK != "":
			reason = p.NACK
			return stAborted // it will never commit this one
		}
		return stPrepared
	})
	switch {
	case err != nil:
		writeJSON(w, http.StatusServiceUnavailable, map[string]any{"error": map[string]string{"code": "unavailable", "message": err.Error()}})
	case st == stPrepared || st == stCommitted:
		writeJSON(w, http.StatusOK, map[string]string{"vote": "ACK"})
	default:
		writeJSON(w, http.StatusOK, map[string]string{"vote": "NACK", "reason": reason})
	}
}

func (s *server) phase2(w http.ResponseWriter, r *http.Request, want string) {
	req, ok := s.decode(w, r)
	if !ok {
		return
	}
	st, accepted, err := s.st.transition(req.TxnID, func(cur string) string {
		switch {
		case want == stCommitted && (cur == stPrepared || cur == stCommitted):
			return stCommitted
		case want == stAborted && cur != stCommitted:
			return stAborted // also for a transaction never prepared: it fences a late prepare
		}
		return "" // commit of what it never prepared or aborted, rollback of a commit
	})
	switch {
	case err != nil:
		writeJSON(w, http.StatusServiceUnavailable, map[string]any{"error": map[string]string{"code": "unavailable", "message": err.Error()}})
	case !accepted:
		writeJSON(w, http.StatusConflict, map[string]string{"state": st})
	default:
		writeJSON(w, http.StatusOK, map[string]string{"state": st})
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
