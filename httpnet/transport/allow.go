package transport

import (
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
)

// A participant URL names a host dtc will connect to, chosen by whoever may begin a
// transaction: unchecked, dtc is an open proxy into its own network (SSRF). Every
// participant URL of a submit is therefore normalised (NormalizeParticipantURL) and
// must match the Allowlist before the transaction begins; a refusal is a 400 that
// names the rules, and no connection is made.

// ErrParticipantNotAllowed: a participant URL matches no rule of the allowlist.
var ErrParticipantNotAllowed = errors.New("httpnet: participant not allowed")

// ParticipantURL is a participant's prepare URL after normalisation.
type ParticipantURL struct {
	// URL is the normalised prepare URL: scheme and host in lower case, the default
	// port (80 for http, 443 for https) left out, a host name's trailing dot dropped,
	// an IP address in its canonical form, the path escaped canonically.
	URL string
	// Key names the participant: two URLs with the same key are the same participant,
	// since dtc derives its commit, rollback and status endpoints by replacing the last
	// path element. It is the normalised URL without that element.
	Key string
	// Scheme is http or https; Host the host name (lower case) or IP address; Port
	// the port, explicit or the scheme's default.
	Scheme, Host string
	Port         uint16
	// Addr is Host as an IP address, when it is one.
	Addr netip.Addr
}

// NormalizeParticipantURL parses a participant's prepare URL and normalises it. It
// refuses what is not an absolute http(s) URL with a host, and what carries user
// information, a query or a fragment.
func NormalizeParticipantURL(raw string) (ParticipantURL, error) {
	var p ParticipantURL
	u, err := url.Parse(raw)
	if err != nil {
		return p, fmt.Errorf("not a URL: %v", err)
	}
	p.Scheme = strings.ToLower(u.Scheme)
	var defaultPort uint16
	switch p.Scheme {
	case "http":
		defaultPort = 80
	case "https":
		defaultPort = 443
	default:
		return p, fmt.Errorf("%q is not an http or https URL", raw)
	}
	if u.Opaque != "" {
		return p, fmt.Errorf("%q is not an absolute URL with a host (scheme://host/path)", raw)
	}
	if u.User != nil || u.RawQuery != "" || u.Fragment != "" || u.ForceQuery || strings.Contains(raw, "#") {
		return p, fmt.Errorf("%q must not carry user info, a query or a fragment", raw)
	}
	host, port := u.Hostname(), u.Port()
	if host == "" {
		return p, fmt.Errorf("%q has no host", raw)
	}
	p.Port = defaultPort
	if port != "" {
		n, err := strconv.ParseUint(port, 10, 16)
		if err != nil || n == 0 {
			return p, fmt.Errorf("%q: port %q is not between 1 and 65535", raw, port)
		}
		p.Port = uint16(n)
	}
	// A trailing dot ends a fully qualified name; on an IP literal ("10.0.0.1.") the
	// dialer still reads the IP, so it is one here too, for the allow rules.
	if a, err := netip.ParseAddr(strings.TrimSuffix(host, ".")); err == nil {
		if a.Zone() != "" {
			return p, fmt.Errorf("%q: an IPv6 zone is not allowed", raw)
		}
		p.Addr = a
		p.Host = a.String()
	} else {
		p.Host = strings.TrimSuffix(strings.ToLower(host), ".")
		if p.Host == "" {
			return p, fmt.Errorf("%q has no host", raw)
		}
		if !hostName(p.Host) {
			return p, fmt.Errorf("%q: host %q is not an IP address or a host name (ASCII letters, digits, - and _ between dots; an international name in its xn-- form)", raw, host)
		}
	}
	hostport := p.Host
	if p.Addr.Is6() {
		hostport = "[" + p.Host + "]"
	}
	if p.Port != defaultPort {
		hostport += ":" + strconv.Itoa(int(p.Port))
	}
	n := url.URL{Scheme: p.Scheme, Host: hostport, Path: u.Path}
	if n.Path == "" {
		n.Path = "/"
	}
	p.URL = n.String()
	dir := n.Path[:strings.LastIndexByte(n.Path, '/')+1]
	p.Key = (&url.URL{Scheme: p.Scheme, Host: hostport, Path: dir}).String()
	return p, nil
}

// AllowRule is one --allow-participant pattern: [SCHEME://]HOST[:PORT], where HOST is
// an IP address, a CIDR prefix (10.0.0.0/8; an IPv6 one in brackets: [fd00::/8]), a
// host name, or a host name pattern (*.bank.internal: any name under it), PORT a
// port or *, and SCHEME http or https. A part left out matches anything.
type AllowRule struct {
	text   string // as given, to name the rule
	scheme string // "" any
	prefix netip.Prefix
	name   string // exact host name, or the suffix (".bank.internal") of a pattern
	suffix bool
	port   uint16 // 0 any
}

func (r AllowRule) String() string { return r.text }

// ParseAllowRule reads one --allow-participant pattern (see AllowRule).
func ParseAllowRule(s string) (AllowRule, error) {
	r := AllowRule{text: s}
	bad := func(why string) (AllowRule, error) {
		return AllowRule{}, fmt.Errorf("httpnet: participant rule %q: %s; want [http|https://]HOST[:PORT] with HOST an IP, a CIDR prefix, a host name or *.domain", s, why)
	}
	rest := s
	if scheme, after, ok := strings.Cut(s, "://"); ok {
		r.scheme = strings.ToLower(scheme)
		if r.scheme != "http" && r.scheme != "https" {
			return bad("the scheme is not http or https")
		}
		rest = after
	}
	host, port := rest, ""
	if strings.HasPrefix(rest, "[") {
		end := strings.IndexByte(rest, ']')
		if end < 0 {
			return bad("no closing ]")
		}
		host, port = rest[1:end], rest[end+1:]
		if port != "" && !strings.HasPrefix(port, ":") {
			return bad("something after ] that is not :PORT")
		}
		port = strings.TrimPrefix(port, ":")
	} else if i := strings.LastIndexByte(rest, ':'); i >= 0 {
		host, port = rest[:i], rest[i+1:]
	}
	switch port {
	case "", "*":
	default:
		n, err := strconv.ParseUint(port, 10, 16)
		if err != nil || n == 0 {
			return bad("the port is not between 1 and 65535 or *")
		}
		r.port = uint16(n)
	}
	if host == "" {
		return bad("no host")
	}
	if pf, err := netip.ParsePrefix(host); err == nil {
		if pf.Addr().Zone() != "" {
			return bad("an IPv6 zone is not allowed")
		}
		r.prefix = pf.Masked()
		return r, nil
	}
	if a, err := netip.ParseAddr(host); err == nil {
		if a.Zone() != "" {
			return bad("an IPv6 zone is not allowed")
		}
		r.prefix = netip.PrefixFrom(a, a.BitLen())
		return r, nil
	}
	name := strings.TrimSuffix(strings.ToLower(host), ".")
	if after, ok := strings.CutPrefix(name, "*."); ok {
		name, r.suffix = "."+after, true
	}
	if !hostName(strings.TrimPrefix(name, ".")) {
		return bad("the host is not an IP address, a CIDR prefix or a host name")
	}
	r.name = name
	return r, nil
}

// hostName reports whether s is a host name in lower case: labels of ASCII letters,
// digits, - and _, separated by single dots.
func hostName(s string) bool {
	for _, label := range strings.Split(s, ".") {
		if label == "" || strings.Trim(label, "abcdefghijklmnopqrstuvwxyz0123456789-_") != "" {
			return false
		}
	}
	return true
}

// matches reports whether p is allowed by r.
func (r AllowRule) matches(p ParticipantURL) bool {
	if r.scheme != "" && r.scheme != p.Scheme {
		return false
	}
	if r.port != 0 && r.port != p.Port {
		return false
	}
	switch {
	case r.prefix.IsValid():
		return p.Addr.IsValid() && r.prefix.Contains(p.Addr.Unmap())
	case r.suffix:
		return !p.Addr.IsValid() && strings.HasSuffix(p.Host, r.name)
	default:
		return !p.Addr.IsValid() && p.Host == r.name
	}
}

// Allowlist is the participants dtc may connect to: a URL matching any of its rules.
type Allowlist struct {
	rules []AllowRule
}

// DefaultAllowRules are the rules of an unset allowlist: this machine only.
var DefaultAllowRules = []string{"127.0.0.0/8", "[::1]", "localhost"}

// NewAllowlist parses rules (--allow-participant patterns); none means
// DefaultAllowRules.
func NewAllowlist(rules ...string) (*Allowlist, error) {
	if len(rules) == 0 {
		rules = DefaultAllowRules
	}
	a := &Allowlist{}
	for _, s := range rules {
		r, err := ParseAllowRule(s)
		if err != nil {
			return nil, err
		}
		a.rules = append(a.rules, r)
	}
	return a, nil
}

// Rules returns the rules as given.
func (a *Allowlist) Rules() []string {
	out := make([]string, len(a.rules))
	for i, r := range a.rules {
		out[i] = r.text
	}
	return out
}

// Check returns nil if a rule allows p, or an ErrParticipantNotAllowed that names the
// host, port and scheme and the rules.
func (a *Allowlist) Check(p ParticipantURL) error {
	for _, r := range a.rules {
		if r.matches(p) {
			return nil
		}
	}
	return fmt.Errorf("%w: %s://%s port %d matches none of the participant rules (--allow-participant): %s",
		ErrParticipantNotAllowed, p.Scheme, p.Host, p.Port, strings.Join(a.Rules(), ", "))
}
