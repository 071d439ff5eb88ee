package apiserver

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/dtc-project/dtc/coordinator"
	"github.com/dtc-project/dtc/httpnet"
)

// The cluster's deadlock detector (httpnet/deadlock.go) runs on the owner of shard
// httpnet.DetectorShard: every wait report goes there (ServeHTTP), and it reaches the
// transactions of other nodes through the calls below, made to the transaction's owner
// as a forwarded request (HeaderForwarded: the owner answers for its own shards and
// never forwards again).
//
// Authentication is that of forwarding: the detector holds no credentials of its own.
// A lookup carries the credentials the report came with (its Authorization header), as
// a forwarded request does; a transaction named by its participant id (client id, '@',
// nonce) is looked up without credentials, as a participant may (getAuthorized). The
// abort of a victim names it by the participant id the lookup answered, without
// credentials: the trust of a participant's wound (asParticipant), with cause deadlock.

// reportCredsKey is the context key of the Authorization header of the request that
// carried a wait report to the detector.
type reportCredsKey struct{}

var _ httpnet.RemoteTxns = (*ClusterHandler)(nil)

// detectorAnswerMaxBytes bounds the owner's answer to a lookup or an abort (one view).
const detectorAnswerMaxBytes = 1 << 20

// Get implements httpnet.RemoteTxns: GET /v1/transactions/{id} at id's owner.
func (h *ClusterHandler) Get(ctx context.Context, id string) (coordinator.View, error) {
	var auth string
	if strings.IndexByte(id, '@') < 0 {
		auth, _ = ctx.Value(reportCredsKey{}).(string)
	}
	return h.callOwner(ctx, http.MethodGet, id, "/v1/transactions/"+url.PathEscape(id), auth, nil)
}

// AbortDeadlock implements httpnet.RemoteTxns: POST /v1/transactions/{txnID}/abort at
// txnID's owner, with cause deadlock and reason (cut to what the API takes).
func (h *ClusterHandler) AbortDeadlock(ctx context.Context, txnID, reason string) (coordinator.View, error) {
	if len(reason) > abortReasonMaxBytes {
		reason = reason[:abortReasonMaxBytes-3] + "..."
	}
	body, err := json.Marshal(abortBody{Reason: reason})
	if err != nil {
		panic(fmt.Sprintf("apiserver: encoding an abort's body: %v", err))
	}
	return h.callOwner(ctx, http.MethodPost, txnID, "/v1/transactions/"+url.PathEscape(txnID)+"/abort", "", body)
}

// callOwner makes the detector's call about transaction id to its owner and reads the
// view it answers: coordinator.ErrNotFound for a 404 not_found, or for a 401/403 (the
// report's credentials may not see it: then it is not in the graph); an error wrapping
// httpnet.ErrNotOwner when the owner is not known or does not answer with a view.
func (h *ClusterHandler) callOwner(ctx context.Context, method, id, path, auth string, body []byte) (coordinator.View, error) {
	n := h.rt.ClusterShardOf(id)
	owner, addr, ok := h.rt.Node().OwnerAddr(n)
	if !ok || owner == h.rt.NodeID() {
		return coordinator.View{}, fmt.Errorf("%w: shard %d (of transaction %q) has no other owner that answers right now", httpnet.ErrNotOwner, n, id)
	}
	ctx, cancel := context.WithTimeout(ctx, h.o.ForwardTimeout)
	defer cancel()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimSuffix(addr, "/")+path, rd)
	if err != nil {
		return coordinator.View{}, fmt.Errorf("%w: shard %d's owner %s has a bad address %q: %v", httpnet.ErrNotOwner, n, owner, addr, err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set(HeaderAbortCause, string(coordinator.CauseDeadlock))
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	req.Header.Set(HeaderForwarded, h.rt.NodeID())
	resp, err := h.client.Do(req)
	if err != nil {
		h.forwarded.WithLabelValues("error").Inc()
		return coordinator.View{}, fmt.Errorf("%w: shard %d's owner %s did not answer: %v", httpnet.ErrNotOwner, n, owner, err)
	}
	defer resp.Body.Close()
	h.forwarded.WithLabelValues("ok").Inc()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, detectorAnswerMaxBytes))
	if err != nil {
		return coordinator.View{}, fmt.Errorf("%w: reading the answer of shard %d's owner %s: %v", httpnet.ErrNotOwner, n, owner, err)
	}
	if resp.StatusCode != http.StatusOK {
		var e ErrorBody
		_ = json.Unmarshal(raw, &e)
		switch {
		case resp.StatusCode == http.StatusNotFound && e.Error.Code == CodeNotFound:
			return coordinator.View{}, coordinator.ErrNotFound
		case resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden:
			return coordinator.View{}, fmt.Errorf("%w: shard %d's owner %s: the report's credentials may not see %q (%d %s)", coordinator.ErrNotFound, n, owner, id, resp.StatusCode, e.Error.Code)
		}
		return coordinator.View{}, fmt.Errorf("%w: shard %d's owner %s answered %d %s: %s", httpnet.ErrNotOwner, n, owner, resp.StatusCode, e.Error.Code, e.Error.Message)
	}
	var v coordinator.View
	if err := json.Unmarshal(raw, &v); err != nil {
		return coordinator.View{}, fmt.Errorf("%w: the answer of shard %d's owner %s does not parse: %v", httpnet.ErrNotOwner, n, owner, err)
	}
	if v.TxnID != id && v.ID != id {
		return coordinator.View{}, fmt.Errorf("%w: shard %d's owner %s answered about %q, not %q", httpnet.ErrNotOwner, n, owner, v.TxnID, id)
	}
	return v, nil
}

// serveWaits serves POST /v1/waits on a cluster node: the report goes to the detector
// (the owner of httpnet.DetectorShard), forwarded once if that is another node.
func (h *ClusterHandler) serveWaits(w http.ResponseWriter, r *http.Request, body []byte) {
	if !h.rt.RunsShard(httpnet.DetectorShard) {
		h.forward(w, r, body, httpnet.DetectorShard)
		return
	}
	ctx := context.WithValue(r.Context(), reportCredsKey{}, r.Header.Get("Authorization"))
	h.api.ServeHTTP(w, r.WithContext(ctx))
}
