package sup_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"go/ast"
	"go/importer"
	"go/parser"
	"go/token"
	"go/types"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// Ergo's packages whose methods can touch a node link.
const (
	ergoGen  = "github.com/ergo-services/ergo/gen"
	ergoNode = "github.com/ergo-services/ergo/node"
)

// linkCall reports whether the Ergo method name can touch a node link
// whatever its arguments: see the list in sup/remote.go.
func linkCall(name string) bool {
	switch name {
	case "MonitorProcess", "MonitorNode", "DemonitorProcess", "DemonitorNode",
		"Link", "Unlink", "RemoteSpawn", "RemoteSpawnWithTimeout",
		"Call", "CallWithTimeout", "CallRPC", "CallRPCWithTimeout",
		"Cast", "Connect", "SendExit":
		return true
	}
	return false
}

// racyRead reports whether the Ergo method name reads Ergo's monitor or
// link maps without the lock that guards them (sup/ERGO.md E19).
func racyRead(name string) bool {
	return name == "Info" || name == "MonitorsByName" || name == "Links"
}

// endCall reports whether the Ergo method name ends a process in a way
// that panics when the process ends at the same moment (sup/ERGO.md E20):
// sup.Exit and sup.Kill are the safe ones.
func endCall(name string) bool {
	return name == "Exit" || name == "Kill"
}

// sendCall reports whether the Ergo method name touches a node link when
// its destination (the first argument) is on another node.
func sendCall(name string) bool {
	return name == "Send" || name == "SendAfter" || name == "CastAfter"
}

// The one rule of the Ergo layer (sup/remote.go): no process of skynode
// calls an Ergo operation that can touch a node link except through the
// per-peer path (sup.Send, sup.Monitor, sup.MonitorNode and their Remote).
// This test type-checks every non-test file under apps/, nodes/ and sup/
// (but nodes/outbox and sup/remote.go, which are that path, and the test
// helpers of sup/ergotest) and fails on any call of such an Ergo method,
// and on any Send whose destination is a pid, process id or alias (which
// may name another node) rather than a registered name (always local) or
// the process itself. It also fails on the Ergo methods that read its
// monitor maps unlocked (sup/ERGO.md E19), which the observer must avoid,
// and on Exit and Kill (E20). Every message to another process goes
// through sup.Send or sup.SendWait, which count it in the sender's
// messages out: a direct Send is allowed only to the process itself, and
// the Remote's own Send and SendWait only in sup/remote.go.
func TestNoDirectLinkCalls(t *testing.T) {
	if testing.Short() {
		t.Skip("type-checks the module: not in -short")
	}
	pkgs := listPackages(t)
	exports := map[string]string{}
	for _, p := range pkgs {
		exports[p.ImportPath] = p.Export
	}
	fset := token.NewFileSet()
	imp := importer.ForCompiler(fset, "gc", func(path string) (io.ReadCloser, error) {
		f, ok := exports[path]
		if !ok || f == "" {
			return nil, fmt.Errorf("no export data for %s", path)
		}
		return os.Open(f)
	})
	var found []string
	checked := 0
	for _, p := range pkgs {
		if !strings.HasPrefix(p.ImportPath, module+"/") || p.DepOnly {
			continue
		}
		rel := strings.TrimPrefix(p.ImportPath, module+"/")
		if !inScope(rel) {
			continue
		}
		files := parse(t, fset, p)
		info := &types.Info{Selections: map[*ast.SelectorExpr]*types.Selection{}, Types: map[ast.Expr]types.TypeAndValue{}}
		conf := types.Config{Importer: importerFor(imp, p.ImportMap)}
		if _, err := conf.Check(p.ImportPath, fset, files, info); err != nil {
			t.Fatalf("type-check %s: %v", p.ImportPath, err)
		}
		checked++
		for _, f := range files {
			name := filepath.ToSlash(fset.File(f.Pos()).Name())
			if strings.HasSuffix(name, "/sup/remote.go") || strings.HasSuffix(name, "/sup/end.go") {
				continue
			}
			found = append(found, violations(fset, f, info)...)
		}
	}
	if checked < 5 {
		t.Fatalf("checked %d packages: the listing is wrong", checked)
	}
	if len(found) > 0 {
		t.Fatalf("Ergo operations that can touch a node link, called directly (use sup.Send, sup.Monitor or sup.MonitorNode):\n%s",
			strings.Join(found, "\n"))
	}
}

const module = "github.com/skynode/skynode"

// inScope reports whether the package at rel (path in the module) holds
// processes the rule covers.
func inScope(rel string) bool {
	switch {
	case rel == "nodes/outbox" || strings.HasPrefix(rel, "sup/ergotest"):
		return false
	}
	for _, top := range []string{"apps", "nodes", "sup"} {
		if rel == top || strings.HasPrefix(rel, top+"/") {
			return true
		}
	}
	return false
}

// violations lists the calls in f that break the rule.
func violations(fset *token.FileSet, f *ast.File, info *types.Info) []string {
	var out []string
	// A method that implements the Remote's Send or SendWait by calling
	// another Remote's (a forwarder) sends nothing of its own.
	forwarders := map[*ast.CallExpr]bool{}
	for _, d := range f.Decls {
		if fd, ok := d.(*ast.FuncDecl); ok && fd.Recv != nil && fd.Body != nil && (fd.Name.Name == "Send" || fd.Name.Name == "SendWait") {
			ast.Inspect(fd.Body, func(n ast.Node) bool {
				if call, ok := n.(*ast.CallExpr); ok {
					forwarders[call] = true
				}
				return true
			})
		}
	}
	ast.Inspect(f, func(n ast.Node) bool {
		call, ok := n.(*ast.CallExpr)
		if !ok {
			return true
		}
		sel, ok := call.Fun.(*ast.SelectorExpr)
		if !ok {
			return true
		}
		s := info.Selections[sel]
		if s == nil || s.Obj().Pkg() == nil {
			return true
		}
		pkg, name := s.Obj().Pkg().Path(), s.Obj().Name()
		if pkg == module+"/sup" && (name == "Send" || name == "SendWait") && isRemote(s.Recv()) && !forwarders[call] {
			out = append(out, fmt.Sprintf("%s: Remote.%s: use sup.%s, which counts it in the sender's messages out", fset.Position(call.Pos()), name, name))
			return true
		}
		if pkg != ergoGen && pkg != ergoNode {
			return true
		}
		at := fset.Position(call.Pos())
		switch {
		case linkCall(name):
			out = append(out, fmt.Sprintf("%s: %s", at, name))
		case sendCall(name) && len(call.Args) > 0 && mayBeRemote(call.Args[0], info):
			out = append(out, fmt.Sprintf("%s: %s to a destination that may be on another node", at, name))
		case sendCall(name) && len(call.Args) > 0 && !toSelf(call.Args[0]):
			out = append(out, fmt.Sprintf("%s: %s to another process: use sup.Send, which counts it in the sender's messages out", at, name))
		case endCall(name):
			out = append(out, fmt.Sprintf("%s: %s panics on a process that ends meanwhile (sup/ERGO.md E20): use sup.%s", at, name, name))
		case racyRead(name):
			out = append(out, fmt.Sprintf("%s: %s reads Ergo's maps under the wrong lock (sup/ERGO.md E19)", at, name))
		}
		return true
	})
	return out
}

// toSelf reports whether a Send destination is the process itself
// (p.Self()): a timer or a note to itself, not a message out.
func toSelf(dest ast.Expr) bool {
	call, ok := dest.(*ast.CallExpr)
	if !ok {
		return false
	}
	sel, ok := call.Fun.(*ast.SelectorExpr)
	return ok && sel.Sel.Name == "Self" && len(call.Args) == 0
}

// isRemote reports whether t is the sup.Remote interface.
func isRemote(t types.Type) bool {
	n, ok := t.(*types.Named)
	return ok && n.Obj().Name() == "Remote" && n.Obj().Pkg() != nil && n.Obj().Pkg().Path() == module+"/sup"
}

// mayBeRemote reports whether a Send destination may name another node:
// anything but a registered name (a string or atom: always this node) or
// the process's own pid.
func mayBeRemote(dest ast.Expr, info *types.Info) bool {
	if toSelf(dest) {
		return false
	}
	tv, ok := info.Types[dest]
	if !ok {
		return true
	}
	if b, ok := tv.Type.Underlying().(*types.Basic); ok && b.Info()&types.IsString != 0 {
		return false // a string, or an etf.Atom
	}
	return true
}

// listed is what `go list -json` says of a package.
type listed struct {
	ImportPath string
	Dir        string
	GoFiles    []string
	Export     string
	DepOnly    bool
	ImportMap  map[string]string
}

// listPackages lists the packages in scope with their dependencies and the
// compiler's export data for each.
func listPackages(t *testing.T) []listed {
	t.Helper()
	cmd := exec.Command("go", "list", "-export", "-deps", "-json=ImportPath,Dir,GoFiles,Export,DepOnly,ImportMap",
		module+"/apps/...", module+"/nodes/...", module+"/sup/...")
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	var pkgs []listed
	dec := json.NewDecoder(strings.NewReader(string(out)))
	for {
		var p listed
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		pkgs = append(pkgs, p)
	}
	return pkgs
}

func parse(t *testing.T, fset *token.FileSet, p listed) []*ast.File {
	t.Helper()
	var files []*ast.File
	for _, name := range p.GoFiles {
		f, err := parser.ParseFile(fset, filepath.Join(p.Dir, name), nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, f)
	}
	return files
}

// importerFor resolves a package's imports through its ImportMap (vendored
// or replaced paths) before the export data lookup.
func importerFor(imp types.Importer, m map[string]string) types.Importer {
	return importerFunc(func(path string) (*types.Package, error) {
		if to, ok := m[path]; ok {
			path = to
		}
		return imp.Import(path)
	})
}

type importerFunc func(path string) (*types.Package, error)

func (f importerFunc) Import(path string) (*types.Package, error) { return f(path) }

// A test ends processes the same way (sup/ERGO.md E20): a lone Exit of a
// process that does not trap exits panics when the process ends before
// Ergo's Exit kills it, and it once failed CI so (nodes/outbox
// TestMonitorProcess). Test files are not type-checked, so this check is by
// shape: a Kill() with no argument or an Exit with one, on anything but an
// operating-system process (os/exec's cmd.Process) or os.Exit.
func TestTestsEndProcessesSafely(t *testing.T) {
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	var found []string
	files := 0
	err = filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && strings.HasPrefix(d.Name(), ".") && path != root {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, "_test.go") {
			return nil
		}
		fset := token.NewFileSet()
		f, err := parser.ParseFile(fset, path, nil, 0)
		if err != nil {
			return err
		}
		files++
		ast.Inspect(f, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok {
				return true
			}
			sel, ok := call.Fun.(*ast.SelectorExpr)
			if !ok || !endsProcess(sel.Sel.Name, len(call.Args)) {
				return true
			}
			if id, ok := sel.X.(*ast.Ident); ok && (id.Name == "os" || id.Name == "sup") {
				return true
			}
			if inner, ok := sel.X.(*ast.SelectorExpr); ok && inner.Sel.Name == "Process" {
				return true // an *os.Process
			}
			found = append(found, fmt.Sprintf("%s: %s", fset.Position(call.Pos()), sel.Sel.Name))
			return true
		})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if files < 50 {
		t.Fatalf("read %d test files: the walk is wrong", files)
	}
	if len(found) > 0 {
		t.Fatalf("processes ended directly in tests (sup/ERGO.md E20: use sup.Exit or sup.Kill):\n%s", strings.Join(found, "\n"))
	}
}

// endsProcess reports whether a call of a method name with n arguments
// has the shape of gen.Process's Exit or Kill.
func endsProcess(name string, n int) bool {
	return (name == "Kill" && n == 0) || (name == "Exit" && n == 1)
}
