package jsonstr

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"strings"
	"testing"
)

// tricky strings: every escape encoding/json makes, and the runes around them.
var tricky = []string{
	"", "plain", `quote " and backslash \`, "<script>&amp;</script>", "\b\f\n\r\t",
	"\x00\x01\x1f\x7f", "\u2027\u2028\u2029\u202a", "é ü 漢字 🎉", "\xff", "a\xc3", "\xed\xa0\x80",
	"\xf4\x90\x80\x80", "ok\xffok", strings.Repeat("<", 100), "txn-1@0123456789abcdef",
	"http://127.0.0.1:9001/prepare?a=1&b=2",
}

func marshal(t testing.TB, s string) []byte {
	t.Helper()
	want, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	return want
}

func check(t testing.TB, s string) {
	t.Helper()
	want := marshal(t, s)
	if got := Append([]byte("prefix"), s); !bytes.Equal(got, append([]byte("prefix"), want...)) {
		t.Fatalf("Append(%q) = %s, json.Marshal writes %s", s, got[len("prefix"):], want)
	}
}

func TestAppendIsMarshal(t *testing.T) {
	for _, s := range tricky {
		check(t, s)
	}
	for b := range 256 { // every byte alone and inside text
		check(t, string(rune(b)))
		check(t, "a"+string([]byte{byte(b)})+"z")
	}
	rnd := rand.New(rand.NewPCG(1, 2))
	alphabet := []string{"a", "Z", "0", " ", `"`, `\`, "<", ">", "&", "\n", "\x00", "\x7f", "é", "\u2028", "\xff", "\xc3", "🎉"}
	n := 20000
	if testing.Short() {
		n = 2000
	}
	for range n {
		var b strings.Builder
		for range rnd.IntN(12) {
			b.WriteString(alphabet[rnd.IntN(len(alphabet))])
		}
		check(t, b.String())
	}
}

func FuzzAppend(f *testing.F) {
	for _, s := range tricky {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) { check(t, s) })
}

func TestAppendAllocatesNothing(t *testing.T) {
	buf := make([]byte, 0, 256)
	if n := testing.AllocsPerRun(100, func() { _ = Append(buf[:0], "txn <1> & \u2028 \xff") }); n != 0 {
		t.Fatalf("%v allocations per Append into a large enough buffer", n)
	}
}

func checkHTML(t testing.TB, src []byte) {
	t.Helper()
	var want bytes.Buffer
	json.HTMLEscape(&want, src)
	if got := AppendHTMLEscaped([]byte("prefix"), src); !bytes.Equal(got, append([]byte("prefix"), want.Bytes()...)) {
		t.Fatalf("AppendHTMLEscaped(%q) = %q, json.HTMLEscape writes %q", src, got[len("prefix"):], want.Bytes())
	}
}

func TestAppendHTMLEscapedIsHTMLEscape(t *testing.T) {
	for _, s := range tricky {
		checkHTML(t, []byte(s))
		checkHTML(t, []byte(`{"k":"`+s+`","n":[1,2]}`))
	}
	for b := range 256 {
		checkHTML(t, []byte{'a', byte(b), 'z'})
	}
	checkHTML(t, []byte("\xe2\x80")) // a cut U+2028 at the end is left alone
}

func FuzzAppendHTMLEscaped(f *testing.F) {
	for _, s := range tricky {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, src []byte) { checkHTML(t, src) })
}
