package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"golang.org/x/sync/errgroup"

	"github.com/dtc-project/dtc/client"
)

// passiveProc is examples/passive: a participant written only from the protocol, which
// never asks the coordinator about transactions in doubt.
type passiveProc struct {
	*proc
	addr string
}

func startPassive(t *testing.T, name string, noStatus bool) *passiveProc {
	t.Helper()
	p := &passiveProc{addr: freeAddr(t)}
	args := []string{"--listen", p.addr, "--data", t.TempDir() + "/passive.log"}
	if noStatus {
		args = append(args, "--no-status")
	}
	p.proc = startProc(t, name, "passive", args...)
	eventually(t, name+" is up", func() bool { return p.states() != nil })
	return p
}

func (p *passiveProc) prepareURL() string { return "http://" + p.addr + "/prepare" }

// states is the participant's table txn → state, or nil if it does not answer.
func (p *passiveProc) states() map[string]string {
	resp, err := http.Get("http://" + p.addr + "/states")
	if err != nil {
		return nil
	}
	defer resp.Body.Close()
	m := map[string]string{}
	if resp.StatusCode != 200 || json.NewDecoder(resp.Body).Decode(&m) != nil {
		return nil
	}
	return m
}

// Issue 11: dtc is killed with SIGKILL at random points, 20 times, while clients run
// transactions against three passive participants (two with a status endpoint, one
// without), which never ask about transactions in doubt. After the last restart and
// quiescence no participant holds a prepared transaction, every transaction has the same
// outcome at all of its participants, and every outcome a client was told holds.
//
// The kill points are drawn from a fixed seed: after how many submissions of the round
// dtc dies. Nothing waits on the clock; every wait is a bounded poll.
func TestKillCoordinatorRepeatedlyWithPassiveParticipants(t *testing.T) {
	const (
		rounds  = 20
		clients = 6
	)
	d := startDTC(t)
	parts := []*passiveProc{
		startPassive(t, "passive1", false),
		startPassive(t, "passive2", false),
		startPassive(t, "passive3 (no status)", true),
	}
	rng := rand.New(rand.NewPCG(11, 20))

	var mu sync.Mutex
	told := map[string]string{}    // client id → outcome the client was told
	wires := map[string]string{}   // client id → the id the participants know
	names := map[string][]string{} // client id → its participants' prepare URLs
	n := 0
	for round := range rounds {
		killAfter := int64(1 + rng.IntN(40))
		var submitted atomic.Int64
		killed := make(chan struct{})
		ctx, cancel := context.WithCancel(context.Background())
		g, gctx := errgroup.WithContext(ctx)
		for c := range clients {
			crng := rand.New(rand.NewPCG(uint64(round), uint64(c)))
			g.Go(func() error {
				for i := 0; gctx.Err() == nil; i++ {
					id := fmt.Sprintf("r%d-c%d-%d", round, c, i)
					var req client.Request
					req.ID = id
					for _, k := range crng.Perm(len(parts))[:2+crng.IntN(2)] {
						p := client.Participant{URL: parts[k].prepareURL()}
						if crng.IntN(10) == 0 {
							p.Payload = json.RawMessage(`{"nack":"refused by the test"}`)
						}
						req.Participants = append(req.Participants, p)
					}
					mu.Lock()
					for _, p := range req.Participants {
						names[id] = append(names[id], p.URL)
					}
					mu.Unlock()
					if submitted.Add(1) == killAfter {
						close(killed)
					}
					v, err := d.cli.Submit(gctx, req)
					if err != nil {
						continue // dtc died under it (or refused it): the outcome is unknown to us
					}
					mu.Lock()
					told[id], wires[id] = v.State, v.TxnID
					mu.Unlock()
				}
				return nil
			})
		}
		<-killed
		d.kill()
		cancel()
		_ = g.Wait()
		n += int(submitted.Load())
		d.start()
		d.waitReady()
	}
	t.Logf("%d rounds, %d submissions, %d outcomes told to clients", rounds, n, len(told))

	// Quiescence: dtc resolves everything the participants hold.
	var last [][]string
	defer func() {
		if t.Failed() {
			t.Logf("still prepared at the participants: %v", last)
		}
	}()
	eventually(t, "no participant holds a prepared transaction and dtc has nothing in doubt", func() bool {
		last = nil
		for _, p := range parts {
			var prepared []string
			for id, st := range p.states() {
				if st == "prepared" {
					prepared = append(prepared, id)
				}
			}
			last = append(last, prepared)
			if len(prepared) > 0 {
				return false
			}
		}
		page, err := d.cli.List(context.Background(), client.ListOptions{State: "in-doubt"})
		return err == nil && len(page.Transactions) == 0
	})

	// Atomicity, by the ids the participants know.
	byWire := map[string]map[string]string{} // wire id → participant → state
	for i, p := range parts {
		for id, st := range p.states() {
			if byWire[id] == nil {
				byWire[id] = map[string]string{}
			}
			byWire[id][fmt.Sprint("passive", i+1)] = st
		}
	}
	for id, at := range byWire {
		var states []string
		for _, st := range at {
			states = append(states, st)
		}
		if slices.Contains(states, "committed") && slices.ContainsFunc(states, func(s string) bool { return s != "committed" }) {
			t.Errorf("txn %s is not atomic: %v", id, at)
		}
	}
	// What the clients were told holds at every participant.
	committed := 0
	for id, outcome := range told {
		at := byWire[wires[id]]
		for _, u := range names[id] {
			k := slices.IndexFunc(parts, func(p *passiveProc) bool { return p.prepareURL() == u })
			st := at[fmt.Sprint("passive", k+1)]
			switch {
			case outcome == client.StateCommitted && st != "committed":
				t.Errorf("txn %s: the client was told committed, %s holds %q", id, u, st)
			case outcome == client.StateAborted && st == "committed":
				t.Errorf("txn %s: the client was told aborted, %s committed it", id, u)
			}
		}
		if outcome == client.StateCommitted {
			committed++
		}
	}
	if committed == 0 {
		t.Fatal("no transaction committed: the test exercised nothing")
	}
	t.Logf("%d transactions at the participants, %d committed as told", len(byWire), committed)
}

// dtc list --state in-doubt shows a transaction waiting on a participant that is down,
// with what each participant owing an answer last said and when; it disappears once the
// participant is back and acknowledges.
func TestListInDoubtShowsWhatEachParticipantLastSaid(t *testing.T) {
	d := startDTC(t)
	up := startPassive(t, "passive-up", false)
	downAddr := freeAddr(t) // nobody listens here yet
	down := "http://" + downAddr + "/prepare"
	v, err := d.cli.Submit(context.Background(), client.Request{ID: "stuck", Participants: []client.Participant{
		{URL: up.prepareURL()}, {URL: down},
	}})
	if err != nil || v.State != client.StateAborted {
		t.Fatalf("%+v %v: want aborted (a participant is down)", v, err)
	}
	list := func() string {
		cmd := exec.Command(filepath.Join(binDir, "dtc"), "list", "--state", "in-doubt", "--coordinator", d.url)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("dtc list: %v\n%s", err, out)
		}
		return string(out)
	}
	var out string
	eventually(t, "the rollback to the participant that is down is pending, and listed", func() bool {
		out = list()
		// The participant that is up acknowledges its rollback at once: then only the
		// one that is down owes an answer.
		return strings.Contains(out, "stuck") && strings.Contains(out, "└ "+down+" last said no answer: ") &&
			!strings.Contains(out, "└ "+up.prepareURL())
	})
	startProc(t, "passive-back", "passive", "--listen", downAddr, "--data", t.TempDir()+"/p.log")
	t.Logf("dtc list --state in-doubt:\n%s", out)
	eventually(t, "the transaction leaves the in-doubt list", func() bool { return !strings.Contains(list(), "stuck") })
}
