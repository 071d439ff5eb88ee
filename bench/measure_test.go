package bench

import (
	"context"
	"encoding/json"
	"flag"
	"os"
	"testing"
	"time"
)

// TestMeasure runs one benchmark from the command line, until `dtc bench` exists:
//
//	go test ./bench -run '^TestMeasure$' -count=1 -timeout 0 -v -args \
//	    -measure -k 2 -c 64 -d 10s [-mode noop] [-log nosync] [-rate 2000] [-json] [-cpuprofile cpu.out] [-tracing]
//
// Without -measure it is skipped, so that `go test ./...` stays fast.
var (
	measureFlag = flag.Bool("measure", false, "run TestMeasure")
	kFlag       = flag.Int("k", 2, "participants")
	cFlag       = flag.Int("c", 64, "concurrency")
	dFlag       = flag.Duration("d", 10*time.Second, "duration of each measured phase")
	nFlag       = flag.Int("n", 0, "transactions (0: by duration)")
	rateFlag    = flag.Float64("rate", 0, "open loop at this many transactions per second (0: closed loop)")
	modeFlag    = flag.String("mode", ModeDurable, "participants: durable or noop")
	logFlag     = flag.String("log", LogDurable, "coordinator log: durable or nosync")
	shardsFlag  = flag.Int("shards", 0, "coordinator shards (0: httpnet's default)")
	warmupFlag  = flag.Duration("warmup", 0, "warm-up (0: default)")
	jsonFlag    = flag.Bool("json", false, "print the result as JSON")
	profFlag    = flag.String("cpuprofile", "", "write a CPU profile of dtc's measured phase here")
	soakFlag    = flag.Float64("soak", 0, "run Soak at this fraction of the maximum instead of Run")
	traceFlag   = flag.Bool("tracing", false, "trace dtc's transactions (Options.Tracing)")
)

func TestMeasure(t *testing.T) {
	if !*measureFlag {
		t.Skip("a measurement, not a test: pass -args -measure")
	}
	o := Options{
		Participants: *kFlag, Concurrency: *cFlag, Duration: *dFlag, Transactions: *nFlag,
		Rate: *rateFlag, Mode: *modeFlag, Log: *logFlag, Shards: *shardsFlag, Warmup: *warmupFlag,
		Progress: os.Stderr, Tracing: *traceFlag,
	}
	if *soakFlag > 0 {
		res, err := Soak(context.Background(), o, *soakFlag, 5*time.Second, os.Stdout)
		if err != nil {
			t.Fatal(err)
		}
		if !res.OK {
			t.Errorf("soak failed: %v", res.Problems)
		}
		return
	}
	if *profFlag != "" {
		f, err := os.Create(*profFlag)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		o.CPUProfile = f
	}
	res, err := Run(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	if *jsonFlag {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		res.Samples = nil
		if err := enc.Encode(res); err != nil {
			t.Fatal(err)
		}
		return
	}
	if err := res.WriteText(os.Stdout); err != nil {
		t.Fatal(err)
	}
}
