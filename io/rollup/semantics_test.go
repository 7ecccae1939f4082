package rollup

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"go/parser"
	"go/printer"
	"go/token"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// semanticsSources are the files, relative to the repository root, whose
// code decides what a rollup holds (Semantics' doc).
var semanticsSources = []string{
	"aggregate/agg.go",
	"aggregate/bucket.go",
	"aggregate/combine.go",
	"aggregate/encoding.go",
	"aggregate/partials.go",
	"aggregate/window.go",
	"aggregate/hll/dense.go",
	"aggregate/hll/encoding.go",
	"aggregate/hll/sketch.go",
	"aggregate/hll/sparse.go",
	"event/binary.go",
	"event/canonical.go",
	"event/event.go",
	"event/kind.go",
	"event/native.go",
	"event/schema.go",
	"event/schemas/app_load.avsc",
	"event/schemas/crash.avsc",
	"event/schemas/handled_exception.avsc",
	"event/single.go",
	"event/validate.go",
	"io/avroio/ocf.go",
	"io/avroio/read.go",
	"io/avroio/resolve.go",
	"io/avroio/scan.go",
	"io/raw/read.go",
	"io/raw/read_option.go",
}

// notSemantics are the other files of those directories: they do not
// change what a rollup holds (rows and estimates are derived after the
// merge; the writer writes raw files, it does not read them).
var notSemantics = []string{
	"aggregate/diff.go",
	"aggregate/doc.go",
	"aggregate/rows.go",
	"aggregate/hll/estimate.go",
	"io/avroio/write.go",
}

// semanticsDirs are the directories whose files must each be in one of
// the two lists, so that a new file is classified before it counts.
var semanticsDirs = []string{"aggregate", "aggregate/hll", "event", "event/schemas", "io/avroio"}

// TestSemanticsDigest fails when the code that decides what a rollup
// holds changes and Semantics does not: rollups of the old code would
// otherwise be reused as if the new code had built them.
func TestSemanticsDigest(t *testing.T) {
	const repo = "../.."
	for _, dir := range semanticsDirs {
		entries, err := os.ReadDir(filepath.Join(repo, dir))
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			name := dir + "/" + e.Name()
			if e.IsDir() || strings.HasSuffix(name, "_test.go") || !(strings.HasSuffix(name, ".go") || strings.HasSuffix(name, ".avsc")) {
				continue
			}
			if !slices.Contains(semanticsSources, name) && !slices.Contains(notSemantics, name) {
				t.Errorf("%s is new: add it to semanticsSources if it can change what a rollup holds (then bump Semantics), else to notSemantics", name)
			}
		}
	}
	h := sha256.New()
	for _, name := range semanticsSources {
		src, err := os.ReadFile(filepath.Join(repo, name))
		if err != nil {
			t.Fatalf("%v: a file that decides what a rollup holds moved; update semanticsSources", err)
		}
		if strings.HasSuffix(name, ".go") {
			src = codeOf(t, name, src)
		}
		fmt.Fprintf(h, "%s %d\n", name, len(src))
		h.Write(src)
	}
	if got := hex.EncodeToString(h.Sum(nil)[:16]); got != semanticsDigest {
		t.Errorf("the code that decides what a rollup holds changed (validation, bucketing, encoding: semanticsSources), "+
			"and rollups built by the old code would be reused as they are.\n"+
			"Bump rollup.Semantics (now %d) in io/rollup/semantics.go, and set semanticsDigest there to %q.\n"+
			"(The digest ignores comments and formatting: only a change to the code itself gets here.)", Semantics, got)
	}
}

// codeOf is a Go file's code without its comments, formatted canonically.
func codeOf(t *testing.T, name string, src []byte) []byte {
	t.Helper()
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, name, src, parser.SkipObjectResolution) // no comments
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := (&printer.Config{Mode: printer.UseSpaces | printer.TabIndent, Tabwidth: 8}).Fprint(&b, fset, f); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// A rollup of other semantics has another name, and its content is
// ErrInvalid even where its name was kept.
func TestSemanticsInIdentity(t *testing.T) {
	r := sample(t, 20)
	if r.Manifest.hash(Semantics+1) == r.Manifest.Hash() {
		t.Error("the rollup's name does not depend on Semantics")
	}
	b, err := marshal(r, Semantics+1)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Unmarshal(b); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "semantics") {
		t.Errorf("a rollup of semantics %d: %v, want ErrInvalid", Semantics+1, err)
	}
}
