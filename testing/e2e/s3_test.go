package e2e

import (
	"testing"
	"time"

	"github.com/lumenhq/lumen/gen"
	"github.com/lumenhq/lumen/io/s3fs"
	"github.com/lumenhq/lumen/pipelines"
	"github.com/lumenhq/lumen/testing/s3test"
)

// gen writes straight into S3 (one PUT per small file), the batch reads it
// from s3:// and writes its dead letters there, and every number matches
// the truth: on gofakes3 in every go test, and on moto_server in make test.
func TestBatchS3(t *testing.T) {
	for _, store := range []struct {
		name string
		open func(testing.TB) *s3test.Endpoint
	}{{"gofakes3", s3test.Fake}, {"moto", s3test.Moto}} {
		// Each endpoint is opened inside its subtest, so moto's absence
		// skips that subtest only, not what gofakes3 already passed.
		t.Run(store.name, func(t *testing.T) {
			e := store.open(t)
			cfg := gen.Config{Seed: 31, Start: time.Date(2026, 10, 1, 0, 0, 0, 0, time.UTC), Days: 30, WindowDays: 30,
				Events: 120_000, Apps: 20, OfflineShare: 0.05, SkewShare: 0.01, TooOld: 100, InvalidShare: 0.001, FilesPerHour: 4, Junk: true}
			s3fs.Configure(e.Options)
			root := e.Root("lake")
			start := time.Now()
			sum, err := gen.WriteDataset(cfg, root, true)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%s: wrote %d objects in %v", e.Name, sum.Files, time.Since(start).Round(time.Millisecond))
			tr := sum.Truth
			asOf, _ := time.Parse(time.DateOnly, tr.AsOf)
			store := sqliteURL(t)
			e.Counter.Reset()
			start = time.Now()
			runBatch(t, "prism", pipelines.BatchConfig{Input: root, AsOf: asOf, Store: store, S3: e.Options})
			t.Logf("%s: batch over s3:// in %v: %d LIST, %d GET requests (%d of raw objects), %d PUT", e.Name, time.Since(start).Round(time.Millisecond),
				e.Counter.Count("LIST"), e.Counter.Count("GET"), e.Counter.CountPaths("GET", "/raw/"), e.Counter.Count("PUT"))
			// Each raw object is fetched once, whole.
			if got := e.Counter.CountPaths("GET", "/raw/"); got != int(sum.Files) {
				t.Errorf("%d GETs of raw objects for %d objects", got, sum.Files)
			}
			checkAgainstTruth(t, openStore(t, store), tr)
		})
	}
}
