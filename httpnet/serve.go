package httpnet

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"
)

// ServeOptions configure Serve.
type ServeOptions struct {
	// Grace bounds how long in-flight requests may take to finish after shutdown
	// begins. Default 10s.
	Grace time.Duration
	// Logger gets the server's logs. Default slog.Default().
	Logger *slog.Logger
}

// Serve answers the API on ln until ctx ends (SIGTERM, SIGINT), then shuts down
// gracefully: it stops accepting connections, lets the requests being served finish for
// up to Grace (a client waiting for a decision usually gets it), then closes rt: the
// shards stop and what the log holds pending is made durable. Transactions still in
// flight resume from the log at the next start. It returns nil after a clean shutdown.
func Serve(ctx context.Context, ln net.Listener, rt *Runtime, api http.Handler, o ServeOptions) error {
	if o.Grace <= 0 {
		o.Grace = 10 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	hs := &http.Server{
		Handler:           api,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(o.Logger.Handler(), slog.LevelDebug),
	}
	served := make(chan error, 1)
	go func() { served <- hs.Serve(ln) }()

	var serveErr error
	select {
	case <-ctx.Done():
		o.Logger.Info("shutting down: no new connections; waiting for requests in flight", "grace", o.Grace)
	case serveErr = <-served:
		o.Logger.Error("the API server stopped", "error", serveErr)
	}
	sctx, cancel := context.WithTimeout(context.Background(), o.Grace)
	defer cancel()
	if err := hs.Shutdown(sctx); err != nil {
		o.Logger.Warn("requests still in flight after the grace period; closing their connections", "error", err)
		_ = hs.Close()
	}
	if serveErr == nil {
		if err := <-served; err != nil && !errors.Is(err, http.ErrServerClosed) {
			serveErr = err
		}
	}
	if err := rt.Close(); err != nil {
		return err
	}
	if serveErr != nil && !errors.Is(serveErr, http.ErrServerClosed) {
		return fmt.Errorf("httpnet: serving the API: %w", serveErr)
	}
	o.Logger.Info("stopped cleanly")
	return nil
}
