package e2e

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/apache/beam/sdks/v2/go/pkg/beam/testing/ptest"

	"github.com/lumenhq/lumen/gen"
	"github.com/lumenhq/lumen/io/deadletter"
	"github.com/lumenhq/lumen/pipelines"
)

func TestMain(m *testing.M) {
	// ptest initialises Beam; the test binary doubles as prism's worker.
	code := ptest.MainRetWithDefault(m, "prism")
	cleanupDatasets()
	cleanupCommands()
	os.Exit(code)
}

// bigConfig is the acceptance dataset: 30 days, over a million events, with
// offline (late), too-old, clock-skewed and invalid records and junk files.
var bigConfig = gen.Config{
	Seed: 20261125, Start: time.Date(2026, 10, 1, 0, 0, 0, 0, time.UTC), Days: 30, WindowDays: 30,
	Events: 1_050_000, Apps: 50, OfflineShare: 0.05, SkewShare: 0.01, TooOld: 700, InvalidShare: 0.0005,
	FilesPerHour: 24, Junk: true,
}

func TestBatchEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: the end-to-end dataset has a million events")
	}
	root, tr := dataset(t, "big", bigConfig)
	if tr.Counters.Read < 1_000_000 || tr.Counters.TooOld == 0 || tr.Counters.ClockSkew == 0 {
		t.Fatalf("dataset does not exercise the acceptance cases: %+v", tr.Counters)
	}
	asOf, _ := time.Parse(time.DateOnly, tr.AsOf)
	store := sqliteURL(t)
	cfg := pipelines.BatchConfig{Input: root, AsOf: asOf, Store: store, DeadLetterRoot: t.TempDir()}
	start := time.Now()
	runBatch(t, "prism", cfg)
	t.Logf("batch on prism: %v", time.Since(start).Round(time.Millisecond))
	st := openStore(t, store)
	checkAgainstTruth(t, st, tr)

	// Every dead letter is in the files, with its source and reason.
	files, _ := filepath.Glob(filepath.Join(cfg.DeadLetterRoot, "deadletter/batch/dt="+tr.AsOf, "*.avro"))
	got := map[string]int64{}
	for _, f := range files {
		recs, err := deadletter.ReadFile(context.Background(), f)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range recs {
			if r.Source == "" || r.Reason == "" || r.Pipeline != "batch" {
				t.Errorf("dead letter without context: %+v", r)
			}
			got[r.Reason]++
		}
	}
	if !reflect.DeepEqual(got, tr.Counters.DeadLetters) {
		t.Errorf("dead-letter files hold %v, want %v", got, tr.Counters.DeadLetters)
	}

	// Re-running the same run leaves identical rows.
	window := asOf.AddDate(0, 0, 1-tr.WindowDays)
	before := snapshot(t, st, window, asOf)
	runBatch(t, "prism", cfg)
	diffSnapshots(t, "re-run", before, snapshot(t, st, window, asOf))
}

// Backfilling D-1 and then D leaves days D-29..D exactly as running D alone.
func TestBatchBackfillEqualsSingleRun(t *testing.T) {
	if testing.Short() {
		t.Skip("-short")
	}
	cfg := bigConfig
	cfg.Events, cfg.Days, cfg.FilesPerHour = 150_000, 32, 6
	root, tr := dataset(t, "backfill", cfg)
	d, _ := time.Parse(time.DateOnly, tr.AsOf)
	dl := t.TempDir()

	backfilled, single := sqliteURL(t), sqliteURL(t)
	for _, day := range []time.Time{d.AddDate(0, 0, -1), d} {
		runBatch(t, "prism", pipelines.BatchConfig{Input: root, AsOf: day, Store: backfilled, DeadLetterRoot: dl})
	}
	runBatch(t, "prism", pipelines.BatchConfig{Input: root, AsOf: d, Store: single, DeadLetterRoot: dl})
	from := d.AddDate(0, 0, -29)
	a, b := snapshot(t, openStore(t, backfilled), from, d), snapshot(t, openStore(t, single), from, d)
	if len(a) == 0 {
		t.Fatal("no rows")
	}
	diffSnapshots(t, "backfill vs single run", a, b)
	t.Logf("compared %d rows of %s..%s", len(a), from.Format(time.DateOnly), tr.AsOf)
}

// The whole batch graph on the legacy direct runner, which has no SDF
// residuals, state, timers or triggers: the graph must need none of them.
// Its traffic has bad signatures too (empty, 10 KiB, not UTF-8): they are
// dead letters by reason, and the rest stays exact.
func TestBatchOnDirectRunner(t *testing.T) {
	cfg := gen.Config{Seed: 5, Start: time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC), Days: 4, WindowDays: 3,
		Events: 30_000, Apps: 8, OfflineShare: 0.1, SkewShare: 0.02, TooOld: 40, InvalidShare: 0.01, BadSignatures: true, FilesPerHour: 4, Junk: true}
	root, tr := dataset(t, "direct", cfg)
	requireSignatureDefects(t, tr.Counters.Invalid)
	asOf, _ := time.Parse(time.DateOnly, tr.AsOf)
	store := sqliteURL(t)
	runBatch(t, "direct", pipelines.BatchConfig{Input: root, AsOf: asOf, WindowDays: 3, Store: store, DeadLetterRoot: t.TempDir()})
	checkAgainstTruth(t, openStore(t, store), tr)
}

// The bundled sample that `go run ./cmd/batch` reads by default still
// matches its truth file.
func TestBundledSample(t *testing.T) {
	root := filepath.Join("..", "sample")
	tr, err := gen.ReadTruth(filepath.Join(root, "truth.json"))
	if err != nil {
		t.Fatal(err)
	}
	asOf, _ := time.Parse(time.DateOnly, tr.AsOf)
	store := sqliteURL(t)
	runBatch(t, "prism", pipelines.BatchConfig{Input: root, AsOf: asOf, Store: store, DeadLetterRoot: t.TempDir()})
	checkAgainstTruth(t, openStore(t, store), tr)
}
