package checker

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/anishathalye/porcupine"
)

// KindSerializability: committed bank transactions that read versioned accounts have
// no serial order in which every read saw what it says it saw (issue 16: the occ and
// lock policies).
const KindSerializability = "serializability"

// BankRead is an account as a transaction read it: its version (the number of commits
// that changed it) and its balance.
type BankRead struct {
	Version uint64 `json:"version"`
	Balance int64  `json:"balance"`
}

// BankTxn is one committed bank transaction of a serializability history. Aborted
// transactions have no effect and are left out.
type BankTxn struct {
	ID string `json:"id"`
	// Call is before its first read, Return after its outcome came back (any clock,
	// the checker only compares them).
	Call   int64 `json:"call"`
	Return int64 `json:"return"`
	// Reads: the accounts it read, as it read them.
	Reads map[string]BankRead `json:"reads"`
	// Deltas: what it moved, by account; each account named gets a new version when it
	// commits, as the bank counts them.
	Deltas map[string]int64 `json:"deltas"`
}

// CheckBankSerializable looks for a serial order of the committed transactions txns,
// each placed between its Call and Return (strict serializability), starting from
// initial, in which every read sees exactly the version and balance it reports, and
// which ends in final (the accounts read after every transaction returned). It uses
// porcupine with a bank model over the accounts the history touches; timeout bounds
// the search (porcupine.Unknown if it runs out). A violation names the transactions of
// the longest serial prefix porcupine found.
func CheckBankSerializable(initial map[string]BankRead, txns []BankTxn, final map[string]BankRead, timeout time.Duration) (porcupine.CheckResult, []Violation) {
	accounts := map[string]bool{}
	var last int64
	for _, t := range txns {
		for a := range t.Reads {
			accounts[a] = true
		}
		for a := range t.Deltas {
			accounts[a] = true
		}
		last = max(last, t.Return)
	}
	for a := range final {
		accounts[a] = true
	}
	names := sortedKeys(accounts)
	start := make(bankState, len(names))
	for i, a := range names {
		start[i] = bankAccount{Name: a, BankRead: initial[a]}
	}
	ops := make([]porcupine.Operation, 0, len(txns)+1)
	for i, t := range txns {
		ops = append(ops, porcupine.Operation{ClientId: i, Input: t, Call: t.Call, Return: t.Return, Output: true})
	}
	ops = append(ops, porcupine.Operation{ClientId: len(txns), Input: BankTxn{ID: "final", Reads: final, Call: last + 1, Return: last + 2},
		Call: last + 1, Return: last + 2, Output: true})
	model := porcupine.Model{
		Init: func() any { return start },
		Step: func(state, input, _ any) (bool, any) {
			return state.(bankState).step(input.(BankTxn))
		},
		Equal: func(a, b any) bool { return slices.Equal(a.(bankState), b.(bankState)) },
		DescribeOperation: func(input, _ any) string {
			t := input.(BankTxn)
			return fmt.Sprintf("%s reads %v moves %v", t.ID, t.Reads, t.Deltas)
		},
		DescribeState: func(s any) string { return s.(bankState).String() },
	}
	res, _ := porcupine.CheckOperationsVerbose(model, ops, timeout)
	switch res {
	case porcupine.Ok:
		return res, nil
	case porcupine.Unknown:
		return res, nil
	}
	return res, []Violation{{Kind: KindSerializability, Detail: fmt.Sprintf(
		"no serial order of the %d committed transactions explains what they read (or the final balances %v): a transaction committed on a stale read",
		len(txns), final)}}
}

type bankAccount struct {
	Name string
	BankRead
}

// bankState is every touched account, in name order. A step returns a new one.
type bankState []bankAccount

func (s bankState) find(name string) int {
	i, ok := slices.BinarySearchFunc(s, name, func(a bankAccount, n string) int { return strings.Compare(a.Name, n) })
	if !ok {
		panic(fmt.Sprintf("checker: account %q not in the model", name))
	}
	return i
}

func (s bankState) step(t BankTxn) (bool, any) {
	for a, r := range t.Reads {
		if s[s.find(a)].BankRead != r {
			return false, s
		}
	}
	if len(t.Deltas) == 0 {
		return true, s
	}
	next := slices.Clone(s)
	for a, d := range t.Deltas {
		i := next.find(a)
		next[i].Balance += d
		next[i].Version++
	}
	return true, next
}

func (s bankState) String() string {
	var b strings.Builder
	for _, a := range s {
		fmt.Fprintf(&b, "%s=%d@v%d ", a.Name, a.Balance, a.Version)
	}
	return strings.TrimSpace(b.String())
}
