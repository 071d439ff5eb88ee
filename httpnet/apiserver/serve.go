package apiserver

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/dtc-project/dtc/httpnet"
)

// ServeOptions configure Serve.
type ServeOptions struct {
	// Grace bounds how long in-flight requests may take to finish after shutdown
	// begins. Default 10s.
	Grace time.Duration
	// Logger gets the server's logs. Default slog.Default().
	Logger *slog.Logger
	// TLS, when set, serves the API over TLS with this configuration
	// (ServerTLSConfig: its certificate, and client certificates for mTLS).
	TLS *tls.Config
	// ReadHeaderTimeout bounds reading a request's headers. Default 10s.
	ReadHeaderTimeout time.Duration
	// ReadTimeout bounds reading a whole request, its body included: a client that
	// trickles its body is cut off. Default 30s.
	ReadTimeout time.Duration
	// WriteTimeout bounds a request from the end of its headers to the end of its
	// answer. A submit that waits for its outcome legitimately takes up to its
	// prepare deadline and then a log sync, so this must exceed the longest prepare
	// deadline a request may ask for (dtc serve checks it). Default 2m.
	WriteTimeout time.Duration
	// IdleTimeout bounds a keep-alive connection's wait for its next request.
	// Default 2m.
	IdleTimeout time.Duration
}

func (o *ServeOptions) setDefaults() {
	if o.Grace <= 0 {
		o.Grace = 10 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.ReadHeaderTimeout <= 0 {
		o.ReadHeaderTimeout = 10 * time.Second
	}
	if o.ReadTimeout <= 0 {
		o.ReadTimeout = 30 * time.Second
	}
	if o.WriteTimeout <= 0 {
		o.WriteTimeout = 2 * time.Minute
	}
	if o.IdleTimeout <= 0 {
		o.IdleTimeout = 2 * time.Minute
	}
}

// NewHTTPServer is the http.Server that Serve runs api with: its timeouts, header
// limit and TLS configuration are o's.
func NewHTTPServer(api http.Handler, o ServeOptions) *http.Server {
	o.setDefaults()
	return &http.Server{
		Handler:           api,
		ReadHeaderTimeout: o.ReadHeaderTimeout,
		ReadTimeout:       o.ReadTimeout,
		WriteTimeout:      o.WriteTimeout,
		IdleTimeout:       o.IdleTimeout,
		MaxHeaderBytes:    64 << 10,
		TLSConfig:         o.TLS,
		ErrorLog:          slog.NewLogLogger(o.Logger.Handler(), slog.LevelDebug),
	}
}

// Serve answers the API on ln until ctx ends (SIGTERM, SIGINT), then shuts down
// gracefully: it stops accepting connections, lets the requests being served finish for
// up to Grace (a client waiting for a decision usually gets it), then closes rt: the
// shards stop and what the log holds pending is made durable. Transactions still in
// flight resume from the log at the next start. It returns nil after a clean shutdown.
func Serve(ctx context.Context, ln net.Listener, rt *httpnet.Runtime, api http.Handler, o ServeOptions) error {
	o.setDefaults()
	hs := NewHTTPServer(api, o)
	served := make(chan error, 1)
	go func() {
		if o.TLS != nil {
			served <- hs.ServeTLS(ln, "", "") // the certificate is in o.TLS
			return
		}
		served <- hs.Serve(ln)
	}()

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
