// Package locks is a participant's lock table: shared and exclusive locks on keys, held
// by transaction ids, with the conflict policy a service chooses. It is pure: no IO, no
// goroutines, no clock, no randomness; the caller (participant.Participant) calls it
// under its own lock and does whatever the answers ask (vote NACK, park a prepare, tell
// the coordinator about a wait or a wound).
//
// A transaction asks for all its locks at once (Table.Acquire): it gets all of them or
// none. So one table never deadlocks by itself; a deadlock needs two participants (T1
// holds x here and waits for y there, T2 the reverse), and only the coordinator, told
// about the waits, can see it.
//
//	policy      a conflicting request...
//	none        takes no locks at all (the service alone decides)
//	no-wait     is refused at once, naming the key and a holder
//	wait        is queued (FIFO); the answer names the transactions it waits for
//	wound-wait  is queued by priority (smaller = older first); an older request also
//	            gets back the younger holders, for the caller to wound (abort)
//	occ         is refused at once, like no-wait; before that, every read version the
//	            request names is compared with the current one (VersionOf) and a
//	            difference is refused naming key, expected and found version
//
// Release (at phase 2, or when a waiting prepare gives up) frees a transaction's locks
// or its place in the queue and grants the queued requests that now fit, in queue order:
// a request is granted when it conflicts with no holder and with no request queued
// before it, so that a stream of readers cannot starve a writer.
//
// # Bounds
//
// KeysMax bounds the keys locked at once, WaitersMax the queued requests, KeysPerTxnMax
// the keys of one request: a request over a bound is refused with ErrFull (an answer,
// never growth). A queued request that would overflow KeysMax when its turn comes stays
// queued until it fits.
//
// # Invariants (checked by Table.check in tests)
//
//   - A key has at most one exclusive holder, and then no other holder, except after
//     Force (replaying transactions prepared under another policy).
//   - A transaction holds locks or waits, never both; a waiter conflicts with some holder
//     or some request queued before it.
package locks
