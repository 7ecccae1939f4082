// Command testsummary reads `go test -json` on stdin and prints what plain
// `go test` would (a line per package, and the output of what failed),
// then one summary line of the tests run, passed, failed and skipped, and
// every skip by name with its reason. It exits 1 if anything failed, a
// package did not build, or no test ran. make test pipes its run through
// it:
//
//	go test -json ./... | go run ./testing/testsummary
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"time"
)

// event is one line of `go test -json` (go doc test2json).
type event struct {
	Action  string
	Package string
	Test    string
	Elapsed float64
	Output  string
}

type key struct{ pkg, test string }

type skip struct {
	key
	reason string
}

type summary struct {
	out                   io.Writer
	output                map[key][]string // per test, and per package (test ""), until it ends
	passed, failed        int
	skipped               []skip
	failedTests, badPkgs  []string
	packages, packagesRun int
}

func main() {
	s := &summary{out: os.Stdout, output: map[key][]string{}}
	if err := s.read(os.Stdin); err != nil {
		fmt.Fprintln(os.Stderr, "testsummary:", err)
		os.Exit(1)
	}
	if !s.report() {
		os.Exit(1)
	}
}

func (s *summary) read(r io.Reader) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	for sc.Scan() {
		line := sc.Bytes()
		var e event
		if err := json.Unmarshal(line, &e); err != nil || e.Action == "" {
			// go test writes build errors and the like as plain text.
			fmt.Fprintln(s.out, string(line))
			continue
		}
		s.add(e)
	}
	return sc.Err()
}

func (s *summary) add(e event) {
	k := key{e.Package, e.Test}
	switch e.Action {
	case "output", "build-output":
		s.output[k] = append(s.output[k], e.Output)
	case "pass", "fail", "skip":
		out := s.output[k]
		delete(s.output, k)
		if e.Test == "" {
			s.endPackage(e, out)
			return
		}
		switch e.Action {
		case "pass":
			s.passed++
		case "fail":
			s.failed++
			s.failedTests = append(s.failedTests, e.Package+" "+e.Test)
			s.print(out)
		case "skip":
			s.skipped = append(s.skipped, skip{k, skipReason(out)})
		}
	case "build-fail":
		s.badPkgs = append(s.badPkgs, e.Package+" (build failed)")
	}
}

func (s *summary) endPackage(e event, out []string) {
	s.packages++
	elapsed := time.Duration(e.Elapsed * float64(time.Second)).Round(time.Millisecond)
	switch e.Action {
	case "pass":
		s.packagesRun++
		fmt.Fprintf(s.out, "ok  \t%s\t%v\n", e.Package, elapsed)
	case "skip": // no test files
		fmt.Fprintf(s.out, "?   \t%s\t[no test files]\n", e.Package)
	case "fail":
		s.packagesRun++
		s.badPkgs = append(s.badPkgs, e.Package)
		// A timeout or a panic ends tests that never say so: print what
		// they wrote, then what the package did (a failing TestMain).
		var open []key
		for k := range s.output {
			if k.pkg == e.Package {
				open = append(open, k)
			}
		}
		sort.Slice(open, func(i, j int) bool { return open[i].test < open[j].test })
		for _, k := range open {
			if k.test != "" {
				s.failed++
				s.failedTests = append(s.failedTests, k.pkg+" "+k.test+" (did not finish)")
			}
			s.print(s.output[k])
			delete(s.output, k)
		}
		s.print(out) // ends with go test's own FAIL line
	}
}

func (s *summary) print(out []string) {
	for _, l := range out {
		fmt.Fprint(s.out, l)
	}
}

// skipReason is the message of a skipped test: its output without the
// framing lines go test adds.
func skipReason(out []string) string {
	var msg []string
	for _, l := range out {
		t := strings.TrimSpace(l)
		if t == "" || strings.HasPrefix(t, "=== ") || strings.HasPrefix(t, "--- SKIP") {
			continue
		}
		msg = append(msg, t)
	}
	if len(msg) == 0 {
		return "(no reason given)"
	}
	return msg[len(msg)-1]
}

// report prints the summary and says whether the run passed.
func (s *summary) report() bool {
	run := s.passed + s.failed + len(s.skipped)
	fmt.Fprintf(s.out, "\ntests: %d run, %d passed, %d failed, %d skipped (%d packages)\n",
		run, s.passed, s.failed, len(s.skipped), s.packagesRun)
	sort.Slice(s.skipped, func(i, j int) bool {
		a, b := s.skipped[i], s.skipped[j]
		return a.pkg+" "+a.test < b.pkg+" "+b.test
	})
	for _, sk := range s.skipped {
		fmt.Fprintf(s.out, "  skipped: %s %s: %s\n", sk.pkg, sk.test, sk.reason)
	}
	for _, f := range s.failedTests {
		fmt.Fprintf(s.out, "  failed: %s\n", f)
	}
	for _, p := range s.badPkgs {
		fmt.Fprintf(s.out, "  failed package: %s\n", p)
	}
	if run == 0 {
		fmt.Fprintln(s.out, "  no test ran")
	}
	return s.failed == 0 && len(s.badPkgs) == 0 && run > 0
}
