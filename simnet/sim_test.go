package simnet

import (
	"os"
	"testing"

	"github.com/dtc-project/dtc/faults"
)

func TestCalmRunCommitsOrAbortsEverything(t *testing.T) {
	k := faults.Calm()
	f, _ := os.Create("/tmp/sim/calm.txt")
	defer f.Close()
	res, err := Run(Options{Seed: 1, Txns: 20, Knobs: &k, Trace: f})
	if err != nil {
		t.Fatal(err)
	}
	t.Log(res.Summary())
	if !res.OK() {
		t.Fatal(res.Failure())
	}
}
