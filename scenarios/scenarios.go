// Package scenarios holds dtc's named scenarios: each a workload, a fault schedule and an
// expectation, run through the deterministic simulator by `go test -run Scenario ./...`.
// The tests read as sentences ("the coordinator crashes after the decision, before
// phase 2: every participant still commits"); this file is the small vocabulary they
// are written in.
//
// Every bug the simulator found in the real components is kept here as a TestScenarioBug*
// that replays it (see bugs_test.go), next to the swarm (many seeds, each with its own
// fault mix) and the tests that show the checker catching deliberately broken
// components.
package scenarios

import (
	"fmt"
	"time"

	"github.com/dtc-project/dtc/faults"
	"github.com/dtc-project/dtc/simnet"
)

// Move is a transfer of amount from account a0 of one participant to account a0 of
// another.
func Move(id string, amount int64, from, to string) simnet.Transfer {
	return Transfer(id, Debit(from, "a0", amount), Credit(to, "a0", amount))
}

// Transfer is a transfer made of legs, submitted by client c1 as soon as it can.
func Transfer(id string, legs ...simnet.Leg) simnet.Transfer {
	return simnet.Transfer{ID: id, Legs: legs}
}

// Debit takes amount from an account.
func Debit(participant, account string, amount int64) simnet.Leg {
	return simnet.Leg{Participant: participant, Account: account, Amount: -amount}
}

// Credit adds amount to an account.
func Credit(participant, account string, amount int64) simnet.Leg {
	return simnet.Leg{Participant: participant, Account: account, Amount: amount}
}

// By makes client c (from 1) submit the transfer.
func By(c int, t simnet.Transfer) simnet.Transfer { t.Client = c - 1; return t }

// At makes the transfer wait until virtual time d.
func At(d time.Duration, t simnet.Transfer) simnet.Transfer { t.At = d; return t }

// Calm is a world without faults: fixed small latencies, fast disks.
func Calm() *faults.Knobs {
	k := faults.Calm()
	return &k
}

// Exact is Calm with every latency fixed, so that a scenario can reason about the order
// of messages: 1ms per message, 0.5ms per fsync.
func Exact() *faults.Knobs {
	k := faults.Calm()
	k.LatencyMin, k.LatencyMax = time.Millisecond, time.Millisecond
	return &k
}

// Scenario is one named run: options for the simulator (workload, knobs, schedule) and
// what must hold at the end.
type Scenario struct {
	Name    string
	Options simnet.Options
	Expect  func(*simnet.Result) error
}

// Run runs the scenario and checks its expectation.
func (sc Scenario) Run() (*simnet.Result, error) {
	res, err := simnet.Run(sc.Options)
	if err != nil {
		return nil, err
	}
	if sc.Expect != nil {
		if err := sc.Expect(res); err != nil {
			return res, fmt.Errorf("scenario %s: %w", sc.Name, err)
		}
	}
	return res, nil
}
