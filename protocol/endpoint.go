package protocol

import (
	"fmt"
	"net/url" // parsing only
	"strings"
)

// Endpoint derives one of a participant's endpoints from its prepare URL by replacing
// the last path element (query and fragment are dropped):
// Endpoint("http://h:9001/bank/prepare", EndpointCommit) is "http://h:9001/bank/commit".
func Endpoint(prepareURL, name string) (string, error) {
	u, err := endpointURL(prepareURL, name)
	if err != nil {
		return "", err
	}
	return u.String(), nil
}

func endpointURL(prepareURL, name string) (*url.URL, error) {
	u, err := url.Parse(prepareURL)
	if err != nil {
		return nil, fmt.Errorf("participant: bad participant URL %q: %w", prepareURL, err)
	}
	if u.Scheme == "" || u.Host == "" {
		return nil, fmt.Errorf("participant: participant URL %q is not absolute", prepareURL)
	}
	p := u.Path
	i := strings.LastIndexByte(p, '/')
	u.Path = p[:i+1] + name
	if i < 0 {
		u.Path = "/" + name
	}
	u.RawPath = ""
	u.RawQuery = ""
	u.Fragment = ""
	return u, nil
}

// Endpoints are the parsed endpoints of one participant, derived from its prepare URL
// (Endpoint) and normalised as http.NewRequest normalises a URL (a host's empty port
// dropped). They are values: requests may share them as long as nobody modifies them.
type Endpoints struct {
	Prepare, Commit, Rollback, Status, Batch url.URL
}

// ParseEndpoints derives and parses the endpoints of the participant of prepareURL.
func ParseEndpoints(prepareURL string) (*Endpoints, error) {
	eps := new(Endpoints)
	for _, e := range [...]struct {
		name string
		dst  *url.URL
	}{
		{EndpointPrepare, &eps.Prepare},
		{EndpointCommit, &eps.Commit},
		{EndpointRollback, &eps.Rollback},
		{EndpointStatus, &eps.Status},
		{EndpointBatch, &eps.Batch},
	} {
		s, err := Endpoint(prepareURL, e.name)
		if err != nil {
			return nil, err
		}
		u, err := url.Parse(s) // again, as http.NewRequest parses what it is given
		if err != nil {
			return nil, fmt.Errorf("httpnet: request to %s: %w", s, err)
		}
		if strings.HasSuffix(u.Host, ":") { // as http.NewRequest does
			u.Host = strings.TrimSuffix(u.Host, ":")
		}
		*e.dst = *u
	}
	return eps, nil
}

// statusTxnParam is the query parameter of GET …/status that names the transaction.
const statusTxnParam = "txn_id"

// StatusQuery is the query of GET …/status for txnID.
func StatusQuery(txnID string) string { return statusTxnParam + "=" + url.QueryEscape(txnID) }

// StatusTxnID reads the transaction id of GET …/status from the raw query of its URL, as
// http.Request.URL.Query().Get reads it (malformed pairs are skipped); "" if it has none.
func StatusTxnID(rawQuery string) string {
	v, _ := url.ParseQuery(rawQuery)
	return v.Get(statusTxnParam)
}

// CoordinatorTxnURL is where a participant in doubt asks its coordinator, whose base URL
// is base, about txnID.
func CoordinatorTxnURL(base, txnID string) string {
	return strings.TrimSuffix(base, "/") + "/v1/transactions/" + url.PathEscape(txnID)
}
