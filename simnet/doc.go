// Package simnet is dtc's deterministic simulator. One seed drives a whole run: the
// real coordinator engine, the real participant core with the example bank as its
// service, and clients, connected by a simulated network and each writing its log to a
// simulated disk, all driven by one scheduler in virtual time on one goroutine.
//
//	clients c1..cK                        participants p1..pN
//	(transfers, own timeouts)             (participant core + bank, in-doubt queries)
//	      │  submit ▲ view                      ▲ prepare/commit/      │ query
//	      ▼         │                           │ rollback/status      ▼
//	┌──────────── simulated network: latency, drop, duplicate, reorder, partitions ──┐
//	└────────────────────────────────┬───────────────────────────────────────────────┘
//	                                 ▼
//	          coordinator.Engine ── coordlog.ShardLog ── coordlog.SyncSink ── wal.Log
//	                                                                            │
//	          disks: wal.MemFS per node — unsynced writes lost in a crash, torn  ▼
//	          final writes, bit flips in torn frames, rot in synced records, fsync
//	          errors (fatal), a full disk
//
// The scheduler is a heap of events ordered by virtual time and insertion order. Every
// random choice is drawn from a PCG stream seeded by the run's seed (one stream per
// concern: network, faults, disk, engine, workload), no goroutine is started, no map
// order reaches the trace, and the wall clock is never read: the same seed gives the
// same trace, byte for byte, and its SHA-256 proves it.
//
// # A run
//
//  1. Fault phase: clients submit their transfers while the faults of the Knobs (drawn
//     from the seed in a swarm run) and of the Schedule are injected. A crash takes
//     effect at the boundary of the current event; the process's callbacks die with it
//     (each has an incarnation number), and its disk forgets what it had not synced.
//  2. Heal phase: once the workload is done (or FaultPhaseMax has passed), every fault
//     stops, every partition heals and every crashed node restarts. Within HealMax the
//     coordinator must have decided and finished every transaction and no participant
//     may hold one prepared (liveness).
//  3. Check: the history recorded with checker.Recorder (client calls, outcomes told,
//     votes, what participants applied, final states) goes through checker.Check, the
//     final balances through checker.CheckBank, and the simulator adds what it checks
//     online (a participant must never ACK a prepare after acknowledging the rollback).
//
// Rot (Knobs.RotRate, or a FlipBit fault) flips a bit in a synced record: the last
// durable one, or any. The node's log must then refuse to start, naming segment and
// offset; that refusal is expected and ends the run there (liveness and the final
// balances are not checked: a node is down until an operator steps in). A log that
// refuses to start with no rot injected, or starts despite rot injected while it was
// down, is a durability violation. A start that fails is a crash like any other: its
// disk forgets what the start wrote and did not sync.
//
// Disk lies (Knobs.LieRate, or the CutShort and LoseRenames faults) are told while a
// node is down, as if the disk had lied about an fsync: a segment file cut short
// (lossy when the bytes lost may have held records: then the log must refuse to start,
// as after rot; otherwise it must start with every record), or the renames of the
// newest segment files lost, from the last one holding records on (the log must finish
// them and start with every synced record).
//
// The coordinator checkpoints every 700 ms of virtual time and removes the segments its
// last completed checkpoint made obsolete, as the daemon does; participants checkpoint
// as their core decides. Participants resolve transactions in doubt with the real
// participant.Resolver: it picks the transactions to ask about (NextRound), the
// question and the coordinator's encoded answer cross the simulated network, the answer
// is read by protocol.InDoubtVerdict, and the Resolver acts on it (Settle).
//
// # The wire
//
// Every message between the coordinator and a participant crosses the simulated
// network as the bytes package protocol writes (wire.go): the participant decodes them
// with protocol's parsers, answers with protocol's encoders and an HTTP status, and the
// coordinator reads the answer with protocol.Interpret, as httpnet does. Phase 2 goes
// in batches the way package httpnet/transport sends it (batch.go): to participants that
// offer batching, at most their limit to a request, one request in flight each, with
// participants that offer none, that refuse every batch, or whose limit changes with a
// restart (a batch refused once); an op a participant cannot do fails alone in its
// batch's answer.
//
// Lock waits (issue 16, waits.go): participants under a waiting lock policy report
// their waits to the coordinator, and under wound-wait ask it to abort younger holders,
// as participant.Resolver does; with Options.DeadlockDetection the coordinator feeds
// them to the real wait-for graph (package waitfor) and aborts the youngest
// transaction of every cycle, with cause deadlock. These calls carry Go values, not
// bytes: only the coordinator-participant protocol goes through package protocol.
// Two online checks judge them (waitcheck.go): a wound's victim must be younger than
// its wounder, and with detection on no transaction is aborted at its prepare deadline
// while on a cycle of the waits the coordinator was told of. Under no-wait, wait,
// wound-wait and occ the committed transfers must be serializable (serial.go): some
// serial order explains every account as a participant's first ACK found it, and the
// end. Under occ each client reads the accounts of its transfer before its first
// submit, directly from the participants' banks at that event (there is no simulated
// read path), names their versions in the payloads ("reads"), and the participants
// validate them at prepare (a stale read is NACK, cause conflict, Stats.StaleReads);
// the check then uses the client's reads, placed from the read to the first applied
// commit.
//
// Deliberate bugs (Options.Break) are decorators around the real components, to show
// that the checker catches what they break.
//
// # Cluster mode
//
// Options.Cluster makes the coordinator one shard of a dtc cluster (cluster.go): nodes
// own it in turn through an owner key attached to a lease in leasestore, the model of
// etcd; a takeover runs the real cluster.Acquire and cluster.ReadLog and replays into a
// new engine; every group commit is the real cluster.WriteBatch, fenced by the owner
// key's create revision. Node crashes, pauses past the lease (zombies), cuts between a
// node and the store and store outages are its faults; the store's writes are checked
// online against the owner key.
package simnet
