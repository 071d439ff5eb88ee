package chaossim

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	"github.com/dtc-project/dtc/faults"
)

// A profile narrows the swarm: each seed still draws its own knobs (faults.Draw), then
// the profile keeps only its families of faults, switching on with a seeded rate any
// that the draw left off. "swarm" keeps the draw as it is.
type Profile struct {
	name     string
	doc      string
	families []string // of: crash, partition, network, disk
}

var profiles = []Profile{
	{"swarm", "each seed draws its own mix of every kind of fault (the default)", nil},
	{"calm", "no faults at all: latency only", []string{}},
	{"crashes", "crashes and restarts of the coordinator and participants, torn log tails", []string{"crash"}},
	{"partitions", "partitions, symmetric and one-way", []string{"partition"}},
	{"network", "lost, duplicated and reordered messages, and partitions", []string{"network", "partition"}},
	{"disk", "fsync errors, full disks, torn writes at crashes", []string{"disk"}},
	{"everything", "every kind of fault at once", []string{"crash", "partition", "network", "disk"}},
}

func ProfileNames() string {
	var names []string
	for _, p := range profiles {
		names = append(names, p.name)
	}
	return strings.Join(names, ", ")
}

func FindProfile(name string) (Profile, error) {
	for _, p := range profiles {
		if p.name == name {
			return p, nil
		}
	}
	return Profile{}, fmt.Errorf("unknown --profile %q: want one of %s", name, ProfileNames())
}

// Knobs returns the knobs of seed under the profile; nil for swarm (the simulator draws).
func (p Profile) Knobs(seed uint64) *faults.Knobs {
	if p.families == nil {
		return nil
	}
	k := faults.Draw(seed)
	r := rand.New(rand.NewPCG(seed, 0x70726f66)) // "prof"
	rate := func(lo, hi float64) float64 { return lo + r.Float64()*(hi-lo) }
	between := func(lo, hi time.Duration) time.Duration { return lo + time.Duration(r.Int64N(int64(hi-lo)+1)) }
	on := func(f string) bool { return slices.Contains(p.families, f) }
	if on("crash") {
		if k.CrashEvery == 0 {
			k.CrashEvery = between(200*time.Millisecond, 2*time.Second)
			k.CoordCrashShare = rate(0.2, 0.8)
			k.RestartMin = between(time.Millisecond, 100*time.Millisecond)
			k.RestartMax = k.RestartMin + between(0, time.Second)
		}
	} else if !on("disk") {
		k.CrashEvery, k.TornRate, k.BitFlipRate, k.RotRate = 0, 0, 0, 0
	}
	if on("disk") {
		if k.SyncErrRate == 0 {
			k.SyncErrRate = rate(0.001, 0.02)
		}
		if k.DiskFullEvery == 0 {
			k.DiskFullEvery = between(300*time.Millisecond, 3*time.Second)
			k.DiskFullFor = between(10*time.Millisecond, 500*time.Millisecond)
		}
		switch {
		case on("crash") && k.TornRate == 0:
			k.TornRate = rate(0.3, 1)
		case !on("crash"):
			// Torn writes need crashes: here every crash is a power cut during an fsync.
			if k.CrashEvery == 0 {
				k.CrashEvery = between(500*time.Millisecond, 3*time.Second)
				k.CoordCrashShare, k.RestartMin, k.RestartMax = 0.5, 10*time.Millisecond, 300*time.Millisecond
			}
			k.TornRate = 1
		}
	} else {
		k.SyncErrRate, k.DiskFullEvery, k.DiskFullFor = 0, 0, 0
		k.TornRate, k.BitFlipRate, k.RotRate = 0, 0, 0
	}
	if on("partition") {
		if k.PartitionEvery == 0 {
			k.PartitionEvery = between(200*time.Millisecond, 2*time.Second)
			k.PartitionFor = between(50*time.Millisecond, time.Second)
			k.OneWayRate = rate(0, 1)
		}
	} else {
		k.PartitionEvery, k.PartitionFor, k.OneWayRate = 0, 0, 0
	}
	if on("network") {
		if k.DropRate == 0 {
			k.DropRate = rate(0.005, 0.1)
		}
		if k.DupRate == 0 {
			k.DupRate = rate(0.005, 0.1)
		}
		if k.LatencyTailRate == 0 {
			k.LatencyTailRate = rate(0.005, 0.1)
		}
	} else {
		k.DropRate, k.DupRate, k.LatencyTailRate = 0, 0, 0
	}
	return &k
}
