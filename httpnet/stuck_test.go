package httpnet_test

import (
	"context"
	"strings"
	"testing"

	"github.com/dtc-project/dtc/client"
	"github.com/dtc-project/dtc/coordinator"
	"github.com/dtc-project/dtc/httpnet"
	"github.com/dtc-project/dtc/httpnet/apiserver"
)

// Issue 12: aborted transactions whose participant is gone keep their rollbacks
// retried, but no longer hold in-flight slots: with InflightMax 2 and four such
// transactions, a new one still commits. An admin forgets them, with a reason; the
// forgotten participant is a heuristic hazard; a submit client may not forget.
func TestStuckRollbacksDoNotBlockAndCanBeForgotten(t *testing.T) {
	creds, tok := testCreds(t, "submit alice", "admin ops")
	c := startCoordAPI(t, "", func(o *httpnet.Options) {
		o.Shards = 1
		o.Engine.InflightMax = 2
	}, apiserver.ServerOptions{Auth: apiserver.NewAuth(creds)}, tok["alice"])
	c.waitReady()
	part, _ := ackParticipant(t)
	gone := "http://" + freeAddr(t) + "/prepare" // nobody listens there
	ctx := context.Background()
	for _, id := range []string{"stuck-1", "stuck-2", "stuck-3", "stuck-4"} {
		v, err := c.cli.Submit(ctx, client.Request{ID: id, Participants: []client.Participant{{URL: part}, {URL: gone}}})
		if err != nil || v.State != client.StateAborted {
			t.Fatalf("%s: %+v %v, want aborted", id, v, err)
		}
	}
	v, err := c.cli.Submit(ctx, client.Request{ID: "fresh", Participants: []client.Participant{{URL: part}}})
	if err != nil || v.State != client.StateCommitted {
		t.Fatalf("a new transaction behind four stuck rollbacks: %+v %v", v, err)
	}
	// Once fresh's commit is acknowledged, the four stuck ones are all in phase 2.
	eventually(t, "four transactions in phase 2", func() bool {
		st, err := c.rt.Stats(ctx)
		return err == nil && st.Phase2 == 4
	})

	forget := func(token, id, body string) (int, string) {
		st, code, _, _ := call(t, "POST", c.url+"/v1/transactions/"+id+"/forget", token, body)
		return st, code
	}
	if st, code := forget(tok["alice"], "stuck-1", `{"reason":"gone"}`); st != 403 || code != apiserver.CodeForbidden {
		t.Fatalf("a submit client forgets: %d %s", st, code)
	}
	if st, code := forget(tok["ops"], "stuck-1", `{}`); st != 400 || code != apiserver.CodeInvalid {
		t.Fatalf("forget without a reason: %d %s", st, code)
	}
	if st, code := forget(tok["ops"], "nope", `{"reason":"x"}`); st != 404 || code != apiserver.CodeNotFound {
		t.Fatalf("forget an unknown id: %d %s", st, code)
	}
	admin, err := client.New(c.url, client.Options{Token: tok["ops"]})
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"stuck-1", "stuck-2", "stuck-3", "stuck-4"} {
		v, err := admin.Forget(ctx, id, "the service at "+gone+" was decommissioned")
		if err != nil || !v.PhaseTwoDone || !v.Hazard || !strings.HasPrefix(v.Participants[1].Hazard, "forgotten by an operator: ") || v.Participants[0].Hazard != "" {
			t.Fatalf("forget %s: %+v %v", id, v, err)
		}
	}
	page, err := admin.List(ctx, client.ListOptions{State: coordinator.FilterHeuristic})
	if err != nil || len(page.Transactions) != 4 {
		t.Fatalf("heuristic list after forgetting: %+v %v", page, err)
	}
	if st, err := c.rt.Stats(ctx); err != nil || st.Phase2 != 0 || st.Inflight != 0 {
		t.Fatalf("stats after forgetting: %+v %v", st, err)
	}
	// The forgetting survives a restart: the hazards and the end are in the log.
	c.restart(nil)
	c.waitReady()
	if v, err := admin.Get(ctx, "stuck-2"); err != nil || !v.PhaseTwoDone || v.Participants[1].Hazard == "" {
		t.Fatalf("after a restart: %+v %v", v, err)
	}
}
