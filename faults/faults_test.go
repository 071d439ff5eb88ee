package faults

import (
	"strings"
	"testing"
	"time"
)

func TestEachSeedDrawsItsOwnValidKnobsAndAlwaysTheSame(t *testing.T) {
	seen := map[string]bool{}
	on := map[string]int{}
	for seed := uint64(1); seed <= 200; seed++ {
		k := Draw(seed)
		if err := k.Validate(); err != nil {
			t.Fatalf("seed %d: %v", seed, err)
		}
		if Draw(seed) != k {
			t.Fatalf("seed %d: two draws differ", seed)
		}
		seen[k.String()] = true
		for _, f := range []string{"drop=", "dup=", "partition=", "crash=", "fsync-err=", "disk-full="} {
			if strings.Contains(k.String(), f) {
				on[f]++
			}
		}
	}
	if len(seen) != 200 {
		t.Fatalf("200 seeds drew only %d different mixes", len(seen))
	}
	for f, n := range on {
		if n < 60 || n > 140 {
			t.Errorf("%s is on in %d of 200 seeds, want about half", f, n)
		}
	}
}

func TestCalmKnobsHaveNoFaults(t *testing.T) {
	k := Calm()
	if err := k.Validate(); err != nil {
		t.Fatal(err)
	}
	if k.DropRate+k.DupRate+k.SyncErrRate+k.TornRate != 0 || k.CrashEvery+k.PartitionEvery+k.DiskFullEvery != 0 {
		t.Fatalf("calm knobs inject faults: %v", k)
	}
}

func TestKnobsThatMakeNoSenseAreRefused(t *testing.T) {
	for _, mod := range []func(*Knobs){
		func(k *Knobs) { k.DropRate = 1.5 },
		func(k *Knobs) { k.LatencyMin, k.LatencyMax = 2*time.Second, time.Second },
		func(k *Knobs) { k.ClientTimeout = 0 },
		func(k *Knobs) { k.CrashEvery = -1 },
	} {
		k := Calm()
		mod(&k)
		if k.Validate() == nil {
			t.Errorf("%v should be refused", k)
		}
	}
}

func TestFaultsReadAsSentences(t *testing.T) {
	for _, c := range []struct {
		f    Fault
		want string
	}{
		{At(2 * time.Second).Crash("coord").For(time.Second), "at 2s, crash coord for 1s"},
		{When("coord", SendCommit).Txn("t1").To("p2").Nth(2).Crash("coord"), `when coord reaches "send commit" for t1 to p2 (time 2), crash coord`},
		{At(0).Partition("p2", "coord").For(3 * time.Second), "at 0s, partition p2 from coord for 3s"},
		{At(0).Cut("p2", "coord"), "at 0s, cut p2 → coord"},
		{At(time.Millisecond).FailSyncs("p1", 2), "at 1ms, fail the next 2 fsync(s) of p1"},
		{When("p2", QueryAnswered).Delay(time.Second), `when p2 reaches "query answered", delay the message by 1s`},
	} {
		if got := c.f.String(); got != c.want {
			t.Errorf("got %q, want %q", got, c.want)
		}
		if err := c.f.Validate(); err != nil {
			t.Errorf("%v: %v", c.f, err)
		}
	}
}

func TestASchedulesEndIsItsLastTimedFault(t *testing.T) {
	s := Schedule{
		At(time.Second).Crash("p1"),
		At(2*time.Second).Partition("p1", "coord").For(3 * time.Second),
		When("coord", SendCommit).Crash("coord").For(time.Hour),
	}
	if got := s.End(); got != 5*time.Second {
		t.Fatalf("End() = %v, want 5s", got)
	}
	if err := (Schedule{When("p1", Ack).Delay(0)}).Validate(); err == nil {
		t.Fatal("a Delay at a point that sends nothing should be refused")
	}
	if err := (Schedule{At(0)}).Validate(); err == nil {
		t.Fatal("a fault without an action should be refused")
	}
}
