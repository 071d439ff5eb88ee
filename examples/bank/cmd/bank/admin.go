package main

import (
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"io"
	"net"
	"net/http"
	"strings"

	"github.com/dtc-project/dtc/participant"
)

// adminAuth decides who may use the bank's own admin endpoints (lock and unlock an
// account): a client presenting the admin token (Authorization: Bearer, compared in
// constant time with its SHA-256, the only form kept), or a request signed with a key
// shared with the coordinator (the same signature as the participant protocol's). With
// neither configured, only clients on a loopback address may.
type adminAuth struct {
	tokenSum [sha256.Size]byte
	hasToken bool
	signed   *participant.Auth // its keys, if any, also admit signed requests
}

func newAdminAuth(token string, signed *participant.Auth) *adminAuth {
	a := &adminAuth{signed: signed}
	if token != "" {
		a.tokenSum, a.hasToken = sha256.Sum256([]byte(token)), true
	}
	return a
}

// open reports whether no credential is configured (loopback clients only).
func (a *adminAuth) open() bool { return !a.hasToken && !a.signed.Signed() }

// check returns "" if r (whose body is body) may act, else why not.
func (a *adminAuth) check(r *http.Request, body []byte) string {
	if tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok {
		if !a.hasToken {
			return "no admin token is configured (--admin-token-file)"
		}
		sum := sha256.Sum256([]byte(strings.TrimSpace(tok)))
		if subtle.ConstantTimeCompare(sum[:], a.tokenSum[:]) != 1 {
			return "wrong admin token"
		}
		return ""
	}
	if r.Header.Get(participant.HeaderSignature) != "" {
		if !a.signed.Signed() {
			return "no shared secret is configured (--secret-file)"
		}
		if err := a.signed.Verify(r, body); err != nil {
			return "signature refused: " + err.Error()
		}
		return ""
	}
	if a.open() {
		host, _, err := net.SplitHostPort(r.RemoteAddr)
		if ip := net.ParseIP(host); err == nil && ip != nil && ip.IsLoopback() {
			return ""
		}
		return "admin endpoints without --admin-token-file or --secret-file answer loopback clients only"
	}
	return "an admin token (Authorization: Bearer) or a request signed with the shared secret is required"
}

// wrap guards an admin handler: 401 with the reason unless check admits the request.
func (a *adminAuth) wrap(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, bodyMaxBytes))
		if err != nil {
			writeError(w, http.StatusRequestEntityTooLarge, "body_too_large", "request body too large")
			return
		}
		if why := a.check(r, body); why != "" {
			w.Header().Set("WWW-Authenticate", `Bearer realm="bank admin"`)
			writeError(w, http.StatusUnauthorized, "unauthorized", why)
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		next(w, r)
	}
}
