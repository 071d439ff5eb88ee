package faults

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"time"
)

// Knobs are the rates of every kind of fault in one run's fault phase. The zero value is
// a perfect world (apart from latency, which simnet gives a floor). Every rate applies
// only during the fault phase: the heal phase turns them all off.
type Knobs struct {
	// Network: each message takes a latency drawn uniformly from [LatencyMin,
	// LatencyMax]; with probability LatencyTailRate it takes ten times that (messages
	// overtake one another: reordering). It is lost with probability DropRate and
	// delivered twice with probability DupRate.
	LatencyMin, LatencyMax time.Duration
	LatencyTailRate        float64
	DropRate               float64
	DupRate                float64

	// Partitions start on average every PartitionEvery (0: never) and last on average
	// PartitionFor. Each isolates one node from another (or from everyone); a fraction
	// OneWayRate of them cut one direction only.
	PartitionEvery time.Duration
	PartitionFor   time.Duration
	OneWayRate     float64

	// Crashes happen on average every CrashEvery (0: never); a fraction CoordCrashShare
	// of them hit the coordinator, the rest a participant. A crashed node restarts after
	// a delay drawn from [RestartMin, RestartMax]. A fraction TornRate of crashes keep a
	// torn prefix of the unsynced log tail, and a fraction BitFlipRate of those also
	// flip a bit in it (garbage in a torn sector).
	CrashEvery      time.Duration
	CoordCrashShare float64
	RestartMin      time.Duration
	RestartMax      time.Duration
	TornRate        float64
	BitFlipRate     float64
	// RotRate is the fraction of the other crashes (not torn) after which a bit of a
	// synced record rots while the node is down: the last durable record or, half of
	// the time, any synced one. Its log must refuse to start (that ends the run).
	RotRate float64
	// LieRate is the fraction of the other crashes (not torn, no rot) after which the
	// disk shows, while the node is down, a lie it told about fsync: half of the time
	// a segment file of its log cut short at a random length (its log must refuse to
	// start if the lost bytes may have held records, and start otherwise), half of the
	// time the renames of its newest segments lost, from the last one holding records
	// on (its log must start with every synced record).
	LieRate float64

	// Disk: an fsync takes a time drawn from [SyncLatencyMin, SyncLatencyMax] and fails
	// with probability SyncErrRate (fatal: the node crashes and restarts). A disk fills
	// up on average every DiskFullEvery (0: never), on one node, for about DiskFullFor.
	SyncLatencyMin time.Duration
	SyncLatencyMax time.Duration
	SyncErrRate    float64
	DiskFullEvery  time.Duration
	DiskFullFor    time.Duration

	// Clients give up on a call after ClientTimeout (the outcome is then unknown to
	// them) and try the same transaction id again up to ClientRetries times.
	ClientTimeout time.Duration
	ClientRetries int

	// Timing of the system under test, drawn per seed too (they are configuration, not
	// faults, but which interleavings happen depends on them): the coordinator's default
	// prepare deadline, how long it remembers a finished transaction (its id stays
	// reserved that long), and how long a participant waits before it asks the
	// coordinator about a transaction it prepared.
	PrepareTimeout time.Duration
	DoneRetention  time.Duration
	InDoubtAfter   time.Duration

	// Participants of another kind: the last Passive participants (pN, pN-1, …) never
	// ask the coordinator about transactions in doubt and say so, like a service that
	// implements only the protocol's endpoints; the last PassiveNoStatus of them have
	// no status endpoint either (it answers 404). Only the coordinator can resolve what
	// they hold, so they catch a begin record that was lazy when it must not be.
	Passive         int
	PassiveNoStatus int
}

// Calm returns knobs with no faults at all: fixed, small latencies and fast disks.
// Scenarios start from it and add their schedule.
func Calm() Knobs {
	return Knobs{
		LatencyMin:     time.Millisecond,
		LatencyMax:     2 * time.Millisecond,
		RestartMin:     100 * time.Millisecond,
		RestartMax:     100 * time.Millisecond,
		SyncLatencyMin: 500 * time.Microsecond,
		SyncLatencyMax: 500 * time.Microsecond,
		ClientTimeout:  5 * time.Second,
		ClientRetries:  0,
		PrepareTimeout: time.Second,
		DoneRetention:  10 * time.Minute,
		InDoubtAfter:   3 * time.Second,
	}
}

// Stream is the PCG stream constant Draw uses, so that the knobs of a seed do not depend
// on anything else the seed drives.
const Stream = 0x6b6e6f6273 // "knobs"

// Draw returns the knobs of one swarm seed. Each kind of fault is switched on with
// probability 1/2 and, when on, given a rate drawn from a range that makes it happen a
// few times in a run of a few virtual seconds. Latency and disk speed are always drawn.
func Draw(seed uint64) Knobs {
	r := rand.New(rand.NewPCG(seed, Stream))
	on := func() bool { return r.IntN(2) == 0 }
	between := func(lo, hi time.Duration) time.Duration {
		return lo + time.Duration(r.Int64N(int64(hi-lo)+1))
	}
	rate := func(lo, hi float64) float64 { return lo + r.Float64()*(hi-lo) }

	k := Calm()
	k.LatencyMin = between(100*time.Microsecond, 2*time.Millisecond)
	k.LatencyMax = k.LatencyMin + between(0, 30*time.Millisecond)
	if on() {
		k.LatencyTailRate = rate(0.005, 0.1)
	}
	if on() {
		k.DropRate = rate(0.001, 0.1)
	}
	if on() {
		k.DupRate = rate(0.001, 0.1)
	}
	if on() {
		k.PartitionEvery = between(200*time.Millisecond, 3*time.Second)
		k.PartitionFor = between(50*time.Millisecond, 2*time.Second)
		k.OneWayRate = rate(0, 1)
	}
	if on() {
		k.CrashEvery = between(100*time.Millisecond, 3*time.Second)
		k.CoordCrashShare = rate(0.1, 0.9)
		k.RestartMin = between(time.Millisecond, 200*time.Millisecond)
		k.RestartMax = k.RestartMin + between(0, 2*time.Second)
		if on() {
			k.TornRate = rate(0.2, 1)
			if on() {
				k.BitFlipRate = rate(0.1, 1)
			}
		}
	}
	k.SyncLatencyMin = between(50*time.Microsecond, 2*time.Millisecond)
	k.SyncLatencyMax = k.SyncLatencyMin + between(0, 10*time.Millisecond)
	if on() {
		k.SyncErrRate = rate(0.0005, 0.02)
	}
	if on() {
		k.DiskFullEvery = between(200*time.Millisecond, 5*time.Second)
		k.DiskFullFor = between(10*time.Millisecond, time.Second)
	}
	k.ClientTimeout = between(200*time.Millisecond, 5*time.Second)
	k.ClientRetries = r.IntN(3)
	k.PrepareTimeout = between(100*time.Millisecond, 3*time.Second)
	if on() {
		k.DoneRetention = between(500*time.Millisecond, 30*time.Second)
	}
	k.InDoubtAfter = between(200*time.Millisecond, 5*time.Second)
	// Drawn last, so that the knobs above stay what they were for every seed.
	if on() {
		k.Passive = 1 + r.IntN(3)
		k.PassiveNoStatus = r.IntN(k.Passive + 1)
	}
	// Rot ends a run at the next start of the node: rare, so that most runs go on to
	// the heal phase. Drawn after the rest for the same reason.
	if k.CrashEvery > 0 && r.IntN(8) == 0 {
		k.RotRate = rate(0.02, 0.2)
	}
	if k.CrashEvery > 0 && r.IntN(6) == 0 {
		k.LieRate = rate(0.02, 0.3)
	}
	return k
}

// String is the knobs on one line, the faults that are off left out.
func (k Knobs) String() string {
	var b strings.Builder
	f := func(format string, args ...any) {
		if b.Len() > 0 {
			b.WriteByte(' ')
		}
		fmt.Fprintf(&b, format, args...)
	}
	f("latency=%v..%v", k.LatencyMin, k.LatencyMax)
	if k.LatencyTailRate > 0 {
		f("tail=%.3f", k.LatencyTailRate)
	}
	if k.DropRate > 0 {
		f("drop=%.3f", k.DropRate)
	}
	if k.DupRate > 0 {
		f("dup=%.3f", k.DupRate)
	}
	if k.PartitionEvery > 0 {
		f("partition=every~%v,for~%v,oneway=%.2f", k.PartitionEvery, k.PartitionFor, k.OneWayRate)
	}
	if k.CrashEvery > 0 {
		f("crash=every~%v,coord=%.2f,restart=%v..%v", k.CrashEvery, k.CoordCrashShare, k.RestartMin, k.RestartMax)
		if k.TornRate > 0 {
			f("torn=%.2f", k.TornRate)
		}
		if k.BitFlipRate > 0 {
			f("bitflip=%.2f", k.BitFlipRate)
		}
		if k.RotRate > 0 {
			f("rot=%.3f", k.RotRate)
		}
		if k.LieRate > 0 {
			f("disk-lies=%.3f", k.LieRate)
		}
	}
	f("fsync=%v..%v", k.SyncLatencyMin, k.SyncLatencyMax)
	if k.SyncErrRate > 0 {
		f("fsync-err=%.4f", k.SyncErrRate)
	}
	if k.DiskFullEvery > 0 {
		f("disk-full=every~%v,for~%v", k.DiskFullEvery, k.DiskFullFor)
	}
	f("client-timeout=%v,retries=%d", k.ClientTimeout, k.ClientRetries)
	f("prepare-timeout=%v done-retention=%v in-doubt-after=%v", k.PrepareTimeout, k.DoneRetention, k.InDoubtAfter)
	if k.Passive > 0 {
		f("passive=%d,no-status=%d", k.Passive, k.PassiveNoStatus)
	}
	return b.String()
}

// Validate reports knobs that make no sense (a rate outside [0,1], an inverted range).
func (k Knobs) Validate() error {
	for _, r := range []struct {
		name string
		v    float64
	}{
		{"LatencyTailRate", k.LatencyTailRate}, {"DropRate", k.DropRate}, {"DupRate", k.DupRate},
		{"OneWayRate", k.OneWayRate}, {"CoordCrashShare", k.CoordCrashShare}, {"TornRate", k.TornRate},
		{"BitFlipRate", k.BitFlipRate}, {"RotRate", k.RotRate}, {"LieRate", k.LieRate}, {"SyncErrRate", k.SyncErrRate},
	} {
		if r.v < 0 || r.v > 1 {
			return fmt.Errorf("faults: %s is %v, must be within [0, 1]", r.name, r.v)
		}
	}
	for _, r := range []struct {
		name   string
		lo, hi time.Duration
	}{
		{"Latency", k.LatencyMin, k.LatencyMax}, {"Restart", k.RestartMin, k.RestartMax},
		{"SyncLatency", k.SyncLatencyMin, k.SyncLatencyMax},
	} {
		if r.lo < 0 || r.hi < r.lo {
			return fmt.Errorf("faults: %sMin %v and %sMax %v are not a range", r.name, r.lo, r.name, r.hi)
		}
	}
	if k.PartitionEvery < 0 || k.CrashEvery < 0 || k.DiskFullEvery < 0 {
		return fmt.Errorf("faults: a mean interval is negative")
	}
	if k.ClientTimeout <= 0 {
		return fmt.Errorf("faults: ClientTimeout must be positive, got %v", k.ClientTimeout)
	}
	if k.PrepareTimeout <= 0 || k.DoneRetention <= 0 || k.InDoubtAfter <= 0 {
		return fmt.Errorf("faults: PrepareTimeout, DoneRetention and InDoubtAfter must be positive")
	}
	if k.ClientRetries < 0 {
		return fmt.Errorf("faults: ClientRetries must not be negative, got %d", k.ClientRetries)
	}
	if k.Passive < 0 || k.PassiveNoStatus < 0 || k.PassiveNoStatus > k.Passive {
		return fmt.Errorf("faults: want 0 <= PassiveNoStatus <= Passive, got %d and %d", k.PassiveNoStatus, k.Passive)
	}
	return nil
}
