package transport

import (
	"crypto/tls"
	"errors"
	"fmt"

	"github.com/dtc-project/dtc/httpnet/internal/certs"
)

// ClientTLSConfig is the TLS configuration of a client of dtc's API or of dtc toward
// its participants: the CA that signed the server's certificate (PEM file; empty: the
// system's roots), and optionally a client certificate and key for mTLS.
func ClientTLSConfig(caFile, certFile, keyFile string) (*tls.Config, error) {
	c := &tls.Config{MinVersion: tls.VersionTLS12}
	if caFile != "" {
		pool, err := certs.LoadPool(caFile)
		if err != nil {
			return nil, err
		}
		c.RootCAs = pool
	}
	switch {
	case certFile != "" && keyFile != "":
		cert, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return nil, fmt.Errorf("httpnet: loading the client certificate %s and key %s: %w", certFile, keyFile, err)
		}
		c.Certificates = []tls.Certificate{cert}
	case certFile != "" || keyFile != "":
		return nil, errors.New("httpnet: a client certificate needs both the certificate and its key")
	}
	return c, nil
}
