// Package faults is dtc's fault model: what can go wrong in a simulated run and when.
//
// Two ways to say it:
//
//   - Knobs are rates drawn from a seed (swarm testing): each seed switches each kind of
//     fault on or off and picks its rate, so that over many seeds every mix is tried,
//     including the quiet ones where a rare interleaving has room to happen. Knobs print
//     on one line, next to the seed that drew them.
//   - A Schedule lists explicit faults for a scenario, each at a virtual time or when a
//     named point of the protocol is reached ("when the coordinator sends the first
//     commit, crash it"), with an optional duration after which it is undone.
//
// The package describes faults; simnet injects them. It imports nothing of the module,
// so a scenario reads as data.
//
// Nodes are named "coord" (the coordinator), "p1".."pN" (participants) and
// "c1".."cK" (clients).
package faults
