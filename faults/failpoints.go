package faults

import (
	"fmt"
	"slices"
	"strings"
)

// Failpoints at the durability points of real processes. The simulator crashes its nodes
// at any event boundary; real processes (chaos real) are killed at random moments, and
// these name the moments that matter most, so that a campaign can kill, slow or fail a
// process exactly there. Each is a marker in the source,
//
//	failpoint.Inject("beforeDecisionSync", func(v failpoint.Value) { … })
//
// a no-op in a normal build and live in a chaos build (go build -toolexec
// failpoint-toolexec, see chaosreal). A process arms one through its environment:
//
//	GO_FAILPOINTS='github.com/dtc-project/dtc/coordlog/beforeDecisionSync=5%return("panic")'
//
// Term values (internal/fp.Act): return("panic") kills the process at that point,
// return("error") makes the operation fail, sleep(N) waits N ms and carries on. The
// prefix 5% fires on about one evaluation in twenty; see github.com/pingcap/failpoint for
// the rest of the term language.
type Failpoint struct {
	// Name is the package (relative to the module) and the marker's name:
	// "coordlog/beforeDecisionSync".
	Name string
	// Process is which process it lives in: "coord" (dtc serve) or "participant" (bank).
	Process string
	// Actions are what it may be armed with: ActionPanic, ActionSleep, ActionError.
	Actions []string
	// Broken marks a failpoint that is a deliberate bug, never armed by a campaign unless
	// asked: it shows that a campaign catches a broken build.
	Broken bool
	// Doc says where it is and what each action means there.
	Doc string
}

// The actions a failpoint may be armed with.
const (
	ActionPanic = "panic" // the process dies at the point (SIGKILL to itself)
	ActionSleep = "sleep" // the point waits, then carries on
	ActionError = "error" // the operation at the point fails
)

// Module is the module path that prefixes a failpoint's name in GO_FAILPOINTS.
const Module = "github.com/dtc-project/dtc"

// Failpoints lists every failpoint marker of dtc, in the order of a transaction's life.
var Failpoints = []Failpoint{
	{
		Name: "participant/beforePrepareSync", Process: "participant", Actions: []string{ActionPanic, ActionSleep},
		Doc: "participant.GroupSyncStore.Append, a prepare record on its way to the log: panic dies before it is durable (the vote is lost: the coordinator sees no answer and aborts); sleep holds the prepare (votes time out)",
	},
	{
		Name: "participant/afterPrepareSync", Process: "participant", Actions: []string{ActionPanic, ActionSleep, ActionError},
		Doc: "participant.GroupSyncStore, the prepare record durable, before the ACK is sent: panic dies with the transaction prepared and its vote unsent; error reports the synced record as failed (the participant stops answering and is restarted)",
	},
	{
		Name: "coordlog/beforeDecisionSync", Process: "coord", Actions: []string{ActionPanic, ActionSleep, ActionError},
		Doc: "coordlog.ShardLog.Append of a decision record: panic dies before the decision is durable (recovery must ask the participants); error is a log that refuses the record (the engine retries it)",
	},
	{
		Name: "coordlog/afterDecisionSync", Process: "coord", Actions: []string{ActionPanic, ActionSleep},
		Doc: "coordlog.ShardLog, the decision record durable, before the engine hears so: panic dies with the decision durable and told to nobody",
	},
	{
		Name: "httpnet/transport/beforeCommitSend", Process: "coord", Actions: []string{ActionPanic, ActionSleep, ActionError},
		Doc: "the transport (httpnet/transport), each commit request before it leaves (after the decision is durable): panic dies between the durable decision and the first commit sent; error loses the request (the engine retries it)",
	},
	{
		Name: "cluster/beforeLogWrite", Process: "coord", Actions: []string{ActionSleep},
		Doc: "cluster.Log, a batch of a shard's records taken for an etcd transaction, before it is sent: sleep holds it, so that a node stopped (SIGSTOP) during the hold sends it after it resumes, past its lease: the owner compare must refuse it (chaos real --cluster arms it in every node)",
	},
	{
		Name: "coordlog/decisionNotSynced", Process: "coord", Actions: []string{"return(true)"}, Broken: true,
		Doc: "a deliberate bug: the decision record is reported durable as soon as it is appended, and synced only with the next lazy flush: phase 2 and the client's answer may run ahead of a decision that a crash then loses",
	},
}

// Path is the failpoint's name in GO_FAILPOINTS: the module path and Name.
func (f Failpoint) Path() string { return Module + "/" + f.Name }

// Term is the failpoint's GO_FAILPOINTS entry armed with action: fired on about
// percent of its evaluations (100 or more: every one), a sleep lasting sleepMs.
func (f Failpoint) Term(action string, percent, sleepMs int) (string, error) {
	if !slices.Contains(f.Actions, action) {
		return "", fmt.Errorf("faults: failpoint %s cannot be armed with %q (it takes %s)", f.Name, action, strings.Join(f.Actions, ", "))
	}
	var act string
	switch action {
	case ActionSleep:
		act = fmt.Sprintf("sleep(%d)", max(sleepMs, 1))
	case ActionPanic, ActionError:
		act = fmt.Sprintf("return(%q)", action)
	default:
		act = action
	}
	if percent > 0 && percent < 100 {
		act = fmt.Sprintf("%d%%%s", percent, act)
	}
	return f.Path() + "=" + act, nil
}

// FailpointNamed returns the failpoint with that Name ("coordlog/beforeDecisionSync").
func FailpointNamed(name string) (Failpoint, bool) {
	for _, f := range Failpoints {
		if f.Name == name {
			return f, true
		}
	}
	return Failpoint{}, false
}
