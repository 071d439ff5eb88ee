package chaossim

import (
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/dtc-project/dtc/checker"
	"github.com/dtc-project/dtc/faults"
	"github.com/dtc-project/dtc/simnet"
)

// A shrunk case is a failing run made small: the faults a swarm seed injected at random
// turned into an explicit schedule, then as few of those faults, as few transfers and
// as few fault rates as still fail the same way. It is saved as JSON and replayed with
// chaos sim --replay FILE.
type ShrunkCase struct {
	Seed         uint64 `json:"seed"`
	Profile      string `json:"profile,omitempty"`
	Participants int    `json:"participants"`
	Clients      int    `json:"clients"`
	Accounts     int    `json:"accounts"`
	Txns         int    `json:"txns"`
	Break        string `json:"break,omitempty"`
	// Cluster: a cluster run's options (its random cluster faults are not shrunk).
	Cluster  *simnet.ClusterOptions `json:"cluster,omitempty"`
	Knobs    faults.Knobs           `json:"knobs"`
	Schedule faults.Schedule        `json:"schedule"`
	// Kinds are the violation kinds the original run had; the shrunk case keeps one.
	Kinds []string `json:"kinds"`
	// From is what the shrinking started from.
	FromFaults, FromTxns int `json:"-"`
	Runs                 int `json:"-"`
	Exact                bool
}

func (c ShrunkCase) Options() simnet.Options {
	k := c.Knobs
	brk, _ := ParseBreaks(c.Break)
	return simnet.Options{Seed: c.Seed, Participants: c.Participants, Clients: c.Clients, Accounts: c.Accounts,
		Txns: c.Txns, Knobs: &k, Schedule: c.Schedule, Break: brk, Cluster: c.Cluster}
}

// shrinkRunsMax bounds the runs one shrinking makes.
const shrinkRunsMax = 250

// shrink makes a failing run small. o is the failing run's options (Knobs nil for a
// swarm seed), res its result.
func shrink(o simnet.Options, profileName string, res *simnet.Result) (*ShrunkCase, error) {
	kinds := map[string]bool{}
	for _, v := range res.Violations {
		kinds[v.Kind] = true
	}
	c := &ShrunkCase{Seed: o.Seed, Profile: profileName, Participants: res.Participants, Clients: res.Clients,
		Accounts: res.Accounts, Txns: res.Transfers, Break: o.Break.String(), Knobs: res.Knobs, Cluster: o.Cluster}
	if o.Break == 0 {
		c.Break = ""
	}
	for k := range kinds {
		c.Kinds = append(c.Kinds, k)
	}
	slices.Sort(c.Kinds)
	fails := func(x ShrunkCase) bool {
		c.Runs++
		r, err := simnet.Run(x.Options())
		if err != nil {
			return false
		}
		for _, v := range r.Violations {
			if kinds[v.Kind] {
				return true
			}
		}
		return false
	}
	// The swarm's random faults as a schedule: the fault processes off, every fault
	// they injected at the time it happened.
	sched := scheduleFromNotes(res.History.Notes, res.Knobs)
	cand := *c
	cand.Schedule = append(slices.Clone(o.Schedule), sched...)
	cand.Knobs.CrashEvery, cand.Knobs.PartitionEvery, cand.Knobs.DiskFullEvery = 0, 0, 0
	from, fromTxns := len(cand.Schedule), c.Txns
	if fails(cand) {
		*c = cand
		c.Exact = true
		c.FromFaults = from
	} else {
		// The failure needs the swarm's timing: keep the knobs' processes, shrink the rest.
		c.Schedule = slices.Clone(o.Schedule)
		c.FromFaults = len(c.Schedule)
		if !fails(*c) {
			return nil, fmt.Errorf("the run does not fail again with its own knobs as explicit options")
		}
	}
	c.FromTxns = fromTxns
	shrinkTxns := func() {
		for step := c.Txns / 2; step >= 1 && c.Runs < shrinkRunsMax; step /= 2 {
			for c.Txns-step >= 1 && c.Runs < shrinkRunsMax {
				x := *c
				x.Txns -= step
				if !fails(x) {
					break
				}
				*c = x
			}
		}
	}
	shrinkTxns()
	// ddmin over the schedule: drop chunks of faults while it still fails.
	for n := 2; len(c.Schedule) > 0 && c.Runs < shrinkRunsMax; {
		chunk := (len(c.Schedule) + n - 1) / n
		removed := false
		for i := 0; i < len(c.Schedule) && c.Runs < shrinkRunsMax; i += chunk {
			x := *c
			x.Schedule = slices.Concat(c.Schedule[:i], c.Schedule[min(i+chunk, len(c.Schedule)):])
			if fails(x) {
				*c, removed = x, true
				n = max(n-1, 2)
				break
			}
		}
		if !removed {
			if n >= len(c.Schedule) {
				break // every single fault is needed
			}
			n = min(2*n, len(c.Schedule))
		}
	}
	// The rates left: turn each off if the run still fails without it.
	for _, off := range []func(*faults.Knobs) bool{
		func(k *faults.Knobs) bool { v := k.DropRate > 0; k.DropRate = 0; return v },
		func(k *faults.Knobs) bool { v := k.DupRate > 0; k.DupRate = 0; return v },
		func(k *faults.Knobs) bool { v := k.LatencyTailRate > 0; k.LatencyTailRate = 0; return v },
		func(k *faults.Knobs) bool { v := k.SyncErrRate > 0; k.SyncErrRate = 0; return v },
		func(k *faults.Knobs) bool { v := k.BitFlipRate > 0; k.BitFlipRate = 0; return v },
		func(k *faults.Knobs) bool { v := k.RotRate > 0; k.RotRate = 0; return v },
		func(k *faults.Knobs) bool { v := k.TornRate > 0; k.TornRate = 0; return v },
		func(k *faults.Knobs) bool {
			v := k.CrashEvery > 0
			k.CrashEvery = 0
			return v
		},
		func(k *faults.Knobs) bool { v := k.PartitionEvery > 0; k.PartitionEvery = 0; return v },
		func(k *faults.Knobs) bool { v := k.DiskFullEvery > 0; k.DiskFullEvery = 0; return v },
	} {
		if c.Runs >= shrinkRunsMax {
			break
		}
		x := *c
		if off(&x.Knobs) && fails(x) {
			*c = x
		}
	}
	shrinkTxns()
	return c, nil
}

// scheduleFromNotes turns the faults a run's swarm injected (its history's notes) into an
// explicit schedule: crashes with the restart that followed, power cuts, rot, partitions
// and full disks with how long they lasted. Fsync errors stay a rate (SyncErrRate): they are
// drawn from the disk's own stream, which a schedule would reshuffle.
func scheduleFromNotes(notes []checker.Note, k faults.Knobs) faults.Schedule {
	var s faults.Schedule
	for i, n := range notes {
		node, what, ok := strings.Cut(n.What, ": ")
		if !ok {
			continue
		}
		at := time.Duration(n.At)
		switch {
		case what == "crashes: random":
			restart := k.RestartMin
			for _, m := range notes[i+1:] {
				if strings.HasPrefix(m.What, node+": restarted") {
					restart = time.Duration(m.At - n.At)
					break
				}
			}
			s = append(s, faults.At(at).Crash(node).For(max(restart, time.Microsecond)))
		case strings.HasPrefix(what, "crashes: fsync failed: power cut"):
			s = append(s, faults.At(max(at-time.Microsecond, 0)).CrashTorn(node))
		case strings.HasPrefix(what, "partition from "):
			// "partition from PEER, both ways|one way, for D"
			parts := strings.Split(strings.TrimPrefix(what, "partition from "), ", ")
			if len(parts) != 3 {
				continue
			}
			d, err := time.ParseDuration(strings.TrimPrefix(parts[2], "for "))
			if err != nil {
				continue
			}
			f := faults.At(at)
			oneWay := parts[1] == "one way"
			switch {
			case parts[0] == "everyone":
				f.Do = faults.Action{Kind: faults.ActPartition, Node: node, OneWay: oneWay}
			case oneWay:
				f = f.Cut(node, parts[0])
			default:
				f = f.Partition(node, parts[0])
			}
			s = append(s, f.For(d))
		case what == "rot: a bit of the last durable record flips while it is down":
			s = append(s, faults.At(at).FlipBit(node))
		case what == "rot: a bit of a synced record flips while it is down":
			s = append(s, faults.At(at).FlipBitAnywhere(node))
		case strings.HasPrefix(what, "disk full for "):
			d, err := time.ParseDuration(strings.TrimPrefix(what, "disk full for "))
			if err == nil {
				s = append(s, faults.At(at).FillDisk(node).For(d))
			}
		}
	}
	return s
}

// describe is the shrunk case in words.
func (c *ShrunkCase) describe(path string) string {
	var b strings.Builder
	how := "its swarm faults made an explicit schedule"
	if !c.Exact {
		how = "the failure needs the swarm's own timing: only rates and transfers were shrunk"
	}
	fmt.Fprintf(&b, "shrunk in %d runs (%s): %d fault(s), %d transfer(s) (from %d scheduled faults, %d transfers); still fails with %s\n",
		c.Runs, how, len(c.Schedule), c.Txns, c.FromFaults, c.FromTxns, strings.Join(c.Kinds, " or "))
	for _, f := range c.Schedule {
		fmt.Fprintf(&b, "    %s\n", f)
	}
	fmt.Fprintf(&b, "    knobs: %v\n", c.Knobs)
	if path != "" {
		fmt.Fprintf(&b, "  replay the shrunk case: go run ./cmd/chaos sim --replay %s\n", path)
	}
	return b.String()
}

func (c *ShrunkCase) save(path string) error {
	data, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(data, '\n'), 0o644)
}

func LoadShrunk(path string) (ShrunkCase, error) {
	var c ShrunkCase
	data, err := os.ReadFile(path)
	if err != nil {
		return c, err
	}
	if err := json.Unmarshal(data, &c); err != nil {
		return c, fmt.Errorf("%s: %w", path, err)
	}
	if _, err := ParseBreaks(c.Break); err != nil {
		return c, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}
