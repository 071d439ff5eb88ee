package httpnet

import (
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/dtc-project/dtc/coordinator"
)

// The timer queue hands out timers in deadline order, only once their deadline has
// passed, and keeps its wake-up armed for the earliest one left. Time is moved by
// moving the queue's base back: the deadlines are hours apart, so the real time the
// test takes does not matter.
func TestTimerQueueOrder(t *testing.T) {
	q := newTimerQueue()
	defer q.stop()
	rng := rand.New(rand.NewPCG(1, 2))
	const n = 3000 // past timerQueueShrinkMin, so that the heap shrinks as it drains
	for _, h := range rng.Perm(n) {
		q.add(time.Duration(h+1)*time.Hour, coordinator.Timer{Kind: coordinator.TimerRetry, Participant: h + 1})
		if !q.armed || q.armedAt != q.heap[0].at {
			t.Fatalf("after adding %dh: wake armed=%v at %v, earliest at %v", h+1, q.armed, q.armedAt, q.heap[0].at)
		}
	}
	if got := q.due(); len(got) != 0 {
		t.Fatalf("%d timers due before any deadline", len(got))
	}
	var fired []int
	for step := 0; len(fired) < n; step++ {
		q.base = q.base.Add(-time.Duration(rng.IntN(200)) * time.Hour)
		elapsed := int(time.Since(q.base) / time.Hour)
		for _, tm := range q.due() {
			if tm.Participant > elapsed {
				t.Fatalf("timer of %dh fired after %dh", tm.Participant, elapsed)
			}
			fired = append(fired, tm.Participant)
		}
		if len(q.heap) > 0 && int(q.heap[0].t.Participant) <= elapsed {
			t.Fatalf("timer of %dh still pending after %dh", q.heap[0].t.Participant, elapsed)
		}
		if q.armed != (len(q.heap) > 0) || (q.armed && q.armedAt != q.heap[0].at) {
			t.Fatalf("wake armed=%v at %v with %d pending", q.armed, q.armedAt, len(q.heap))
		}
		if step > 10*n {
			t.Fatal("the queue does not drain")
		}
	}
	if !slices.IsSorted(fired) || len(fired) != n {
		t.Fatalf("fired %d timers, in order: %v", len(fired), slices.IsSorted(fired))
	}
	if cap(q.heap) > timerQueueShrinkMin {
		t.Errorf("an empty queue keeps an array of %d entries", cap(q.heap))
	}
}

// A timer set with no delay (or a negative one) is due at once; one that would
// overflow the clock waits for ever.
func TestTimerQueueEdges(t *testing.T) {
	q := newTimerQueue()
	defer q.stop()
	q.add(-time.Second, coordinator.Timer{Txn: "negative"})
	q.add(0, coordinator.Timer{Txn: "zero"})
	q.add(time.Duration(1<<63-1), coordinator.Timer{Txn: "never"})
	<-q.wake.C
	got := q.due()
	if len(got) != 2 {
		t.Fatalf("due: %+v, want the negative and the zero timers", got)
	}
	if len(q.heap) != 1 || q.heap[0].t.Txn != "never" || q.heap[0].at <= 0 {
		t.Fatalf("pending: %+v", q.heap)
	}
}
