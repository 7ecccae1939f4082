// Package servicetest helps tests that use the real servers testing/services
// starts: it finds them through LUMEN_TEST_* variables and serialises tests that disturb a server (pausing Cassandra with
// SIGSTOP) against every other test using it, across the test binaries that
// `go test ./...` runs in parallel.
package servicetest

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
)

// Required and Unavailable are the variables make test sets: with Required
// set, a test whose server is missing fails instead of skipping, unless the
// server is one of Unavailable's (space-separated names: the servers this
// machine cannot have, listed once in the Makefile).
const (
	Required    = "LUMEN_TEST_REQUIRE_SERVERS"
	Unavailable = "LUMEN_TEST_UNAVAILABLE"
)

// servers names the server behind each variable Addr is asked for.
var servers = map[string]string{
	"LUMEN_TEST_CASSANDRA":     "cassandra",
	"LUMEN_TEST_CASSANDRA_PID": "cassandra",
	"LUMEN_TEST_KAFKA":         "kafka",
	"LUMEN_TEST_S3":            "s3",
	"LUMEN_TEST_JOB_ENDPOINT":  "prism",
	"LUMEN_TEST_FLINK":         "flink",
	"LUMEN_TEST_AVRO_TOOLS":    "avro-tools",
	"LUMEN_TEST_CHROMIUM":      "chromium",
}

// Addr returns the value of env. When it is unset the test needs a server
// it does not have, and Missing decides what happens.
func Addr(t testing.TB, env string) string {
	t.Helper()
	v := os.Getenv(env)
	if v == "" {
		server := servers[env]
		if server == "" {
			server = env
		}
		Missing(t, server, env+" is not set")
	}
	return v
}

// Missing ends a test that needs server and cannot have it, saying why.
// Under make test (Required set) it fails the test, unless server is
// Unavailable on this machine; otherwise it skips, loudly.
func Missing(t testing.TB, server, why string) {
	t.Helper()
	switch {
	case os.Getenv(Required) == "":
		t.Skipf("SKIP: no %s (%s): this test needs the real server; make test starts it, or eval \"$(testing/services/up %s)\"", server, why, server)
	case slices.Contains(strings.Fields(os.Getenv(Unavailable)), server):
		t.Skipf("SKIP: no %s (%s): this machine cannot have it (%s, set by the Makefile)", server, why, Unavailable)
	default:
		t.Fatalf("no %s (%s), and make test requires every real server but %s=%q", server, why, Unavailable, os.Getenv(Unavailable))
	}
}

// Use takes a shared lock on a server for the rest of the test: many tests
// may use it at once, but not while one Disturbs it.
func Use(t testing.TB, server string) { lock(t, server, syscall.LOCK_SH) }

// Disturb takes the exclusive lock on a server for the rest of the test.
func Disturb(t testing.TB, server string) { lock(t, server, syscall.LOCK_EX) }

func lock(t testing.TB, server string, how int) {
	t.Helper()
	path := filepath.Join(os.TempDir(), "lumen-test-"+server+".lock")
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o666)
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Flock(int(f.Fd()), how); err != nil {
		f.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	})
}
