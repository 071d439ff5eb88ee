// Command bank is the example account service: a dtc participant over the bank package,
// with its log in --data-dir.
//
//	bank --listen 127.0.0.1:9001 --data-dir data/bank1 --accounts alice=100000,bob=100000
//
// It serves the participant protocol (POST /prepare, /commit, /rollback, GET /status)
// plus GET /accounts, POST /accounts/{name}/lock and /unlock (admin: --admin-token-file,
// a request signed with --secret-file, or else loopback clients only), GET /healthz and GET /stats
// (the participant library's counters: refused requests, in-doubt queries). A prepare
// payload's "hold_ms" makes it wait before voting, to show a prepare timeout. It stops
// gracefully on SIGTERM or SIGINT, and exits non-zero if its log fails.
//
// With --secret-file (the file given to dtc serve --participant-secret-file) it takes
// prepares, commits, rollbacks and batches only when dtc signed them; it takes prepares
// only from the coordinators of --trust-coordinator (default: --coordinator). Its server
// bounds every connection (--read-header-timeout, --read-timeout, --write-timeout,
// --idle-timeout).
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/spf13/pflag"

	"github.com/dtc-project/dtc/examples/bank"
	"github.com/dtc-project/dtc/internal/dirlock"
	"github.com/dtc-project/dtc/internal/maxprocs"
	"github.com/dtc-project/dtc/locks"
	"github.com/dtc-project/dtc/participant"
	"github.com/dtc-project/dtc/wal"
)

func main() {
	// One P more than there are cores: an fdatasync of the bank's log holds its P while
	// it blocks, until sysmon hands it on (see package maxprocs). Left alone when
	// GOMAXPROCS is set in the environment.
	maxprocs.Raise()
	if err := run(os.Args[1:], os.Stderr); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return
		}
		fmt.Fprintln(os.Stderr, "bank:", err)
		os.Exit(1)
	}
}

func run(args []string, stderr io.Writer) error {
	flags := pflag.NewFlagSet("bank", pflag.ContinueOnError)
	flags.SetOutput(stderr)
	listen := flags.String("listen", "127.0.0.1:9001", "address to serve on")
	dataDir := flags.String("data-dir", "data/bank", "directory of the bank's log")
	accounts := flags.String("accounts", "alice=100000,bob=100000", "initial balances in cents, name=balance,…; used only when --data-dir is fresh")
	coordinator := flags.String("coordinator", "http://127.0.0.1:7070", "coordinator asked about in-doubt transactions whose prepare named none")
	inDoubtAfter := flags.Duration("in-doubt-after", 30*time.Second, "a transaction prepared this long without phase 2 is asked about")
	resolveEvery := flags.Duration("resolve-interval", 5*time.Second, "how often to look for in-doubt transactions")
	logLevel := flags.String("log-level", "info", "debug, info, warn or error")
	secretFile := flags.String("secret-file", "", "keys shared with dtc (dtc serve --participant-secret-file): only requests signed with one of them may prepare, commit, roll back or batch")
	window := flags.Duration("signature-window", participant.DefaultSignatureWindow, "a signature made longer ago (or ahead) than this is refused: replays, and clocks too far apart")
	trusted := flags.StringSlice("trust-coordinator", nil, "base URL of a coordinator whose prepares are taken (repeatable; default: --coordinator); any: take every coordinator")
	lockPolicy := flags.String("lock-policy", "none", "locks on the accounts a transfer touches, from prepare to phase 2: none, no-wait (a conflict votes NACK), wait (waits, reported to the coordinator), wound-wait (an older transaction aborts a younger holder) or occ (prepare checks the versions in the payload's \"reads\")")
	tokenFile := flags.String("coordinator-token-file", "", "file holding a bearer token sent with the in-doubt queries to the coordinator")
	adminTokenFile := flags.String("admin-token-file", "", "file holding the token (Authorization: Bearer) that lock and unlock require; a request signed with --secret-file is admitted too; with neither, only loopback clients may use them")
	def := participant.DefaultServerOptions()
	readHeaderTimeout := flags.Duration("read-header-timeout", def.ReadHeaderTimeout, "longest time to read a request's headers")
	readTimeout := flags.Duration("read-timeout", def.ReadTimeout, "longest time to read a whole request, body included")
	writeTimeout := flags.Duration("write-timeout", bank.HoldMax+30*time.Second, "longest time from a request's headers to the end of its answer (must outlast hold_ms, at most "+bank.HoldMax.String()+")")
	idleTimeout := flags.Duration("idle-timeout", def.IdleTimeout, "longest time a keep-alive connection waits for its next request")
	if err := flags.Parse(args); err != nil {
		return err
	}
	if flags.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", flags.Args())
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		return fmt.Errorf("--log-level: %w", err)
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	initial, err := bank.ParseAccounts(*accounts)
	if err != nil {
		return fmt.Errorf("--accounts: %w", err)
	}
	policy, err := locks.ParsePolicy(*lockPolicy)
	if err != nil {
		return fmt.Errorf("--lock-policy: %w", err)
	}
	var keys []participant.Key
	if *secretFile != "" {
		if keys, err = participant.ReadKeyFile(*secretFile); err != nil {
			return fmt.Errorf("--secret-file: %w", err)
		}
	}
	trust := *trusted
	switch {
	case len(trust) == 1 && trust[0] == "any":
		trust = nil
	case len(trust) == 0 && *coordinator != "":
		trust = []string{*coordinator}
	}
	for _, c := range trust {
		if _, err := participant.NormalizeCoordinatorURL(c); err != nil {
			return fmt.Errorf("--trust-coordinator: %w", err)
		}
	}
	var token string
	if *tokenFile != "" {
		data, err := os.ReadFile(*tokenFile)
		if err != nil {
			return fmt.Errorf("--coordinator-token-file: %w", err)
		}
		if token = strings.TrimSpace(string(data)); token == "" || strings.ContainsAny(token, " \t\r\n") {
			return fmt.Errorf("--coordinator-token-file %s: want one token without white space", *tokenFile)
		}
	}
	var adminToken string
	if *adminTokenFile != "" {
		data, err := os.ReadFile(*adminTokenFile)
		if err != nil {
			return fmt.Errorf("--admin-token-file: %w", err)
		}
		if adminToken = strings.TrimSpace(string(data)); adminToken == "" || strings.ContainsAny(adminToken, " \t\r\n") {
			return fmt.Errorf("--admin-token-file %s: want one token without white space", *adminTokenFile)
		}
	}
	for name, d := range map[string]time.Duration{"--read-header-timeout": *readHeaderTimeout, "--read-timeout": *readTimeout, "--write-timeout": *writeTimeout, "--idle-timeout": *idleTimeout, "--signature-window": *window} {
		if d <= 0 {
			return fmt.Errorf("%s %v: must be positive", name, d)
		}
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	unlock, err := dirlock.Lock(*dataDir)
	if err != nil {
		return err
	}
	defer unlock()
	fatal := make(chan error, 1)
	a, err := newApp(config{
		FS:                  wal.OSFS(),
		DataDir:             *dataDir,
		Accounts:            initial,
		Coordinator:         *coordinator,
		InDoubtAfter:        *inDoubtAfter,
		ResolveInterval:     *resolveEvery,
		Logger:              log,
		Keys:                keys,
		SignatureWindow:     *window,
		TrustedCoordinators: trust,
		CoordinatorToken:    token,
		AdminToken:          adminToken,
		LockPolicy:          policy,
		SelfURL:             "http://" + *listen + "/prepare",
		OnFatal: func(err error) {
			select {
			case fatal <- err:
			default:
			}
		},
	})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return errors.Join(err, a.Close())
	}
	srv := participant.NewServer(a.handler, participant.ServerOptions{
		ReadHeaderTimeout: *readHeaderTimeout,
		ReadTimeout:       *readTimeout,
		WriteTimeout:      *writeTimeout,
		IdleTimeout:       *idleTimeout,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	})

	var wg sync.WaitGroup
	resolverCtx, stopResolver := context.WithCancel(context.Background())
	wg.Go(func() { a.resolver.Run(resolverCtx) })
	served := make(chan error, 1)
	wg.Go(func() { served <- srv.Serve(ln) })
	log.Info("bank: listening", "addr", ln.Addr().String())

	// A participant whose log refused a record stops answering (503) for good: its
	// memory may be ahead of its log, and only a restart, which rebuilds the state from
	// the log, is safe. Exit so that the service manager restarts it.
	logFailed := make(chan error, 1)
	wg.Go(func() {
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for {
			select {
			case <-resolverCtx.Done():
				return
			case <-tick.C:
				if err := a.p.Err(); err != nil {
					logFailed <- fmt.Errorf("bank: participant stopped: %w", err)
					return
				}
			}
		}
	})

	var runErr error
	select {
	case <-ctx.Done():
		log.Info("bank: shutting down")
	case runErr = <-fatal:
	case runErr = <-logFailed:
	case runErr = <-served:
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		log.Warn("bank: shutdown", "err", err)
	}
	stopResolver()
	wg.Wait()
	if err := a.Close(); err != nil && runErr == nil {
		runErr = err
	}
	if errors.Is(runErr, http.ErrServerClosed) {
		runErr = nil
	}
	return runErr
}
