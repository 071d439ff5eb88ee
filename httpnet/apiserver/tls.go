package apiserver

import (
	"crypto/tls"
	"errors"
	"fmt"

	"github.com/dtc-project/dtc/httpnet/internal/certs"
)

// ServerTLSConfig is the API's TLS configuration: its certificate and key (PEM files),
// and, when clientCA is given, client certificates verified against that CA (mTLS).
// A client without a certificate may still connect and authenticate by token; one
// whose certificate does not verify is refused in the handshake. TLS 1.2 at least.
func ServerTLSConfig(certFile, keyFile, clientCA string) (*tls.Config, error) {
	if certFile == "" || keyFile == "" {
		return nil, errors.New("httpnet: TLS needs a certificate and its key")
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("httpnet: loading the certificate %s and key %s: %w", certFile, keyFile, err)
	}
	c := &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}}
	if clientCA != "" {
		pool, err := certs.LoadPool(clientCA)
		if err != nil {
			return nil, err
		}
		c.ClientCAs = pool
		c.ClientAuth = tls.VerifyClientCertIfGiven
	}
	return c, nil
}
