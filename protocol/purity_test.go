package protocol

import (
	"go/parser"
	"go/token"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestProtocolIsPure: the package does no IO, reads no clock and keeps no state; its
// imports say so.
func TestProtocolIsPure(t *testing.T) {
	forbidden := map[string]bool{"os": true, "net": true, "net/http": true, "io/ioutil": true, "syscall": true,
		"time": true, "sync": true, "math/rand": true, "math/rand/v2": true, "crypto/rand": true}
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range f.Imports {
			path, _ := strconv.Unquote(imp.Path.Value)
			if forbidden[path] {
				t.Errorf("%s imports %s: package protocol does no IO", fset.Position(imp.Pos()), path)
			}
		}
	}
}
