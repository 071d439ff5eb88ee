package main

import (
	"fmt"
	"path/filepath"
	"strings"
)

// printHints tells the user what to try while everything keeps running.
func (d *demo) printHints(w *workload) {
	cfg := d.cfg
	dtcBin := path(filepath.Join(cfg.binDir, "dtc"))
	api := fmt.Sprintf("%s:%d", cfg.host, cfg.dtcPort)
	coordFlag := ""
	if d.dtcURL() != "http://127.0.0.1:7070" { // the CLI's default
		coordFlag = " --coordinator " + d.dtcURL()
	}
	p := func(bank int) string { return d.bankURL(bank) + "/prepare" }
	ops := func(acct string, n int) string {
		return fmt.Sprintf(`{"ops":[{"account":%q,"amount":%d}]}`, acct, n)
	}
	obj := func(bank int, payload string) string {
		return fmt.Sprintf(`{"url":%q,"payload":%s}`, p(bank), payload)
	}
	nackID := fmt.Sprintf("%s-%d", w.idPrefix, 4)
	logs := path(filepath.Join(cfg.runDir, "*.log"))
	if cfg.logs == "terminal" {
		logs = "above, on stderr"
	}

	var b strings.Builder
	fmt.Fprintf(&b, "\ndtc and the banks keep running. Try, in another terminal (amounts are cents).\n")
	fmt.Fprintf(&b, "The API takes a token: the demo made one (role admin) in %s. bin/dtc reads DTC_TOKEN:\n\n",
		path(filepath.Join(cfg.runDir, tokenFile)))
	fmt.Fprintf(&b, "  export DTC_TOKEN=$(cat %s)\n\n", path(filepath.Join(cfg.runDir, tokenFile)))
	fmt.Fprintf(&b, "  # move 1000 from alice (bank1) to carol (bank2); the answer comes with the outcome\n")
	fmt.Fprintf(&b, "  curl -s -H \"Authorization: Bearer $DTC_TOKEN\" -XPOST %s/v1/transactions -d '{\"participants\":[\n      %s,\n      %s]}'\n\n",
		api, obj(0, ops("alice", -1000)), obj(1, ops("carol", 1000)))
	fmt.Fprintf(&b, "  # the same with the CLI, under an id of your choice (resubmitting it answers the same transaction)\n")
	fmt.Fprintf(&b, "  %s submit%s --id my-first \\\n      '%s=%s' \\\n      '%s=%s'\n\n",
		dtcBin, coordFlag, p(0), ops("alice", -1000), p(1), ops("carol", 1000))
	fmt.Fprintf(&b, "  # bank2 holds its vote 3s but the deadline is 1s: aborted, bank2 TIMEOUT; ?wait=false answers 202 at once\n")
	fmt.Fprintf(&b, "  curl -si -H \"Authorization: Bearer $DTC_TOKEN\" -XPOST '%s/v1/transactions?wait=false' -d '{\"prepare_timeout_ms\":1000,\"participants\":[\n      %s,\n      %s]}'\n",
		api, obj(1, `{"ops":[{"account":"dave","amount":-10}],"hold_ms":3000}`), obj(2, ops("frank", 10)))
	fmt.Fprintf(&b, "  curl -s -H \"Authorization: Bearer $DTC_TOKEN\" %s/v1/transactions/ID  # poll it, with the id of the answer above\n\n", api)
	short := [][2]string{
		{fmt.Sprintf("%s get%s %s", dtcBin, coordFlag, nackID), "one transaction: votes, reasons, phase 2"},
		{fmt.Sprintf("%s list%s", dtcBin, coordFlag), "every transaction the coordinator remembers"},
		{fmt.Sprintf("curl -s %s/accounts", d.bankURL(0)), "bank1's balances; bank2 and bank3 likewise"},
		{fmt.Sprintf("%s log dump --data-dir %s | jq -c .record", dtcBin, path(filepath.Join(cfg.runDir, "dtc"))), "the coordinator's log"},
	}
	width := 0
	for _, l := range short {
		width = max(width, len(l[0]))
	}
	for _, l := range short {
		fmt.Fprintf(&b, "  %-*s  # %s\n", width, l[0], l[1])
	}
	fmt.Fprintln(&b)
	fmt.Fprintf(&b, "  # only dtc may prepare, commit or roll back at a bank: it signs its requests with %s\n", path(filepath.Join(cfg.runDir, secretFileName)))
	fmt.Fprintf(&b, "  curl -s -XPOST %s/rollback -d '{\"txn_id\":\"%s\"}'  # refused: 401 unauthorized\n\n", d.bankURL(0), nackID)
	fmt.Fprintf(&b, "Logs: %s. Press Ctrl-C to stop dtc and the banks.\n", logs)
	fmt.Fprint(d.stdout, b.String())
}
