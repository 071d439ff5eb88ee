package locks

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
)

// Policy says what a conflicting request gets (see the package doc).
type Policy string

// The policies.
const (
	PolicyNone      Policy = "none"
	PolicyNoWait    Policy = "no-wait"
	PolicyWait      Policy = "wait"
	PolicyWoundWait Policy = "wound-wait"
	PolicyOCC       Policy = "occ"
)

// Policies lists every policy, in the order of the package doc.
var Policies = []Policy{PolicyNone, PolicyNoWait, PolicyWait, PolicyWoundWait, PolicyOCC}

// ParsePolicy reads a policy name; "" is PolicyNone.
func ParsePolicy(s string) (Policy, error) {
	if s == "" {
		return PolicyNone, nil
	}
	for _, p := range Policies {
		if string(p) == s {
			return p, nil
		}
	}
	names := make([]string, len(Policies))
	for i, p := range Policies {
		names[i] = string(p)
	}
	return "", fmt.Errorf("locks: unknown policy %q (want one of %s)", s, strings.Join(names, ", "))
}

// Waits reports whether a conflicting request under p is queued rather than refused.
func (p Policy) Waits() bool { return p == PolicyWait || p == PolicyWoundWait }

// Mode is a lock's mode.
type Mode uint8

// The modes: any number of shared holders, or one exclusive holder.
const (
	Shared Mode = iota + 1
	Exclusive
)

func (m Mode) String() string {
	switch m {
	case Shared:
		return "shared"
	case Exclusive:
		return "exclusive"
	}
	return fmt.Sprintf("Mode(%d)", m)
}

// conflicts reports whether a and b cannot be held together by two transactions.
func conflicts(a, b Mode) bool { return a == Exclusive || b == Exclusive }

// Lock is one key in one mode.
type Lock struct {
	Key  string
	Mode Mode
}

// Read is a key's version as the transaction read it (PolicyOCC).
type Read struct {
	Key     string
	Version uint64
}

// Request is everything one transaction asks for at once.
type Request struct {
	Txn string
	// Priority orders transactions under PolicyWoundWait: smaller is older and goes
	// first. 0 means none given, and ranks as the youngest.
	Priority int64
	Locks    []Lock
	// Reads are checked under PolicyOCC (and ignored otherwise): each must equal the
	// key's current version.
	Reads []Read
}

// Conflict is why a request was refused under no-wait or occ.
type Conflict struct {
	Key    string
	Holder string // a transaction holding Key in a conflicting mode; "" for a version
	// Version: Key's version changed since the transaction read it (occ): it read
	// Expected, the current one is Found.
	Version         bool
	Expected, Found uint64
}

func (c *Conflict) Error() string {
	if c.Version {
		return fmt.Sprintf("conflict on key %s: read version %d, current version %d", c.Key, c.Expected, c.Found)
	}
	return fmt.Sprintf("conflict on key %s: locked by transaction %s", c.Key, c.Holder)
}

// Answer is what Acquire gives. Exactly one of Granted, Conflict and Waiting is set.
type Answer struct {
	Granted  bool
	Conflict *Conflict
	// Waiting: the request is queued; it is granted by a later Release (which returns
	// it) or dropped by Release of its own transaction. Key is the first key it waits
	// on, WaitsFor the transactions it waits for (holders, and requests queued before
	// it, that conflict with it), sorted.
	Waiting  bool
	Key      string
	WaitsFor []string
	// Wound (wound-wait only) lists the younger transactions holding a lock the request
	// waits for: the caller asks for them to be aborted. Sorted.
	Wound []string
}

// ErrFull says that a bound of Config was hit; the error wrapping it says which.
var ErrFull = errors.New("locks: table full")

// ErrKnown says that the transaction already holds locks or waits.
var ErrKnown = errors.New("locks: transaction already in the table")

// Config is a table's policy and bounds.
type Config struct {
	Policy Policy
	// KeysMax bounds the keys locked at once.
	KeysMax int
	// WaitersMax bounds the queued requests.
	WaitersMax int
	// KeysPerTxnMax bounds the locks (and reads) of one request.
	KeysPerTxnMax int
}

// DefaultConfig returns the given policy with bounds for a small service.
func DefaultConfig(p Policy) Config {
	return Config{Policy: p, KeysMax: 100_000, WaitersMax: 1_024, KeysPerTxnMax: 256}
}

// Validate reports a bad policy or a bound that is not positive.
func (c Config) Validate() error {
	var errs []error
	if _, err := ParsePolicy(string(c.Policy)); err != nil {
		errs = append(errs, err)
	}
	for _, b := range []struct {
		name string
		v    int
	}{{"KeysMax", c.KeysMax}, {"WaitersMax", c.WaitersMax}, {"KeysPerTxnMax", c.KeysPerTxnMax}} {
		if b.v <= 0 {
			errs = append(errs, fmt.Errorf("locks: config: %s must be positive, got %d", b.name, b.v))
		}
	}
	return errors.Join(errs...)
}

// Table is the lock table. It is not safe for concurrent use: its owner serializes the
// calls.
type Table struct {
	cfg     Config
	keys    map[string]*keyState
	txns    map[string]*entry // holders and waiters
	waiters int
	seq     uint64 // arrival order of requests
	forced  bool   // Force was used: holders may conflict
}

// keyState is one locked or awaited key.
type keyState struct {
	holders []*entry // in grant order
	queued  []*entry // waiters naming this key, in queue order
}

// entry is one transaction in the table.
type entry struct {
	txn     string
	prio    int64 // effective: 0 became MaxInt64
	seq     uint64
	locks   []Lock // sorted by key, one per key
	waiting bool
}

// before reports whether a is ahead of b in the queue: by priority under wound-wait,
// then by arrival.
func (t *Table) before(a, b *entry) bool {
	if t.cfg.Policy == PolicyWoundWait && a.prio != b.prio {
		return a.prio < b.prio
	}
	return a.seq < b.seq
}

// New returns an empty table.
func New(cfg Config) (*Table, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Table{cfg: cfg, keys: make(map[string]*keyState), txns: make(map[string]*entry)}, nil
}

// Policy returns the table's policy.
func (t *Table) Policy() Policy { return t.cfg.Policy }

// Keys returns the number of keys locked or awaited.
func (t *Table) Keys() int { return len(t.keys) }

// Waiters returns the number of queued requests.
func (t *Table) Waiters() int { return t.waiters }

// Holds reports whether txn holds its locks.
func (t *Table) Holds(txn string) bool { e := t.txns[txn]; return e != nil && !e.waiting }

// Waiting reports whether txn's request is queued.
func (t *Table) Waiting(txn string) bool { e := t.txns[txn]; return e != nil && e.waiting }

// normalize sorts locks by key, one per key (exclusive wins).
func normalize(ls []Lock) ([]Lock, error) {
	out := slices.Clone(ls)
	for _, l := range out {
		if l.Mode != Shared && l.Mode != Exclusive {
			return nil, fmt.Errorf("locks: key %q: invalid mode %d", l.Key, l.Mode)
		}
	}
	slices.SortFunc(out, func(a, b Lock) int {
		if c := strings.Compare(a.Key, b.Key); c != 0 {
			return c
		}
		return int(b.Mode) - int(a.Mode) // exclusive first
	})
	return slices.CompactFunc(out, func(a, b Lock) bool { return a.Key == b.Key }), nil
}

func effective(prio int64) int64 {
	if prio <= 0 {
		return math.MaxInt64
	}
	return prio
}

// Acquire asks for all of req's locks at once. Under PolicyNone it grants without
// recording anything. versionOf gives a key's current version (PolicyOCC only; may be
// nil otherwise). An error (ErrFull, ErrKnown, a bad mode) changes nothing.
func (t *Table) Acquire(req Request, versionOf func(key string) uint64) (Answer, error) {
	if t.cfg.Policy == PolicyNone {
		return Answer{Granted: true}, nil
	}
	if t.txns[req.Txn] != nil {
		return Answer{}, fmt.Errorf("%w: %s", ErrKnown, req.Txn)
	}
	if n := max(len(req.Locks), len(req.Reads)); n > t.cfg.KeysPerTxnMax {
		return Answer{}, fmt.Errorf("%w: %d keys in one transaction, at most %d", ErrFull, n, t.cfg.KeysPerTxnMax)
	}
	ls, err := normalize(req.Locks)
	if err != nil {
		return Answer{}, err
	}
	if t.cfg.Policy == PolicyOCC {
		reads := slices.Clone(req.Reads)
		slices.SortFunc(reads, func(a, b Read) int { return strings.Compare(a.Key, b.Key) })
		for _, r := range reads {
			if v := versionOf(r.Key); v != r.Version {
				return Answer{Conflict: &Conflict{Key: r.Key, Version: true, Expected: r.Version, Found: v}}, nil
			}
		}
	}
	t.seq++
	e := &entry{txn: req.Txn, prio: effective(req.Priority), seq: t.seq, locks: ls}
	key, holders, queued := t.blockers(e)
	if key == "" {
		if !t.fits(e) {
			return Answer{}, fmt.Errorf("%w: %d keys locked, at most %d", ErrFull, len(t.keys), t.cfg.KeysMax)
		}
		t.grant(e)
		return Answer{Granted: true}, nil
	}
	if !t.cfg.Policy.Waits() {
		return Answer{Conflict: &Conflict{Key: key, Holder: holders[0].txn}}, nil
	}
	if t.waiters >= t.cfg.WaitersMax {
		return Answer{}, fmt.Errorf("%w: %d requests waiting, at most %d", ErrFull, t.waiters, t.cfg.WaitersMax)
	}
	t.enqueue(e)
	a := Answer{Waiting: true, Key: key, WaitsFor: ids(holders, queued)}
	if t.cfg.Policy == PolicyWoundWait {
		for _, h := range holders {
			if h.prio > e.prio {
				a.Wound = append(a.Wound, h.txn)
			}
		}
		slices.Sort(a.Wound)
		a.Wound = slices.Compact(a.Wound)
	}
	return a, nil
}

// WaitsFor returns, for a queued request, the first key it waits on and the
// transactions it waits for now (as in Answer); ok is false if txn is not waiting.
func (t *Table) WaitsFor(txn string) (key string, waitsFor []string, ok bool) {
	e := t.txns[txn]
	if e == nil || !e.waiting {
		return "", nil, false
	}
	key, holders, queued := t.blockers(e)
	return key, ids(holders, queued), true
}

// Force grants locks without looking at conflicts or bounds: replaying transactions
// that were prepared (holding their locks) before a restart, perhaps under another
// policy. An existing entry for txn is replaced. Under PolicyNone it does nothing.
func (t *Table) Force(txn string, priority int64, locks []Lock) {
	if t.cfg.Policy == PolicyNone {
		return
	}
	if t.txns[txn] != nil {
		t.Release(txn)
	}
	ls, err := normalize(locks)
	if err != nil {
		panic(err)
	}
	t.forced = true
	t.seq++
	t.grant(&entry{txn: txn, prio: effective(priority), seq: t.seq, locks: ls})
}

// Release frees txn's locks, or drops its queued request, and grants the queued
// requests that now fit, in queue order. It returns the transactions granted, in grant
// order. Releasing an unknown transaction does nothing.
func (t *Table) Release(txn string) []string {
	e := t.txns[txn]
	if e == nil {
		return nil
	}
	delete(t.txns, txn)
	var cands []*entry
	for _, l := range e.locks {
		k := t.keys[l.Key]
		if e.waiting {
			k.queued = slices.DeleteFunc(k.queued, func(x *entry) bool { return x == e })
		} else {
			k.holders = slices.DeleteFunc(k.holders, func(x *entry) bool { return x == e })
		}
		for _, q := range k.queued {
			if !slices.Contains(cands, q) {
				cands = append(cands, q)
			}
		}
		if len(k.holders) == 0 && len(k.queued) == 0 {
			delete(t.keys, l.Key)
		}
	}
	if e.waiting {
		t.waiters--
	}
	slices.SortFunc(cands, func(a, b *entry) int {
		if t.before(a, b) {
			return -1
		}
		return 1
	})
	var granted []string
	for _, c := range cands {
		if key, _, _ := t.blockers(c); key == "" && t.fits(c) {
			t.dequeue(c)
			t.grant(c)
			granted = append(granted, c.txn)
		}
	}
	return granted
}

// blockers returns the first key on which e conflicts, the holders conflicting with e
// (in key order) and the requests queued before e that conflict with it. key is ""
// when nothing conflicts.
func (t *Table) blockers(e *entry) (key string, holders, queued []*entry) {
	for _, l := range e.locks {
		k := t.keys[l.Key]
		if k == nil {
			continue
		}
		hit := false
		for _, h := range k.holders {
			if h != e && conflicts(modeOf(h, l.Key), l.Mode) {
				holders = append(holders, h)
				hit = true
			}
		}
		for _, q := range k.queued {
			if q != e && t.before(q, e) && conflicts(modeOf(q, l.Key), l.Mode) {
				queued = append(queued, q)
				hit = true
			}
		}
		if hit && key == "" {
			key = l.Key
		}
	}
	return key, holders, queued
}

// modeOf returns the mode in which e names key.
func modeOf(e *entry, key string) Mode {
	i, ok := slices.BinarySearchFunc(e.locks, key, func(l Lock, k string) int { return strings.Compare(l.Key, k) })
	if !ok {
		panic(fmt.Sprintf("locks: %s does not name key %q", e.txn, key))
	}
	return e.locks[i].Mode
}

// fits reports whether granting e keeps the locked keys within KeysMax.
func (t *Table) fits(e *entry) bool {
	n := len(t.keys)
	for _, l := range e.locks {
		if t.keys[l.Key] == nil {
			n++
		}
	}
	return n <= t.cfg.KeysMax
}

func (t *Table) key(k string) *keyState {
	ks := t.keys[k]
	if ks == nil {
		ks = &keyState{}
		t.keys[k] = ks
	}
	return ks
}

func (t *Table) grant(e *entry) {
	e.waiting = false
	t.txns[e.txn] = e
	for _, l := range e.locks {
		k := t.key(l.Key)
		k.holders = append(k.holders, e)
	}
}

func (t *Table) enqueue(e *entry) {
	e.waiting = true
	t.txns[e.txn] = e
	t.waiters++
	for _, l := range e.locks {
		k := t.key(l.Key)
		i := len(k.queued)
		for i > 0 && t.before(e, k.queued[i-1]) {
			i--
		}
		k.queued = slices.Insert(k.queued, i, e)
	}
}

func (t *Table) dequeue(e *entry) {
	for _, l := range e.locks {
		k := t.keys[l.Key]
		k.queued = slices.DeleteFunc(k.queued, func(x *entry) bool { return x == e })
	}
	t.waiters--
}

// ids returns the sorted, distinct transaction ids of a and b.
func ids(a, b []*entry) []string {
	out := make([]string, 0, len(a)+len(b))
	for _, e := range a {
		out = append(out, e.txn)
	}
	for _, e := range b {
		out = append(out, e.txn)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// check panics if an invariant of the package doc is broken (tests).
func (t *Table) check() {
	waiters := 0
	for id, e := range t.txns {
		if e.txn != id {
			panic("locks: entry under the wrong id")
		}
		if e.waiting {
			waiters++
			if key, _, _ := t.blockers(e); key == "" && t.fits(e) {
				panic(fmt.Sprintf("locks: %s waits with nothing in its way", id))
			}
		}
		for _, l := range e.locks {
			k := t.keys[l.Key]
			in := k != nil && slices.Contains(k.holders, e)
			queued := k != nil && slices.Contains(k.queued, e)
			if in == e.waiting || queued != e.waiting {
				panic(fmt.Sprintf("locks: %s on key %q: holder %v, queued %v, waiting %v", id, l.Key, in, queued, e.waiting))
			}
		}
	}
	if waiters != t.waiters {
		panic(fmt.Sprintf("locks: %d waiters counted, %d found", t.waiters, waiters))
	}
	for key, k := range t.keys {
		if len(k.holders) == 0 && len(k.queued) == 0 {
			panic(fmt.Sprintf("locks: empty key %q kept", key))
		}
		for i, a := range k.holders {
			for _, b := range k.holders[i+1:] {
				if conflicts(modeOf(a, key), modeOf(b, key)) && !t.forced {
					panic(fmt.Sprintf("locks: %s and %s both hold key %q", a.txn, b.txn, key))
				}
			}
		}
	}
}
