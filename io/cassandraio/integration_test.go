package cassandraio_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"math"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/lumenhq/lumen/io/cassandraio"
	"github.com/lumenhq/lumen/testing/servicetest"
)

// The real-server tests. Each uses its own keyspace and table:
// rows (p int, c int, v blob) partitioned by p.

var keyspaceSeq int

// dial connects to a keyspace name of the test's own (named after what,
// not yet created) with the URL parameters params, closed with the test.
func dial(t *testing.T, what, params string) (*cassandraio.Client, string) {
	t.Helper()
	addr := servicetest.Addr(t, "LUMEN_TEST_CASSANDRA")
	keyspaceSeq++
	ks := fmt.Sprintf("lumen_%s_%d_%d", what, os.Getpid(), keyspaceSeq)
	cfg, err := cassandraio.ParseURL(fmt.Sprintf("cassandra://%s/%s?consistency=ONE&%s", addr, ks, params))
	if err != nil {
		t.Fatal(err)
	}
	c, err := cassandraio.Connect(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c, ks
}

func connect(t *testing.T, params string) (*cassandraio.Client, string) {
	t.Helper()
	c, ks := dial(t, "io", params)
	ctx := context.Background()
	if err := c.EnsureSchema(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c.Session().Query(fmt.Sprintf("CREATE TABLE IF NOT EXISTS %s.rows (p int, c int, v blob, PRIMARY KEY ((p), c))", ks)).Exec(); err != nil {
		t.Fatal(err)
	}
	return c, ks
}

const partitions = 100

// writeRows writes rows [0, n) spread over partitions, returning the
// first error.
func writeRows(ctx context.Context, c *cassandraio.Client, ks string, n int) (*cassandraio.Writer, error) {
	w := c.NewWriter()
	stmt := fmt.Sprintf("INSERT INTO %s.rows (p, c, v) VALUES (?, ?, ?)", ks)
	v := bytes.Repeat([]byte("x"), 32)
	for i := 0; i < n; i++ {
		p := i % partitions
		if err := w.Write(ctx, cassandraio.Mutation{Stmt: stmt, Args: []any{p, i, v}, Partition: strconv.Itoa(p), Bytes: 48}); err != nil {
			return w, err
		}
	}
	return w, w.Flush(ctx)
}

// countRows counts the table's rows partition by partition.
func countRows(t *testing.T, c *cassandraio.Client, ks string) int {
	t.Helper()
	total := 0
	for p := 0; p < partitions; p++ {
		var n int
		if err := c.Session().Query(fmt.Sprintf("SELECT COUNT(*) FROM %s.rows WHERE p = ?", ks), p).Scan(&n); err != nil {
			t.Fatal(err)
		}
		total += n
	}
	return total
}

func TestSchemaIsIdempotent(t *testing.T) {
	servicetest.Use(t, "cassandra")
	c, ks := connect(t, "")
	for i := 0; i < 2; i++ {
		if err := c.EnsureSchema(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	var v int
	if err := c.Session().Query(fmt.Sprintf("SELECT version FROM %s.schema_version WHERE component = 'lumen'", ks)).Scan(&v); err != nil || v != cassandraio.SchemaVersion {
		t.Fatalf("schema version %d, %v", v, err)
	}
	// A keyspace from a newer build is refused, not silently written to.
	c.Session().Query(fmt.Sprintf("UPDATE %s.schema_version SET version = 99 WHERE component = 'lumen'", ks)).Exec()
	if err := c.EnsureSchema(context.Background()); err == nil || !strings.Contains(err.Error(), "newer") {
		t.Errorf("newer schema accepted: %v", err)
	}
}

// 50,000 rows at rate=5000 never go faster than the budget: at least 9 s
// (10 s less the limiter's burst). How much slower than 10 s a loaded
// machine makes it is a benchmark's business (go run ./cmd/bench
// cassandra), not a test's: it is logged.
func TestThrottleRate(t *testing.T) {
	servicetest.Use(t, "cassandra")
	c, ks := connect(t, "rate=5000")
	start := time.Now()
	if _, err := writeRows(context.Background(), c, ks, 50_000); err != nil {
		t.Fatal(err)
	}
	took := time.Since(start)
	t.Logf("50,000 rows at rate=5000: %v (%.0f rows/s), throttle wait %v, peak in flight %d",
		took.Round(time.Millisecond), 50_000/took.Seconds(), time.Duration(c.Stats().ThrottleWait).Round(time.Millisecond), c.Stats().PeakInFlight)
	if took < 9*time.Second {
		t.Errorf("took %v: faster than rate=5000 allows (at least 9 s)", took)
	}
	if got := countRows(t, c, ks); got != 50_000 {
		t.Errorf("%d rows present, want 50000", got)
	}
}

// pause SIGSTOPs Cassandra after delay for d, then SIGCONTs it.
func pause(t *testing.T, delay, d time.Duration) *sync.WaitGroup {
	t.Helper()
	pid, err := strconv.Atoi(servicetest.Addr(t, "LUMEN_TEST_CASSANDRA_PID"))
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		time.Sleep(delay)
		t.Logf("SIGSTOP cassandra (pid %d) for %v", pid, d)
		syscall.Kill(pid, syscall.SIGSTOP)
		time.Sleep(d)
		syscall.Kill(pid, syscall.SIGCONT)
		t.Logf("SIGCONT cassandra")
	}()
	t.Cleanup(func() { syscall.Kill(pid, syscall.SIGCONT) })
	return &wg
}

// sampleRate records the throttle's rate every 250ms until stop.
func sampleRate(c *cassandraio.Client, stop <-chan struct{}) <-chan []float64 {
	out := make(chan []float64, 1)
	go func() {
		var rates []float64
		tick := time.NewTicker(250 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				out <- rates
				return
			case <-tick.C:
				rates = append(rates, c.Throttle().Rate())
			}
		}
	}()
	return out
}

// Cassandra paused for 5 s in the middle of a 200,000-row write: the write
// completes, every row is there, and the retries are counted. In adaptive
// mode the rate drops and recovers.
func TestWriteSurvivesPause(t *testing.T) {
	servicetest.Disturb(t, "cassandra")
	c, ks := connect(t, "adaptive=true&rate=40000&timeout=2s")
	stop := make(chan struct{})
	rates := sampleRate(c, stop)
	paused := pause(t, 1500*time.Millisecond, 5*time.Second)
	start := time.Now()
	w, err := writeRows(context.Background(), c, ks, 200_000)
	took := time.Since(start)
	paused.Wait()
	// Keep sampling a little after the write to see the recovery.
	time.Sleep(3 * time.Second)
	close(stop)
	series := <-rates
	if err != nil {
		t.Fatalf("write failed across a 5 s pause: %v", err)
	}
	st := w.Stats()
	t.Logf("200,000 rows in %v with a 5 s pause: %d retries, %d failures, throttle wait %v",
		took.Round(time.Millisecond), st.Retries, st.Failures, st.ThrottleWait.Round(time.Millisecond))
	t.Logf("adaptive rate limit every 250ms (rows/s): %v", compact(series))
	if st.Retries == 0 {
		t.Error("no retries counted across the pause")
	}
	if got := countRows(t, c, ks); got != 200_000 {
		t.Errorf("%d rows present, want 200000", got)
	}
	lo, loAt := math.Inf(1), 0
	for i, r := range series {
		if r < lo {
			lo, loAt = r, i
		}
	}
	recovered := false
	for _, r := range series[loAt:] {
		if r > lo {
			recovered = true
		}
	}
	if lo > 20000 || !recovered {
		t.Errorf("adaptive rate did not drop below half the ceiling and recover: %v", compact(series))
	}
}

func compact(xs []float64) string {
	var b strings.Builder
	for i, x := range xs {
		if i > 0 && xs[i-1] == x {
			continue
		}
		fmt.Fprintf(&b, "%.0f ", x)
	}
	return strings.TrimSpace(b.String())
}

// If Cassandra stays away past the retry budget, the write fails with a
// clear error; once it is back, re-running the same write completes it.
func TestWriteFailsPastBudgetAndRerunCompletes(t *testing.T) {
	servicetest.Disturb(t, "cassandra")
	c, ks := connect(t, "timeout=1s&retries=2&retry_min=100ms&retry_max=200ms")
	paused := pause(t, 500*time.Millisecond, 10*time.Second)
	_, err := writeRows(context.Background(), c, ks, 100_000)
	paused.Wait()
	var we *cassandraio.WriteError
	if !errors.As(err, &we) || !we.Retryable || !strings.Contains(err.Error(), "re-running completes the data") {
		t.Fatalf("err = %v, want a retryable WriteError that says a re-run completes the data", err)
	}
	t.Logf("past the budget: %v", err)
	if _, err := writeRows(context.Background(), c, ks, 100_000); err != nil {
		t.Fatalf("re-run: %v", err)
	}
	if got := countRows(t, c, ks); got != 100_000 {
		t.Errorf("%d rows after the re-run, want 100000", got)
	}
}

// Credentials appear in no error and no log line, even when connecting
// fails.
func TestCredentialsNeverLogged(t *testing.T) {
	var logs bytes.Buffer
	oldLog, oldSlog := log.Writer(), slog.Default()
	log.SetOutput(&logs)
	slog.SetDefault(slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	defer func() { log.SetOutput(oldLog); slog.SetDefault(oldSlog) }()

	const secret = "Pa55-w0rd-never-print"
	cfg, err := cassandraio.ParseURL("cassandra://admin:" + secret + "@127.0.0.1:1/lumen?connect_timeout=500ms&timeout=500ms")
	if err != nil {
		t.Fatal(err)
	}
	_, err = cassandraio.Connect(context.Background(), cfg)
	if err == nil {
		t.Fatal("connected to port 1")
	}
	if strings.Contains(err.Error(), secret) || strings.Contains(logs.String(), secret) {
		t.Errorf("the password leaked: err=%v logs=%q", err, logs.String())
	}
	if !strings.Contains(err.Error(), "password set") {
		t.Errorf("error should describe the config (redacted): %v", err)
	}
}
