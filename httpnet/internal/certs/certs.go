// Package certs reads the CA files of the daemon's TLS settings, for the API server
// (client CAs) and the transport (participants' CAs) alike.
package certs

import (
	"crypto/x509"
	"fmt"
	"os"
)

// LoadPool reads the PEM certificates of file into a new pool; a file that holds none
// is an error.
func LoadPool(file string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("httpnet: reading the CA file: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("httpnet: %s holds no PEM certificate", file)
	}
	return pool, nil
}
