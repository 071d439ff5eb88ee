package locks

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
)

// model is the reference: every transaction in a list, naively rescanned.
type model struct {
	policy  Policy
	holders []*mEntry // in grant order
	queue   []*mEntry // in queue order
	seq     uint64
	version map[string]uint64
}

type mEntry struct {
	txn   string
	prio  int64
	seq   uint64
	locks map[string]Mode
}

func (m *model) ahead(a, b *mEntry) bool {
	if m.policy == PolicyWoundWait && a.prio != b.prio {
		return a.prio < b.prio
	}
	return a.seq < b.seq
}

func clash(a, b *mEntry) (string, bool) {
	keys := make([]string, 0, len(a.locks))
	for k := range a.locks {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		if mb, ok := b.locks[k]; ok && (a.locks[k] == Exclusive || mb == Exclusive) {
			return k, true
		}
	}
	return "", false
}

// waitsFor is what e waits for: conflicting holders and conflicting entries ahead of it.
func (m *model) waitsFor(e *mEntry) (holders, queued []string, firstKey string) {
	first := ""
	note := func(k string) {
		if first == "" || k < first {
			first = k
		}
	}
	for _, h := range m.holders {
		if k, ok := clash(e, h); ok && h != e {
			holders = append(holders, h.txn)
			note(k)
		}
	}
	for _, q := range m.queue {
		if q != e && m.ahead(q, e) {
			if k, ok := clash(e, q); ok {
				queued = append(queued, q.txn)
				note(k)
			}
		}
	}
	return holders, queued, first
}

func (m *model) acquire(txn string, prio int64, locks map[string]Mode, reads []Read) Answer {
	if m.policy == PolicyOCC {
		for _, r := range reads {
			if m.version[r.Key] != r.Version {
				return Answer{Conflict: &Conflict{Key: r.Key, Version: true, Expected: r.Version, Found: m.version[r.Key]}}
			}
		}
	}
	m.seq++
	e := &mEntry{txn: txn, prio: effective(prio), seq: m.seq, locks: locks}
	h, q, key := m.waitsFor(e)
	if key == "" {
		m.holders = append(m.holders, e)
		return Answer{Granted: true}
	}
	if !m.policy.Waits() {
		return Answer{Conflict: &Conflict{Key: key}}
	}
	i := len(m.queue)
	for i > 0 && m.ahead(e, m.queue[i-1]) {
		i--
	}
	m.queue = slices.Insert(m.queue, i, e)
	a := Answer{Waiting: true, Key: key, WaitsFor: append(slices.Clone(h), q...)}
	slices.Sort(a.WaitsFor)
	a.WaitsFor = slices.Compact(a.WaitsFor)
	if m.policy == PolicyWoundWait {
		for _, x := range m.holders {
			if _, ok := clash(e, x); ok && x.prio > e.prio {
				a.Wound = append(a.Wound, x.txn)
			}
		}
		slices.Sort(a.Wound)
	}
	return a
}

func (m *model) release(txn string) []string {
	m.holders = slices.DeleteFunc(m.holders, func(e *mEntry) bool { return e.txn == txn })
	m.queue = slices.DeleteFunc(m.queue, func(e *mEntry) bool { return e.txn == txn })
	var granted []string
	for i := 0; i < len(m.queue); {
		e := m.queue[i]
		if _, _, key := m.waitsFor(e); key == "" {
			m.queue = slices.Delete(m.queue, i, i+1)
			m.holders = append(m.holders, e)
			granted = append(granted, e.txn)
			continue
		}
		i++
	}
	return granted
}

// TestAgainstModel runs random requests and releases against the table and the
// reference model, under every policy, and wants the same answers and grants.
func TestAgainstModel(t *testing.T) {
	keys := []string{"a", "b", "c", "d"}
	for _, pol := range Policies[1:] {
		for seed := uint64(1); seed <= 200; seed++ {
			rng := rand.New(rand.NewPCG(seed, 16))
			tab, err := New(Config{Policy: pol, KeysMax: 100, WaitersMax: 100, KeysPerTxnMax: 8})
			if err != nil {
				t.Fatal(err)
			}
			m := &model{policy: pol, version: map[string]uint64{}}
			var live []string
			next := 0
			for step := 0; step < 60; step++ {
				if len(live) > 0 && rng.IntN(3) == 0 {
					i := rng.IntN(len(live))
					txn := live[i]
					live = slices.Delete(live, i, i+1)
					if pol == PolicyOCC && rng.IntN(2) == 0 && tab.Holds(txn) {
						// A commit: the keys it wrote get a new version.
						for _, e := range m.holders {
							if e.txn == txn {
								for k, md := range e.locks {
									if md == Exclusive {
										m.version[k]++
									}
								}
							}
						}
					}
					got, want := tab.Release(txn), m.release(txn)
					if !slices.Equal(got, want) {
						t.Fatalf("%s seed %d step %d: release %s granted %v, model %v", pol, seed, step, txn, got, want)
					}
				} else {
					next++
					txn := fmt.Sprintf("t%d", next)
					locks := map[string]Mode{}
					var ls []Lock
					var reads []Read
					for _, k := range keys {
						if rng.IntN(3) == 0 {
							md := Mode(1 + rng.IntN(2))
							locks[k] = md
							ls = append(ls, Lock{Key: k, Mode: md})
							v := m.version[k]
							if rng.IntN(5) == 0 {
								v++ // a stale or impossible read
							}
							reads = append(reads, Read{Key: k, Version: v})
						}
					}
					if len(ls) == 0 {
						continue
					}
					prio := int64(rng.IntN(5)) // 0: none given
					got, err := tab.Acquire(Request{Txn: txn, Priority: prio, Locks: ls, Reads: reads}, func(k string) uint64 { return m.version[k] })
					if err != nil {
						t.Fatal(err)
					}
					want := m.acquire(txn, prio, locks, reads)
					if want.Conflict != nil && !want.Conflict.Version && got.Conflict != nil {
						want.Conflict.Holder = got.Conflict.Holder // any holder will do
					}
					if fmt.Sprint(got.Granted, got.Conflict, got.Waiting, got.Key, got.WaitsFor, got.Wound) !=
						fmt.Sprint(want.Granted, want.Conflict, want.Waiting, want.Key, want.WaitsFor, want.Wound) {
						t.Fatalf("%s seed %d step %d: acquire %s %v: got %+v, model %+v", pol, seed, step, txn, ls, got, want)
					}
					if got.Conflict != nil && !got.Conflict.Version {
						if !slices.ContainsFunc(m.holders, func(e *mEntry) bool {
							_, ok := clash(&mEntry{locks: locks}, e)
							return ok && e.txn == got.Conflict.Holder
						}) {
							t.Fatalf("%s seed %d: conflict names %s, which holds nothing in the way", pol, seed, got.Conflict.Holder)
						}
					}
					if got.Granted || got.Waiting {
						live = append(live, txn)
					}
				}
				tab.check()
				for _, e := range m.queue {
					if !tab.Waiting(e.txn) {
						t.Fatalf("%s seed %d: %s should wait", pol, seed, e.txn)
					}
				}
				for _, e := range m.holders {
					if !tab.Holds(e.txn) {
						t.Fatalf("%s seed %d: %s should hold", pol, seed, e.txn)
					}
				}
			}
		}
	}
}
