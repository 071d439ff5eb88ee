package apiserver

import (
	"slices"
	"testing"

	"github.com/dtc-project/dtc/coordinator"
)

func views(ids ...string) []coordinator.View {
	out := make([]coordinator.View, len(ids))
	for i, id := range ids {
		out[i] = coordinator.View{ID: id}
	}
	return out
}

// The merged page is the first limit ids of the union, once each, with a cursor when
// any node had more or the union was cut.
func TestMergeListPages(t *testing.T) {
	for _, c := range []struct {
		name  string
		pages []ListResponse
		limit int
		ids   []string
		next  string
	}{
		{"interleaved, cut", []ListResponse{{Transactions: views("a", "d")}, {Transactions: views("b", "c")}}, 3, []string{"a", "b", "c"}, "c"},
		{"all fit, none has more", []ListResponse{{Transactions: views("b")}, {Transactions: views("a")}}, 3, []string{"a", "b"}, ""},
		{"one has more", []ListResponse{{Transactions: views("a"), Next: "a"}, {Transactions: views("b")}}, 3, []string{"a", "b"}, "b"},
		{"listed twice during a move", []ListResponse{{Transactions: views("a", "b")}, {Transactions: views("b")}}, 3, []string{"a", "b"}, ""},
		{"empty", []ListResponse{{}, {}}, 3, []string{}, ""},
	} {
		got := mergeListPages(c.pages, c.limit)
		var ids []string = []string{}
		for _, v := range got.Transactions {
			ids = append(ids, v.ID)
		}
		if !slices.Equal(ids, c.ids) || got.Next != c.next {
			t.Errorf("%s: got %v next %q, want %v next %q", c.name, ids, got.Next, c.ids, c.next)
		}
	}
}
