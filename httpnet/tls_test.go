package httpnet_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dtc-project/dtc/client"
	"github.com/dtc-project/dtc/httpnet"
	"github.com/dtc-project/dtc/httpnet/apiserver"
	"github.com/dtc-project/dtc/httpnet/transport"
)

// testCA is a certificate authority made for one test, writing PEM files to dir.
type testCA struct {
	t    *testing.T
	dir  string
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	file string // the CA's certificate, PEM
}

var serial int64

func newTestCA(t *testing.T, name string) *testCA {
	t.Helper()
	ca := &testCA{t: t, dir: t.TempDir()}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial++
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	ca.cert, _ = x509.ParseCertificate(der)
	ca.key = key
	ca.file = ca.write(name+".pem", "CERTIFICATE", der)
	return ca
}

func (ca *testCA) write(name, typ string, der []byte) string {
	p := filepath.Join(ca.dir, name)
	if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		ca.t.Fatal(err)
	}
	return p
}

// issue makes a certificate for cn (a server one for 127.0.0.1 when server) and
// returns its certificate and key files.
func (ca *testCA) issue(cn string, server bool) (certFile, keyFile string) {
	ca.t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		ca.t.Fatal(err)
	}
	serial++
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	if server {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		tmpl.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1)}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		ca.t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		ca.t.Fatal(err)
	}
	return ca.write(cn+".pem", "CERTIFICATE", der), ca.write(cn+".key", "EC PRIVATE KEY", kder)
}

// The API over TLS: a verified client certificate is a client by its common name
// (cn: in the tokens file), a token still works, and a certificate from another CA is
// not taken.
func TestAPIOverTLSWithClientCertificates(t *testing.T) {
	ca, other := newTestCA(t, "ca"), newTestCA(t, "other-ca")
	srvCert, srvKey := ca.issue("dtc-api", true)
	opsCert, opsKey := ca.issue("ops.example", false)
	strangerCert, strangerKey := other.issue("ops.example", false)
	_, audit := apiserver.NewToken()
	creds, err := apiserver.ParseCredentials("t", strings.NewReader("admin ops cn:ops.example\nread audit "+audit+"\n"))
	if err != nil {
		t.Fatal(err)
	}
	c := startCoord(t, "", nil)
	c.waitReady()
	tc, err := apiserver.ServerTLSConfig(srvCert, srvKey, ca.file)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(apiserver.NewServer(c.rt, apiserver.ServerOptions{Auth: apiserver.NewAuth(creds)}))
	srv.TLS = tc
	srv.StartTLS()
	defer srv.Close()
	part, _ := ackParticipant(t)

	newClient := func(certFile, keyFile, token string) *client.Client {
		ctc, err := transport.ClientTLSConfig(ca.file, certFile, keyFile)
		if err != nil {
			t.Fatal(err)
		}
		cli, err := client.New(srv.URL, client.Options{Token: token, MaxRetries: -1,
			HTTPClient: &http.Client{Transport: &http.Transport{TLSClientConfig: ctc}}})
		if err != nil {
			t.Fatal(err)
		}
		return cli
	}
	v, err := newClient(opsCert, opsKey, "").Submit(context.Background(), client.Request{Participants: []client.Participant{{URL: part}}})
	if err != nil || v.State != client.StateCommitted || v.Owner != "ops" {
		t.Fatalf("a client certificate mapped to admin: %v %+v", err, v)
	}
	if _, err := newClient("", "", "").Get(context.Background(), v.ID); !strings.Contains(err.Error(), "401") {
		t.Fatalf("no certificate, no token: %v", err)
	}
	if _, err := newClient("", "", "dtc_wrong").Get(context.Background(), v.ID); !strings.Contains(err.Error(), "401") {
		t.Fatalf("a wrong token: %v", err)
	}
	// Go's TLS client does not even offer a certificate the server's CA did not sign;
	// the request then has no credentials.
	_, err = newClient(strangerCert, strangerKey, "").Get(context.Background(), v.ID)
	if err == nil || (strings.Contains(err.Error(), "HTTP") && !strings.Contains(err.Error(), "401")) {
		t.Fatalf("a certificate of another CA: %v", err)
	}
	if _, err := apiserver.ServerTLSConfig(srvCert, "", ""); err == nil {
		t.Fatal("a certificate without its key")
	}
	if _, err := transport.ClientTLSConfig(srvKey, "", ""); err == nil || !strings.Contains(err.Error(), "no PEM certificate") {
		t.Fatalf("a CA file without a certificate: %v", err)
	}
}

// dtc reaches https:// participants with the CA it is given and presents its client
// certificate; a participant that requires one gets it. Without the CA, the prepare
// fails and the transaction aborts.
func TestTransportToParticipantsOverMutualTLS(t *testing.T) {
	ca := newTestCA(t, "ca")
	partCert, partKey := ca.issue("participant", true)
	dtcCert, dtcKey := ca.issue("dtc", false)
	ptc, err := apiserver.ServerTLSConfig(partCert, partKey, ca.file)
	if err != nil {
		t.Fatal(err)
	}
	ptc.ClientAuth = tls.RequireAndVerifyClientCert
	var clientCN string
	psrv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		clientCN = r.TLS.PeerCertificates[0].Subject.CommonName
		if strings.HasSuffix(r.URL.Path, "/prepare") {
			_, _ = io.WriteString(w, `{"vote":"ACK"}`)
			return
		}
		_, _ = io.WriteString(w, `{"state":"committed"}`)
	}))
	psrv.TLS = ptc
	psrv.StartTLS()
	defer psrv.Close()
	part := psrv.URL + "/prepare"

	dtcTLS, err := transport.ClientTLSConfig(ca.file, dtcCert, dtcKey)
	if err != nil {
		t.Fatal(err)
	}
	c := startCoord(t, "", func(o *httpnet.Options) { o.Transport.TLS = dtcTLS })
	c.waitReady()
	v, err := c.cli.Submit(context.Background(), client.Request{Participants: []client.Participant{{URL: part}}})
	if err != nil || v.State != client.StateCommitted || clientCN != "dtc" {
		t.Fatalf("over mTLS: %v %+v, participant saw client %q", err, v, clientCN)
	}
	c.restart(func(o *httpnet.Options) { o.Transport.TLS = nil })
	c.waitReady()
	v, err = c.cli.Submit(context.Background(), client.Request{Participants: []client.Participant{{URL: part}}})
	if err != nil || v.State != client.StateAborted || v.Participants[0].Vote != "ERROR" {
		t.Fatalf("without the participants' CA: %v %+v", err, v)
	}
}
