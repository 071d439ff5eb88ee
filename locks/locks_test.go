package locks

import (
	"errors"
	"slices"
	"testing"
)

func x(keys ...string) []Lock {
	var ls []Lock
	for _, k := range keys {
		ls = append(ls, Lock{Key: k, Mode: Exclusive})
	}
	return ls
}

func newTable(t *testing.T, p Policy) *Table {
	t.Helper()
	tab, err := New(Config{Policy: p, KeysMax: 3, WaitersMax: 2, KeysPerTxnMax: 2})
	if err != nil {
		t.Fatal(err)
	}
	return tab
}

func mustAcquire(t *testing.T, tab *Table, r Request) Answer {
	t.Helper()
	a, err := tab.Acquire(r, func(string) uint64 { return 0 })
	if err != nil {
		t.Fatal(err)
	}
	tab.check()
	return a
}

func TestNoWaitNamesKeyAndHolder(t *testing.T) {
	tab := newTable(t, PolicyNoWait)
	if a := mustAcquire(t, tab, Request{Txn: "T1", Locks: x("x")}); !a.Granted {
		t.Fatalf("first request: %+v", a)
	}
	a := mustAcquire(t, tab, Request{Txn: "T2", Locks: []Lock{{"y", Shared}, {"x", Shared}}})
	if a.Conflict == nil || a.Conflict.Error() != "conflict on key x: locked by transaction T1" {
		t.Fatalf("got %+v", a)
	}
	if tab.Holds("T2") || tab.Keys() != 1 {
		t.Fatal("a refused request left something behind")
	}
}

func TestSharedLocksShareAndBlockWriter(t *testing.T) {
	tab := newTable(t, PolicyWait)
	mustAcquire(t, tab, Request{Txn: "R1", Locks: []Lock{{"x", Shared}}})
	if a := mustAcquire(t, tab, Request{Txn: "R2", Locks: []Lock{{"x", Shared}}}); !a.Granted {
		t.Fatalf("second reader: %+v", a)
	}
	a := mustAcquire(t, tab, Request{Txn: "W", Locks: x("x")})
	if !a.Waiting || a.Key != "x" || !slices.Equal(a.WaitsFor, []string{"R1", "R2"}) {
		t.Fatalf("writer: %+v", a)
	}
	// A later reader queues behind the writer rather than starving it.
	if a := mustAcquire(t, tab, Request{Txn: "R3", Locks: []Lock{{"x", Shared}}}); !a.Waiting || !slices.Equal(a.WaitsFor, []string{"W"}) {
		t.Fatalf("late reader: %+v", a)
	}
	if g := tab.Release("R1"); len(g) != 0 {
		t.Fatalf("granted %v while R2 still reads", g)
	}
	if g := tab.Release("R2"); !slices.Equal(g, []string{"W"}) {
		t.Fatalf("granted %v, want W", g)
	}
	if g := tab.Release("W"); !slices.Equal(g, []string{"R3"}) {
		t.Fatalf("granted %v, want R3", g)
	}
	tab.check()
}

func TestWoundWait(t *testing.T) {
	tab := newTable(t, PolicyWoundWait)
	mustAcquire(t, tab, Request{Txn: "young", Priority: 20, Locks: x("x")})
	// Older: waits and is told to wound the younger holder.
	a := mustAcquire(t, tab, Request{Txn: "old", Priority: 10, Locks: x("x")})
	if !a.Waiting || !slices.Equal(a.Wound, []string{"young"}) {
		t.Fatalf("older requester: %+v", a)
	}
	// Younger still (0 = no priority = youngest): waits, wounds nobody, and queues
	// behind the older one.
	a = mustAcquire(t, tab, Request{Txn: "none", Locks: x("x")})
	if !a.Waiting || len(a.Wound) != 0 || !slices.Equal(a.WaitsFor, []string{"old", "young"}) {
		t.Fatalf("younger requester: %+v", a)
	}
	if g := tab.Release("young"); !slices.Equal(g, []string{"old"}) {
		t.Fatalf("granted %v, want old", g)
	}
	// A waiter giving up lets nobody in while old holds x.
	if g := tab.Release("none"); len(g) != 0 {
		t.Fatalf("granted %v", g)
	}
	tab.check()
}

func TestOCCVersion(t *testing.T) {
	tab := newTable(t, PolicyOCC)
	v := map[string]uint64{"x": 3}
	a, err := tab.Acquire(Request{Txn: "T", Locks: x("x"), Reads: []Read{{"x", 2}}}, func(k string) uint64 { return v[k] })
	if err != nil || a.Conflict == nil || a.Conflict.Error() != "conflict on key x: read version 2, current version 3" {
		t.Fatalf("got %+v, %v", a, err)
	}
	a, err = tab.Acquire(Request{Txn: "T", Locks: x("x"), Reads: []Read{{"x", 3}}}, func(k string) uint64 { return v[k] })
	if err != nil || !a.Granted {
		t.Fatalf("got %+v, %v", a, err)
	}
	// A validated, prepared transaction keeps others off its keys until phase 2.
	a, _ = tab.Acquire(Request{Txn: "U", Locks: x("x"), Reads: []Read{{"x", 3}}}, func(k string) uint64 { return v[k] })
	if a.Conflict == nil || a.Conflict.Holder != "T" {
		t.Fatalf("got %+v", a)
	}
}

func TestBounds(t *testing.T) {
	tab := newTable(t, PolicyWait)
	if _, err := tab.Acquire(Request{Txn: "big", Locks: x("a", "b", "c")}, nil); !errors.Is(err, ErrFull) {
		t.Fatalf("3 keys in one request: %v", err)
	}
	mustAcquire(t, tab, Request{Txn: "T1", Locks: x("a", "b")})
	if _, err := tab.Acquire(Request{Txn: "T2", Locks: x("c", "d")}, nil); !errors.Is(err, ErrFull) || err.Error() != "locks: table full: 2 keys locked, at most 3" {
		t.Fatalf("4 keys in the table: %v", err)
	}
	mustAcquire(t, tab, Request{Txn: "W1", Locks: x("a")})
	mustAcquire(t, tab, Request{Txn: "W2", Locks: x("a")})
	if _, err := tab.Acquire(Request{Txn: "W3", Locks: x("a")}, nil); !errors.Is(err, ErrFull) {
		t.Fatalf("third waiter: %v", err)
	}
	if _, err := tab.Acquire(Request{Txn: "T1", Locks: x("z")}, nil); !errors.Is(err, ErrKnown) {
		t.Fatalf("second request of T1: %v", err)
	}
	tab.check()
}

func TestForceAndNone(t *testing.T) {
	tab := newTable(t, PolicyNoWait)
	tab.Force("T1", 0, x("x"))
	tab.Force("T2", 0, x("x")) // prepared before a restart under policy none
	tab.check()
	if g := tab.Release("T1"); len(g) != 0 || !tab.Holds("T2") {
		t.Fatal("Force")
	}
	none := newTable(t, PolicyNone)
	for _, id := range []string{"A", "B"} {
		if a := mustAcquire(t, none, Request{Txn: id, Locks: x("x")}); !a.Granted {
			t.Fatal("policy none refused")
		}
	}
	if none.Keys() != 0 {
		t.Fatal("policy none recorded locks")
	}
	if _, err := ParsePolicy("sometimes"); err == nil {
		t.Fatal("ParsePolicy took a bad name")
	}
}
