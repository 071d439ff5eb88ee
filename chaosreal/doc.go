// Package chaosreal runs fault campaigns against real dtc and bank processes: what the
// simulator cannot cover, the real HTTP stack, real files and a real kill -9.
//
//	clients c1..cK ──POST /v1/transactions──▶ dtc serve ──▶ proxy p1 ──▶ bank p1
//	  (checker.Recorder:                          │    └───▶ proxy p2 ──▶ bank p2
//	   Submit, Return, Rebind)                    │           …   │ tap: votes, commits,
//	                                              │               │ rollbacks, acks
//	  killer: kill -9 + restart ──────────────────┴───────────────┴──▶ Recorder
//	  proxy faults: delay, drop, blackhole   failpoints: GO_FAILPOINTS per incarnation
//
// Run builds the programs with their failpoint markers live (Build: go build -toolexec
// failpoint-toolexec, in a build cache and a temporary directory of its own, so the
// source tree is never rewritten), starts dtc and the banks on loopback, each with its own
// data directory, and puts a Proxy in front of every bank: dtc is given the proxies'
// URLs. Clients submit transfers with client-chosen ids (a call that ends without an
// answer is retried with the same id). During the fault phase the campaign kills
// processes at moments drawn from the seed and restarts them on the same data directory,
// makes proxies delay, drop or swallow traffic, and starts some incarnations with a
// failpoint armed (faults.Failpoints). A process that dies on its own is restarted; a bank
// whose participant stopped answering is killed and restarted.
//
// Then it heals: proxies pass, every process runs without failpoints; it waits (bounded
// by HealMax) until dtc holds no unfinished transaction and no bank a reservation, reads
// the final states (dtc for every client id and every id@nonce a bank was asked to
// prepare, each bank's status of those), checks the history with checker.Check and the
// balances with checker.CheckBank, writes the report (WriteReport) and stops every process
// it started, also when its context ends.
//
// The history's times are wall-clock nanoseconds. The taps record a vote when the
// participant's answer passes the proxy (whether or not it gets through: the vote was
// cast), a phase-2 request once it was forwarded, and an acknowledgement when it passes;
// a participant's "prepared" status answer counts as a vote, as in the simulator.
//
// Cluster mode (Options.Cluster): dtc runs as nodes n1..nN of one cluster (dtc serve
// --cluster) over an etcd embedded in the campaign's process (cluster.go); clients send
// their calls to the nodes in turn; kill -9s aimed at the coordinator hit one node; and
// the pauser stops a node (SIGSTOP) past its lease, then resumes it (SIGCONT). Every
// node runs with the failpoint cluster/beforeLogWrite holding each log batch 250ms, so
// that a pause often lands with a write in hand: sent after the resume, the owner
// compare must refuse it, which the node's dtc_cluster_fenced_writes_total, read after
// each resume, shows (Result.Pauses). Each node reaches etcd through a Proxy of its own
// (n1→etcd), hit by the proxy faults like the participants' proxies (no tap: its bytes
// are etcd's, not the protocol's). The heal also waits until every shard has an owner
// holding a live lease.
//
// SQL participants (Options.SQL, sqldb.go): s1..sN are dtc-sql processes, s1, s3, … over
// PostgreSQL and s2, s4, … over MariaDB, each behind its proxy and killed like the banks
// (they have no failpoints). Each has an account table of its own, made for the campaign
// with a CHECK (balance >= 0), and its own dtc-sql table of transactions (--table); both
// are named after the seed, the campaign's pid and a counter, and are dropped at the end,
// after whatever the database still holds prepared under the participant's gid prefix
// is rolled back. Half the transfers move money between a bank and a SQL participant
// (or between two SQL ones): the SQL leg is an UPDATE of the payload, and an overdraft
// (one in twenty such transfers debits more than all the money there is) breaks the
// CHECK, a NACK. The check reads the databases themselves, never through dtc-sql: the
// heal also waits until no transaction of theirs is prepared (pg_prepared_xacts, XA
// RECOVER); each transaction's final state at sN is what dtc-sql's table (committed,
// aborted) and the prepared list say, and every transaction in that table is judged;
// the balances join the money invariant; every account must hold InitialBalance plus
// the legs of the transactions the table records as committed; no client id may have
// committed at one participant under two incarnations; and nothing may be left prepared.
//
// The seed drives every choice; the processes' timing is real, so a seed replays the
// campaign's plan, not its run. Nothing in a campaign decides correctness by time: only
// the checker does, on what was observed.
package chaosreal
