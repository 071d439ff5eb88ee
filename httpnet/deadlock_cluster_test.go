package httpnet_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/dtc-project/dtc/client"
	"github.com/dtc-project/dtc/coordinator"
	"github.com/dtc-project/dtc/httpnet/apiserver"
	"github.com/dtc-project/dtc/internal/etcdtest"
)

// In a cluster, wait reports go to the detector (the owner of shard 0) and aborts sent
// to a node that does not own the transaction are forwarded to the one that does: a
// deadlock between two transactions of node n1, reported to n2, is broken by the
// cluster's detector, whichever node it is; an abort sent to n2 aborts a transaction
// of n1.
func TestClusterForwardsWaitsAndAborts(t *testing.T) {
	srv := etcdtest.Start(t)
	n1, n2 := startClusterNode(t, srv, "dl", "n1"), startClusterNode(t, srv, "dl", "n2")
	eventually(t, "every shard owned, two ways", func() bool {
		c, ok := ownedBy(n1, n2)
		return c == clusterShards && ok && len(n1.rt.Node().Owned()) > 0 && len(n2.rt.Node().Owned()) > 0
	})
	ctx := context.Background()
	// Submitted without an id to n1, a transaction gets an id of a shard n1 runs.
	begin := func(parts []client.Participant) client.View {
		var v client.View
		eventually(t, "begun at n1", func() bool {
			var err error
			v, err = n1.cli.SubmitAsync(ctx, client.Request{Participants: parts})
			return err == nil
		})
		return v
	}
	a, b := newLockPart(t, n2.url), newLockPart(t, n2.url) // they report to n2
	pay := func(key string, after bool) json.RawMessage {
		return json.RawMessage(fmt.Sprintf(`{"key":%q,"after":%v}`, key, after))
	}
	t1 := begin([]client.Participant{{URL: a.url(), Payload: pay("x", false)}, {URL: b.url(), Payload: pay("y", true)}})
	t2 := begin([]client.Participant{{URL: b.url(), Payload: pay("y", false)}, {URL: a.url(), Payload: pay("x", true)}})
	final := func(id string) client.View {
		var v client.View
		eventually(t, id+" decided", func() bool {
			var err error
			v, err = n1.cli.Get(ctx, id)
			return err == nil && v.Final()
		})
		return v
	}
	v1, v2 := final(t1.ID), final(t2.ID)
	if v1.State != client.StateCommitted || v2.AbortCause != coordinator.CauseDeadlock {
		t.Fatalf("t1 %s (%s), t2 %s (%s): %s", v1.State, v1.AbortCause, v2.State, v2.AbortCause, v2.Reason)
	}

	held := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/prepare") {
			select {
			case <-held:
			case <-r.Context().Done():
			}
			_, _ = w.Write([]byte(`{"vote":"ACK"}`))
			return
		}
		_, _ = w.Write([]byte(`{"state":"aborted"}`))
	}))
	t.Cleanup(func() { close(held); slow.Close() })
	t3 := begin([]client.Participant{{URL: slow.URL + "/prepare"}})
	var v3 client.View
	eventually(t, "aborted through n2", func() bool {
		var err error
		v3, err = n2.cli.Abort(ctx, t3.ID, "through the other node")
		var apiErr *client.Error
		return !errors.As(err, &apiErr) || apiErr.Code != apiserver.CodeNotOwner
	})
	if v3.State != client.StateAborted || v3.AbortCause != coordinator.CauseClient {
		t.Fatalf("t3: %+v", v3)
	}
	if n2.fwdOK(t) == 0 {
		t.Fatal("n2 forwarded nothing")
	}
}
