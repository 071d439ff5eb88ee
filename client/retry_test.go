package client_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dtc-project/dtc/client"
	"github.com/dtc-project/dtc/coordinator"
)

// conflictingParticipant votes NACK with cause conflict on its first n prepares, then ACK.
func conflictingParticipant(t *testing.T, n int64) (string, *atomic.Int64) {
	var prepares atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch path.Base(r.URL.Path) {
		case "prepare":
			if prepares.Add(1) <= n {
				fmt.Fprint(w, `{"vote":"NACK","reason":"conflict on key x","cause":"conflict","key":"x"}`)
				return
			}
			fmt.Fprint(w, `{"vote":"ACK"}`)
		case "commit":
			fmt.Fprint(w, `{"state":"committed"}`)
		default:
			fmt.Fprint(w, `{"state":"aborted"}`)
		}
	}))
	t.Cleanup(srv.Close)
	return srv.URL + "/prepare", &prepares
}

// A transaction aborted for a conflict is run again, as a new transaction, until it
// commits; one aborted for another cause (a plain NACK) is not.
func TestSubmitRetryConflict(t *testing.T) {
	base := coordinatorURL(t)
	c, err := client.New(base, client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	conflicting, prepares := conflictingParticipant(t, 2)
	var retried []string
	v, n, err := c.SubmitRetry(ctx, client.Request{ID: "r1", Participants: []client.Participant{{URL: conflicting}, {URL: ackParticipant(t)}}},
		client.RetryOptions{Attempts: 5, Backoff: time.Millisecond, OnRetry: func(_ int, v client.View, _ time.Duration) {
			retried = append(retried, v.ID+":"+string(v.AbortCause))
		}})
	if err != nil || v.State != client.StateCommitted || n != 3 || v.ID != "r1-r3" {
		t.Fatalf("SubmitRetry: %v, %d attempts, %+v", err, n, v)
	}
	if len(retried) != 2 || retried[0] != "r1:conflict" || retried[1] != "r1-r2:conflict" || prepares.Load() != 3 {
		t.Fatalf("retried %v, %d prepares", retried, prepares.Load())
	}
	// Bounded: two attempts, both conflicts.
	conflicting, _ = conflictingParticipant(t, 10)
	v, n, err = c.SubmitRetry(ctx, client.Request{Participants: []client.Participant{{URL: conflicting}}},
		client.RetryOptions{Attempts: 2, Backoff: time.Millisecond})
	if err != nil || v.State != client.StateAborted || v.AbortCause != coordinator.CauseConflict || n != 2 {
		t.Fatalf("bounded: %v, %d, %+v", err, n, v)
	}
	// Not retried: a NACK that is no conflict.
	v, n, err = c.SubmitRetry(ctx, client.Request{Participants: []client.Participant{{URL: nackParticipant(t)}}},
		client.RetryOptions{Attempts: 5, Backoff: time.Millisecond})
	if err != nil || v.AbortCause != coordinator.CauseNACK || n != 1 {
		t.Fatalf("nack: %v, %d, %+v", err, n, v)
	}
}

// Abort cancels a transaction still preparing (its participant holds the prepare), and
// changes nothing once it is decided.
func TestAbort(t *testing.T) {
	base := coordinatorURL(t)
	c, err := client.New(base, client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	release := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch path.Base(r.URL.Path) {
		case "prepare":
			select {
			case <-release:
			case <-r.Context().Done():
			}
			fmt.Fprint(w, `{"vote":"ACK"}`)
		default:
			fmt.Fprint(w, `{"state":"aborted"}`)
		}
	}))
	t.Cleanup(func() { close(release); slow.Close() })
	ctx := context.Background()
	if _, err := c.SubmitAsync(ctx, client.Request{ID: "a1", Participants: []client.Participant{{URL: slow.URL + "/prepare"}}}); err != nil {
		t.Fatal(err)
	}
	v, err := c.Abort(ctx, "a1", "the customer changed their mind")
	if err != nil || v.State != client.StateAborted || v.AbortCause != coordinator.CauseClient {
		t.Fatalf("abort: %v %+v", err, v)
	}
	if v, err = c.Abort(ctx, "a1", "again"); err != nil || v.State != client.StateAborted || v.AbortCause != coordinator.CauseClient {
		t.Fatalf("abort again: %v %+v", err, v)
	}
	done, err := c.Submit(ctx, client.Request{ID: "c1", Participants: []client.Participant{{URL: ackParticipant(t)}}})
	if err != nil || done.State != client.StateCommitted {
		t.Fatal(err, done)
	}
	if v, err = c.Abort(ctx, "c1", ""); err != nil || v.State != client.StateCommitted {
		t.Fatalf("abort after commit: %v %+v", err, v)
	}
	if _, err = c.Abort(ctx, "nope", ""); !client.IsNotFound(err) {
		t.Fatalf("unknown: %v", err)
	}
}
