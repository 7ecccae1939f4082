package main

import (
	"strings"
	"testing"
)

// A run as go test -json writes it: a pass, a skip with its reason, a
// failing subtest, a package that panics in a running test, and a build
// failure's text.
const run = `{"Action":"start","Package":"a"}
{"Action":"run","Package":"a","Test":"TestOK"}
{"Action":"output","Package":"a","Test":"TestOK","Output":"=== RUN   TestOK\n"}
{"Action":"output","Package":"a","Test":"TestOK","Output":"    a_test.go:9: quiet log\n"}
{"Action":"pass","Package":"a","Test":"TestOK","Elapsed":0.1}
{"Action":"run","Package":"a","Test":"TestServer"}
{"Action":"output","Package":"a","Test":"TestServer","Output":"=== RUN   TestServer\n"}
{"Action":"output","Package":"a","Test":"TestServer","Output":"    a_test.go:20: SKIP: no flink (LUMEN_TEST_FLINK is not set)\n"}
{"Action":"output","Package":"a","Test":"TestServer","Output":"--- SKIP: TestServer (0.00s)\n"}
{"Action":"skip","Package":"a","Test":"TestServer","Elapsed":0}
{"Action":"pass","Package":"a","Elapsed":1.5}
{"Action":"run","Package":"b","Test":"TestParent"}
{"Action":"run","Package":"b","Test":"TestParent/child"}
{"Action":"output","Package":"b","Test":"TestParent/child","Output":"    b_test.go:5: 46, want 55\n"}
{"Action":"fail","Package":"b","Test":"TestParent/child","Elapsed":0}
{"Action":"fail","Package":"b","Test":"TestParent","Elapsed":0}
{"Action":"run","Package":"b","Test":"TestHangs"}
{"Action":"output","Package":"b","Test":"TestHangs","Output":"panic: test timed out after 1s\n"}
{"Action":"output","Package":"b","Output":"FAIL\tb\t1.0s\n"}
{"Action":"fail","Package":"b","Elapsed":1}
# c
c/c.go:3:1: syntax error
{"Action":"build-fail","Package":"c"}
{"Action":"skip","Package":"d"}
`

func TestSummary(t *testing.T) {
	var out strings.Builder
	s := &summary{out: &out, output: map[key][]string{}}
	if err := s.read(strings.NewReader(run)); err != nil {
		t.Fatal(err)
	}
	if s.report() {
		t.Error("the run passed, with two failed tests and two failed packages")
	}
	got := out.String()
	for _, want := range []string{
		"ok  \ta\t1.5s\n",
		"b_test.go:5: 46, want 55",
		"panic: test timed out after 1s",
		"c/c.go:3:1: syntax error",
		"tests: 5 run, 1 passed, 3 failed, 1 skipped (2 packages)\n",
		"  failed: b TestHangs (did not finish)\n",
		"  skipped: a TestServer: a_test.go:20: SKIP: no flink (LUMEN_TEST_FLINK is not set)\n",
		"  failed: b TestParent/child\n",
		"  failed package: b\n",
		"  failed package: c (build failed)\n",
		"?   \td\t[no test files]\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("no %q in:\n%s", want, got)
		}
	}
	if strings.Contains(got, "quiet log") {
		t.Errorf("a passing test's log was printed:\n%s", got)
	}
}

func TestNothingRan(t *testing.T) {
	var out strings.Builder
	s := &summary{out: &out, output: map[key][]string{}}
	if s.report() {
		t.Errorf("an empty run passed:\n%s", out.String())
	}
}
