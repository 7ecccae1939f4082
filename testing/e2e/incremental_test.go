package e2e

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/lumenhq/lumen/event"
	"github.com/lumenhq/lumen/gen"
	"github.com/lumenhq/lumen/io/blob"
	"github.com/lumenhq/lumen/io/raw"
	"github.com/lumenhq/lumen/io/rollup"
	"github.com/lumenhq/lumen/io/s3fs"
	"github.com/lumenhq/lumen/io/winstate"
	"github.com/lumenhq/lumen/pipelines"
	"github.com/lumenhq/lumen/serving"
	"github.com/lumenhq/lumen/testing/s3test"
	"github.com/lumenhq/lumen/testing/servicetest"
)

// incrementalConfig is 31 arrival days with late, too-old, clock-skewed and
// invalid events: the days up to D, then day D+1.
var incrementalConfig = gen.Config{Seed: 909, Start: time.Date(2026, 10, 1, 0, 0, 0, 0, time.UTC), Days: 31, WindowDays: 30,
	Events: 120_000, Apps: 12, OfflineShare: 0.08, SkewShare: 0.02, TooOld: 300, InvalidShare: 0.001, FilesPerHour: 2, Junk: true}

// TestIncrementalBatch: the incremental 30-day batch stores exactly what a
// full recompute does, reading raw only what is new or changed.
//
//  1. run as of D over days ..D (every partition from raw; rollups written);
//  2. add day D+1's raw files, run as of D+1: only D+1's partitions are read
//     from raw (S3: no GET of an older raw object), and every count, sketch
//     byte and data counter equals a --full run of D+1 and the truth;
//  3. change a raw file of an old partition and add one to another: those
//     two partitions are read from raw, and the result equals --full;
//  4. delete, truncate and garble three rollups: their partitions fall back
//     to raw (two rejected with a warning), and the result equals --full.
func TestIncrementalBatch(t *testing.T) {
	if testing.Short() {
		t.Skip("-short")
	}
	src, tr := dataset(t, "incremental", incrementalConfig)
	cases := []struct {
		name  string
		input func(t *testing.T) (root string, c *s3test.Counter)
		store func(t *testing.T) (incremental, full string)
	}{
		{"local", func(t *testing.T) (string, *s3test.Counter) { return t.TempDir(), nil }, sqliteStores},
		{"gofakes3", s3Input(s3test.Fake), sqliteStores},
		{"moto", s3Input(s3test.Moto), sqliteStores},
		{"cassandra", func(t *testing.T) (string, *s3test.Counter) { return t.TempDir(), nil }, cassandraStores},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			root, counter := c.input(t)
			inc, full := c.store(t)
			incrementalScenario(t, src, root, counter, inc, full, tr)
		})
	}
}

func sqliteStores(t *testing.T) (string, string) { return sqliteURL(t), sqliteURL(t) }

func cassandraStores(t *testing.T) (string, string) {
	addr := servicetest.Addr(t, "LUMEN_TEST_CASSANDRA")
	servicetest.Use(t, "cassandra")
	ks := fmt.Sprintf("lumen_inc_%d_%d", os.Getpid(), time.Now().UnixNano()%1e6)
	url := func(suffix string) string {
		return fmt.Sprintf("cassandra://%s/%s_%s?consistency=ONE&adaptive=true&rate=50000", addr, ks, suffix)
	}
	return url("inc"), url("full")
}

func s3Input(open func(testing.TB) *s3test.Endpoint) func(t *testing.T) (string, *s3test.Counter) {
	return func(t *testing.T) (string, *s3test.Counter) {
		e := open(t)
		s3fs.Configure(e.Options)
		return e.Root("lake"), e.Counter
	}
}

func incrementalScenario(t *testing.T, src, root string, counter *s3test.Counter, inc, full string, tr *gen.Truth) {
	ctx := context.Background()
	next, _ := time.Parse(time.DateOnly, tr.AsOf) // D+1
	d := next.AddDate(0, 0, -1)
	nextDay := "dt=" + next.Format(time.DateOnly)
	copyRaw(t, src, root, func(rel string) bool { return !strings.Contains(rel, "/"+nextDay+"/") })
	run := func(store string, asOf time.Time, isFull bool) map[event.Kind]map[string]int64 {
		t.Helper()
		runBatch(t, "prism", pipelines.BatchConfig{Input: root, AsOf: asOf, Store: store, DeadLetterRoot: t.TempDir(), Full: isFull})
		return runCounters(t, openStore(t, store), asOf)
	}
	sum := func(c map[event.Kind]map[string]int64, name string) (n int64) {
		for _, m := range c {
			n += m[name]
		}
		return n
	}

	// 1. As of D: everything from raw, rollups written.
	first := run(inc, d, false)
	if sum(first, "read.partitions_from_rollups") != 0 || sum(first, "read.rollups_written") != sum(first, "read.partitions_from_raw") {
		t.Fatalf("first run: %v", readCounters(first))
	}

	// 2. Day D+1 arrives.
	newFiles := copyRaw(t, src, root, func(rel string) bool { return strings.Contains(rel, "/"+nextDay+"/") })
	if counter != nil {
		counter.Reset()
	}
	second := run(inc, next, false)
	newParts := partitionsOf(t, newFiles...)
	t.Logf("incremental run as of D+1: %v", readCounters(second))
	if got := sum(second, "read.partitions_from_raw"); got != int64(newParts) || sum(second, "state.used") != 3 {
		t.Errorf("incremental run read %d partitions from raw, want D+1's %d", got, newParts)
	}
	if got := sum(second, "read.raw_files"); got != int64(len(newFiles)) {
		t.Errorf("incremental run read %d raw files, want D+1's %d", got, len(newFiles))
	}
	if counter != nil {
		rawGets, newGets := counter.CountPaths("GET", "/raw/"), counter.CountPaths("GET", "/"+nextDay+"/")
		t.Logf("S3 requests of the incremental run: %d GETs of raw objects (%d of them of D+1), %d LISTs", rawGets, newGets, counter.Count("LIST"))
		if rawGets != newGets || newGets < len(newFiles) {
			t.Errorf("the incremental run opened %d raw objects, %d of them of D+1 (%d files): it must open only D+1's", rawGets, newGets, len(newFiles))
		}
		// One LIST per kind and day of the window of raw, and of rollup/
		// only for the day it reads (D+1), and one per kind of the as_of
		// day's seals; and the window state's: to find it (the store's
		// states, its day) and the runs' marks before the run; after it, to
		// retire the state it replaces (the states, the two days, the old
		// state's files) and the marks.
		if lists, want := counter.Count("LIST"), 30*len(event.Kinds)+len(event.Kinds)+len(event.Kinds)+3+5; lists != want {
			t.Errorf("the incremental run sent %d LISTs, want %d", lists, want)
		}
	}
	checkAgainstTruth(t, openStore(t, inc), tr)
	equalsFull(t, root, inc, full, next, second)

	// 3. A raw file of an old partition changes, and another gets a new one.
	changed, added := listRaw(t, root, d.AddDate(0, 0, -10))[0], listRaw(t, root, d.AddDate(0, 0, -12))[0]
	rewriteShorter(t, changed)
	copyFile(t, added, strings.TrimSuffix(added, ".avro")+"-late.avro")
	third := run(inc, next, false)
	if got := sum(third, "read.partitions_from_raw"); got != 2 || sum(third, "state.used") != 3 {
		t.Errorf("after changing one partition and adding to another, %d partitions were read from raw, want 2, with the state (%v)", got, third[event.AppLoad])
	}
	equalsFull(t, root, inc, full, next, third)
	// The changed partition's new rollup replaced its old one.
	part, err := raw.PartitionOf(changed, defaultGrain())
	if err != nil {
		t.Fatal(err)
	}
	if have, err := rollup.List(ctx, root, part.Day, part.Day, 1); err != nil || len(have[part]) != 1 {
		t.Errorf("partition %s has rollups %v (%v), want just its new one", part, have[part], err)
	}

	// 4. The window state is gone, and rollups go missing, get cut short,
	// get garbled: one of each of three days, so that it holds at any
	// grain.
	states, err := winstate.Find(ctx, winstate.Root(root, inc), d.AddDate(0, 0, -40), next)
	if err != nil || len(states) == 0 {
		t.Fatalf("no window state after the incremental runs (%v)", err)
	}
	for _, p := range states {
		if err := winstate.Remove(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	var paths []string
	for ago := 5; ago <= 7; ago++ {
		paths = append(paths, firstRollup(t, root, d.AddDate(0, 0, -ago)))
	}
	if err := blob.Remove(ctx, paths[0]); err != nil {
		t.Fatal(err)
	}
	damage(t, paths[1], func(b []byte) []byte { return b[:len(b)/2] })
	damage(t, paths[2], func(b []byte) []byte { b[len(b)/2] ^= 0x5a; b[len(b)/2+1] ^= 0xa5; return b })
	fourth := run(inc, next, false)
	if got, rej := sum(fourth, "read.partitions_from_raw"), sum(fourth, "read.rollups_rejected"); got != 3 || rej != 2 {
		t.Errorf("after deleting, truncating and garbling three rollups: %d partitions from raw (want 3), %d rejected (want 2)", got, rej)
	}
	if sum(fourth, "state.rebuilt") != 3 {
		t.Errorf("without its state, the run did not rebuild one: %v", fourth[event.AppLoad])
	}
	equalsFull(t, root, inc, full, next, fourth)
}

// equalsFull runs --full as of asOf into full and requires it to store
// exactly what the incremental store holds for the window, and to record
// the same data counters.
func equalsFull(t *testing.T, root, inc, full string, asOf time.Time, incCounters map[event.Kind]map[string]int64) {
	t.Helper()
	runBatch(t, "prism", pipelines.BatchConfig{Input: root, AsOf: asOf, Store: full, DeadLetterRoot: t.TempDir(), Full: true})
	from := asOf.AddDate(0, 0, -29)
	a, b := snapshot(t, openStore(t, inc), from, asOf), snapshot(t, openStore(t, full), from, asOf)
	if len(a) == 0 {
		t.Fatal("no rows")
	}
	diffSnapshots(t, "incremental vs --full", a, b)
	fullCounters := runCounters(t, openStore(t, full), asOf)
	for _, k := range event.Kinds {
		for name, n := range fullCounters[k] {
			if isDataCounter(name) && incCounters[k][name] != n {
				t.Errorf("%s counter %s: incremental %d, --full %d", k, name, incCounters[k][name], n)
			}
		}
		for name := range incCounters[k] {
			if _, ok := fullCounters[k][name]; isDataCounter(name) && !ok {
				t.Errorf("%s counter %s only in the incremental run", k, name)
			}
		}
	}
	t.Logf("incremental = --full: %d rows (counts and sketch bytes) of %s..%s, data counters equal", len(a),
		from.Format(time.DateOnly), asOf.Format(time.DateOnly))
}

// isDataCounter: counters about the data, not about how the run read it,
// what it wrote, or its window state (read.*, run.*, rows.*, state.*).
func isDataCounter(name string) bool {
	for _, p := range []string{"read.", "run.", "rows.", "state."} {
		if strings.HasPrefix(name, p) {
			return false
		}
	}
	return true
}

func runCounters(t *testing.T, st serving.Store, asOf time.Time) map[event.Kind]map[string]int64 {
	t.Helper()
	out := map[event.Kind]map[string]int64{}
	for _, k := range event.Kinds {
		runs, err := st.Runs(context.Background(), k)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range runs {
			if r.AsOf.Equal(asOf) && r.Status == serving.RunSucceeded {
				out[k] = r.Counters
			}
		}
		if out[k] == nil {
			t.Fatalf("no succeeded run of %s as of %s", k, asOf.Format(time.DateOnly))
		}
	}
	return out
}

func readCounters(c map[event.Kind]map[string]int64) map[string]int64 {
	out := map[string]int64{}
	for _, m := range c {
		for k, v := range m {
			if strings.HasPrefix(k, "read.") {
				out[strings.TrimPrefix(k, "read.")] += v
			}
		}
	}
	return out
}

// copyRaw copies src's raw files and seals that keep selects (by path
// relative to src) to root (a directory or s3://), and returns the new raw
// files' paths.
func copyRaw(t *testing.T, src, root string, keep func(rel string) bool) []string {
	t.Helper()
	var out []string
	// The archiver's seals of the same arrival days come along
	// (seal/<kind>/dt=…/hr=HH): the days copied are complete.
	for _, dir := range []string{"raw", "seal"} {
		err := filepath.WalkDir(filepath.Join(src, dir), func(p string, d os.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			rel, _ := filepath.Rel(src, p)
			if !keep(filepath.ToSlash(rel)) {
				return nil
			}
			dst := strings.TrimSuffix(root, "/") + "/" + filepath.ToSlash(rel)
			copyFile(t, p, dst)
			if dir == "raw" {
				out = append(out, dst)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return out
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	ctx := context.Background()
	r, err := blob.OpenRange(ctx, from, 0, -1)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if !strings.Contains(to, "://") {
		os.MkdirAll(filepath.Dir(to), 0o755)
	}
	w, err := blob.Create(ctx, to, blob.NoSync())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(w, r); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
}

// damage rewrites a file through fn.
func damage(t *testing.T, path string, fn func([]byte) []byte) {
	t.Helper()
	ctx := context.Background()
	r, err := blob.OpenRange(ctx, path, 0, -1)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(r)
	r.Close()
	if err != nil {
		t.Fatal(err)
	}
	w, err := blob.Create(ctx, path, blob.NoSync())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(fn(b)); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
}

// rewriteShorter drops the second half of a raw file's bytes: its later
// blocks are lost (a truncated block, a dead letter), as if the collector
// had rewritten it.
func rewriteShorter(t *testing.T, path string) {
	t.Helper()
	time.Sleep(10 * time.Millisecond) // a new modification time on coarse clocks
	damage(t, path, func(b []byte) []byte { return b[:len(b)*2/3] })
}

// listRaw lists one arrival day's raw files under root, sorted.
func listRaw(t *testing.T, root string, day time.Time) []string {
	t.Helper()
	files, err := raw.ListWindow(context.Background(), root, day, day, raw.PlanOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, f := range files {
		out = append(out, f.Path)
	}
	sort.Strings(out)
	if len(out) < 2 {
		t.Fatalf("%d raw files on %s", len(out), day.Format(time.DateOnly))
	}
	return out
}

// defaultGrain is the rollup grain a run uses when its config names none.
func defaultGrain() raw.Grain {
	var c pipelines.BatchConfig
	c.EnsureDefaults()
	return c.Grain
}

// partitionsOf counts the arrival partitions (at the default grain) of raw
// paths.
func partitionsOf(t *testing.T, paths ...string) int {
	t.Helper()
	seen := map[raw.Partition]bool{}
	for _, p := range paths {
		part, err := raw.PartitionOf(p, defaultGrain())
		if err != nil {
			t.Fatal(err)
		}
		seen[part] = true
	}
	return len(seen)
}

// A backfill (--from/--to) over seven days after a run that wrote every
// partition's rollup reads no raw file at all, and its last run stores
// what a --full run of that day does. (Backfills run oldest first, as
// cmd/batch does: a run only overwrites the rows its input has.)
func TestIncrementalBackfill(t *testing.T) {
	if testing.Short() {
		t.Skip("-short")
	}
	src, tr := dataset(t, "incremental", incrementalConfig)
	root := t.TempDir()
	copyRaw(t, src, root, func(string) bool { return true })
	last, _ := time.Parse(time.DateOnly, tr.AsOf)
	d := last.AddDate(0, 0, -1)
	backfilled, full := sqliteURL(t), sqliteURL(t)
	root = strings.TrimSuffix(root, "/")
	// The run as of D reads days D-29..D and writes their rollups.
	runBatch(t, "prism", pipelines.BatchConfig{Input: root, AsOf: d, Store: sqliteURL(t), DeadLetterRoot: t.TempDir()})
	for day := d.AddDate(0, 0, -6); !day.After(d); day = day.AddDate(0, 0, 1) {
		runBatch(t, "prism", pipelines.BatchConfig{Input: root, AsOf: day, Store: backfilled, DeadLetterRoot: t.TempDir()})
		c := readCounters(runCounters(t, openStore(t, backfilled), day))
		if c["partitions_from_raw"] != 0 || c["raw_files"] != 0 || c["partitions_from_rollups"] == 0 {
			t.Errorf("backfill as of %s: %v, want every partition from its rollup", day.Format(time.DateOnly), c)
		}
	}
	runBatch(t, "prism", pipelines.BatchConfig{Input: root, AsOf: d, Store: full, DeadLetterRoot: t.TempDir(), Full: true})
	from := d.AddDate(0, 0, -29)
	a, b := snapshot(t, openStore(t, backfilled), from, d), snapshot(t, openStore(t, full), from, d)
	diffSnapshots(t, "backfill from rollups vs --full", a, b)
	t.Logf("backfill of 7 days from rollups: %d rows of the last window equal --full", len(a))
}

// Changing --rollup_grain leaves no rollups of the old grain behind: the
// first run at the new grain reads every partition from raw (there is no
// rollup of its grain yet), writes the new rollups, and removes the old
// ones; the next run reads only rollups of the new grain.
func TestRollupGrainChange(t *testing.T) {
	if testing.Short() {
		t.Skip("-short")
	}
	ctx := context.Background()
	src, tr := dataset(t, "incremental", incrementalConfig)
	root := t.TempDir()
	copyRaw(t, src, root, func(string) bool { return true })
	root = strings.TrimSuffix(root, "/")
	last, _ := time.Parse(time.DateOnly, tr.AsOf)
	first := last.AddDate(0, 0, -29)
	grains := func() (hours, days int) {
		t.Helper()
		have, err := rollup.List(ctx, root, first, last, 4)
		if err != nil {
			t.Fatal(err)
		}
		for p, paths := range have {
			if p.Hour < 0 {
				days += len(paths)
			} else {
				hours += len(paths)
			}
		}
		return hours, days
	}
	for _, step := range []struct {
		grain             raw.Grain
		fromRaw           bool
		wantHour, wantDay bool
	}{
		{raw.GrainHour, true, true, false},
		{raw.GrainDay, true, false, true},
		{raw.GrainDay, false, false, true},
		{raw.GrainHour, true, true, false},
	} {
		store := sqliteURL(t)
		runBatch(t, "prism", pipelines.BatchConfig{Input: root, AsOf: last, Store: store, DeadLetterRoot: t.TempDir(), Grain: step.grain})
		c := readCounters(runCounters(t, openStore(t, store), last))
		if fromRaw := c["partitions_from_rollups"] == 0; fromRaw != step.fromRaw {
			t.Errorf("%v grain: %v, want every partition from raw: %v", step.grain, c, step.fromRaw)
		}
		hours, days := grains()
		if (hours > 0) != step.wantHour || (days > 0) != step.wantDay {
			t.Errorf("after a run at the %v grain: %d hourly and %d daily rollups", step.grain, hours, days)
		}
		checkAgainstTruth(t, openStore(t, store), tr)
		t.Logf("%v grain: %d hourly and %d daily rollups; %v", step.grain, hours, days, c)
	}
}
