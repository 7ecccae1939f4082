// Package lint holds lumen's house rules as tests: the one-way
// dependencies between packages, where flags may be parsed, and what the
// repository may hold. They run with every `go test ./...`.
package lint

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

const module = "github.com/lumenhq/lumen"

type pkg struct {
	ImportPath string
	Dir        string
	Name       string
	Imports    []string
	Deps       []string
	GoFiles    []string
}

func packages(t *testing.T) []pkg {
	t.Helper()
	out, err := exec.Command("go", "list", "-json", module+"/...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	var ps []pkg
	dec := json.NewDecoder(bytes.NewReader(out))
	for dec.More() {
		var p pkg
		if err := dec.Decode(&p); err != nil {
			t.Fatal(err)
		}
		ps = append(ps, p)
	}
	return ps
}

func rel(path string) string { return strings.TrimPrefix(strings.TrimPrefix(path, module), "/") }

// under reports whether a package path (relative to the module) is dir or
// inside it.
func under(path, dir string) bool { return path == dir || strings.HasPrefix(path, dir+"/") }

// TestDependencyRules: cmd → launch → pipelines → io, transforms, serving
// → aggregate → event. Nothing imports cmd; pipelines imports no launcher
// code; the model imports no Beam and nothing of lumen but event; and
// serving and cmd/query link no Beam at all.
func TestDependencyRules(t *testing.T) {
	forbidden := map[string][]string{ // package dir → lumen dirs it must not import
		"event":      {"aggregate", "transforms", "io", "serving", "pipelines", "archive", "cmd", "testing"},
		"aggregate":  {"transforms", "io", "serving", "pipelines", "archive", "cmd", "testing"},
		"transforms": {"io", "serving", "pipelines", "archive", "cmd", "testing"},
		"io":         {"transforms", "serving", "pipelines", "archive", "cmd", "testing"},
		"serving":    {"transforms", "pipelines", "archive", "cmd", "testing", "io/kafkaio", "io/raw", "io/avroio", "io/s3fs"},
		"pipelines":  {"cmd", "testing", "archive", "launch"},
		"launch":     {"cmd", "testing", "archive"},
		"archive":    {"transforms", "serving", "pipelines", "cmd", "testing"},
		// The generator's truth is computed by code of its own, so that
		// the tests compare lumen against something independent of it.
		// Beam coders of the model, imported by io and transforms alike.
		"coders": {"transforms", "io", "serving", "pipelines", "archive", "cmd", "testing", "launch", "gen"},
		"gen":    {"aggregate", "transforms", "serving", "pipelines", "archive", "cmd", "testing"},
	}
	noBeam := []string{"event", "aggregate", "serving", "cmd/query"}
	for _, p := range packages(t) {
		r := rel(p.ImportPath)
		for dir, bans := range forbidden {
			if !under(r, dir) {
				continue
			}
			for _, imp := range p.Imports {
				if !strings.HasPrefix(imp, module+"/") {
					continue
				}
				for _, ban := range bans {
					if under(rel(imp), ban) && !under(rel(imp), dir) {
						t.Errorf("%s imports %s: %s must not depend on %s", r, rel(imp), dir, ban)
					}
				}
			}
		}
		if r == "cmd" || !under(r, "cmd") {
			for _, imp := range p.Imports {
				if under(rel(imp), "cmd") && strings.HasPrefix(imp, module) {
					t.Errorf("%s imports %s: nothing imports a command", r, rel(imp))
				}
			}
		}
		for _, dir := range noBeam {
			if !under(r, dir) || (dir == "serving" && under(r, "serving/storetest")) {
				continue
			}
			for _, d := range p.Deps {
				if strings.HasPrefix(d, "github.com/apache/beam/") {
					t.Errorf("%s links Beam (%s): it must not", r, d)
					break
				}
			}
		}
	}
}

// TestNoTestingInProduction: no product package imports testing/, which
// holds test servers and harnesses. The generator lumen's demo links lives
// in gen/. cmd/bench is a benchmark harness, not a product binary: it runs
// test servers (kfake, gofakes3) against lumen on purpose.
func TestNoTestingInProduction(t *testing.T) {
	for _, p := range packages(t) {
		r := rel(p.ImportPath)
		if under(r, "testing") || under(r, "cmd/bench") {
			continue
		}
		for _, imp := range p.Imports {
			if strings.HasPrefix(imp, module+"/") && under(rel(imp), "testing") {
				t.Errorf("%s imports %s: product code must not depend on testing/", r, rel(imp))
			}
		}
	}
}

// TestHouseRules: flags are parsed only in cmd/, and no package is a
// catch-all named util.
func TestHouseRules(t *testing.T) {
	for _, p := range packages(t) {
		r := rel(p.ImportPath)
		if p.Name == "util" || p.Name == "utils" || p.Name == "common" {
			t.Errorf("%s: package %s is a catch-all; name it for what it does", r, p.Name)
		}
		if under(r, "cmd") {
			continue
		}
		for _, f := range p.GoFiles {
			b, err := os.ReadFile(filepath.Join(p.Dir, f))
			if err != nil {
				t.Fatal(err)
			}
			for _, call := range []string{"flag.Parse(", "flag.String(", "flag.Int(", "flag.Bool(", "flag.Duration(", "flag.NewFlagSet("} {
				if bytes.Contains(b, []byte(call)) {
					t.Errorf("%s/%s calls %s: only cmd/ parses flags", r, f, call)
				}
			}
		}
	}
}

// TestRepositoryHygiene: no tracked file is an executable binary, and none
// outside testing/sample is larger than 5 MB (built binaries and generated
// data belong in .gitignore, not in the history).
func TestRepositoryHygiene(t *testing.T) {
	root, err := exec.Command("git", "rev-parse", "--show-toplevel").Output()
	if err != nil {
		t.Skipf("SKIP: not in a git checkout (%v); the hygiene rules need git ls-files", err)
	}
	dir := strings.TrimSpace(string(root))
	out, err := exec.Command("git", "-C", dir, "ls-files", "-z").Output()
	if err != nil {
		t.Fatal(err)
	}
	checked := 0
	for _, name := range strings.Split(strings.TrimRight(string(out), "\x00"), "\x00") {
		if name == "" {
			continue
		}
		if bad := checkTracked(filepath.Join(dir, name), name); bad != "" {
			t.Error(bad)
		}
		checked++
	}
	if checked == 0 {
		t.Fatal("git ls-files listed nothing")
	}
}

// checkTracked returns why a tracked file does not belong, or "".
func checkTracked(path, name string) string {
	f, err := os.Open(path)
	if err != nil {
		return "" // deleted in the work tree; git status shows it
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return ""
	}
	if fi.Size() > 5<<20 && !under(name, "testing/sample") {
		return name + ": " + fi.Name() + " is larger than 5 MB"
	}
	head := make([]byte, 4)
	n, _ := bufio.NewReader(f).Read(head)
	head = head[:n]
	switch {
	case bytes.HasPrefix(head, []byte("\x7fELF")):
		return name + " is an ELF binary"
	case bytes.HasPrefix(head, []byte("MZ")):
		return name + " is a Windows executable"
	case len(head) == 4 && (bytes.Equal(head, []byte{0xcf, 0xfa, 0xed, 0xfe}) || bytes.Equal(head, []byte{0xca, 0xfe, 0xba, 0xbe})):
		return name + " is a Mach-O binary"
	}
	return ""
}

// TestReadmeLayout: the README's Layout section and the tree agree. Every
// directory it lists exists; every top-level directory, and every package
// directory one level inside a listed one, is listed.
func TestReadmeLayout(t *testing.T) {
	root, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}").Output()
	if err != nil {
		t.Fatalf("go list -m: %v", err)
	}
	dir := strings.TrimSpace(string(root))
	readme, err := os.ReadFile(filepath.Join(dir, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	listed, err := layoutEntries(string(readme))
	if err != nil {
		t.Fatal(err)
	}
	for d := range listed {
		if fi, err := os.Stat(filepath.Join(dir, d)); err != nil || !fi.IsDir() {
			t.Errorf("README's Layout lists %s/, which is not a directory", d)
		}
	}
	tops, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range tops {
		if e.IsDir() && !strings.HasPrefix(e.Name(), ".") && !listed[e.Name()] && !listedUnder(listed, e.Name()) {
			t.Errorf("%s/ is not in README's Layout", e.Name())
		}
	}
	for _, p := range packages(t) {
		r := rel(p.ImportPath)
		parent := filepath.Dir(r)
		if r == "" || listed[r] || parent == "." || !(listed[parent] || listedUnder(listed, parent)) || under(parent, "testing") || under(parent, "cmd") {
			continue
		}
		t.Errorf("package %s is not in README's Layout (its parent %s/ is)", r, parent)
	}
}

// layoutEntries reads the directories of the README's Layout block: a line
// that starts with "name/" at column 0 is a directory of the module root;
// one indented by two spaces is a subdirectory of the last one at column 0.
func layoutEntries(readme string) (map[string]bool, error) {
	_, after, ok := strings.Cut(readme, "## Layout\n")
	if !ok {
		return nil, errors.New("README.md has no \"## Layout\" section")
	}
	_, block, ok := strings.Cut(after, "```\n")
	if !ok {
		return nil, errors.New("README's Layout has no code block")
	}
	block, _, _ = strings.Cut(block, "```")
	listed := map[string]bool{}
	top := ""
	for _, line := range strings.Split(block, "\n") {
		indented := strings.HasPrefix(line, "  ") && !strings.HasPrefix(line, "   ")
		name, _, _ := strings.Cut(strings.TrimSpace(line), " ")
		if !strings.HasSuffix(name, "/") {
			continue
		}
		name = strings.TrimSuffix(name, "/")
		switch {
		case !strings.HasPrefix(line, " "):
			top = name
			listed[name] = true
		case indented && top != "":
			listed[top+"/"+name] = true
		}
	}
	if len(listed) == 0 {
		return nil, errors.New("README's Layout block lists no directories")
	}
	return listed, nil
}

// listedUnder reports whether some listed entry is inside top ("io/raw"
// for io).
func listedUnder(listed map[string]bool, top string) bool {
	for d := range listed {
		if under(d, top) && d != top {
			return true
		}
	}
	return false
}
