// Package waitfor is the coordinator's wait-for graph and deadlock detector (issue 16).
//
// Participants that make a transaction wait for a lock report "T waits for U, V" (POST
// /v1/waits); each report adds edges T→U, T→V. A distributed deadlock is a cycle: T1
// waits for T2 at one service while T2 waits for T1 at another, and neither service
// sees more than a wait. Only the coordinator sees both edges.
//
//	report T1→T2 ──▶ Add ──▶ edges ──▶ DFS from T2: does it reach T1? ──▶ Cycle{T1 T2, victim}
//	T decided    ──▶ Remove(T): every edge into and out of T goes
//
// The detection is incremental: an edge w→h closes a cycle exactly when w is reachable
// from h, so Add searches from each new edge's head and reports the cycle at once, within
// the call that adds the closing edge. The victim is the youngest transaction of the
// cycle: the largest priority (coordinator.Priority: begin time, smaller is older), ties
// broken by the larger id, so that the same graph always picks the same victim and the
// oldest transaction is never the one sacrificed.
//
// The package is pure: no IO, no clock, no goroutine, no map order leaking out
// (neighbours are kept in insertion order). It is not safe for concurrent use; its owner
// serializes the calls.
//
// # Bounds
//
// At most EdgesMax edges are held (DefaultEdgesMax, 65,536): a report that would exceed
// it is refused with ErrFull (the caller answers 429 and the participant reports again
// later, or the wait ends at the prepare deadline as without a detector). A search
// visits each node at most once, so it costs O(edges).
//
// # Tests
//
// graph_test.go checks the graph against a brute-force cycle search over random reports
// and removals. world_test.go runs the two-service deadlock of issue 16 with the real
// coordinator engine and this detector in a deterministic world (one virtual clock,
// fixed latencies, lock-holding participants): the victim's abort is durable exactly one
// log sync after the closing report, and without the detector both transactions wait
// for the prepare deadline.
package waitfor
