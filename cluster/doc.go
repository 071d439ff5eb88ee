// Package cluster runs dtc's coordinator as a cluster of nodes over etcd: the shards'
// logs live in etcd, and each shard is owned by one node at a time through an etcd lease.
// The coordinator core knows nothing of it: a shard's engine sees a coordinator.Log.
//
//	            etcd (/dtc/<cluster>/…)
//	┌───────────────────────────────────────────────┐
//	│ config/shards            nodes/<id> (lease)   │
//	│ owners/<n> (lease)       shards/<n>/log/<idx> │
//	└───────▲───────────────────────▲───────────────┘
//	        │ Acquire / Release     │ Txn(If owner's CreateRevision == mine,
//	        │ (owner key, lease)    │     Then put records [, delete before checkpoint])
//	 ┌──────┴──────┐         ┌──────┴──────┐
//	 │ ownership   │ starts  │ Log (shard) │◀── Append(rec, sync) ── Engine
//	 │ (per node)  │────────▶│ group commit│─── Notify → Step(LogSynced{Through})
//	 └─────────────┘ fences  └─────────────┘
//
// Invariants:
//   - Fencing: every write of a shard's log is one etcd transaction guarded by the
//     compare "the shard's owner key still has the create revision this node
//     acquired". The owner key is attached to the owner's lease, so when the lease
//     expires the key goes, and a new owner's key has a new revision: from the moment
//     another node can acquire the shard, nothing the old owner sends is written. A
//     failed compare fences the log (ErrFenced): it reports nothing more as durable,
//     refuses appends, and tells its owner to stop the shard at once. The counter
//     dtc_cluster_fenced_writes_total counts such refused writes.
//   - Order: records are written at consecutive indexes, one batch at a time; a batch is
//     retried (same keys, same values) until it is written or fenced, and the next one
//     waits for it. LogSynced is reported only for what etcd acknowledged.
//   - Takeover reads the log only after acquiring the shard (ReadLog), so it sees every
//     record any earlier owner made durable, and replays them into a new engine through
//     Engine.Replay and Engine.Start, as a restart does.
//   - Checkpoints: the transaction that writes a checkpoint's closing record deletes
//     every record before its opening one, in the same fenced transaction.
//
// Ownership (Node): a node keeps its own lease alive, registers under nodes/<id>, takes
// free shards (Acquire: create the owner key if absent, attached to its lease) up to
// ceil(shards / live nodes), hands its surplus off when nodes join, and watches the
// owner keys, so that a freed shard is taken at once. It stops every shard (the
// ShardHandler's LoseShard) as soon as no keepalive has been acknowledged for the lease's
// TTL, even if etcd cannot be reached: past that time etcd may have expired the lease
// and another node may own the shards. A node whose Run's context ends hands its shards
// off and revokes its lease; Kill stops it as a crash would (tests).
//
// The simulator runs this package's Acquire, ReadLog and WriteBatch over a deterministic
// model of etcd (simnet/leasestore), with nodes crashing, pausing past their lease,
// cut off from etcd, and etcd down (simnet's cluster mode).
//
// The record format is the file log's (coordinator.EncodeRecord): `etcdctl get
// --prefix /dtc/<cluster>/shards/<n>/log/` prints JSON a person can read.
package cluster
