package server

import (
	"go/ast"
	"go/parser"
	gotoken "go/token"
	"io/fs"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

// TestLogDurationKeysCarryUnits: a duration in the log is a bare number
// (zerolog's Dur writes milliseconds), so its key says the unit
// ("elapsed_ms", not "elapsed"): a reader of the JSON, or a dashboard, has
// nothing else to tell milliseconds from seconds by. Every Dur call of the
// module's code is checked, with the unit zerolog is set to.
func TestLogDurationKeysCarryUnits(t *testing.T) {
	if zerolog.DurationFieldUnit != time.Millisecond {
		t.Fatalf("zerolog.DurationFieldUnit is %v; the keys say _ms", zerolog.DurationFieldUnit)
	}
	fset := gotoken.NewFileSet()
	checked := 0
	err := filepath.WalkDir("..", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if n := d.Name(); path != ".." && (strings.HasPrefix(n, ".") || n == "testdata" || n == "bin" || n == "data") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, 0)
		if err != nil {
			return err
		}
		ast.Inspect(f, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok || len(call.Args) != 2 {
				return true
			}
			sel, ok := call.Fun.(*ast.SelectorExpr)
			if !ok || sel.Sel.Name != "Dur" {
				return true
			}
			lit, ok := call.Args[0].(*ast.BasicLit)
			if !ok || lit.Kind != gotoken.STRING {
				t.Errorf("%s: Dur with a key that is not a literal: cannot check its unit", fset.Position(call.Pos()))
				return true
			}
			key, _ := strconv.Unquote(lit.Value)
			checked++
			if !strings.HasSuffix(key, "_ms") {
				t.Errorf("%s: duration logged as %q: name its unit (%q)", fset.Position(call.Pos()), key, key+"_ms")
			}
			return true
		})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if checked < 10 {
		t.Fatalf("only %d Dur calls found: is the walk reading the module?", checked)
	}
}
