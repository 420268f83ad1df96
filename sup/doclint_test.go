package sup_test

import (
	"encoding/json"
	"errors"
	"go/ast"
	"go/doc"
	"go/parser"
	"go/token"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// Every package of the module has a package comment, and every exported
// function, type, method, constant and variable a doc comment (a constant
// or variable may share its group's). Struct fields are documented by the
// type's comment or their own, as reads best; they are not checked.
func TestExportedIdentifiersDocumented(t *testing.T) {
	if testing.Short() {
		t.Skip("parses the module: not in -short")
	}
	cmd := exec.Command("go", "list", "-json=ImportPath,Dir,GoFiles,Name", module+"/...")
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	dec := json.NewDecoder(strings.NewReader(string(out)))
	checked := 0
	for {
		var p struct {
			ImportPath, Dir, Name string
			GoFiles               []string
		}
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		if len(p.GoFiles) == 0 {
			continue
		}
		checked++
		fset := token.NewFileSet()
		var files []*ast.File
		for _, name := range p.GoFiles {
			f, err := parser.ParseFile(fset, filepath.Join(p.Dir, name), nil, parser.ParseComments)
			if err != nil {
				t.Fatal(err)
			}
			files = append(files, f)
		}
		d, err := doc.NewFromFiles(fset, files, p.ImportPath)
		if err != nil {
			t.Fatal(err)
		}
		if strings.TrimSpace(d.Doc) == "" {
			t.Errorf("%s: no package comment", p.ImportPath)
		}
		if p.Name == "main" {
			continue // a command: its exported names are no API
		}
		missing := func(kind, name, text string) {
			if ast.IsExported(name) && strings.TrimSpace(text) == "" {
				t.Errorf("%s: %s %s has no doc comment", p.ImportPath, kind, name)
			}
		}
		values := func(vs []*doc.Value) {
			for _, v := range vs {
				if v.Doc != "" {
					continue
				}
				for _, s := range v.Decl.Specs {
					if vs := s.(*ast.ValueSpec); vs.Doc == nil && vs.Comment == nil {
						for _, n := range vs.Names {
							missing("value", n.Name, "")
						}
					}
				}
			}
		}
		values(d.Consts)
		values(d.Vars)
		for _, f := range d.Funcs {
			missing("func", f.Name, f.Doc)
		}
		for _, typ := range d.Types {
			missing("type", typ.Name, typ.Doc)
			values(typ.Consts)
			values(typ.Vars)
			for _, f := range typ.Funcs {
				missing("func", f.Name, f.Doc)
			}
			for _, m := range typ.Methods {
				missing("method", typ.Name+"."+m.Name, m.Doc)
			}
		}
	}
	if checked < 10 {
		t.Fatalf("checked %d packages: is the module listed?", checked)
	}
}
