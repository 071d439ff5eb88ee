package bank

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/dtc-project/dtc/participant"
	"github.com/dtc-project/dtc/wal"
)

func newBank(t *testing.T) *Bank {
	t.Helper()
	b, err := New(map[string]int64{"alice": 1000, "bob": 500, "carol": 0})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func pay(ops ...any) json.RawMessage {
	var p Payload
	for i := 0; i < len(ops); i += 2 {
		p.Ops = append(p.Ops, Op{Account: ops[i].(string), Amount: int64(ops[i+1].(int))})
	}
	data, _ := json.Marshal(p)
	return data
}

func accounts(b *Bank) string {
	var parts []string
	for _, a := range b.Accounts() {
		s := fmt.Sprintf("%s:%d", a.Name, a.Balance)
		if a.Reserved != 0 || a.Incoming != 0 {
			s += fmt.Sprintf("(-%d+%d)", a.Reserved, a.Incoming)
		}
		if a.Locked {
			s += "L"
		}
		parts = append(parts, s)
	}
	return strings.Join(parts, " ")
}

func TestPrepareRefusals(t *testing.T) {
	b := newBank(t)
	if err := b.Update(LockChange("carol", true)); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		payload string
		want    string
	}{
		{"insufficient funds", string(pay("alice", -1001, "bob", 1001)), `insufficient funds in "alice": available 1000, debit 1001`},
		{"debits of one account add up", string(pay("alice", -600, "alice", -600, "bob", 1200)), `insufficient funds in "alice": available 1000, debit 1200`},
		{"unknown account", string(pay("alice", -1, "dave", 1)), `unknown account "dave"`},
		{"locked account", string(pay("alice", -1, "carol", 1)), `account "carol" is locked`},
		{"not JSON", `{"ops":`, `malformed payload: unexpected EOF`},
		{"empty", ``, `malformed payload: empty`},
		{"no ops", `{"ops":[]}`, `malformed payload: no ops`},
		{"unknown field", `{"ops":[{"account":"alice","amount":-1}],"memo":"x"}`, `malformed payload: unknown field "memo"`},
		{"zero amount", string(pay("alice", 0)), `malformed payload: op 0: amount 0`},
		{"huge amount", `{"ops":[{"account":"bob","amount":2000000000000000}]}`, `malformed payload: op 0: amount 2000000000000000`},
		{"bad name", string(pay("al ice", -1)), `malformed payload: op 0: account name "al ice"`},
		{"hold too long", `{"ops":[{"account":"bob","amount":1}],"hold_ms":60001}`, `malformed payload: hold_ms 60001 out of range`},
		{"wrong type", `{"ops":[{"account":"bob","amount":"1"}]}`, `malformed payload: cannot unmarshal string`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := b.Prepare("t", json.RawMessage(tt.payload))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Prepare(%s) = %v, want …%s…", tt.payload, err, tt.want)
			}
		})
	}
	if got := accounts(b); got != "alice:1000 bob:500 carol:0L" {
		t.Fatalf("a refused prepare changed something: %s", got)
	}
	if err := b.Prepare("t", json.RawMessage(`{"ops":[{"account":"dave","amount":1}]}`)); !errors.Is(err, ErrUnknownAccount) {
		t.Fatalf("want ErrUnknownAccount, got %v", err)
	}
}

func TestReservationsAndMoneyConserved(t *testing.T) {
	b := newBank(t)
	total := b.Total()
	step := func(what string, err error, want string) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if got := accounts(b); got != want {
			t.Fatalf("after %s: %s, want %s", what, got, want)
		}
		if b.Total() != total && !strings.HasPrefix(what, "credit-only") {
			t.Fatalf("after %s: total %d, want %d", what, b.Total(), total)
		}
	}
	step("prepare t1", b.Prepare("t1", pay("alice", -700, "bob", 700)), "alice:1000(-700+0) bob:500(-0+700) carol:0")
	// Only 300 left to reserve on alice.
	if err := b.Prepare("t2", pay("alice", -301, "carol", 301)); err == nil || !strings.Contains(err.Error(), "available 300") {
		t.Fatalf("second reservation: %v", err)
	}
	step("prepare t2", b.Prepare("t2", pay("alice", -300, "carol", 300)), "alice:1000(-1000+0) bob:500(-0+700) carol:0(-0+300)")
	b.Rollback("t1")
	step("rollback t1", nil, "alice:1000(-300+0) bob:500 carol:0(-0+300)")
	b.Commit("t2")
	step("commit t2", nil, "alice:700 bob:500 carol:300")
	// Locking does not stop a prepared transaction from committing.
	step("prepare t3", b.Prepare("t3", pay("bob", -500, "alice", 500)), "alice:700(-0+500) bob:500(-500+0) carol:300")
	step("lock bob", b.Update(LockChange("bob", true)), "alice:700(-0+500) bob:500(-500+0)L carol:300")
	if err := b.Prepare("t4", pay("alice", -1, "bob", 1)); err == nil {
		t.Fatal("prepare on a locked account succeeded")
	}
	b.Commit("t3")
	step("commit t3", nil, "alice:1200 bob:0L carol:300")
	step("unlock bob", b.Update(LockChange("bob", false)), "alice:1200 bob:0 carol:300")
	if len(b.Prepared()) != 0 {
		t.Fatalf("holds left: %v", b.Prepared())
	}
	if err := b.Prepare("t1", pay("alice", -1, "bob", 1)); err != nil {
		t.Fatal(err)
	}
	if err := b.Prepare("t1", pay("alice", -1, "bob", 1)); err == nil {
		t.Fatal("a second reservation under the same id")
	}
}

func TestUpdateRefusals(t *testing.T) {
	b := newBank(t)
	for _, c := range []string{`{"lock":"dave"}`, `{}`, `{"lock":"alice","unlock":"bob"}`, `{"freeze":"alice"}`, `nope`} {
		if err := b.Update([]byte(c)); err == nil {
			t.Errorf("Update(%s) accepted", c)
		}
	}
}

func TestSnapshotRestore(t *testing.T) {
	b := newBank(t)
	must(t, b.Prepare("t1", pay("alice", -100, "bob", 100)))
	must(t, b.Prepare("t2", pay("bob", -50, "carol", 20, "alice", 30)))
	must(t, b.Update(LockChange("carol", true)))
	snap, err := b.Snapshot()
	must(t, err)
	c, err := New(nil)
	must(t, err)
	must(t, c.Restore(snap))
	if accounts(b) != accounts(c) {
		t.Fatalf("restored %s, want %s", accounts(c), accounts(b))
	}
	snap2, _ := c.Snapshot()
	if string(snap) != string(snap2) {
		t.Fatalf("snapshot not stable:\n%s\n%s", snap, snap2)
	}
	// The restored holds commit and roll back like the originals.
	c.Commit("t1")
	c.Rollback("t2")
	if got := accounts(c); got != "alice:900 bob:600 carol:0L" {
		t.Fatalf("after phase 2: %s", got)
	}
	for _, bad := range []string{
		`{"accounts":[{"name":"a","balance":5}],"holds":[{"txn_id":"t","deltas":[{"account":"a","debit":6}]}]}`,
		`{"accounts":[{"name":"a","balance":5}],"holds":[{"txn_id":"t","deltas":[{"account":"b","debit":1}]}]}`,
		`{"accounts":[{"name":"a","balance":-5}]}`,
		`{"accounts":[{"name":"a","balance":5},{"name":"a","balance":5}]}`,
		`[]`,
	} {
		if err := c.Restore([]byte(bad)); err == nil {
			t.Errorf("Restore(%s) accepted", bad)
		}
	}
}

func TestParseAccounts(t *testing.T) {
	got, err := ParseAccounts("alice=100000, bob=5")
	if err != nil || got["alice"] != 100000 || got["bob"] != 5 || len(got) != 2 {
		t.Fatalf("ParseAccounts = %v, %v", got, err)
	}
	for _, bad := range []string{"alice", "alice=x", "alice=1,alice=2", "alice=1.5"} {
		if _, err := ParseAccounts(bad); err == nil {
			t.Errorf("ParseAccounts(%q) accepted", bad)
		}
	}
	if _, err := New(map[string]int64{"a b": 1}); err == nil {
		t.Error("New accepted a bad name")
	}
	if _, err := New(map[string]int64{"a": -1}); err == nil {
		t.Error("New accepted a negative balance")
	}
}

type clock struct{ now time.Time }

func (c clock) Now() time.Time { return c.now }

// The bank under the participant core over wal.MemFS, as the simulator runs it: a crash
// and replay rebuild the same accounts, the initial balances are used only once, and
// money is conserved.
func TestBankUnderParticipantSurvivesCrash(t *testing.T) {
	fs := wal.NewMemFS()
	opts := wal.Options{FS: fs, Dir: "bank", SegmentSizeBytes: 64 << 10}
	open := func(initial map[string]int64) (*participant.Participant, *Bank) {
		b, err := New(initial)
		must(t, err)
		p, err := participant.OpenSync(participant.DefaultConfig(), b, clock{}, opts)
		must(t, err)
		return p, b
	}
	p, b := open(map[string]int64{"alice": 1000, "bob": 1000})
	vote := func(id string, payload json.RawMessage) string {
		var got string
		p.Prepare(id, payload, "", func(v participant.Vote) { r := v.Response(); got = fmt.Sprint(r.Vote, " ", r.Reason) })
		return got
	}
	if v := vote("t1", pay("alice", -400, "bob", 400)); v != "ACK " {
		t.Fatal(v)
	}
	if v := vote("t2", pay("alice", -700, "bob", 700)); !strings.Contains(v, "insufficient funds") {
		t.Fatal(v)
	}
	must(t, vote2(p, "t3", pay("bob", -100, "alice", 100)))
	p.Commit("t1", func(participant.Result) {})
	var lockErr error
	p.Update(LockChange("alice", true), func(err error) { lockErr = err })
	must(t, lockErr)
	before := accounts(b)

	fs.Crash()
	p, b = open(map[string]int64{"alice": 1, "mallory": 1_000_000}) // ignored: not a fresh log
	defer p.Close()
	if got := accounts(b); got != before || got != "alice:600(-0+100)L bob:1400(-100+0)" {
		t.Fatalf("after crash %s, before %s", got, before)
	}
	if b.Total() != 2000 {
		t.Fatalf("total %d", b.Total())
	}
	p.Rollback("t3", func(participant.Result) {})
	if got := accounts(b); got != "alice:600L bob:1400" {
		t.Fatal(got)
	}
}

func vote2(p *participant.Participant, id string, payload json.RawMessage) error {
	var err error
	p.Prepare(id, payload, "", func(v participant.Vote) {
		if !v.ACK {
			err = errors.New(v.Reason)
		}
	})
	return err
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
