// Package servicetest helps tests that use the real servers testing/services
// starts: it finds them through LUMEN_TEST_* variables (skipping loudly when
// unset) and serialises tests that disturb a server (pausing Cassandra with
// SIGSTOP) against every other test using it, across the test binaries that
// `go test ./...` runs in parallel.
package servicetest

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// Addr returns the value of env, or skips the test saying how to get it.
func Addr(t testing.TB, env string) string {
	t.Helper()
	v := os.Getenv(env)
	if v == "" {
		t.Skipf("%s is not set: this test needs a real server (make test starts them; or eval \"$(testing/services/up)\")", env)
	}
	return v
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
