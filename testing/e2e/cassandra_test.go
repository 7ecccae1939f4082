package e2e

import (
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/lumenhq/lumen/gen"
	"github.com/lumenhq/lumen/pipelines"
	_ "github.com/lumenhq/lumen/serving/cassandrastore" // cassandra:// stores
	"github.com/lumenhq/lumen/testing/servicetest"
)

// batch -> Cassandra -> query equals the ground truth exactly, as with the
// embedded store, through the throttled writer.
func TestBatchCassandra(t *testing.T) {
	addr := servicetest.Addr(t, "LUMEN_TEST_CASSANDRA")
	servicetest.Use(t, "cassandra")
	cfg := gen.Config{Seed: 77, Start: time.Date(2026, 10, 1, 0, 0, 0, 0, time.UTC), Days: 30, WindowDays: 30,
		Events: 300_000, Apps: 30, OfflineShare: 0.05, SkewShare: 0.01, TooOld: 200, InvalidShare: 0.0005, FilesPerHour: 8, Junk: true}
	root, tr := dataset(t, "cassandra", cfg)
	asOf, _ := time.Parse(time.DateOnly, tr.AsOf)
	store := fmt.Sprintf("cassandra://%s/lumen_e2e_%d?consistency=ONE&adaptive=true&rate=50000", addr, os.Getpid())
	start := time.Now()
	runBatch(t, "prism", pipelines.BatchConfig{Input: root, AsOf: asOf, Store: store, DeadLetterRoot: t.TempDir()})
	t.Logf("batch into Cassandra: %v", time.Since(start).Round(time.Millisecond))
	checkAgainstTruth(t, openStore(t, store), tr)
}
