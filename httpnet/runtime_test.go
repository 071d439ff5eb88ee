package httpnet_test

import (
	"context"
	"errors"
	"testing"

	"github.com/dtc-project/dtc/coordinator"
	"github.com/dtc-project/dtc/httpnet"
)

// What Submit answers, by how the wait ends: an error at once, the begin's view without
// wait, the decision with it; and, for a caller that stops waiting (its context ends,
// the runtime closes), the begin's view with the reason.
func TestSubmitAnswers(t *testing.T) {
	f := newFakeParticipant(t)
	rt, err := httpnet.Open(httpnet.Options{DataDir: t.TempDir(), Shards: 1, Engine: testEngineConfig(), Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Close()
	eventually(t, "ready", rt.Ready)
	ctx := context.Background()
	one := []coordinator.ParticipantSpec{{URL: f.url()}}

	var reqErr *coordinator.RequestError
	if v, err := rt.Submit(ctx, coordinator.Request{ID: "none"}, true); !errors.As(err, &reqErr) || v.ID != "" {
		t.Errorf("no participants: %+v %v, want a RequestError", v, err)
	}
	v, err := rt.Submit(ctx, coordinator.Request{ID: "decided", Participants: one}, true)
	if err != nil || v.ID != "decided" || v.State != coordinator.StateCommitted {
		t.Errorf("wait: %+v %v, want committed", v, err)
	}
	if v, err := rt.Submit(ctx, coordinator.Request{ID: "decided", Participants: one}, true); err != nil || v.State != coordinator.StateCommitted {
		t.Errorf("the same request again: %+v %v, want committed at once", v, err)
	}
	other := []coordinator.ParticipantSpec{{URL: f.url(), Payload: []byte(`{"other":true}`)}}
	if _, err := rt.Submit(ctx, coordinator.Request{ID: "decided", Participants: other}, true); !errors.Is(err, coordinator.ErrConflict) {
		t.Errorf("another request with the same id: %v, want ErrConflict", err)
	}

	f.mu.Lock()
	f.holdPrepare = make(chan struct{})
	f.mu.Unlock()
	if v, err := rt.Submit(ctx, coordinator.Request{ID: "nowait", Participants: one}, false); err != nil || v.State != coordinator.StatePreparing {
		t.Errorf("no wait: %+v %v, want preparing", v, err)
	}
	cctx, cancel := context.WithCancel(ctx)
	go func() {
		eventually(t, "the prepare of leaver arrives", func() bool { return f.prepareCount() == 3 })
		cancel()
	}()
	if v, err := rt.Submit(cctx, coordinator.Request{ID: "leaver", Participants: one}, true); !errors.Is(err, context.Canceled) ||
		v.ID != "leaver" || v.State != coordinator.StatePreparing {
		t.Errorf("context ended while waiting: %+v %v, want the begin's view and Canceled", v, err)
	}
	go func() {
		eventually(t, "the prepare of stopped arrives", func() bool { return f.prepareCount() == 4 })
		rt.Close()
	}()
	if v, err := rt.Submit(ctx, coordinator.Request{ID: "stopped", Participants: one}, true); !errors.Is(err, httpnet.ErrStopped) ||
		v.ID != "stopped" || v.State != coordinator.StatePreparing {
		t.Errorf("closed while waiting: %+v %v, want the begin's view and ErrStopped", v, err)
	}
	if _, err := rt.Submit(ctx, coordinator.Request{ID: "after", Participants: one}, true); !errors.Is(err, httpnet.ErrStopped) {
		t.Errorf("after Close: %v, want ErrStopped", err)
	}
}
