package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dtc-project/dtc/client"
	"github.com/dtc-project/dtc/httpnet/transport"
)

// writeCerts makes a CA, a server certificate for 127.0.0.1 and a client certificate
// with common name cn, as PEM files in dir.
func writeCerts(t *testing.T, dir, cn string) (ca, srvCert, srvKey, cliCert, cliKey string) {
	t.Helper()
	write := func(name, typ string, der []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	newKey := func() *ecdsa.PrivateKey {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	caKey := newKey()
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test ca"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	issue := func(serial int64, name string, server bool) (string, string) {
		k := newKey()
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: name},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
		if server {
			tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
			tmpl.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1)}
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &k.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		kder, _ := x509.MarshalECPrivateKey(k)
		return write(name+".pem", "CERTIFICATE", der), write(name+".key", "EC PRIVATE KEY", kder)
	}
	ca = write("ca.pem", "CERTIFICATE", caDER)
	srvCert, srvKey = issue(2, "dtc-server", true)
	cliCert, cliKey = issue(3, cn, false)
	return ca, srvCert, srvKey, cliCert, cliKey
}

// dtc serve over HTTPS with client certificates: the CLI reaches it with --ca-cert
// and authenticates by --cert/--key (cn: in the tokens file) or by a token.
func TestServeTLSWithClientCertificates(t *testing.T) {
	dir := t.TempDir()
	ca, srvCert, srvKey, cliCert, cliKey := writeCerts(t, dir, "ops.example")
	tokens := filepath.Join(dir, "tokens")
	if err := os.WriteFile(tokens, []byte("admin ops cn:ops.example\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, reader, _ := runCLI(t, "token", "--role", "read", "--name", "audit", "--append", tokens)
	if code != 0 {
		t.Fatal("dtc token")
	}
	addr := freeAddr(t)
	startProc(t, "dtc", "dtc", "serve", "--listen", addr, "--data-dir", t.TempDir(), "--tokens", tokens,
		"--tls-cert", srvCert, "--tls-key", srvKey, "--client-ca", ca)
	url := "https://" + addr
	tc, err := transport.ClientTLSConfig(ca, "", "")
	if err != nil {
		t.Fatal(err)
	}
	cli, err := client.New(url, client.Options{HTTPClient: &http.Client{Transport: &http.Transport{TLSClientConfig: tc}}})
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "dtc serves HTTPS", func() bool { return cli.Ready(context.Background()) == nil })
	part := ackServer(t)

	code, out, stderr := runCLI(t, "submit", "--coordinator", url, "--ca-cert", ca, "--cert", cliCert, "--key", cliKey, "--id", "tls-1", part)
	if code != exitOK || !strings.Contains(out, "committed") {
		t.Fatalf("submit with a client certificate: exit %d: %s %s", code, out, stderr)
	}
	t.Setenv("DTC_TOKEN", strings.TrimSpace(reader))
	code, out, stderr = runCLI(t, "get", "--coordinator", url, "--ca-cert", ca, "--json", "tls-1")
	if code != exitOK || !strings.Contains(out, `"owner": "ops"`) {
		t.Fatalf("get with a token over HTTPS: exit %d: %s %s", code, out, stderr)
	}
	t.Setenv("DTC_TOKEN", "")
	code, _, stderr = runCLI(t, "get", "--coordinator", url, "--ca-cert", ca, "tls-1")
	if code != exitError || !strings.Contains(stderr, "401") {
		t.Fatalf("neither certificate nor token: exit %d: %s", code, stderr)
	}
	code, _, stderr = runCLI(t, "get", "--coordinator", url, "tls-1")
	if code != exitError || !strings.Contains(stderr, "certificate") {
		t.Fatalf("without the CA: exit %d: %s", code, stderr)
	}
	code, _, stderr = runCLI(t, "get", "--coordinator", url, "--cert", cliCert, "tls-1")
	if code != exitError || !strings.Contains(stderr, "both the certificate and its key") {
		t.Fatalf("--cert without --key: exit %d: %s", code, stderr)
	}
}

func TestLoopbackAddr(t *testing.T) {
	for addr, want := range map[string]bool{
		"127.0.0.1:7070": true, "127.9.0.1:0": true, "[::1]:7070": true, "localhost:7070": true, "LocalHost:1": true,
		":7070": false, "0.0.0.0:7070": false, "[::]:7070": false, "10.0.0.5:7070": false, "example.com:7070": false,
		"[::ffff:127.0.0.1]:1": true, "nonsense": false,
	} {
		if got := loopbackAddr(addr); got != want {
			t.Errorf("loopbackAddr(%q) = %v, want %v", addr, got, want)
		}
	}
}
