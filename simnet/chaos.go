package simnet

import (
	"fmt"
	"time"

	"github.com/dtc-project/dtc/checker"
	"github.com/dtc-project/dtc/faults"
)

// pendingFault is an explicit fault of the schedule waiting for its point.
type pendingFault struct {
	f     faults.Fault
	node  int
	seen  int
	fired bool
}

// setupFaults schedules the explicit faults and starts the swarm's fault processes.
func (s *sim) setupFaults() {
	for _, f := range s.o.Schedule {
		pf := &pendingFault{f: f}
		if f.On == nil {
			s.at(int64(f.At), func() {
				if s.faultPhase {
					s.apply(f)
				}
			})
			continue
		}
		pf.node = s.node(f.On.Node)
		s.sched = append(s.sched, pf)
	}
	k := &s.knobs
	if k.CrashEvery > 0 {
		s.after(exponential(s.chaosRng, k.CrashEvery), s.randomCrash)
	}
	if k.PartitionEvery > 0 {
		s.after(exponential(s.chaosRng, k.PartitionEvery), s.randomPartition)
	}
	if k.DiskFullEvery > 0 {
		s.after(exponential(s.chaosRng, k.DiskFullEvery), s.randomDiskFull)
	}
}

// msgFault is what the schedule does to the message sent at a point.
type msgFault struct {
	drop  bool
	delay time.Duration
}

// point reports that node reached a protocol point; a scheduled fault waiting for it
// fires now. to is the destination of the message being sent at a send point (-1 for
// none); what the faults do to that message is returned.
func (s *sim) point(node int, ev faults.Event, txn string, to int) (m msgFault) {
	if len(s.sched) == 0 || !s.faultPhase {
		return m
	}
	for _, pf := range s.sched {
		p := pf.f.On
		if pf.fired || pf.node != node || p.Event != ev || (p.Txn != "" && p.Txn != clientID(txn)) || s.now < int64(pf.f.At) {
			continue
		}
		if p.To != "" && (to < 0 || s.names[to] != p.To) {
			continue
		}
		pf.seen++
		if pf.seen < max(p.Nth, 1) {
			continue
		}
		pf.fired = true
		s.tracef(node, "schedule: %v", pf.f)
		switch pf.f.Do.Kind {
		case faults.ActDrop:
			m.drop = true
		case faults.ActDelay:
			m.delay += pf.f.Until
		default:
			s.apply(pf.f)
		}
	}
	return m
}

// apply carries out one explicit fault, and schedules its undoing.
func (s *sim) apply(f faults.Fault) {
	a := f.Do
	node := s.node(a.Node)
	s.note(node, "fault: %v", f)
	switch a.Kind {
	case faults.ActCrash:
		if a.Torn {
			s.powerCut(node)
			return
		}
		s.crash(node, "scheduled")
		restart := f.Until
		if restart <= 0 {
			restart = uniform(s.chaosRng, s.knobs.RestartMin, s.knobs.RestartMax)
		}
		s.restartAfter(node, restart)
	case faults.ActPartition:
		peer := -1
		if a.Peer != "" {
			peer = s.node(a.Peer)
		}
		s.partition(node, peer, a.OneWay, f.Until)
	case faults.ActFailSync:
		d := s.diskOf(node)
		d.failSyncs += a.Count
		if f.Until > 0 {
			s.after(f.Until, func() { d.failSyncs = 0 })
		}
	case faults.ActDiskFull:
		d := s.diskOf(node)
		d.full++
		if f.Until > 0 {
			s.after(f.Until, func() {
				if d.full > 0 {
					d.full--
					s.tracef(node, "disk has room again")
				}
			})
		}
	case faults.ActFlipBit:
		if ok, err := s.diskOf(node).rot(!a.Anywhere); err != nil || !ok {
			s.tracef(node, "fault: no synced record to flip a bit in (%v)", err)
		}
	case faults.ActCutShort:
		if err := s.diskOf(node).cutAt(a.Anywhere); err != nil {
			s.tracef(node, "fault: no segment to cut short (%v)", err)
		}
	case faults.ActLoseRenames:
		if err := s.diskOf(node).loseRenames(); err != nil {
			s.tracef(node, "fault: no rename to lose (%v)", err)
		}
	}
}

func (s *sim) diskOf(node int) *disk {
	if node == coordID {
		return s.coord.disk
	}
	if node <= s.o.Participants {
		return s.parts[node-1].disk
	}
	panic(fmt.Sprintf("simnet: %s has no disk", s.names[node]))
}

// crash kills a node's process at the end of the current event: its callbacks stop at
// once (a new incarnation ignores the old one's), and its disk loses what it had not
// synced at the event boundary. It restarts only when told to.
func (s *sim) crash(node int, why string) {
	if !s.up[node] || s.isClient(node) {
		return
	}
	s.stats.Crashes++
	if node == coordID {
		s.stats.CoordCrashes++
		s.coord.crash()
		if s.cl != nil {
			s.cl.lostAt = s.now // a crash, or a node giving the shard up
		}
	}
	s.up[node] = false
	s.inc[node]++
	d := s.diskOf(node)
	if d.tear {
		s.stats.TornCrashes++
	}
	s.note(node, "crashes: %s", why)
	s.atBoundary(func() {
		d.crash()
		if node != coordID {
			s.parts[node-1].core = nil
		}
	})
}

// fatal is a process dying of an error it cannot survive (an fsync error, a failed
// log): it crashes, and its supervisor restarts it.
func (s *sim) fatal(node int, why string) {
	if !s.up[node] {
		return
	}
	s.crash(node, why)
	s.restartAfter(node, uniform(s.chaosRng, s.knobs.RestartMin, s.knobs.RestartMax))
}

// startFailed is a process that died while starting (its log did not open, or an
// fsync of its repair failed): like any crash, its disk forgets what it wrote and did
// not sync, torn if the power failed during the start's fsync. Keeping those writes
// would let the next start read, as if durable, a torn tail's repair that never
// reached the disk, and the next torn crash would tear through bytes that belong to
// no frame of the sync it cuts.
func (s *sim) startFailed(node int) {
	s.diskOf(node).crash()
}

// refused judges a start that failed because the node's log is corrupt. After injected
// rot that is what the log must do: the refusal is expected and ends the run (an
// operator must step in; nothing after it can be asked of the cluster). Without rot it
// is a durability violation: the log lost what it had made durable to a fault it must
// survive.
func (s *sim) refused(node int, err error) {
	if s.rotted[node] {
		s.stats.RotRefusals++
		s.note(node, "refuses to start after rot or a cut, as it must: %v", err)
		s.rotStop = true
		s.stopped = true
		return
	}
	s.violation(checker.KindDurability, "", "%s refuses to start with no rot or lossy cut injected: %v", s.names[node], err)
}

// started is a node that started: after rot injected while it was down that is a
// log that accepted a corrupt record, a durability violation. (Rot injected while it
// ran may have been in a segment it removed since.)
func (s *sim) started(node int) {
	if s.rotDown[node] {
		s.violation(checker.KindDurability, "", "%s starts although a synced record of its log rotted or was cut off", s.names[node])
	}
	s.rotted[node], s.rotDown[node] = false, false
}

// powerCut arms a crash at the node's next fsync: the sync fails, and a prefix of what
// it had written survives (a torn final write).
func (s *sim) powerCut(node int) {
	if !s.up[node] {
		return
	}
	if node == coordID && s.cl != nil {
		// A cluster node's log is in the store, not on its disk: a power cut is a crash.
		s.crash(coordID, "power cut")
		s.restartAfter(coordID, uniform(s.chaosRng, s.knobs.RestartMin, s.knobs.RestartMax))
		return
	}
	s.diskOf(node).powerCut = true
	s.tracef(node, "the power will fail during its next fsync")
}

func (s *sim) restartAfter(node int, d time.Duration) {
	inc := s.inc[node]
	s.after(d, func() {
		if s.up[node] || s.inc[node] != inc {
			return
		}
		if node == coordID {
			s.coord.restart()
		} else {
			s.parts[node-1].restart()
		}
	})
}

// partition cuts node from peer (-1: from everyone), one way or both, for d (0: until
// the heal).
func (s *sim) partition(node, peer int, oneWay bool, d time.Duration) {
	var links [][2]int
	for other := range s.names {
		if other == node || (peer >= 0 && other != peer) {
			continue
		}
		links = append(links, [2]int{node, other})
		if !oneWay {
			links = append(links, [2]int{other, node})
		}
	}
	s.stats.Partitions++
	for _, l := range links {
		s.cut[l[0]][l[1]]++
	}
	if d <= 0 {
		return
	}
	s.after(d, func() {
		if !s.faultPhase {
			return // the heal cleared every cut
		}
		for _, l := range links {
			if s.cut[l[0]][l[1]] > 0 {
				s.cut[l[0]][l[1]]--
			}
		}
		s.tracef(node, "partition heals")
	})
}

// --- the swarm's fault processes, each a Poisson process of the fault phase ---

func (s *sim) randomCrash() {
	if !s.faultPhase {
		return
	}
	k := &s.knobs
	node := coordID
	if s.chaosRng.Float64() >= k.CoordCrashShare {
		node = 1 + s.chaosRng.IntN(s.o.Participants)
	}
	if s.up[node] {
		if k.TornRate > 0 && s.chaosRng.Float64() < k.TornRate {
			s.powerCut(node)
		} else {
			s.crash(node, "random")
			if k.RotRate > 0 && s.chaosRng.Float64() < k.RotRate {
				last := s.chaosRng.IntN(2) == 0
				d := s.diskOf(node)
				s.atBoundary(func() { // after the crash: the disk holds only what is durable
					if ok, err := d.rot(last); err != nil {
						s.tracef(node, "fault: no bit to flip: %v", err)
					} else if ok && last {
						s.note(node, "rot: a bit of the last durable record flips while it is down")
					} else if ok {
						s.note(node, "rot: a bit of a synced record flips while it is down")
					}
				})
			} else if k.LieRate > 0 && s.chaosRng.Float64() < k.LieRate {
				short := s.chaosRng.IntN(2) == 0
				d := s.diskOf(node)
				s.atBoundary(func() {
					var err error
					if short {
						err = d.cutShort()
					} else {
						err = d.loseRenames()
					}
					if err != nil {
						s.tracef(node, "fault: no disk lie told: %v", err)
					}
				})
			}
			s.restartAfter(node, uniform(s.chaosRng, k.RestartMin, k.RestartMax))
		}
	}
	s.after(exponential(s.chaosRng, k.CrashEvery), s.randomCrash)
}

func (s *sim) randomPartition() {
	if !s.faultPhase {
		return
	}
	k := &s.knobs
	// A participant or a client, cut from the coordinator or from everyone.
	node := 1 + s.chaosRng.IntN(len(s.names)-1)
	peer := coordID
	if s.chaosRng.IntN(4) == 0 {
		peer = -1
	}
	oneWay := s.chaosRng.Float64() < k.OneWayRate
	d := exponential(s.chaosRng, k.PartitionFor)
	if oneWay && s.chaosRng.IntN(2) == 0 && peer >= 0 {
		node, peer = peer, node
	}
	what := "both ways"
	if oneWay {
		what = "one way"
	}
	peerName := "everyone"
	if peer >= 0 {
		peerName = s.names[peer]
	}
	s.note(node, "partition from %s, %s, for %v", peerName, what, d)
	s.partition(node, peer, oneWay, d)
	s.after(exponential(s.chaosRng, k.PartitionEvery), s.randomPartition)
}

func (s *sim) randomDiskFull() {
	if !s.faultPhase {
		return
	}
	k := &s.knobs
	node := s.chaosRng.IntN(1 + s.o.Participants)
	d := s.diskOf(node)
	dur := exponential(s.chaosRng, k.DiskFullFor)
	d.full++
	s.note(node, "disk full for %v", dur)
	s.after(dur, func() {
		if d.full > 0 {
			d.full--
		}
	})
	s.after(exponential(s.chaosRng, k.DiskFullEvery), s.randomDiskFull)
}
