package apiserver

import (
	"bufio"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
)

// Role is what an API client may do. Each role includes nothing of another: a read
// client cannot begin a transaction, a submit client cannot read others'.
type Role uint8

const (
	// RoleSubmit begins transactions and reads the ones it began (its owner name).
	RoleSubmit Role = iota + 1
	// RoleRead reads every transaction, the list and /metrics; it begins none.
	RoleRead
	// RoleAdmin may do everything, the administrative endpoints included.
	RoleAdmin
)

func (r Role) String() string {
	switch r {
	case RoleSubmit:
		return "submit"
	case RoleRead:
		return "read"
	case RoleAdmin:
		return "admin"
	}
	return fmt.Sprintf("role(%d)", uint8(r))
}

// ParseRole reads a role's name: submit, read or admin.
func ParseRole(s string) (Role, error) {
	switch s {
	case "submit":
		return RoleSubmit, nil
	case "read":
		return RoleRead, nil
	case "admin":
		return RoleAdmin, nil
	}
	return 0, fmt.Errorf("httpnet: unknown role %q: use submit, read or admin", s)
}

// Principal is an authenticated API client: its name (the owner of the transactions
// it begins) and its role.
type Principal struct {
	Name string
	Role Role
}

// ErrTokensFile: the tokens file is malformed; the error names the line.
var ErrTokensFile = errors.New("httpnet: bad tokens file")

// tokenNameMaxBytes bounds a principal's name (it is stored with every transaction).
const tokenNameMaxBytes = 64

// tokensFileMaxBytes bounds the tokens file.
const tokensFileMaxBytes = 4 << 20

// Credentials are the API's clients, as read from a tokens file: bearer tokens, kept
// as their SHA-256 only, and client-certificate common names (mTLS). A Credentials is
// never modified once made; Auth swaps a whole new one in on reload.
//
// The tokens file has one client per line; '#' starts a comment, blank lines are
// ignored:
//
//	# role   name   credential
//	submit   shop   sha256:<64 hex digits: SHA-256 of the token>
//	read     audit  sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08
//	admin    ops    cn:ops.example.com
//
// A sha256: credential is a bearer token (Authorization: Bearer <token>); a cn:
// credential is a client certificate, verified against the server's client CA, whose
// subject common name is the one given. The role is submit, read or admin; the name
// (letters, digits, . _ - :, at most 64 bytes) is the owner of the transactions the
// client begins, and is unique in the file. `dtc token` makes a token and its line.
type Credentials struct {
	tokens map[[sha256.Size]byte]tokenEntry
	certs  map[string]Principal
}

type tokenEntry struct {
	sum [sha256.Size]byte
	p   Principal
}

// Len is the number of clients.
func (c *Credentials) Len() int { return len(c.tokens) + len(c.certs) }

// ParseCredentials reads a tokens file's content (see Credentials); src names it in
// errors.
func ParseCredentials(src string, r io.Reader) (*Credentials, error) {
	c := &Credentials{tokens: map[[sha256.Size]byte]tokenEntry{}, certs: map[string]Principal{}}
	names := map[string]int{}
	sc := bufio.NewScanner(io.LimitReader(r, tokensFileMaxBytes))
	sc.Buffer(make([]byte, 4096), 64<<10)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		bad := func(format string, args ...any) error {
			return fmt.Errorf("%w: %s line %d: %s", ErrTokensFile, src, n, fmt.Sprintf(format, args...))
		}
		if len(f) != 3 {
			return nil, bad("want 3 fields (role name credential), got %d", len(f))
		}
		role, err := ParseRole(f[0])
		if err != nil {
			return nil, bad("role %q: use submit, read or admin", f[0])
		}
		name := f[1]
		if err := checkPrincipalName(name); err != nil {
			return nil, bad("name %q: %v", name, err)
		}
		if prev, dup := names[name]; dup {
			return nil, bad("name %q is used on line %d already", name, prev)
		}
		names[name] = n
		p := Principal{Name: name, Role: role}
		switch kind, val, _ := strings.Cut(f[2], ":"); kind {
		case "sha256":
			var h [sha256.Size]byte
			if len(val) != 2*sha256.Size {
				return nil, bad("sha256: want %d hex digits, got %d", 2*sha256.Size, len(val))
			}
			if _, err := hex.Decode(h[:], []byte(val)); err != nil {
				return nil, bad("sha256: %v", err)
			}
			if _, dup := c.tokens[h]; dup {
				return nil, bad("the same token is listed twice")
			}
			c.tokens[h] = tokenEntry{sum: h, p: p}
		case "cn":
			if val == "" {
				return nil, bad("cn: empty common name")
			}
			if _, dup := c.certs[val]; dup {
				return nil, bad("common name %q is listed twice", val)
			}
			c.certs[val] = p
		default:
			return nil, bad("credential %q: want sha256:<hex of the token's SHA-256> or cn:<certificate common name>", f[2])
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrTokensFile, src, err)
	}
	return c, nil
}

func checkPrincipalName(s string) error {
	if s == "" || len(s) > tokenNameMaxBytes {
		return fmt.Errorf("must be 1 to %d bytes", tokenNameMaxBytes)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-' || c == ':') {
			return fmt.Errorf("byte %d (%q) is not allowed: use letters, digits and . _ - :", i, c)
		}
	}
	return nil
}

// LoadCredentials reads a tokens file.
func LoadCredentials(path string) (*Credentials, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("httpnet: tokens file: %w", err)
	}
	defer f.Close()
	return ParseCredentials(path, f)
}

// NewToken returns a fresh random bearer token (256 bits) and its tokens-file
// credential, sha256:<hex>.
func NewToken() (token, credential string) {
	var b [32]byte
	_, _ = rand.Read(b[:])
	token = "dtc_" + base64.RawURLEncoding.EncodeToString(b[:])
	return token, TokenCredential(token)
}

// TokenCredential is the tokens-file credential of a token: sha256:<hex>.
func TokenCredential(token string) string {
	h := sha256.Sum256([]byte(token))
	return "sha256:" + hex.EncodeToString(h[:])
}

// Auth authenticates API requests against Credentials that can be replaced while the
// server runs (dtc serve reloads its tokens file on SIGHUP).
type Auth struct {
	creds atomic.Pointer[Credentials]
}

// NewAuth returns an Auth with c.
func NewAuth(c *Credentials) *Auth {
	a := &Auth{}
	a.creds.Store(c)
	return a
}

// Replace swaps the credentials in: requests from now on are judged by c.
func (a *Auth) Replace(c *Credentials) { a.creds.Store(c) }

// authOutcome is why a request has no principal.
type authOutcome uint8

const (
	authOK      authOutcome = iota
	authMissing             // no credentials at all
	authInvalid             // a token or certificate that is not (or no longer) known
)

// authenticate finds the client of r: by its bearer token, else by its verified client
// certificate's common name.
func (a *Auth) authenticate(r *http.Request) (Principal, authOutcome) {
	c := a.creds.Load()
	if h := r.Header["Authorization"]; len(h) > 0 {
		scheme, token, ok := strings.Cut(h[0], " ")
		if !ok || !strings.EqualFold(scheme, "Bearer") || len(h) > 1 {
			return Principal{}, authInvalid
		}
		token = strings.TrimSpace(token)
		sum := sha256.Sum256([]byte(token))
		// The map is keyed by the hash, so the lookup's timing tells nothing usable
		// about the token; the entry's own hash is compared again in constant time.
		if e, ok := c.tokens[sum]; ok && subtle.ConstantTimeCompare(e.sum[:], sum[:]) == 1 {
			return e.p, authOK
		}
		return Principal{}, authInvalid
	}
	if r.TLS != nil && len(r.TLS.VerifiedChains) > 0 && len(r.TLS.VerifiedChains[0]) > 0 {
		cn := r.TLS.VerifiedChains[0][0].Subject.CommonName
		if p, ok := c.certs[cn]; ok {
			return p, authOK
		}
		return Principal{}, authInvalid
	}
	return Principal{}, authMissing
}

// noAuth is the principal of every request when the server has no Auth.
var noAuth = Principal{Role: RoleAdmin}

// authorize answers 401 (no or unknown credentials) or 403 (a role not among allowed)
// and reports false, or returns the request's client. what words the request for
// the 403's message.
func (s *Server) authorize(w http.ResponseWriter, r *http.Request, what string, allowed ...Role) (Principal, bool) {
	if s.o.Auth == nil {
		return noAuth, true
	}
	p, outcome := s.o.Auth.authenticate(r)
	switch outcome {
	case authMissing:
		w.Header().Set("WWW-Authenticate", `Bearer realm="dtc"`)
		s.fail(w, http.StatusUnauthorized, CodeUnauthorized,
			"authentication required: send the header Authorization: Bearer TOKEN (or a client certificate)")
		return p, false
	case authInvalid:
		w.Header().Set("WWW-Authenticate", `Bearer realm="dtc", error="invalid_token"`)
		s.fail(w, http.StatusUnauthorized, CodeUnauthorized, "the token or client certificate is not known to this coordinator")
		return p, false
	}
	for _, a := range allowed {
		if p.Role == a {
			return p, true
		}
	}
	s.fail(w, http.StatusForbidden, CodeForbidden, fmt.Sprintf("client %q (role %s) may not %s", p.Name, p.Role, what))
	return p, false
}

// getAuthorized serves GET /v1/transactions/{id}. A query by a participant's id
// (client id, '@', nonce) needs no credentials: knowing the nonce proves it was told
// of the transaction, and a wrong nonce is answered 404 like an unknown id. Without
// credentials it gets protocol.CoordinatorTxn: enough to resolve a transaction in doubt
// (protocol.InDoubtVerdict reads id, txn_id and state), nothing more.
func (s *Server) getAuthorized(w http.ResponseWriter, r *http.Request, id string) {
	if s.o.Auth != nil && strings.IndexByte(id, '@') >= 0 {
		if _, has := r.Header["Authorization"]; !has && (r.TLS == nil || len(r.TLS.VerifiedChains) == 0) {
			s.get(w, r, id, Principal{}, true)
			return
		}
	}
	if p, ok := s.authorize(w, r, "read transactions", RoleSubmit, RoleRead, RoleAdmin); ok {
		s.get(w, r, id, p, false)
	}
}
