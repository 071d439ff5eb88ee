// Package bank is an account service that takes part in dtc transactions: the
// participant.Service of the example bank. It is pure and deterministic (no IO, no
// clock, no randomness), so the same code runs in the bank binary (cmd/bank) and in the
// simulator.
//
// Balances are integers (cents). A prepare payload lists operations,
//
//	{"ops":[{"account":"alice","amount":-100},{"account":"bob","amount":100}]}
//
// negative amounts being debits. Prepare reserves: a debit must fit the account's
// available money (balance minus debits already reserved), and is held until commit
// applies it or rollback releases it. Credits are applied on commit only. A prepare is
// refused (NACK) for a malformed payload, an unknown account, a locked account or
// insufficient funds. Money is conserved: across the participants of a transaction the
// amounts sum to zero, and commit and rollback move nothing else.
//
// # Keys and versions (lock policies, issue 16)
//
// The Bank implements participant.Keyed: a transaction writes every account its ops
// name (one exclusive lock each), and reads the accounts of the optional payload field
// "reads", {"reads":{"alice":3}}, which also gives, for the occ policy, the version of
// each account as the client read it (GET /accounts). It implements
// participant.Versioned: an account's version counts the commits that changed it; it
// is part of the bank's state (snapshot and replay), so it survives restarts.
//
// The optional payload field "hold_ms" asks the bank's HTTP layer to wait that long
// before voting, to show a prepare timeout; the Bank itself ignores it beyond checking
// its range.
package bank

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/dtc-project/dtc/participant"
)

// Limits.
const (
	// AmountMax bounds the absolute amount of one operation, in cents.
	AmountMax = 1_000_000_000_000_000
	// BalanceMax bounds a balance, including credits on their way.
	BalanceMax = 1_000_000_000_000_000_000
	// OpsMax bounds the operations of one transaction.
	OpsMax = 64
	// AccountNameMaxBytes bounds an account name.
	AccountNameMaxBytes = 64
	// HoldMax bounds "hold_ms".
	HoldMax = time.Minute
)

// Op is one operation of a transaction: a debit (negative) or a credit.
type Op struct {
	Account string `json:"account"`
	Amount  int64  `json:"amount"`
}

// Payload is the prepare payload.
type Payload struct {
	Ops []Op `json:"ops"`
	// HoldMS: the HTTP layer waits this long before voting (a testing knob).
	HoldMS int64 `json:"hold_ms,omitempty"`
	// Reads are the accounts the client read to decide this transaction, each at the
	// version it read (occ validates them; the other policies lock them shared).
	Reads map[string]uint64 `json:"reads,omitempty"`
}

// ErrMalformed is wrapped by every refusal of a payload that does not parse or breaks
// a limit.
var ErrMalformed = errors.New("malformed payload")

// ErrUnknownAccount is wrapped by refusals naming an account the bank does not have.
var ErrUnknownAccount = errors.New("unknown account")

// Bank is the state of all accounts and the reservations of prepared transactions. It
// implements participant.Service and participant.Updater (locking accounts). Its
// methods are safe for concurrent use.
type Bank struct {
	mu       sync.Mutex
	accounts map[string]*account
	holds    map[string][]delta // prepared txn → what it reserved, by account, sorted
}

type account struct {
	balance  int64
	reserved int64 // debits of prepared transactions
	incoming int64 // credits of prepared transactions
	locked   bool
	version  uint64 // commits that changed the account
}

// delta is a prepared transaction's effect on one account.
type delta struct {
	Account string `json:"account"`
	Debit   int64  `json:"debit,omitempty"`  // reserved, taken on commit
	Credit  int64  `json:"credit,omitempty"` // added on commit
}

var (
	_ participant.Service   = (*Bank)(nil)
	_ participant.Updater   = (*Bank)(nil)
	_ participant.Keyed     = (*Bank)(nil)
	_ participant.Versioned = (*Bank)(nil)
)

// New returns a bank with the given accounts and balances. The participant logs this
// initial state in the first checkpoint of a fresh log; after that, the log's state wins.
func New(initial map[string]int64) (*Bank, error) {
	b := &Bank{accounts: make(map[string]*account, len(initial)), holds: map[string][]delta{}}
	for name, bal := range initial {
		if err := checkName(name); err != nil {
			return nil, fmt.Errorf("bank: %w", err)
		}
		if bal < 0 || bal > BalanceMax {
			return nil, fmt.Errorf("bank: account %q: balance %d out of range [0, %d]", name, bal, int64(BalanceMax))
		}
		b.accounts[name] = &account{balance: bal}
	}
	return b, nil
}

func checkName(name string) error {
	if name == "" || len(name) > AccountNameMaxBytes {
		return fmt.Errorf("account name %q: want 1 to %d bytes", name, AccountNameMaxBytes)
	}
	for _, r := range name {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-' || r == '.') {
			return fmt.Errorf("account name %q: only letters, digits, '_', '-' and '.'", name)
		}
	}
	return nil
}

// ParsePayload decodes and checks a prepare payload (unknown fields are refused).
func ParsePayload(data []byte) (Payload, error) {
	var p Payload
	if len(data) == 0 {
		return p, fmt.Errorf("%w: empty, want {\"ops\":[…]}", ErrMalformed)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil {
		return p, fmt.Errorf("%w: %s", ErrMalformed, strings.TrimPrefix(err.Error(), "json: "))
	}
	if dec.More() {
		return p, fmt.Errorf("%w: data after the JSON object", ErrMalformed)
	}
	switch {
	case len(p.Ops) == 0:
		return p, fmt.Errorf("%w: no ops", ErrMalformed)
	case len(p.Ops) > OpsMax:
		return p, fmt.Errorf("%w: %d ops, at most %d", ErrMalformed, len(p.Ops), OpsMax)
	case p.HoldMS < 0 || p.HoldMS > HoldMax.Milliseconds():
		return p, fmt.Errorf("%w: hold_ms %d out of range [0, %d]", ErrMalformed, p.HoldMS, HoldMax.Milliseconds())
	}
	if len(p.Reads) > OpsMax {
		return p, fmt.Errorf("%w: %d reads, at most %d", ErrMalformed, len(p.Reads), OpsMax)
	}
	for name := range p.Reads {
		if err := checkName(name); err != nil {
			return p, fmt.Errorf("%w: reads: %v", ErrMalformed, err)
		}
	}
	for i, op := range p.Ops {
		if err := checkName(op.Account); err != nil {
			return p, fmt.Errorf("%w: op %d: %v", ErrMalformed, i, err)
		}
		if op.Amount == 0 || op.Amount > AmountMax || op.Amount < -AmountMax {
			return p, fmt.Errorf("%w: op %d: amount %d, want non-zero within ±%d", ErrMalformed, i, op.Amount, int64(AmountMax))
		}
	}
	return p, nil
}

// Keys names the accounts a transaction writes (its ops) and reads (its "reads", with
// their versions): participant.Keyed.
func (b *Bank) Keys(_ string, payload json.RawMessage) (participant.KeySet, error) {
	p, err := ParsePayload(payload)
	if err != nil {
		return participant.KeySet{}, err
	}
	ks := participant.KeySet{ReadVersions: p.Reads}
	for _, op := range p.Ops {
		ks.Writes = append(ks.Writes, op.Account)
	}
	for name := range p.Reads {
		ks.Reads = append(ks.Reads, name)
	}
	return ks, nil
}

// Version returns an account's version: the number of commits that changed it (0 for
// an unknown account): participant.Versioned.
func (b *Bank) Version(name string) uint64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	if a := b.accounts[name]; a != nil {
		return a.version
	}
	return 0
}

// Prepare reserves the transaction's debits and notes its credits; see the package
// doc for the refusals.
func (b *Bank) Prepare(txnID string, payload json.RawMessage) error {
	p, err := ParsePayload(payload)
	if err != nil {
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, ok := b.holds[txnID]; ok {
		return fmt.Errorf("transaction %q already holds a reservation", txnID)
	}
	// Sum per account, checked in the order accounts first appear, so the reason names
	// the first problem in the payload.
	byName := map[string]*delta{}
	var order []string
	for _, op := range p.Ops {
		d := byName[op.Account]
		if d == nil {
			d = &delta{Account: op.Account}
			byName[op.Account] = d
			order = append(order, op.Account)
		}
		if op.Amount < 0 {
			d.Debit -= op.Amount // at most OpsMax × AmountMax: no overflow
		} else {
			d.Credit += op.Amount
		}
	}
	for _, name := range order {
		a := b.accounts[name]
		d := byName[name]
		switch {
		case a == nil:
			return fmt.Errorf("%w %q", ErrUnknownAccount, name)
		case a.locked:
			return fmt.Errorf("account %q is locked", name)
		case d.Debit > a.balance-a.reserved:
			return fmt.Errorf("insufficient funds in %q: available %d, debit %d", name, a.balance-a.reserved, d.Debit)
		case d.Credit > BalanceMax-a.balance-a.incoming:
			return fmt.Errorf("credit to %q would exceed the maximum balance %d", name, int64(BalanceMax))
		}
	}
	sort.Strings(order)
	h := make([]delta, 0, len(order))
	for _, name := range order {
		d := *byName[name]
		a := b.accounts[name]
		a.reserved += d.Debit
		a.incoming += d.Credit
		h = append(h, d)
	}
	b.holds[txnID] = h
	return nil
}

// Commit applies what Prepare reserved, even on an account locked since.
func (b *Bank) Commit(txnID string) {
	b.release(txnID, true)
}

// Rollback releases what Prepare reserved.
func (b *Bank) Rollback(txnID string) {
	b.release(txnID, false)
}

func (b *Bank) release(txnID string, apply bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	h, ok := b.holds[txnID]
	if !ok {
		panic(fmt.Sprintf("bank: phase 2 for transaction %q that holds nothing", txnID))
	}
	for _, d := range h {
		a := b.accounts[d.Account]
		a.reserved -= d.Debit
		a.incoming -= d.Credit
		if apply {
			a.balance += d.Credit - d.Debit
			a.version++
		}
		if a.reserved < 0 || a.incoming < 0 || a.balance < 0 {
			panic(fmt.Sprintf("bank: account %q out of balance after %q: %+v", d.Account, txnID, *a))
		}
	}
	delete(b.holds, txnID)
}

// Change is an Update to the bank outside transactions.
type Change struct {
	Lock   string `json:"lock,omitempty"`   // account to lock
	Unlock string `json:"unlock,omitempty"` // account to unlock
}

// LockChange returns the Update that locks (or unlocks) an account.
func LockChange(name string, locked bool) []byte {
	c := Change{Unlock: name}
	if locked {
		c = Change{Lock: name}
	}
	data, _ := json.Marshal(c)
	return data
}

// Update applies a Change: a locked account refuses new prepares; transactions already
// prepared on it still commit.
func (b *Bank) Update(change []byte) error {
	var c Change
	dec := json.NewDecoder(bytes.NewReader(change))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return fmt.Errorf("bank: bad change: %w", err)
	}
	name, locked := c.Lock, true
	if (c.Lock == "") == (c.Unlock == "") {
		return errors.New("bank: bad change: want exactly one of lock and unlock")
	}
	if name == "" {
		name, locked = c.Unlock, false
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	a := b.accounts[name]
	if a == nil {
		return fmt.Errorf("bank: %w %q", ErrUnknownAccount, name)
	}
	a.locked = locked
	return nil
}

// Account is the state of one account as reported.
type Account struct {
	Name      string `json:"name"`
	Balance   int64  `json:"balance"`
	Reserved  int64  `json:"reserved"`  // debits held by prepared transactions
	Incoming  int64  `json:"incoming"`  // credits of prepared transactions
	Available int64  `json:"available"` // balance − reserved
	Locked    bool   `json:"locked"`
	Version   uint64 `json:"version"` // commits that changed it (occ reads)
}

// Accounts returns every account, sorted by name.
func (b *Bank) Accounts() []Account {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make([]Account, 0, len(b.accounts))
	for name, a := range b.accounts {
		out = append(out, Account{Name: name, Balance: a.balance, Reserved: a.reserved,
			Incoming: a.incoming, Available: a.balance - a.reserved, Locked: a.locked, Version: a.version})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Account returns one account.
func (b *Bank) Account(name string) (Account, bool) {
	for _, a := range b.Accounts() {
		if a.Name == name {
			return a, true
		}
	}
	return Account{}, false
}

// Total returns the sum of all balances: what the bank invariant keeps constant across
// the participants of a run.
func (b *Bank) Total() int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	var t int64
	for _, a := range b.accounts {
		t += a.balance
	}
	return t
}

// Prepared returns the ids of the transactions holding reservations, sorted.
func (b *Bank) Prepared() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	ids := make([]string, 0, len(b.holds))
	for id := range b.holds {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return ids
}

type snapshot struct {
	Accounts []snapshotAccount `json:"accounts"`
	Holds    []snapshotHold    `json:"holds"`
}

type snapshotAccount struct {
	Name    string `json:"name"`
	Balance int64  `json:"balance"`
	Locked  bool   `json:"locked,omitempty"`
	Version uint64 `json:"version,omitempty"`
}

type snapshotHold struct {
	TxnID  string  `json:"txn_id"`
	Deltas []delta `json:"deltas"`
}

// Snapshot returns the whole state as JSON, sorted (equal states, equal bytes).
// Reserved and incoming amounts are not stored: they follow from the holds.
func (b *Bank) Snapshot() ([]byte, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := snapshot{Accounts: []snapshotAccount{}, Holds: []snapshotHold{}}
	for name, a := range b.accounts {
		s.Accounts = append(s.Accounts, snapshotAccount{Name: name, Balance: a.balance, Locked: a.locked, Version: a.version})
	}
	sort.Slice(s.Accounts, func(i, j int) bool { return s.Accounts[i].Name < s.Accounts[j].Name })
	for id, h := range b.holds {
		s.Holds = append(s.Holds, snapshotHold{TxnID: id, Deltas: h})
	}
	sort.Slice(s.Holds, func(i, j int) bool { return s.Holds[i].TxnID < s.Holds[j].TxnID })
	return json.Marshal(s)
}

// Restore replaces the whole state with a Snapshot, checking it.
func (b *Bank) Restore(data []byte) error {
	var s snapshot
	if err := json.Unmarshal(data, &s); err != nil {
		return fmt.Errorf("bank: restore: %w", err)
	}
	accounts := make(map[string]*account, len(s.Accounts))
	for _, a := range s.Accounts {
		if err := checkName(a.Name); err != nil {
			return fmt.Errorf("bank: restore: %w", err)
		}
		if accounts[a.Name] != nil || a.Balance < 0 || a.Balance > BalanceMax {
			return fmt.Errorf("bank: restore: account %q duplicated or out of range", a.Name)
		}
		accounts[a.Name] = &account{balance: a.Balance, locked: a.Locked, version: a.Version}
	}
	holds := make(map[string][]delta, len(s.Holds))
	for _, h := range s.Holds {
		if _, ok := holds[h.TxnID]; ok {
			return fmt.Errorf("bank: restore: transaction %q twice", h.TxnID)
		}
		for _, d := range h.Deltas {
			a := accounts[d.Account]
			if a == nil || d.Debit < 0 || d.Credit < 0 {
				return fmt.Errorf("bank: restore: transaction %q: bad reservation %+v", h.TxnID, d)
			}
			a.reserved += d.Debit
			a.incoming += d.Credit
		}
		holds[h.TxnID] = h.Deltas
	}
	for name, a := range accounts {
		if a.reserved > a.balance {
			return fmt.Errorf("bank: restore: account %q reserves %d of a balance of %d", name, a.reserved, a.balance)
		}
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.accounts, b.holds = accounts, holds
	return nil
}

// ParseAccounts parses "alice=100000,bob=100000" (the --accounts flag).
func ParseAccounts(s string) (map[string]int64, error) {
	out := map[string]int64{}
	if strings.TrimSpace(s) == "" {
		return out, nil
	}
	for _, part := range strings.Split(s, ",") {
		name, val, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			return nil, fmt.Errorf("bank: account %q: want name=balance", part)
		}
		var bal int64
		if _, err := fmt.Sscan(val, &bal); err != nil || fmt.Sprint(bal) != val {
			return nil, fmt.Errorf("bank: account %q: balance %q is not an integer", name, val)
		}
		if _, dup := out[name]; dup {
			return nil, fmt.Errorf("bank: account %q given twice", name)
		}
		out[name] = bal
	}
	return out, nil
}
