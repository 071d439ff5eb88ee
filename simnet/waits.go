package simnet

import (
	"errors"
	"fmt"
	"time"

	"github.com/dtc-project/dtc/coordinator"
	"github.com/dtc-project/dtc/participant"
	"github.com/dtc-project/dtc/waitfor"
)

// Lock waits and wounds (issue 16), as participant.Resolver and httpnet do them over
// HTTP: a participant whose prepare waits for locks reports "T waits for U, …" to the
// coordinator (POST /v1/waits) when the wait begins, whenever the library tells it
// again (a new transaction came in its way), and every waitReportInterval while it
// lasts; under wound-wait it asks the coordinator to abort the younger holders (POST
// …/abort, cause wound). With Options.DeadlockDetection the coordinator keeps the real
// wait-for graph (package waitfor, as httpnet's detector does) and aborts the youngest
// transaction of every cycle a report closes, with cause deadlock; without it the
// reports are ignored and a deadlock lasts until the prepare deadline. The graph lives
// in the coordinator's memory: a crash loses it, and the participants' next reports
// rebuild it.

// waitReportInterval is how often a participant reports a wait again (the Resolver's
// WaitReportInterval).
const waitReportInterval = time.Second

// lockObserver hands the library's lock waits of one participant incarnation to the
// network.
type lockObserver struct {
	p   *partNode
	inc int
}

func (o lockObserver) LockWaiting(w participant.LockWait) {
	if o.p.alive(o.inc) {
		o.p.reportWait(w)
	}
}

// reportWait sends one wait report, and under wound-wait one abort per younger holder.
func (p *partNode) reportWait(w participant.LockWait) {
	s := p.s
	s.stats.WaitReports++
	w = p.s.youngerWounds(w)
	s.call(p.id, coordID, queryTimeout, fmt.Sprintf("waits %s -> %v", w.TxnID, w.WaitsFor),
		func(answer func(any, error)) { s.coord.waits(w, p, answer) },
		func(any, error) {})
	for _, id := range w.Wound {
		s.checkWound(w.TxnID, id, p.name)
		s.stats.Wounds++
		reason := fmt.Sprintf("wounded by older transaction %s waiting for key %s", w.TxnID, w.Key)
		s.call(p.id, coordID, queryTimeout, "wound "+id,
			func(answer func(any, error)) { s.coord.abort(id, coordinator.CauseWound, reason, answer) },
			func(any, error) {})
	}
}

// scheduleWaitReports reports every wait still going on, every waitReportInterval.
func (p *partNode) scheduleWaitReports(inc int) {
	p.s.after(waitReportInterval, func() {
		if !p.alive(inc) {
			return
		}
		for _, w := range p.core.LockWaits() {
			p.reportWait(w)
		}
		p.scheduleWaitReports(inc)
	})
}

// waits serves a wait report: with detection on, its edges go into the graph, and the
// victim of every cycle they close is aborted.
func (c *coordNode) waits(w participant.LockWait, from *partNode, reply func(any, error)) {
	s := c.s
	defer reply(wireAnswer{status: 202}, nil)
	if c.graph == nil {
		return
	}
	waiter, ok := c.live(w.TxnID)
	var holders []waitfor.Txn
	if ok {
		for _, id := range w.WaitsFor {
			if h, live := c.live(id); live {
				holders = append(holders, h)
			}
		}
	}
	if !ok || len(holders) == 0 {
		return
	}
	cycles, err := c.graph.Add(waiter, holders)
	if err != nil {
		s.tracef(coordID, "wait report of %s from %s refused: %v", w.TxnID, from.name, err)
		return
	}
	s.noteWaits(waiter.ID, holders)
	for _, cy := range cycles {
		s.stats.Deadlocks++
		reason := fmt.Sprintf("cycle %s (reported by %s waiting for key %q)", cy, from.name, w.Key)
		s.tracef(coordID, "deadlock: %s", reason)
		if s.o.Break&BreakDetectorNeverAborts != 0 {
			continue
		}
		c.abort(cy.Victim.ID, coordinator.CauseDeadlock, reason, func(any, error) {})
	}
}

// live looks a transaction up: ok when it is preparing, with its client id and priority.
func (c *coordNode) live(id string) (waitfor.Txn, bool) {
	v, err := c.eng.Get(id)
	if err != nil {
		return waitfor.Txn{}, false
	}
	return waitfor.Txn{ID: v.ID, Priority: v.Priority}, v.State == coordinator.StatePreparing
}

// abort serves POST /v1/transactions/{id}/abort: the engine aborts it if it is not
// decided yet. The answer is not read by the participants.
func (c *coordNode) abort(id string, cause coordinator.AbortCause, reason string, reply func(any, error)) {
	s := c.s
	_, err := c.eng.Abort(id, cause, reason, nil)
	switch {
	case errors.Is(err, coordinator.ErrNotFound):
		reply(wireAnswer{status: 404}, nil)
	case err != nil:
		s.tracef(coordID, "abort %s (%s): %v", id, cause, err)
		reply(wireAnswer{status: 503}, nil)
	default:
		s.abortRequested(id)
		reply(wireAnswer{status: 200}, nil)
	}
	c.kick()
}

// decidedWaits drops a decided transaction's edges.
func (c *coordNode) decidedWaits(id string) {
	if c.graph != nil {
		client, _, _ := coordinator.SplitTxnID(id)
		c.graph.Remove(client)
	}
}
