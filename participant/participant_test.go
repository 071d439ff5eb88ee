package participant

import (
	"fmt"
	"strings"
	"testing"
)

// run plays a script against a participant over a synchronous store on wal.MemFS and
// returns one line per command: "command → answer". Commands:
//
//	prepare ID [PAYLOAD]   commit ID   rollback ID   status ID
//	restart                crash (MemFS.Crash, then reopen)
//	checkpoint             service (print the service state)
func run(t *testing.T, m *memLog, script string) []string {
	t.Helper()
	p, svc := m.open(t)
	defer func() { p.Close() }()
	a := &answer{}
	var out []string
	for _, line := range strings.Split(strings.TrimSpace(script), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.SplitN(line, " ", 3)
		var got string
		switch f[0] {
		case "prepare":
			payload := ""
			if len(f) == 3 {
				payload = f[2]
			}
			got = sync1(t, a, func() { prepare(p, a, f[1], payload) })
			got = strings.TrimPrefix(got, "prepare "+f[1]+": ")
		case "commit":
			got = strings.TrimPrefix(sync1(t, a, func() { commit(p, a, f[1]) }), "commit "+f[1]+": ")
		case "rollback":
			got = strings.TrimPrefix(sync1(t, a, func() { rollback(p, a, f[1]) }), "rollback "+f[1]+": ")
		case "status":
			got = string(p.Status(f[1]))
		case "restart":
			if err := p.Close(); err != nil {
				t.Fatal(err)
			}
			p, svc = m.open(t)
			got = "ok"
		case "crash": // the process dies: no Close, unsynced data lost
			m.fs.Crash()
			p, svc = m.open(t)
			got = "ok"
		case "checkpoint":
			var err error
			p.Checkpoint(func(e error) { err = e })
			got = fmt.Sprint(err)
		case "service":
			got = svc.String()
		default:
			t.Fatalf("unknown command %q", line)
		}
		out = append(out, line+" → "+got)
	}
	return out
}

func TestProtocol(t *testing.T) {
	tests := []struct {
		name, script, want string
	}{
		{"prepare then commit", `
			prepare t1 {"x":1}
			status t1
			commit t1
			status t1
			service`, `
			prepare t1 {"x":1} → ACK
			status t1 → prepared
			commit t1 → 200 committed
			status t1 → committed
			service → t1=applied committed=1 notes=[]`},
		{"prepare then rollback", `
			prepare t1
			rollback t1
			status t1
			service`, `
			prepare t1 → ACK
			rollback t1 → 200 aborted
			status t1 → aborted
			service → t1=released committed=0 notes=[]`},
		{"service NACK leaves nothing behind", `
			prepare t1 {"nack":"insufficient funds"}
			status t1
			prepare t1 {}
			status t1`, `
			prepare t1 {"nack":"insufficient funds"} → NACK insufficient funds
			status t1 → unknown
			prepare t1 {} → ACK
			status t1 → prepared`},
		{"repeats are idempotent", `
			prepare t1 {"a": 1}
			prepare t1 {"a":1}
			commit t1
			commit t1
			prepare t1 {"a":1}
			rollback t2
			rollback t2
			service`, `
			prepare t1 {"a": 1} → ACK
			prepare t1 {"a":1} → ACK
			commit t1 → 200 committed
			commit t1 → 200 committed
			prepare t1 {"a":1} → ACK
			rollback t2 → 200 aborted
			rollback t2 → 200 aborted
			service → t1=applied committed=1 notes=[]`},
		{"same id with another payload", `
			prepare t1 {"a":1}
			prepare t1 {"a":2}
			status t1`, `
			prepare t1 {"a":1} → ACK
			prepare t1 {"a":2} → NACK already prepared with a different payload
			status t1 → prepared`},
		{"rollback before prepare fences the id", `
			rollback t1
			status t1
			prepare t1 {}
			status t1
			commit t1
			service`, `
			rollback t1 → 200 aborted
			status t1 → aborted
			prepare t1 {} → NACK fenced: rolled back before prepare
			status t1 → aborted
			commit t1 → 409 aborted
			service → committed=0 notes=[]`},
		{"prepare after rollback", `
			prepare t1
			rollback t1
			prepare t1`, `
			prepare t1 → ACK
			rollback t1 → 200 aborted
			prepare t1 → NACK already rolled back`},
		{"commit after abort is a conflict", `
			prepare t1
			rollback t1
			commit t1
			status t1`, `
			prepare t1 → ACK
			rollback t1 → 200 aborted
			commit t1 → 409 aborted
			status t1 → aborted`},
		{"rollback after commit is a conflict", `
			prepare t1
			commit t1
			rollback t1
			status t1`, `
			prepare t1 → ACK
			commit t1 → 200 committed
			rollback t1 → 409 committed
			status t1 → committed`},
		{"unknown ids", `
			status nope
			commit nope
			status nope`, `
			status nope → unknown
			commit nope → 409 unknown
			status nope → unknown`},
		{"state survives restart and crash", `
			prepare t1 {"k":"v"}
			prepare t2
			commit t2
			rollback t3
			restart
			status t1
			status t2
			status t3
			crash
			status t1
			commit t1
			prepare t3
			service`, `
			prepare t1 {"k":"v"} → ACK
			prepare t2 → ACK
			commit t2 → 200 committed
			rollback t3 → 200 aborted
			restart → ok
			status t1 → prepared
			status t2 → committed
			status t3 → aborted
			crash → ok
			status t1 → prepared
			commit t1 → 200 committed
			prepare t3 → NACK fenced: rolled back before prepare
			service → t1=applied t2=applied committed=2 notes=[]`},
		{"checkpoint then restart", `
			prepare t1 {"k":1}
			prepare t2
			commit t2
			rollback t3
			checkpoint
			prepare t4
			crash
			status t1
			status t2
			status t3
			status t4
			commit t1
			rollback t4
			service`, `
			prepare t1 {"k":1} → ACK
			prepare t2 → ACK
			commit t2 → 200 committed
			rollback t3 → 200 aborted
			checkpoint → <nil>
			prepare t4 → ACK
			crash → ok
			status t1 → prepared
			status t2 → committed
			status t3 → aborted
			status t4 → prepared
			commit t1 → 200 committed
			rollback t4 → 200 aborted
			service → t1=applied t2=applied t4=released committed=2 notes=[]`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := run(t, newMemLog(testConfig()), tt.script)
			var want []string
			for _, l := range strings.Split(strings.TrimSpace(tt.want), "\n") {
				want = append(want, strings.TrimSpace(l))
			}
			if strings.Join(got, "\n") != strings.Join(want, "\n") {
				t.Errorf("got:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
			}
		})
	}
}
