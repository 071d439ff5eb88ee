package participant

import (
	"log"
	"net/http"
	"time"
)

// ServerOptions are the limits of the http.Server NewServer returns. Zero fields take
// the defaults of DefaultServerOptions.
type ServerOptions struct {
	// ReadHeaderTimeout bounds reading a request's headers (slowloris).
	ReadHeaderTimeout time.Duration
	// ReadTimeout bounds reading a whole request, body included: a client that trickles
	// a body cannot hold a connection and a handler goroutine for longer.
	ReadTimeout time.Duration
	// WriteTimeout bounds a request from the end of its headers to the end of its
	// answer. It must outlast the slowest answer: a prepare waits for its record to be
	// durable, and for the Service.
	WriteTimeout time.Duration
	// IdleTimeout bounds how long a keep-alive connection waits for its next request.
	IdleTimeout time.Duration
	// MaxHeaderBytes bounds a request's headers.
	MaxHeaderBytes int
	// ErrorLog gets the server's own errors (nil: the log package's).
	ErrorLog *log.Logger
}

// DefaultServerOptions: 10 s for the headers, 30 s for the whole request, 30 s for the
// answer, 2 min idle, 64 KiB of headers.
func DefaultServerOptions() ServerOptions {
	return ServerOptions{
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
	}
}

// NewServer returns an http.Server for h (NewHandler's, or a mux around it) with the
// timeouts of o, so that no client can hold a connection open without bound. Serve it
// with Serve or ListenAndServe and stop it with Shutdown as any http.Server.
func NewServer(h http.Handler, o ServerOptions) *http.Server {
	d := DefaultServerOptions()
	if o.ReadHeaderTimeout <= 0 {
		o.ReadHeaderTimeout = d.ReadHeaderTimeout
	}
	if o.ReadTimeout <= 0 {
		o.ReadTimeout = d.ReadTimeout
	}
	if o.WriteTimeout <= 0 {
		o.WriteTimeout = d.WriteTimeout
	}
	if o.IdleTimeout <= 0 {
		o.IdleTimeout = d.IdleTimeout
	}
	if o.MaxHeaderBytes <= 0 {
		o.MaxHeaderBytes = d.MaxHeaderBytes
	}
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: o.ReadHeaderTimeout,
		ReadTimeout:       o.ReadTimeout,
		WriteTimeout:      o.WriteTimeout,
		IdleTimeout:       o.IdleTimeout,
		MaxHeaderBytes:    o.MaxHeaderBytes,
		ErrorLog:          o.ErrorLog,
	}
}
