package faults

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestEveryFailpointHasItsMarker keeps the list and the source in step: each listed
// failpoint is a failpoint.Inject marker in its package, and each marker is listed.
func TestEveryFailpointHasItsMarker(t *testing.T) {
	markers := map[string]bool{}
	for _, dir := range []string{"cluster", "coordlog", "httpnet", "httpnet/transport", "participant", "wal", "coordinator", "examples/bank", "cmd/dtc"} {
		files, err := filepath.Glob(filepath.Join("..", dir, "*.go"))
		if err != nil {
			t.Fatal(err)
		}
		for _, name := range files {
			if strings.HasSuffix(name, "_test.go") {
				continue
			}
			src, err := os.ReadFile(name)
			if err != nil {
				t.Fatal(err)
			}
			for _, part := range strings.Split(string(src), `failpoint.Inject("`)[1:] {
				markers[dir+"/"+part[:strings.IndexByte(part, '"')]] = true
			}
		}
	}
	listed := map[string]bool{}
	for _, f := range Failpoints {
		listed[f.Name] = true
		if !markers[f.Name] {
			t.Errorf("failpoint %s is listed but has no failpoint.Inject marker", f.Name)
		}
		if f.Process != "coord" && f.Process != "participant" {
			t.Errorf("failpoint %s: process %q", f.Name, f.Process)
		}
		if len(f.Actions) == 0 || f.Doc == "" {
			t.Errorf("failpoint %s has no actions or no doc", f.Name)
		}
	}
	for m := range markers {
		if !listed[m] {
			t.Errorf("marker %s is not listed in Failpoints", m)
		}
	}
}

func TestAFailpointIsArmedWithTheActionsItTakes(t *testing.T) {
	f, ok := FailpointNamed("coordlog/beforeDecisionSync")
	if !ok {
		t.Fatal("no coordlog/beforeDecisionSync")
	}
	for _, c := range []struct {
		action         string
		percent, sleep int
		want           string
	}{
		{ActionPanic, 5, 0, `github.com/dtc-project/dtc/coordlog/beforeDecisionSync=5%return("panic")`},
		{ActionSleep, 100, 40, `github.com/dtc-project/dtc/coordlog/beforeDecisionSync=sleep(40)`},
		{ActionError, 0, 0, `github.com/dtc-project/dtc/coordlog/beforeDecisionSync=return("error")`},
	} {
		got, err := f.Term(c.action, c.percent, c.sleep)
		if err != nil || got != c.want {
			t.Errorf("Term(%s, %d, %d) = %q, %v; want %q", c.action, c.percent, c.sleep, got, err, c.want)
		}
	}
	g, _ := FailpointNamed("coordlog/afterDecisionSync")
	if _, err := g.Term(ActionError, 5, 0); err == nil {
		t.Error("afterDecisionSync takes no error action, but Term armed it")
	}
}
