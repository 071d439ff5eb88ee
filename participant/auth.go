package participant

import (
	"bufio"
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Request signing: only the coordinator, which holds a secret shared with the
// participant, may prepare, commit, roll back or batch. See the package doc, "Request
// signing", for the exact computation.

// Headers of a signed request.
const (
	// HeaderTimestamp is the time the request was signed, in decimal Unix seconds.
	HeaderTimestamp = "Dtc-Timestamp"
	// HeaderSignature is "v1=" and the lowercase hex of the HMAC-SHA256 (64 digits).
	HeaderSignature = "Dtc-Signature"
	// HeaderKeyID names the key the request was signed with; absent for a key without
	// an id.
	HeaderKeyID = "Dtc-Key-Id"
)

// signatureVersion starts both the signed message and the signature header's value.
const signatureVersion = "v1"

// DefaultSignatureWindow is AuthOptions.SignatureWindow when it is not set: a request
// signed more than this long before or after the participant's clock says now is
// refused.
const DefaultSignatureWindow = 30 * time.Second

// SecretMinBytes is the shortest secret accepted (32 bytes: 256 bits when random).
const SecretMinBytes = 32

// keyIDMaxBytes bounds a key id.
const keyIDMaxBytes = 64

// CodeUnauthorized is the error code of the 401 answer to a request whose signature is
// missing, expired, made with an unknown key or wrong.
const CodeUnauthorized = "unauthorized"

// Sentinel errors of Auth.Verify, wrapped with what exactly was wrong.
var (
	ErrUnsigned          = errors.New("participant: request not signed")
	ErrSignatureExpired  = errors.New("participant: signature timestamp outside the window")
	ErrUnknownKey        = errors.New("participant: signed with an unknown key")
	ErrBadSignature      = errors.New("participant: signature does not match")
	ErrMalformedSignedBy = errors.New("participant: malformed signature headers")
)

// Key is a shared secret. ID names it in HeaderKeyID, so that a participant can accept
// an old and a new key while the coordinator moves from one to the other; "" is a key
// without an id (the header is then not sent).
type Key struct {
	ID     string
	Secret []byte
}

// ParseKeys reads a secret file: one key a line, "SECRET" or "KEY_ID SECRET"; blank
// lines and lines starting with '#' are skipped. A secret is used as written (its
// bytes are the HMAC key; nothing is decoded), at least SecretMinBytes long, without
// white space. A key id is 1 to 64 of A-Z a-z 0-9 . _ -. The first key is the one a
// Signer signs with; every key is accepted by Auth. Ids must be distinct.
func ParseKeys(data []byte) ([]Key, error) {
	var keys []Key
	seen := make(map[string]bool)
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		fields := strings.Fields(line)
		var k Key
		switch len(fields) {
		case 1:
			k.Secret = []byte(fields[0])
		case 2:
			k.ID, k.Secret = fields[0], []byte(fields[1])
			if err := checkKeyID(k.ID); err != nil {
				return nil, fmt.Errorf("participant: secret file line %d: %w", n, err)
			}
		default:
			return nil, fmt.Errorf("participant: secret file line %d: %d fields, want SECRET or KEY_ID SECRET", n, len(fields))
		}
		if len(k.Secret) < SecretMinBytes {
			return nil, fmt.Errorf("participant: secret file line %d: secret of %d bytes, at least %d", n, len(k.Secret), SecretMinBytes)
		}
		if seen[k.ID] {
			return nil, fmt.Errorf("participant: secret file line %d: key id %q given twice", n, k.ID)
		}
		seen[k.ID] = true
		keys = append(keys, k)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("participant: secret file: %w", err)
	}
	if len(keys) == 0 {
		return nil, errors.New("participant: secret file holds no key")
	}
	return keys, nil
}

// ReadKeyFile reads and parses (ParseKeys) the secret file at path.
func ReadKeyFile(path string) ([]Key, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("participant: %w", err)
	}
	keys, err := ParseKeys(data)
	if err != nil {
		return nil, fmt.Errorf("%w (%s)", err, path)
	}
	return keys, nil
}

func checkKeyID(id string) error {
	if id == "" || len(id) > keyIDMaxBytes {
		return fmt.Errorf("key id %q: 1 to %d characters", id, keyIDMaxBytes)
	}
	for _, c := range []byte(id) {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return fmt.Errorf("key id %q: only A-Z a-z 0-9 . _ - allowed", id)
		}
	}
	return nil
}

// macKey is one key with a pool of its HMACs, so that signing and verifying allocate
// nothing.
type macKey struct {
	id   string
	pool sync.Pool // of *macState
}

// macState is an HMAC and a buffer for the message head.
type macState struct {
	h   hash.Hash
	buf []byte
	out [sha256.Size]byte
}

func newMacKey(k Key) *macKey {
	secret := append([]byte(nil), k.Secret...)
	m := &macKey{id: k.ID}
	m.pool.New = func() any { return &macState{h: hmac.New(sha256.New, secret), buf: make([]byte, 0, 256)} }
	return m
}

// sum returns the MAC of the request described.
func (m *macKey) sum(ts, method, host, requestURI string, body []byte) (mac [sha256.Size]byte) {
	st := m.pool.Get().(*macState)
	st.h.Reset()
	st.buf = appendSignedHead(st.buf[:0], ts, method, host, requestURI)
	st.h.Write(st.buf)
	st.h.Write(body)
	copy(mac[:], st.h.Sum(st.out[:0]))
	if cap(st.buf) <= 4096 {
		m.pool.Put(st)
	}
	return mac
}

// appendSignedHead appends the signed message but its body: "v1\n" TIMESTAMP "\n"
// METHOD "\n" HOST "\n" REQUEST_URI "\n", HOST in lower case. The body follows.
func appendSignedHead(m []byte, ts, method, host, requestURI string) []byte {
	m = append(m, signatureVersion+"\n"...)
	m = append(m, ts...)
	m = append(m, '\n')
	m = append(m, method...)
	m = append(m, '\n')
	for i := 0; i < len(host); i++ {
		c := host[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		m = append(m, c)
	}
	m = append(m, '\n')
	m = append(m, requestURI...)
	return append(m, '\n')
}

// Signer signs the coordinator's requests to participants with one key.
type Signer struct {
	key *macKey
	now func() time.Time
}

// NewSigner returns a signer with k (the first key of a secret file, by convention).
func NewSigner(k Key) (*Signer, error) {
	if len(k.Secret) < SecretMinBytes {
		return nil, fmt.Errorf("participant: secret of %d bytes, at least %d", len(k.Secret), SecretMinBytes)
	}
	if k.ID != "" {
		if err := checkKeyID(k.ID); err != nil {
			return nil, fmt.Errorf("participant: %w", err)
		}
	}
	return &Signer{key: newMacKey(k), now: time.Now}, nil
}

// Sign sets the signature headers in h for a request of method to host (the Host
// header as sent) and requestURI (path and query, as sent) with body.
func (s *Signer) Sign(h http.Header, method, host, requestURI string, body []byte) {
	ts := strconv.FormatInt(s.now().Unix(), 10)
	var buf [len(signatureVersion) + 1 + 2*sha256.Size]byte
	mac := s.key.sum(ts, method, host, requestURI, body)
	v := append(buf[:0], signatureVersion+"="...)
	v = hex.AppendEncode(v, mac[:])
	h[HeaderTimestamp] = []string{ts}
	h[HeaderSignature] = []string{string(v)}
	if s.key.id != "" {
		h[HeaderKeyID] = []string{s.key.id}
	}
}

// SignRequest signs req, whose body is body (nil for none).
func (s *Signer) SignRequest(req *http.Request, body []byte) {
	host := req.Host
	if host == "" {
		host = req.URL.Host
	}
	s.Sign(req.Header, req.Method, host, req.URL.RequestURI(), body)
}

// AuthOptions configure NewAuth.
type AuthOptions struct {
	// Keys verify the requests' signatures (ParseKeys, ReadKeyFile). None: requests
	// are not verified (only Coordinators is checked).
	Keys []Key
	// SignatureWindow: a signature made more than this long before or after now is
	// refused. Default DefaultSignatureWindow.
	SignatureWindow time.Duration
	// Coordinators are the base URLs of the coordinators this participant takes
	// prepares from, e.g. "http://10.0.0.5:7070". A prepare that names another, or
	// none, is answered NACK and changes nothing. Compared after normalising scheme and
	// host case, a default port and a trailing slash. Empty: any coordinator.
	Coordinators []string
	// Clock reads now for the window. Default SystemClock.
	Clock Clock
}

// Auth is what NewHandler checks before it acts on a request (HandlerOptions.Auth):
// the signature of every POST (prepare, commit, rollback, batch), and the coordinator
// a prepare names. GET status is not signed: it changes nothing. It counts what it
// refuses (Stats). Safe for concurrent use.
type Auth struct {
	keys         map[string]*macKey // by id
	window       time.Duration
	clock        Clock
	coordinators map[string]bool        // normalised; nil: any
	lastTrusted  atomic.Pointer[string] // the last coordinator found trusted, as written

	verified, unsigned, expired, unknownKey, badSignature, malformed, untrustedCoordinator atomic.Uint64
}

// AuthStats counts Auth's decisions.
type AuthStats struct {
	Verified             uint64 `json:"verified"`              // requests whose signature was good
	Unsigned             uint64 `json:"unsigned"`              // refused: no signature headers
	Expired              uint64 `json:"expired"`               // refused: timestamp outside the window (a replay, or a clock off)
	UnknownKey           uint64 `json:"unknown_key"`           // refused: Dtc-Key-Id names no key here
	BadSignature         uint64 `json:"bad_signature"`         // refused: forged, or changed on the way
	Malformed            uint64 `json:"malformed"`             // refused: headers that do not parse
	UntrustedCoordinator uint64 `json:"untrusted_coordinator"` // prepares NACKed: the coordinator named is not trusted
}

// Refused is the number of requests refused 401.
func (s AuthStats) Refused() uint64 {
	return s.Unsigned + s.Expired + s.UnknownKey + s.BadSignature + s.Malformed
}

// NewAuth checks o and returns an Auth.
func NewAuth(o AuthOptions) (*Auth, error) {
	a := &Auth{window: o.SignatureWindow, clock: o.Clock}
	if a.window <= 0 {
		a.window = DefaultSignatureWindow
	}
	if a.clock == nil {
		a.clock = SystemClock{}
	}
	if len(o.Keys) > 0 {
		a.keys = make(map[string]*macKey, len(o.Keys))
	}
	for _, k := range o.Keys {
		if len(k.Secret) < SecretMinBytes {
			return nil, fmt.Errorf("participant: auth: key %q: secret of %d bytes, at least %d", k.ID, len(k.Secret), SecretMinBytes)
		}
		if k.ID != "" {
			if err := checkKeyID(k.ID); err != nil {
				return nil, fmt.Errorf("participant: auth: %w", err)
			}
		}
		if a.keys[k.ID] != nil {
			return nil, fmt.Errorf("participant: auth: key id %q given twice", k.ID)
		}
		a.keys[k.ID] = newMacKey(k)
	}
	for _, c := range o.Coordinators {
		n, err := NormalizeCoordinatorURL(c)
		if err != nil {
			return nil, fmt.Errorf("participant: auth: trusted coordinator: %w", err)
		}
		if a.coordinators == nil {
			a.coordinators = make(map[string]bool)
		}
		a.coordinators[n] = true
	}
	return a, nil
}

// Signed reports whether a verifies signatures (it has keys).
func (a *Auth) Signed() bool { return a != nil && a.keys != nil }

// Stats returns the counters.
func (a *Auth) Stats() AuthStats {
	return AuthStats{
		Verified: a.verified.Load(), Unsigned: a.unsigned.Load(), Expired: a.expired.Load(),
		UnknownKey: a.unknownKey.Load(), BadSignature: a.badSignature.Load(), Malformed: a.malformed.Load(),
		UntrustedCoordinator: a.untrustedCoordinator.Load(),
	}
}

// signedHeaders are a request's signature headers, checked for everything but the MAC.
type signedHeaders struct {
	key *macKey
	ts  string
	sig [sha256.Size]byte
}

// checkHeaders checks r's signature headers: present, well formed, a known key, a
// timestamp within the window. The body is not needed yet, so a request that fails
// here is refused before it is read.
func (a *Auth) checkHeaders(r *http.Request, count bool) (signedHeaders, error) {
	inc := func(c *atomic.Uint64) {
		if count {
			c.Add(1)
		}
	}
	var s signedHeaders
	sigs, tss := r.Header[HeaderSignature], r.Header[HeaderTimestamp]
	if len(sigs) == 0 || len(tss) == 0 {
		inc(&a.unsigned)
		return s, fmt.Errorf("%w: headers %s and %s are required: this participant takes only requests signed by its coordinator", ErrUnsigned, HeaderTimestamp, HeaderSignature)
	}
	if len(sigs) > 1 || len(tss) > 1 || len(r.Header[HeaderKeyID]) > 1 {
		inc(&a.malformed)
		return s, fmt.Errorf("%w: a signature header is repeated", ErrMalformedSignedBy)
	}
	id := ""
	if ids := r.Header[HeaderKeyID]; len(ids) == 1 {
		id = ids[0]
	}
	if s.key = a.keys[id]; s.key == nil {
		inc(&a.unknownKey)
		if len(id) > keyIDMaxBytes {
			id = id[:keyIDMaxBytes] + "…"
		}
		return s, fmt.Errorf("%w: %s %q", ErrUnknownKey, HeaderKeyID, id)
	}
	s.ts = tss[0]
	sec, err := strconv.ParseInt(s.ts, 10, 64)
	if err != nil || !isDigits(s.ts) {
		inc(&a.malformed)
		return s, fmt.Errorf("%w: %s must be decimal Unix seconds", ErrMalformedSignedBy, HeaderTimestamp)
	}
	now := a.clock.Now()
	if d := now.Sub(time.Unix(sec, 0)); d > a.window || d < -a.window {
		inc(&a.expired)
		return s, fmt.Errorf("%w: %s %d is %v away from this participant's clock, more than %v", ErrSignatureExpired, HeaderTimestamp, sec, d.Round(time.Second), a.window)
	}
	hexSig, ok := strings.CutPrefix(sigs[0], signatureVersion+"=")
	if !ok || len(hexSig) != 2*sha256.Size {
		inc(&a.malformed)
		return s, fmt.Errorf("%w: %s must be %s= and 64 hex digits", ErrMalformedSignedBy, HeaderSignature, signatureVersion)
	}
	if _, err := hex.Decode(s.sig[:], []byte(hexSig)); err != nil {
		inc(&a.malformed)
		return s, fmt.Errorf("%w: %s must be %s= and 64 hex digits", ErrMalformedSignedBy, HeaderSignature, signatureVersion)
	}
	return s, nil
}

// isDigits reports whether s is a non-empty string of ASCII digits.
func isDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

// checkMAC compares the signature in s with the one r and body call for, in constant
// time.
func (a *Auth) checkMAC(s *signedHeaders, r *http.Request, body []byte, count bool) error {
	inc := func(c *atomic.Uint64) {
		if count {
			c.Add(1)
		}
	}
	uri := r.RequestURI
	if uri == "" {
		uri = r.URL.RequestURI()
	}
	mac := s.key.sum(s.ts, r.Method, r.Host, uri, body)
	if !hmac.Equal(mac[:], s.sig[:]) {
		inc(&a.badSignature)
		return fmt.Errorf("%w: the request was not signed with this participant's secret, or was changed on the way", ErrBadSignature)
	}
	inc(&a.verified)
	return nil
}

// Verify checks that r, whose body is body, is signed with one of a's keys within the
// window. A service that reads a request before the handler (to hold it, to log it)
// can refuse forged ones first with it; it is not counted in Stats (the handler counts
// the request when it checks it). A nil Auth, or one without keys, accepts every
// request.
func (a *Auth) Verify(r *http.Request, body []byte) error {
	if !a.Signed() {
		return nil
	}
	s, err := a.checkHeaders(r, false)
	if err != nil {
		return err
	}
	return a.checkMAC(&s, r, body, false)
}

// TrustsCoordinator reports whether a prepare naming coordinator may be taken: always
// if no Coordinators were given; else only if it names one of them.
func (a *Auth) TrustsCoordinator(coordinator string) bool {
	if a == nil || a.coordinators == nil {
		return true
	}
	if last := a.lastTrusted.Load(); last != nil && *last == coordinator {
		return true // the coordinator sends the same with every prepare
	}
	n, err := NormalizeCoordinatorURL(coordinator)
	if err != nil || !a.coordinators[n] {
		return false
	}
	c := coordinator
	a.lastTrusted.Store(&c)
	return true
}

// NormalizeCoordinatorURL returns a coordinator's base URL in the form
// AuthOptions.Coordinators are compared in: scheme and host in lower case, the
// scheme's default port and a trailing slash left out.
func NormalizeCoordinatorURL(s string) (string, error) {
	u, err := url.Parse(s)
	if err != nil {
		return "", fmt.Errorf("coordinator %q: %v", s, err)
	}
	u.Scheme = strings.ToLower(u.Scheme)
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return "", fmt.Errorf("coordinator %q is not an absolute http(s) base URL", s)
	}
	host := strings.ToLower(u.Host)
	if p := u.Port(); (u.Scheme == "http" && p == "80") || (u.Scheme == "https" && p == "443") {
		host = strings.TrimSuffix(host, ":"+p)
	}
	return u.Scheme + "://" + host + strings.TrimRight(u.EscapedPath(), "/"), nil
}
