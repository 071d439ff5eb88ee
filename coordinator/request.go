package coordinator

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"net/url" // parsing only: the engine never touches the network
	"time"
)

// Request asks for one transaction.
type Request struct {
	// ID is optional. A client-chosen id makes Submit idempotent: the same id answers
	// the same transaction while it is remembered (Config.DoneRetention).
	ID           string
	Participants []ParticipantSpec
	// PrepareTimeout overrides Config.PrepareTimeout; zero means the default.
	PrepareTimeout time.Duration
	// Owner names the API client that asks (its token's name), kept with the
	// transaction (Record.Owner, View.Owner). A client-chosen id submitted again by
	// another owner is a conflict. Empty: no authentication.
	Owner string
}

// ParticipantSpec names one participant by its prepare URL, with an optional opaque
// payload passed to its prepare.
type ParticipantSpec struct {
	URL     string
	Payload json.RawMessage
}

// validate checks req against the config and fills in the default timeout. The error
// names the field and says what is wrong with it.
func (c *Config) validate(req *Request) error {
	bad := func(field, format string, args ...any) error {
		return &RequestError{Field: field, Reason: fmt.Sprintf(format, args...)}
	}
	if req.ID != "" {
		if len(req.ID) > c.IDMaxBytes {
			return bad("id", "%d bytes exceed the limit of %d (IDMaxBytes)", len(req.ID), c.IDMaxBytes)
		}
		for i := 0; i < len(req.ID); i++ {
			if !idByte(req.ID[i]) {
				return bad("id", "byte %d (%q) is not allowed: use letters, digits and . _ ~ : -", i, req.ID[i])
			}
		}
	}
	n := len(req.Participants)
	if n == 0 {
		return bad("participants", "the list is empty: name at least one participant")
	}
	if n > c.ParticipantsMax {
		return bad("participants", "%d participants exceed the limit of %d (ParticipantsMax)", n, c.ParticipantsMax)
	}
	seen := make(map[string]int, n)
	for i, p := range req.Participants {
		field := fmt.Sprintf("participants[%d]", i)
		if err := c.checkURL(p.URL); err != nil {
			return bad(field+".url", "%v", err)
		}
		if j, dup := seen[p.URL]; dup {
			return bad(field+".url", "%q is listed twice (also participants[%d])", p.URL, j)
		}
		seen[p.URL] = i
		if len(p.Payload) > c.PayloadMaxBytes {
			return bad(field+".payload", "%d bytes exceed the limit of %d (PayloadMaxBytes)", len(p.Payload), c.PayloadMaxBytes)
		}
		if len(p.Payload) > 0 && !json.Valid(p.Payload) {
			return bad(field+".payload", "not valid JSON")
		}
	}
	switch {
	case req.PrepareTimeout < 0:
		return bad("prepare_timeout_ms", "must not be negative, got %v", req.PrepareTimeout)
	case req.PrepareTimeout == 0:
		req.PrepareTimeout = c.PrepareTimeout
	case req.PrepareTimeout > c.PrepareTimeoutMax:
		return bad("prepare_timeout_ms", "%v exceeds the limit of %v (PrepareTimeoutMax)", req.PrepareTimeout, c.PrepareTimeoutMax)
	}
	return nil
}

func (c *Config) checkURL(raw string) error {
	if raw == "" {
		return fmt.Errorf("empty URL")
	}
	if len(raw) > c.URLMaxBytes {
		return fmt.Errorf("%d bytes exceed the limit of %d (URLMaxBytes)", len(raw), c.URLMaxBytes)
	}
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("not a URL: %v", err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Errorf("%q is not an http or https URL", raw)
	}
	if u.Host == "" {
		return fmt.Errorf("%q has no host", raw)
	}
	if u.User != nil || u.Fragment != "" || u.RawQuery != "" {
		return fmt.Errorf("%q must not carry user info, a query or a fragment", raw)
	}
	return nil
}

func idByte(b byte) bool {
	switch {
	case 'a' <= b && b <= 'z', 'A' <= b && b <= 'Z', '0' <= b && b <= '9':
		return true
	}
	switch b {
	case '.', '_', '~', ':', '-':
		return true
	}
	return false
}

// payloadSum fingerprints the payloads so that a resubmission of a client-chosen id with
// other payloads is told apart from a retry. Payloads are not kept after prepare.
func payloadSum(ps []ParticipantSpec) string {
	h := fnv.New64a()
	var n [8]byte
	for _, p := range ps {
		binary.LittleEndian.PutUint64(n[:], uint64(len(p.Payload)))
		h.Write(n[:])
		h.Write(p.Payload)
	}
	return fmt.Sprintf("%016x", h.Sum64())
}

// incarnationSep separates a transaction's client id from its incarnation nonce in the id
// its participants see. Client ids cannot contain it (idByte).
const incarnationSep = '@'

// SplitTxnID splits the id a participant knows a transaction by into the client's id
// and the incarnation nonce. ok is false for an id without the separator.
//
// Why incarnations: a client-chosen id may be submitted again after the coordinator lost
// a transaction's begin record in a crash and answered "not found" (presumed abort) to a
// participant in doubt. Were the new transaction to reuse the bare id, that participant
// could act on the old answer after ACKing the new prepare, and abort what the others
// commit. With a fresh nonce per begin, the participants see a new transaction, and the
// old one stays aborted everywhere.
func SplitTxnID(txnID string) (client, nonce string, ok bool) {
	for i := len(txnID) - 1; i >= 0; i-- {
		if txnID[i] == incarnationSep {
			return txnID[:i], txnID[i+1:], true
		}
	}
	return txnID, "", false
}
