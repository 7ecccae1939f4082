package pipelines

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apache/beam/sdks/v2/go/pkg/beam"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/io/filesystem"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/testing/ptest"

	"github.com/lumenhq/lumen/aggregate"
	"github.com/lumenhq/lumen/event"
	"github.com/lumenhq/lumen/io/avroio"
	"github.com/lumenhq/lumen/io/blob"
	"github.com/lumenhq/lumen/io/raw"
	"github.com/lumenhq/lumen/io/s3fs"
	"github.com/lumenhq/lumen/serving"
	"github.com/lumenhq/lumen/testing/s3test"
)

// The tests here check that a rollup is reused only when a rebuild would
// give the same (DESIGN §3, what may be reused): each runs the batch
// incrementally through some operator's story, then compares every stored
// row with a --full run's.

// reuseDays are the fixture's arrival days; runs are as of the last.
var reuseDays = []time.Time{
	time.Date(2026, 11, 18, 0, 0, 0, 0, time.UTC),
	time.Date(2026, 11, 19, 0, 0, 0, 0, time.UTC),
	time.Date(2026, 11, 20, 0, 0, 0, 0, time.UTC),
}

// putRaw writes events as one Avro file in the raw layout under root, on
// any filesystem.
func putRaw(t *testing.T, root string, k event.Kind, hour time.Time, name string, evs ...event.Event) string {
	t.Helper()
	var buf bytes.Buffer
	w, err := avroio.NewEventWriter(&buf, k)
	if err != nil {
		t.Fatal(err)
	}
	for i := range evs {
		if err := w.AppendEvent(&evs[i]); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	path := raw.HourDir(root, k, hour) + "/" + name
	if err := blob.WriteFile(context.Background(), path, buf.Bytes()); err != nil {
		t.Fatal(err)
	}
	return path
}

// writeReuseFixture writes two files of app loads and one of crashes per
// arrival day, each event a distinct device, and returns their paths.
func writeReuseFixture(t *testing.T, root string) []string {
	var paths []string
	for d, day := range reuseDays {
		hour := day.Add(10 * time.Hour)
		for f := range 2 {
			var evs []event.Event
			for i := range 5 {
				at := hour.Add(time.Duration(10*f+i) * time.Minute).UnixMilli()
				evs = append(evs, event.Event{Kind: event.AppLoad, AppID: fmt.Sprint("app", i%2), AppVersion: fmt.Sprint("1.", f),
					Platform: "ios", DeviceID: []byte(fmt.Sprintf("d%d-%d-%d", d, f, i)), EventTime: at - 1000, ReceivedTime: at})
			}
			paths = append(paths, putRaw(t, root, event.AppLoad, hour, fmt.Sprintf("part-%d.avro", f), evs...))
		}
		at := hour.Add(30 * time.Minute).UnixMilli()
		paths = append(paths, putRaw(t, root, event.Crash, hour, "part-0.avro", event.Event{Kind: event.Crash, AppID: "app0",
			AppVersion: "1.0", Platform: "ios", DeviceID: []byte(fmt.Sprint("c", d)), EventTime: at, ReceivedTime: at, Signature: "npe"}))
	}
	return paths
}

// runReuseBatch runs one batch as of the fixture's last day and returns
// the run's counters summed over kinds.
func runReuseBatch(t *testing.T, cfg BatchConfig) map[string]int64 {
	t.Helper()
	cfg.AsOf, cfg.WindowDays = reuseDays[len(reuseDays)-1], len(reuseDays)
	cfg.DeadLetterRoot = t.TempDir()
	p, s := beam.NewPipelineWithRoot()
	if err := BuildBatch(s, cfg); err != nil {
		t.Fatal(err)
	}
	if err := ptest.Run(p); err != nil {
		t.Fatalf("batch: %v", err)
	}
	st := openTestStore(t, cfg.Store)
	sum := map[string]int64{}
	for _, k := range event.Kinds {
		runs, err := st.Runs(context.Background(), k)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range runs {
			if r.AsOf.Equal(cfg.AsOf) {
				for c, n := range r.Counters {
					if !strings.HasPrefix(c, "run.") {
						sum[c] += n
					}
				}
				break
			}
		}
	}
	return sum
}

func openTestStore(t *testing.T, url string) serving.Store {
	t.Helper()
	st, err := serving.Open(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// storedRows renders every batch row of the fixture's days as text,
// through the Store interface, so that two stores compare exactly.
func storedRows(t *testing.T, url string) map[string]string {
	t.Helper()
	ctx := context.Background()
	st := openTestStore(t, url)
	from, to := reuseDays[0], reuseDays[len(reuseDays)-1]
	rows := map[string]string{}
	for _, k := range event.Kinds {
		apps, versions, err := serving.BatchCatalog(ctx, st, k, from, to)
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range apps {
			for _, v := range append([]string{""}, versions[a]...) {
				for _, g := range []aggregate.Granularity{aggregate.Hour, aggregate.Day} {
					pts, err := st.Counts(ctx, serving.Batch, serving.CountQuery{Kind: k, AppID: a, Version: v, Gran: g,
						From: from, To: to.AddDate(0, 0, 1).Add(-time.Millisecond)})
					if err != nil {
						t.Fatal(err)
					}
					for _, p := range pts {
						rows[fmt.Sprintf("count %s %s/%s %s %s", k, a, v, g, p.Bucket.Format(time.RFC3339))] = fmt.Sprint(p.Count)
					}
				}
				users, err := st.Users(ctx, serving.Batch, serving.UserQuery{Kind: k, AppID: a, Version: v, From: from, To: to})
				if err != nil {
					t.Fatal(err)
				}
				for _, u := range users {
					rows[fmt.Sprintf("users %s %s/%s %s", k, a, v, u.DayTime().Format(time.DateOnly))] = fmt.Sprintf("%d %x", u.Estimate, u.Sketch)
				}
			}
		}
	}
	return rows
}

// sameRows fails t unless the two stores hold the same rows.
func sameRows(t *testing.T, incremental, full string) {
	t.Helper()
	a, b := storedRows(t, incremental), storedRows(t, full)
	var diffs []string
	for k, v := range a {
		if b[k] != v {
			diffs = append(diffs, fmt.Sprintf("%s: %.40s, --full %.40s", k, v, b[k]))
		}
	}
	for k, v := range b {
		if _, ok := a[k]; !ok {
			diffs = append(diffs, fmt.Sprintf("%s: missing, --full %.40s", k, v))
		}
	}
	sort.Strings(diffs)
	if len(diffs) > 0 {
		t.Errorf("the incremental store differs from --full in %d of %d/%d rows:\n%s", len(diffs), len(a), len(b),
			strings.Join(diffs[:min(10, len(diffs))], "\n"))
	}
	if len(b) == 0 {
		t.Error("--full stored no rows")
	}
}

// denyOnce is an S3 transport that answers the first GET of one object
// with 403 AccessDenied, as S3 does while an access policy is being fixed,
// and passes everything else on.
type denyOnce struct {
	base   http.RoundTripper
	suffix string
	mu     sync.Mutex
	denied int
}

func (d *denyOnce) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, d.suffix) {
		d.mu.Lock()
		deny := d.denied == 0
		if deny {
			d.denied++
		}
		d.mu.Unlock()
		if deny {
			body := `<?xml version="1.0" encoding="UTF-8"?>` +
				`<Error><Code>AccessDenied</Code><Message>Access Denied</Message><RequestId>lumen-test</RequestId></Error>`
			return &http.Response{StatusCode: http.StatusForbidden, Status: "403 Forbidden", Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
				Header: http.Header{"Content-Type": {"application/xml"}}, Body: io.NopCloser(strings.NewReader(body)),
				ContentLength: int64(len(body)), Request: r}, nil
		}
	}
	return d.base.RoundTrip(r)
}

// TestRollupAfterReadFailure: an object that S3 refuses once (AccessDenied)
// is an unreadable_file dead letter, and its partition gets no rollup; the
// next, clean run reads that partition from raw again (the others from
// their rollups), and stores exactly what a --full run does. Before, the
// rollup was written without the file's events, and every later run
// reused it.
func TestRollupAfterReadFailure(t *testing.T) {
	e := s3test.Fake(t)
	s3fs.Configure(e.Options)
	root := e.Root("lake")
	paths := writeReuseFixture(t, root)
	denied := paths[3] // the first app_load file of the second day
	deny := &denyOnce{base: e.Counter, suffix: strings.TrimPrefix(denied, "s3://"+e.Bucket)}
	s3fs.SetHTTPClient(&http.Client{Transport: deny})

	now := time.Date(2026, 11, 21, 0, 30, 0, 0, time.UTC)
	inc, full := "sqlite:"+t.TempDir()+"/inc.db", "sqlite:"+t.TempDir()+"/full.db"
	cfg := BatchConfig{Input: root, S3: e.Options, Now: now, Store: inc}

	first := runReuseBatch(t, cfg)
	if deny.denied != 1 {
		t.Fatalf("%s was never refused", denied)
	}
	if first["deadletter.unreadable_file"] != 1 || first["read.rollups_skipped"] != 1 {
		t.Errorf("the run with a refused file: unreadable_file %d, rollups_skipped %d; want 1 and 1",
			first["deadletter.unreadable_file"], first["read.rollups_skipped"])
	}
	if want := first["read.partitions_from_raw"] - 1; first["read.rollups_written"] != want {
		t.Errorf("the run with a refused file wrote %d rollups, want %d (all but the partition with the failure)",
			first["read.rollups_written"], want)
	}

	second := runReuseBatch(t, cfg)
	if second["read.partitions_from_raw"] != 1 || second["read.partitions_from_rollups"] != first["read.partitions_from_raw"]-1 {
		t.Errorf("the clean re-run read %d partitions from raw and %d from rollups; want 1 and %d",
			second["read.partitions_from_raw"], second["read.partitions_from_rollups"], first["read.partitions_from_raw"]-1)
	}
	if second["deadletter.unreadable_file"] != 0 || second["read.rollups_written"] != 1 {
		t.Errorf("the clean re-run: unreadable_file %d, rollups_written %d; want 0 and 1",
			second["deadletter.unreadable_file"], second["read.rollups_written"])
	}

	cfg.Full, cfg.Store = true, full
	runReuseBatch(t, cfg)
	sameRows(t, inc, full)
}

// TestRollupAcrossTheClock: an event dead-lettered as future_time tonight
// is not one once the run's clock has passed it, so the rollup that
// dead-lettered it is not reused then; the incremental run stores exactly
// what a --full run at the same clock does.
func TestRollupAcrossTheClock(t *testing.T) {
	root := t.TempDir()
	writeReuseFixture(t, root)
	tonight := time.Date(2026, 11, 21, 0, 30, 0, 0, time.UTC)
	later := tonight.Add(3 * time.Hour)
	// A collector clock 2 h ahead, in a file of the 20th: beyond the bound
	// tonight, within it later (then an event after the window).
	ahead := tonight.Add(2 * time.Hour).UnixMilli()
	putRaw(t, root, event.AppLoad, reuseDays[2].Add(11*time.Hour), "part-0.avro", event.Event{Kind: event.AppLoad, AppID: "app0",
		AppVersion: "1.0", Platform: "ios", DeviceID: []byte("ahead"), EventTime: ahead - 60_000, ReceivedTime: ahead})

	inc, full := "sqlite:"+t.TempDir()+"/inc.db", "sqlite:"+t.TempDir()+"/full.db"
	first := runReuseBatch(t, BatchConfig{Input: root, Now: tonight, Store: inc})
	if first["deadletter.future_time"] != 1 {
		t.Errorf("tonight: %d future_time dead letters, want 1", first["deadletter.future_time"])
	}
	second := runReuseBatch(t, BatchConfig{Input: root, Now: later, Store: inc})
	if second["deadletter.future_time"] != 0 || second["read.rollups_rejected"] != 1 {
		t.Errorf("later: %d future_time dead letters and %d rollups rejected, want 0 and 1",
			second["deadletter.future_time"], second["read.rollups_rejected"])
	}
	runReuseBatch(t, BatchConfig{Input: root, Now: later, Store: full, Full: true})
	sameRows(t, inc, full)
}

func init() {
	filesystem.Register("nover", func(context.Context) filesystem.Interface { return noVersionsFS{} })
}

// noVersionsFS is a Beam filesystem, nover:///local/path, over local files
// whose listing gives sizes and no versions, as gs:// and any filesystem
// without object versions or ETags do through io/blob.
type noVersionsFS struct{}

func noVersionsPath(p string) string { return strings.TrimPrefix(p, "nover://") }

func (noVersionsFS) Close() error { return nil }

func (noVersionsFS) List(_ context.Context, glob string) ([]string, error) {
	names, err := filepath.Glob(noVersionsPath(glob))
	for i := range names {
		names[i] = "nover://" + names[i]
	}
	return names, err
}

func (noVersionsFS) OpenRead(_ context.Context, name string) (io.ReadCloser, error) {
	return os.Open(noVersionsPath(name))
}

func (noVersionsFS) OpenWrite(_ context.Context, name string) (io.WriteCloser, error) {
	if err := os.MkdirAll(filepath.Dir(noVersionsPath(name)), 0o755); err != nil {
		return nil, err
	}
	return os.Create(noVersionsPath(name))
}

func (noVersionsFS) Size(_ context.Context, name string) (int64, error) {
	info, err := os.Stat(noVersionsPath(name))
	if err != nil {
		return 0, err
	}
	return info.Size(), nil
}

func (noVersionsFS) Remove(_ context.Context, name string) error {
	return os.Remove(noVersionsPath(name))
}

// ListPrefix lists recursively, with sizes and no versions.
func (noVersionsFS) ListPrefix(ctx context.Context, prefix string) ([]blob.FileInfo, error) {
	infos, err := blob.ListPrefix(ctx, noVersionsPath(prefix))
	for i := range infos {
		infos[i] = blob.FileInfo{Path: "nover://" + infos[i].Path, Size: infos[i].Size}
	}
	return infos, err
}

// TestNoRollupsWithoutVersions: where the listing gives no object
// versions, a rollup cannot prove that its files were not replaced, so
// none is reused or written, and the run says so. A file replaced by
// another of the same size is then counted as it now is: the incremental
// store equals --full. Before, the size-only manifest matched, and the
// old rollup was reused.
func TestNoRollupsWithoutVersions(t *testing.T) {
	dir := t.TempDir()
	root := "nover://" + dir
	paths := writeReuseFixture(t, root)
	now := time.Date(2026, 11, 21, 0, 30, 0, 0, time.UTC)
	inc, full := "sqlite:"+t.TempDir()+"/inc.db", "sqlite:"+t.TempDir()+"/full.db"

	first := runReuseBatch(t, BatchConfig{Input: root, Now: now, Store: inc})
	parts := first["read.partitions_from_raw"]
	if first["read.partitions_unversioned"] != parts || first["read.rollups_written"] != 0 {
		t.Errorf("first run: %d of %d partitions unversioned, %d rollups written; want all and 0",
			first["read.partitions_unversioned"], parts, first["read.rollups_written"])
	}
	// The archiver re-wrote a file: the same size, other devices. (The
	// same rows, other sketches: this test is not about deleting rows.)
	p := noVersionsPath(paths[0])
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, bytes.ReplaceAll(b, []byte("d0-0-"), []byte("x0-0-")), 0o644); err != nil {
		t.Fatal(err)
	}
	second := runReuseBatch(t, BatchConfig{Input: root, Now: now, Store: inc})
	if second["read.partitions_from_rollups"] != 0 || second["read.partitions_from_raw"] != parts {
		t.Errorf("second run: %d partitions from rollups, %d from raw; want 0 and %d",
			second["read.partitions_from_rollups"], second["read.partitions_from_raw"], parts)
	}
	runReuseBatch(t, BatchConfig{Input: root, Now: now, Store: full, Full: true})
	sameRows(t, inc, full)
}

// TestProgressPerRun: two runs in one process, as the days of a backfill
// are, each count their own read, so each day's rate is its own.
func TestProgressPerRun(t *testing.T) {
	root := t.TempDir()
	paths := writeReuseFixture(t, root)
	store := "sqlite:" + t.TempDir() + "/p.db"
	started := time.Date(2026, 11, 21, 0, 30, 0, 0, time.UTC)
	var stamps []int64
	for i := range 2 {
		cfg := BatchConfig{Input: root, Store: store, NoRollups: true, Started: started.Add(time.Duration(i) * time.Minute)}
		runReuseBatch(t, cfg)
		cfg.AsOf = reuseDays[len(reuseDays)-1]
		stamps = append(stamps, cfg.Stamp())
	}
	if stamps[0] == stamps[1] {
		t.Fatalf("two runs share the stamp %d", stamps[0])
	}
	for i, st := range stamps {
		pr := Progress(st)
		if pr.FilesListed != int64(len(paths)) || pr.FilesRead != int64(len(paths)) || pr.RecordsRead != int64(len(paths)/3*11) {
			t.Errorf("run %d: progress %+v, want %d files listed and read and %d records", i, pr, len(paths), len(paths)/3*11)
		}
	}
}
