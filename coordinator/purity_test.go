package coordinator

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// pureJSONStr is the one package of this module the engine may import: it escapes JSON
// strings and imports nothing but unicode/utf8 (TestJSONStrIsPure holds it to that).
const pureJSONStr = "github.com/dtc-project/dtc/internal/jsonstr"

// TestJSONStrIsPure: the package the engine may import does no IO, keeps no state and
// imports nothing that could.
func TestJSONStrIsPure(t *testing.T) {
	files, err := filepath.Glob("../internal/jsonstr/*.go")
	if err != nil || len(files) == 0 {
		t.Fatalf("no files of %s: %v", pureJSONStr, err)
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
			if path, _ := strconv.Unquote(imp.Path.Value); path != "unicode/utf8" {
				t.Errorf("%s imports %s; the engine may import it only while it imports nothing but unicode/utf8",
					fset.Position(imp.Pos()), path)
			}
		}
	}
}

// TestEngineIsPure enforces the package's promise: the engine reads no wall clock and no
// global random source, touches neither the network nor files, and starts no goroutine.
// Everything that does so goes through the interfaces in env.go.
func TestEngineIsPure(t *testing.T) {
	forbiddenImports := map[string]string{
		"os": "files", "net": "the network", "net/http": "the network", "math/rand": "a global random source",
		"math/rand/v2": "a global random source", "crypto/rand": "a global random source", "syscall": "the OS",
		"io/ioutil": "files", "sync": "concurrency: the engine is single-threaded",
	}
	forbiddenTime := map[string]bool{"Now": true, "Sleep": true, "After": true, "AfterFunc": true, "Tick": true, "NewTimer": true, "NewTicker": true, "Since": true, "Until": true}
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	checked := 0
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		src, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		f, err := parser.ParseFile(fset, name, src, 0)
		if err != nil {
			t.Fatal(err)
		}
		checked++
		for _, imp := range f.Imports {
			path, _ := strconv.Unquote(imp.Path.Value)
			if why, bad := forbiddenImports[path]; bad {
				t.Errorf("%s imports %s (%s)", fset.Position(imp.Pos()), path, why)
			}
			if strings.HasPrefix(path, "github.com/dtc-project/dtc/") && path != pureJSONStr {
				t.Errorf("%s imports %s: coordinator imports no package of this module but %s",
					fset.Position(imp.Pos()), path, pureJSONStr)
			}
		}
		ast.Inspect(f, func(n ast.Node) bool {
			switch n := n.(type) {
			case *ast.GoStmt:
				t.Errorf("%s: go statement in the engine", fset.Position(n.Pos()))
			case *ast.SelectorExpr:
				if id, ok := n.X.(*ast.Ident); ok && id.Name == "time" && forbiddenTime[n.Sel.Name] {
					t.Errorf("%s: time.%s reads the wall clock; use Clock", fset.Position(n.Pos()), n.Sel.Name)
				}
			}
			return true
		})
	}
	if checked == 0 {
		t.Fatal("no source files checked")
	}
}
