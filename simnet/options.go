package simnet

import (
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/dtc-project/dtc/coordinator"
	"github.com/dtc-project/dtc/faults"
	"github.com/dtc-project/dtc/participant"
)

// Options describe one simulated run. Seed is the only source of randomness: the same
// Options give the same trace, byte for byte.
type Options struct {
	Seed uint64

	// Participants is how many bank participants there are, named p1..pN (default 3).
	Participants int
	// Clients is how many clients submit transfers concurrently, c1..cK (default 3).
	Clients int
	// Txns is how many transfers the generated workload submits (default 200). Ignored
	// when Workload is set.
	Txns int
	// Accounts is how many accounts each participant holds (default 4): fewer accounts
	// means hotter ones. Each starts with InitialBalance (default 100).
	Accounts       int
	InitialBalance int64
	// Workload lists the transfers to submit instead of generated ones.
	Workload []Transfer

	// Knobs are the fault rates of the fault phase; nil draws them from the seed
	// (faults.Draw): a swarm run.
	Knobs *faults.Knobs
	// Schedule lists explicit faults, on top of the knobs.
	Schedule faults.Schedule
	// Break enables deliberate bugs, to show that the checker catches them.
	Break Breakage
	// Cluster, if set, runs the coordinator as one shard of a cluster of nodes over a
	// model of etcd (cluster.go).
	Cluster *ClusterOptions

	// DeadlockDetection: the coordinator keeps a wait-for graph of the participants'
	// lock-wait reports and aborts the youngest transaction of every cycle (waits.go);
	// off, a deadlock lasts until the prepare deadline.
	DeadlockDetection bool

	// Coordinator and Participant adjust the configurations the simulator starts from.
	Coordinator func(*coordinator.Config)
	Participant func(*participant.Config)

	// FaultPhaseMax bounds the fault phase (default 2 minutes of virtual time): it ends
	// when every client is done and the schedule is over, or then. HealMax bounds the
	// heal phase (default 2 minutes): by then every transaction must be decided and
	// every participant resolved.
	FaultPhaseMax time.Duration
	HealMax       time.Duration

	// Trace receives every trace line, if set. TraceTail is how many last lines a
	// Result keeps for its failure report (default 60).
	Trace     io.Writer
	TraceTail int
	// SegmentSizeBytes is the size of every log segment (default 32 KiB: small, so that
	// runs cut and remove segments).
	SegmentSizeBytes int64
}

// Transfer is one transaction of the workload: money moved between accounts held by
// different participants. The legs of one participant become its prepare payload,
// {"ops":[{"account":…,"amount":…},…]}; the amounts of a transfer sum to zero.
type Transfer struct {
	// ID is the client-chosen transaction id (default "t<n>", n counting from 1).
	ID string
	// Client is which client submits it, from 0 (default 0).
	Client int
	// At is the earliest virtual time it is submitted; the client submits its transfers
	// in order, one at a time.
	At time.Duration
	// PrepareTimeout overrides the coordinator's default.
	PrepareTimeout time.Duration
	Legs           []Leg
}

// Leg is one account's part in a transfer.
type Leg struct {
	Participant string // "p1"
	Account     string
	Amount      int64
}

// Breakage is a set of deliberate bugs, each a decorator around a real component (the
// components themselves have no test switches). Each must make the checker report a
// violation within a bounded number of seeds.
type Breakage uint32

const (
	// BreakCommitBeforeDurable reports the decision record durable to the engine as soon
	// as it is appended: phase 2 starts before the decision survives a crash.
	BreakCommitBeforeDurable Breakage = 1 << iota
	// BreakClientToldBeforeLog answers the client as soon as the engine appends its
	// decision, before it is durable.
	BreakClientToldBeforeLog
	// BreakParticipantSkipsFsync makes participant stores report records durable
	// without syncing them: an ACK may be forgotten in a crash.
	BreakParticipantSkipsFsync
	// BreakNoFencing answers a rollback of a transaction a participant never prepared
	// without fencing it: a late prepare is then ACKed.
	BreakNoFencing
	// BreakRecoveryPresumesCommit rewrites every status answer to "prepared": recovery
	// commits what it should abort.
	BreakRecoveryPresumesCommit
	// BreakPhase2GivesUp answers the engine as if the participant had acknowledged
	// phase 2 after a few failed attempts: the coordinator forgets a transaction that a
	// participant never learned.
	BreakPhase2GivesUp
	// BreakBeginAlwaysLazy makes the engine believe that every participant asks about
	// transactions in doubt, so that it never syncs a begin before the prepares: a
	// passive participant that prepared before a crash stays prepared for ever.
	BreakBeginAlwaysLazy
	// BreakBatchEncoder encodes a phase-2 batch with the transactions of its first two
	// ops swapped (when one is a commit and the other a rollback): a participant commits
	// what was aborted and rolls back what was committed.
	BreakBatchEncoder
	// BreakResolverPresumesCommit makes participants in doubt read the coordinator's
	// "not found" as committed instead of presumed aborted.
	BreakResolverPresumesCommit
	// BreakUnfencedLogWrite (cluster mode) writes the shard's log without the owner
	// key's compare: a node that lost the shard still writes records.
	BreakUnfencedLogWrite
	// BreakDetectorNeverAborts makes the coordinator's deadlock detector find the cycles
	// of the wait-for graph but never abort their victims: a deadlock lasts until the
	// prepare deadline even with Options.DeadlockDetection.
	BreakDetectorNeverAborts
	// BreakWoundWaitYoungerWounds makes a participant under wound-wait ask for the abort
	// of every transaction its prepare waits for, older ones too: the younger wounds the
	// older.
	BreakWoundWaitYoungerWounds
	// BreakLocksNotTaken starts the participants without locks (policy none) whatever
	// lock policy they were given: prepares of one account overlap.
	BreakLocksNotTaken
	// BreakOCCSkipsValidation makes participants under occ skip the version check of
	// their prepares: they lock the accounts but ACK a prepare whose client read an
	// account at a version that has changed since (a stale read).
	BreakOCCSkipsValidation
)

// Breakages lists every deliberate bug with its name.
var Breakages = []struct {
	Name  string
	Break Breakage
}{
	{"commit-before-durable", BreakCommitBeforeDurable},
	{"client-told-before-log", BreakClientToldBeforeLog},
	{"participant-skips-fsync", BreakParticipantSkipsFsync},
	{"no-fencing", BreakNoFencing},
	{"recovery-presumes-commit", BreakRecoveryPresumesCommit},
	{"phase2-gives-up", BreakPhase2GivesUp},
	{"begin-always-lazy", BreakBeginAlwaysLazy},
	{"batch-encoder", BreakBatchEncoder},
	{"resolver-presumes-commit", BreakResolverPresumesCommit},
	{"unfenced-log-write", BreakUnfencedLogWrite},
	{"detector-never-aborts", BreakDetectorNeverAborts},
	{"wound-wait-younger-wounds", BreakWoundWaitYoungerWounds},
	{"locks-not-taken", BreakLocksNotTaken},
	{"occ-skips-validation", BreakOCCSkipsValidation},
}

func (b Breakage) String() string {
	if b == 0 {
		return "none"
	}
	s := ""
	for _, x := range Breakages {
		if b&x.Break != 0 {
			if s != "" {
				s += ","
			}
			s += x.Name
		}
	}
	return s
}

const (
	defaultInitialBalance   = 100
	defaultSegmentSizeBytes = 32 << 10
)

// withDefaults fills in the zero fields.
func (o Options) withDefaults() Options {
	if o.Participants == 0 {
		o.Participants = 3
	}
	if o.Clients == 0 {
		o.Clients = 3
	}
	if o.Txns == 0 && o.Workload == nil {
		o.Txns = 200
	}
	if o.Accounts == 0 {
		o.Accounts = 4
	}
	if o.InitialBalance == 0 {
		o.InitialBalance = defaultInitialBalance
	}
	if o.FaultPhaseMax == 0 {
		o.FaultPhaseMax = 2 * time.Minute
	}
	if o.HealMax == 0 {
		o.HealMax = 2 * time.Minute
	}
	if o.TraceTail == 0 {
		o.TraceTail = 60
	}
	if o.SegmentSizeBytes == 0 {
		o.SegmentSizeBytes = defaultSegmentSizeBytes
	}
	return o
}

// Validate reports options that cannot be run.
func (o Options) Validate() error {
	o = o.withDefaults()
	var errs []error
	if o.Participants < 1 || o.Participants > 64 {
		errs = append(errs, fmt.Errorf("Participants is %d, must be 1..64", o.Participants))
	}
	if o.Clients < 1 || o.Clients > 256 {
		errs = append(errs, fmt.Errorf("Clients is %d, must be 1..256", o.Clients))
	}
	if o.Txns < 0 {
		errs = append(errs, fmt.Errorf("Txns is %d, must not be negative", o.Txns))
	}
	if o.Accounts < 1 {
		errs = append(errs, fmt.Errorf("Accounts is %d, must be positive", o.Accounts))
	}
	if o.InitialBalance < 0 {
		errs = append(errs, fmt.Errorf("InitialBalance is %d, must not be negative", o.InitialBalance))
	}
	if o.Knobs != nil {
		if err := o.Knobs.Validate(); err != nil {
			errs = append(errs, err)
		}
	}
	if o.Cluster != nil {
		if err := o.Cluster.Validate(); err != nil {
			errs = append(errs, err)
		}
	}
	if err := o.Schedule.Validate(); err != nil {
		errs = append(errs, err)
	}
	for i, t := range o.Workload {
		if t.Client < 0 || t.Client >= o.Clients {
			errs = append(errs, fmt.Errorf("Workload[%d]: client %d, but there are %d clients", i, t.Client, o.Clients))
		}
		if len(t.Legs) == 0 {
			errs = append(errs, fmt.Errorf("Workload[%d]: no legs", i))
		}
		var sum int64
		for _, l := range t.Legs {
			sum += l.Amount
		}
		if sum != 0 {
			errs = append(errs, fmt.Errorf("Workload[%d]: the amounts sum to %d, not 0: money would be made or lost", i, sum))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("simnet: invalid options: %w", err)
	}
	return nil
}
