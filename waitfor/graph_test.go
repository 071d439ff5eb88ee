package waitfor

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

func tx(id string, prio int64) Txn { return Txn{ID: id, Priority: prio} }

// The two-service deadlock of issue 16: T1 waits for T2 at B, T2 for T1 at A. The edge
// that closes the cycle reports it at once; the younger T2 is the victim.
func TestTwoTransactionDeadlock(t *testing.T) {
	g := New(0)
	t1, t2 := tx("t1", 100), tx("t2", 200)
	if cs, err := g.Add(t1, []Txn{t2}); err != nil || len(cs) != 0 {
		t.Fatalf("first edge: %v %v", cs, err)
	}
	cs, err := g.Add(t2, []Txn{t1})
	if err != nil || len(cs) != 1 {
		t.Fatalf("closing edge: %v %v", cs, err)
	}
	c := cs[0]
	if c.Victim != t2 || len(c.Txns) != 2 || c.Txns[0] != t2 || c.Txns[1] != t1 {
		t.Fatalf("cycle %+v", c)
	}
	if got, want := c.String(), "t2 -> t1 -> t2, victim t2 (youngest)"; got != want {
		t.Fatalf("String() = %q, want %q", got, want)
	}
	// The victim is gone from the graph: its edges too.
	if g.Edges() != 0 || g.Nodes() != 0 {
		t.Fatalf("after the victim: %d edges, %d nodes", g.Edges(), g.Nodes())
	}
}

// A longer cycle, closed by its oldest member: the victim is still the youngest, and
// transactions outside the cycle keep their edges.
func TestLongCycleVictimIsYoungest(t *testing.T) {
	g := New(0)
	a, b, c, d, x := tx("a", 1), tx("b", 4), tx("c", 2), tx("d", 3), tx("x", 9)
	mustAdd(t, g, b, c)
	mustAdd(t, g, c, d)
	mustAdd(t, g, x, a) // x waits for a: not part of the cycle
	mustAdd(t, g, d, a)
	cs, err := g.Add(a, []Txn{b})
	if err != nil || len(cs) != 1 {
		t.Fatalf("%v %v", cs, err)
	}
	if cs[0].Victim != b || cs[0].String() != "a -> b -> c -> d -> a, victim b (youngest)" {
		t.Fatalf("cycle %v", cs[0])
	}
	if !g.Has("x", "a") || !g.Has("c", "d") || g.Has("a", "b") {
		t.Fatal("wrong edges removed")
	}
}

// Equal priorities are broken by the larger id, the same way every time.
func TestTieBrokenByID(t *testing.T) {
	g := New(0)
	mustAdd(t, g, tx("m", 5), tx("z", 5))
	cs, _ := g.Add(tx("z", 5), []Txn{tx("m", 5)})
	if len(cs) != 1 || cs[0].Victim.ID != "z" {
		t.Fatalf("%v", cs)
	}
}

// Reports repeat while a participant waits; a repeated edge adds nothing. Removing a
// decided transaction drops its edges in both directions.
func TestRepeatAndRemove(t *testing.T) {
	g := New(0)
	for range 3 {
		mustAdd(t, g, tx("a", 1), tx("b", 2), tx("c", 3), tx("a", 1))
	}
	mustAdd(t, g, tx("d", 4), tx("a", 1))
	if g.Edges() != 3 {
		t.Fatalf("%d edges, want 3", g.Edges())
	}
	g.Remove("a")
	if g.Edges() != 0 || g.Nodes() != 0 {
		t.Fatalf("after remove: %d edges, %d nodes", g.Edges(), g.Nodes())
	}
	g.Remove("nobody")
}

// The bound: a report that would exceed it is refused whole.
func TestBound(t *testing.T) {
	g := New(3)
	mustAdd(t, g, tx("a", 1), tx("b", 2), tx("c", 3))
	if _, err := g.Add(tx("d", 4), []Txn{tx("e", 5), tx("f", 6)}); !errors.Is(err, ErrFull) {
		t.Fatalf("want ErrFull, got %v", err)
	}
	if g.Edges() != 2 || g.Has("d", "e") {
		t.Fatal("a refused report left edges")
	}
	mustAdd(t, g, tx("d", 4), tx("e", 5))
	mustAdd(t, g, tx("a", 1), tx("b", 2)) // repeated: no new edge, not refused
}

func mustAdd(t *testing.T, g *Graph, w Txn, hs ...Txn) {
	t.Helper()
	cs, err := g.Add(w, hs)
	if err != nil || len(cs) != 0 {
		t.Fatalf("add %v -> %v: cycles %v, err %v", w, hs, cs, err)
	}
}

// The property, over random reports and removals among a few transactions: every cycle
// reported is a real cycle of the graph as it was (each edge present), its victim is its
// youngest member, and after every call the graph has no cycle at all (checked by brute
// force), so no deadlock is ever left standing; the edge count is the number of edges.
func TestPropertyNoCycleSurvives(t *testing.T) {
	for seed := range uint64(200) {
		rng := rand.New(rand.NewPCG(seed, 16))
		g := New(40)
		n := 3 + rng.IntN(8)
		prio := make([]int64, n)
		for i := range prio {
			prio[i] = rng.Int64N(5) // ties on purpose
		}
		node := func(i int) Txn { return tx(fmt.Sprintf("t%d", i), prio[i]) }
		for step := range 300 {
			if rng.IntN(6) == 0 {
				g.Remove(node(rng.IntN(n)).ID)
			} else {
				w := rng.IntN(n)
				var hs []Txn
				for range 1 + rng.IntN(3) {
					hs = append(hs, node(rng.IntN(n)))
				}
				before := snapshot(g)
				cs, err := g.Add(node(w), hs)
				if err != nil {
					if !errors.Is(err, ErrFull) || !maps2Equal(before, snapshot(g)) {
						t.Fatalf("seed %d step %d: %v", seed, step, err)
					}
				}
				after := before
				for _, h := range hs {
					if h.ID != node(w).ID && !slices.Contains(after[node(w).ID], h.ID) && err == nil {
						after[node(w).ID] = append(after[node(w).ID], h.ID)
					}
				}
				for _, c := range cs {
					for i, m := range c.Txns {
						next := c.Txns[(i+1)%len(c.Txns)]
						if !slices.Contains(after[m.ID], next.ID) {
							t.Fatalf("seed %d step %d: reported cycle %v has no edge %s -> %s", seed, step, c, m.ID, next.ID)
						}
						if younger(m, c.Victim) {
							t.Fatalf("seed %d step %d: cycle %v: %s is younger than the victim", seed, step, c, m.ID)
						}
					}
					if !slices.Contains(c.Txns, c.Victim) || strings.Count(c.String(), " -> ") != len(c.Txns) {
						t.Fatalf("seed %d step %d: bad cycle %v", seed, step, c)
					}
				}
			}
			s := snapshot(g)
			edges := 0
			for _, hs := range s {
				edges += len(hs)
			}
			if edges != g.Edges() || edges > 40 {
				t.Fatalf("seed %d step %d: %d edges held, Edges() = %d", seed, step, edges, g.Edges())
			}
			if cyc := findCycle(s); cyc != nil {
				t.Fatalf("seed %d step %d: cycle %v left in the graph", seed, step, cyc)
			}
		}
	}
}

func snapshot(g *Graph) map[string][]string {
	m := map[string][]string{}
	for w, hs := range g.out {
		if len(hs) > 0 {
			m[w] = slices.Clone(hs)
		}
	}
	return m
}

func maps2Equal(a, b map[string][]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if !slices.Equal(v, b[k]) {
			return false
		}
	}
	return true
}

// findCycle is the brute-force check: a cycle of edges, or nil.
func findCycle(edges map[string][]string) []string {
	const white, grey, black = 0, 1, 2
	color := map[string]int{}
	var stack []string
	var visit func(string) []string
	visit = func(v string) []string {
		color[v] = grey
		stack = append(stack, v)
		for _, w := range edges[v] {
			switch color[w] {
			case grey:
				return append(slices.Clone(stack), w)
			case white:
				if c := visit(w); c != nil {
					return c
				}
			}
		}
		stack = stack[:len(stack)-1]
		color[v] = black
		return nil
	}
	keys := make([]string, 0, len(edges))
	for k := range edges {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		if color[k] == white {
			if c := visit(k); c != nil {
				return c
			}
		}
	}
	return nil
}

// Detection costs one search, however large the graph: a chain of 60,000 waits closed
// into a cycle by its last edge is found by that edge.
func TestLongChain(t *testing.T) {
	g := New(0)
	const n = 60000
	for i := range n - 1 {
		mustAdd(t, g, tx(fmt.Sprint(i), int64(i)), tx(fmt.Sprint(i+1), int64(i+1)))
	}
	cs, err := g.Add(tx(fmt.Sprint(n-1), n-1), []Txn{tx("0", 0)})
	if err != nil || len(cs) != 1 || len(cs[0].Txns) != n || cs[0].Victim.ID != fmt.Sprint(n-1) {
		t.Fatalf("err %v, %d cycles", err, len(cs))
	}
}
