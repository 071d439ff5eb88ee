package checker

import (
	"fmt"
	"slices"
)

// CheckBank checks the bank invariant at the end of a run: the accounts hold
// initialTotal between them (transfers move money, they never make or destroy it), and no
// account is negative. Accounts are reported in name order.
func CheckBank(initialTotal int64, balances map[string]int64) []Violation {
	accounts := make([]string, 0, len(balances))
	for a := range balances {
		accounts = append(accounts, a)
	}
	slices.Sort(accounts)
	var vs []Violation
	var total int64
	for _, a := range accounts {
		b := balances[a]
		total += b
		if b < 0 {
			vs = append(vs, Violation{Kind: KindBank, Detail: fmt.Sprintf("account %s has a negative balance %d", a, b)})
		}
	}
	if total != initialTotal {
		vs = append(vs, Violation{Kind: KindBank, Detail: fmt.Sprintf("total money is %d across %d accounts, want %d (%+d)", total, len(accounts), initialTotal, total-initialTotal)})
	}
	return vs
}
