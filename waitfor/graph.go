package waitfor

import (
	"errors"
	"fmt"
	"slices"
	"strings"
)

// DefaultEdgesMax is the default bound on the edges a Graph holds.
const DefaultEdgesMax = 65536

// ErrFull is returned by Add when the new edges would exceed the graph's bound.
var ErrFull = errors.New("waitfor: wait-for graph full")

// Txn is a transaction as the graph knows it: its id and its priority (smaller is older).
type Txn struct {
	ID       string
	Priority int64
}

// Cycle is a cycle of the wait-for graph, found when its closing edge was added.
type Cycle struct {
	// Txns are the transactions of the cycle in wait order: Txns[i] waits for
	// Txns[i+1], and the last waits for the first. Txns[0] is the waiter whose edge
	// closed it.
	Txns []Txn
	// Victim is the one to abort: the youngest (largest priority; the larger id on a tie).
	Victim Txn
}

// String names the cycle, as the victim's abort reason shows it:
// "a -> b -> a, victim b (youngest)".
func (c Cycle) String() string {
	var b strings.Builder
	for _, t := range c.Txns {
		b.WriteString(t.ID)
		b.WriteString(" -> ")
	}
	if len(c.Txns) > 0 {
		b.WriteString(c.Txns[0].ID)
	}
	fmt.Fprintf(&b, ", victim %s (youngest)", c.Victim.ID)
	return b.String()
}

// Graph is a bounded wait-for graph. The zero value is not usable: call New.
type Graph struct {
	edgesMax int
	edges    int
	out      map[string][]string // waiter -> holders, in the order first reported
	in       map[string][]string // holder -> waiters
	prio     map[string]int64    // every node with an edge
}

// New returns an empty graph holding at most edgesMax edges (DefaultEdgesMax if <= 0).
func New(edgesMax int) *Graph {
	if edgesMax <= 0 {
		edgesMax = DefaultEdgesMax
	}
	return &Graph{edgesMax: edgesMax, out: map[string][]string{}, in: map[string][]string{}, prio: map[string]int64{}}
}

// Edges is the number of edges held.
func (g *Graph) Edges() int { return g.edges }

// Nodes is the number of transactions with at least one edge.
func (g *Graph) Nodes() int { return len(g.prio) }

// Has reports whether the edge waiter→holder is held.
func (g *Graph) Has(waiter, holder string) bool { return slices.Contains(g.out[waiter], holder) }

// Add adds the edges waiter→h for each holder h (an edge already held, or a self-edge,
// is skipped) and returns the cycles through waiter, each with its victim, which it has
// removed from the graph (as Remove does): the caller aborts it. Either every new edge is
// added or, if that would exceed the bound, none and ErrFull.
//
// A simple cycle through waiter leaves it by one edge waiter→h and comes back by a path
// h → … → waiter; so Add searches, for each holder in turn (new edges and re-reported
// ones alike), for a path back to waiter, and removes each cycle's victim before the
// next search. When it returns, no cycle runs through waiter; since removing a node
// never makes a cycle, a graph that was acyclic before Add is acyclic after it. A cycle
// left by an earlier ErrFull is found when one of its edges is reported again.
//
// A transaction's priority is the one it had when first added; later ones are ignored.
func (g *Graph) Add(waiter Txn, holders []Txn) ([]Cycle, error) {
	var fresh, all []Txn
	for _, h := range holders {
		if h.ID == waiter.ID || slices.ContainsFunc(all, func(f Txn) bool { return f.ID == h.ID }) {
			continue
		}
		all = append(all, h)
		if !g.Has(waiter.ID, h.ID) {
			fresh = append(fresh, h)
		}
	}
	if g.edges+len(fresh) > g.edgesMax {
		return nil, fmt.Errorf("%w: %d edges held, %d more reported (EdgesMax %d)", ErrFull, g.edges, len(fresh), g.edgesMax)
	}
	if len(fresh) > 0 {
		g.node(waiter)
	}
	for _, h := range fresh {
		g.node(h)
		g.out[waiter.ID] = append(g.out[waiter.ID], h.ID)
		g.in[h.ID] = append(g.in[h.ID], waiter.ID)
		g.edges++
	}
	var cycles []Cycle
	for i := 0; i < len(all); {
		h := all[i]
		var path []string
		if g.Has(waiter.ID, h.ID) { // else removed with an earlier victim
			path = g.path(h.ID, waiter.ID)
		}
		if path == nil {
			i++
			continue
		}
		// path runs h … waiter; the cycle is waiter → h → … → (the node before waiter).
		// Another cycle may run through the same edge: search from h again (each round
		// removes a node, so this ends).
		c := g.cycle(append([]string{waiter.ID}, path[:len(path)-1]...))
		cycles = append(cycles, c)
		g.Remove(c.Victim.ID)
		if c.Victim.ID == waiter.ID {
			break
		}
	}
	return cycles, nil
}

func (g *Graph) node(t Txn) {
	if _, ok := g.prio[t.ID]; !ok {
		g.prio[t.ID] = t.Priority
	}
}

func (g *Graph) cycle(ids []string) Cycle {
	c := Cycle{Txns: make([]Txn, len(ids))}
	for i, id := range ids {
		c.Txns[i] = Txn{ID: id, Priority: g.prio[id]}
		if i == 0 || younger(c.Txns[i], c.Victim) {
			c.Victim = c.Txns[i]
		}
	}
	return c
}

// younger reports whether a is younger than b: a larger priority, or the larger id.
func younger(a, b Txn) bool {
	if a.Priority != b.Priority {
		return a.Priority > b.Priority
	}
	return a.ID > b.ID
}

// path returns a path from → … → to along the edges (both ends included), or nil. It is
// an iterative depth-first search visiting each node at most once, neighbours in their
// insertion order, so the path found is the same for the same graph.
func (g *Graph) path(from, to string) []string {
	if from == to {
		return []string{from}
	}
	type frame struct {
		id   string
		next int // index of the next neighbour to try
	}
	seen := map[string]bool{from: true}
	stack := []frame{{id: from}}
	for len(stack) > 0 {
		top := &stack[len(stack)-1]
		nbrs := g.out[top.id]
		if top.next >= len(nbrs) {
			stack = stack[:len(stack)-1]
			continue
		}
		n := nbrs[top.next]
		top.next++
		if n == to {
			p := make([]string, 0, len(stack)+1)
			for _, f := range stack {
				p = append(p, f.id)
			}
			return append(p, to)
		}
		if !seen[n] {
			seen[n] = true
			stack = append(stack, frame{id: n})
		}
	}
	return nil
}

// Remove drops every edge into and out of id: its transaction is decided, so it no longer
// waits and is no longer waited for. Removing an id without edges does nothing.
func (g *Graph) Remove(id string) {
	for _, h := range g.out[id] {
		g.in[h] = slices.DeleteFunc(g.in[h], func(w string) bool { return w == id })
		g.edges--
		g.dropIfIsolated(h)
	}
	delete(g.out, id)
	for _, w := range g.in[id] {
		g.out[w] = slices.DeleteFunc(g.out[w], func(h string) bool { return h == id })
		g.edges--
		g.dropIfIsolated(w)
	}
	delete(g.in, id)
	delete(g.prio, id)
}

func (g *Graph) dropIfIsolated(id string) {
	if len(g.out[id]) == 0 && len(g.in[id]) == 0 {
		delete(g.out, id)
		delete(g.in, id)
		delete(g.prio, id)
	}
}

// Contains reports whether id has an edge (into or out of it).
func (g *Graph) Contains(id string) bool {
	_, ok := g.prio[id]
	return ok
}
