package e2e

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lumenhq/lumen/event"
	"github.com/lumenhq/lumen/io/avroio"
	"github.com/lumenhq/lumen/io/winstate"
	"github.com/lumenhq/lumen/pipelines"
	"github.com/lumenhq/lumen/serving"
	"github.com/lumenhq/lumen/testing/servicetest"
)

// The batch layer in operation (issue 18): what an operator does to it,
// run against both stores. Each test works on its own copy of the bundled
// sample (as of 2026-11-24, arrival days 11-22..11-24).

var sampleAsOf = time.Date(2026, 11, 24, 0, 0, 0, 0, time.UTC)

// eachStore runs fn on a fresh SQLite store and on a fresh Cassandra
// keyspace (skipped, loudly, without LUMEN_TEST_CASSANDRA).
func eachStore(t *testing.T, fn func(t *testing.T, fresh func() string)) {
	t.Run("sqlite", func(t *testing.T) { fn(t, func() string { return sqliteURL(t) }) })
	t.Run("cassandra", func(t *testing.T) {
		addr := servicetest.Addr(t, "LUMEN_TEST_CASSANDRA")
		servicetest.Use(t, "cassandra")
		n := 0
		fn(t, func() string {
			n++
			return fmt.Sprintf("cassandra://%s/lumen_ops_%d_%d_%d?consistency=ONE&rate=50000", addr, os.Getpid(), time.Now().UnixNano()%1e6, n)
		})
	})
}

// copySample copies the bundled sample's raw layout and seals into a
// temporary root.
func copySample(t testing.TB) string {
	t.Helper()
	src := filepath.Join("..", "sample")
	dst := t.TempDir()
	for _, tree := range []string{"raw", "seal"} {
		copyTree(t, src, dst, tree)
	}
	return dst
}

func copyTree(t testing.TB, src, dst, tree string) {
	t.Helper()
	err := filepath.WalkDir(filepath.Join(src, tree), func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// opsRun runs one batch as of asOf, started at started (the rows' stamp).
func opsRun(t *testing.T, root, store string, asOf, started time.Time) {
	t.Helper()
	runBatch(t, "prism", pipelines.BatchConfig{Input: root, AsOf: asOf, Store: store, DeadLetterRoot: t.TempDir(),
		Started: started})
}

// nightOf is when a nightly run as of day starts: 00:30 the day after.
func nightOf(day time.Time) time.Time { return day.Add(24*time.Hour + 30*time.Minute) }

// Re-running an older day after a newer one leaves the newer run's rows
// alone: before monotone writes, as of 11-23 after 11-24 changed 358 rows
// of the days before 11-24.
func TestBatchOlderRerunKeepsNewerRows(t *testing.T) {
	eachStore(t, func(t *testing.T, fresh func() string) {
		root, store := copySample(t), fresh()
		first, last := sampleAsOf.AddDate(0, 0, -29), sampleAsOf.AddDate(0, 0, -1)
		opsRun(t, root, store, sampleAsOf, nightOf(sampleAsOf))
		st := openStore(t, store)
		before := snapshot(t, st, first, last)
		if len(before) == 0 {
			t.Fatal("no rows before 11-24 after the run as of 11-24")
		}
		opsRun(t, root, store, sampleAsOf.AddDate(0, 0, -1), nightOf(sampleAsOf).Add(2*time.Hour))
		diffSnapshots(t, "days before 11-24 after re-running 11-23", before, snapshot(t, st, first, last))
	})
}

// A bucket whose input vanished is deleted by the next run: the store then
// equals a fresh run on the same input (before: 414 stale rows).
func TestBatchRemovedInputLeavesNoRows(t *testing.T) {
	eachStore(t, func(t *testing.T, fresh func() string) {
		root, store := copySample(t), fresh()
		opsRun(t, root, store, sampleAsOf, nightOf(sampleAsOf))
		if err := os.RemoveAll(filepath.Join(root, "raw", "crash", "dt=2026-11-24")); err != nil {
			t.Fatal(err)
		}
		opsRun(t, root, store, sampleAsOf, nightOf(sampleAsOf).Add(time.Hour))
		clean := fresh()
		opsRun(t, root, clean, sampleAsOf, nightOf(sampleAsOf).Add(2*time.Hour))
		first := sampleAsOf.AddDate(0, 0, -29)
		got, want := snapshot(t, openStore(t, store), first, sampleAsOf), snapshot(t, openStore(t, clean), first, sampleAsOf)
		if len(want) == 0 {
			t.Fatal("the fresh run wrote no rows")
		}
		diffSnapshots(t, "re-run after removing crash/dt=2026-11-24 vs a fresh run", got, want)
		runs, err := openStore(t, store).Runs(context.Background(), event.Crash)
		if err != nil || len(runs) == 0 || (runs[0].Counters["run.rows_deleted"] <= 0 && !strings.HasPrefix(store, "cassandra")) {
			t.Errorf("crash runs %+v, %v: want run.rows_deleted > 0", runs, err)
		}
	})
}

// The commands as cron runs them: the default as_of while today's folder
// is being written, an as_of of today, and a failed re-run of the newest
// day, which must not lower the watermark.
func TestBatchCommandInOperation(t *testing.T) {
	bin := command(t, "batch")
	eachStore(t, func(t *testing.T, fresh func() string) {
		root, store := copySample(t), fresh()
		today := time.Now().UTC().Truncate(24 * time.Hour)
		// One file lands in today's folder, as the archiver does at 00:30.
		src, err := filepath.Glob(filepath.Join(root, "raw", "app_load", "dt=2026-11-24", "hr=*", "*.avro"))
		if err != nil || len(src) == 0 {
			t.Fatalf("no sample file to copy: %v", err)
		}
		b, err := os.ReadFile(src[0])
		if err != nil {
			t.Fatal(err)
		}
		todayDir := filepath.Join(root, "raw", "app_load", "dt="+today.Format(time.DateOnly), "hr=00")
		if err := os.MkdirAll(todayDir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(todayDir, "part-0.avro"), b, 0o644); err != nil {
			t.Fatal(err)
		}
		run := func(args ...string) (string, error) {
			p := startProcess(t, "batch", baseEnv(t), bin, append([]string{"--input=" + root, "--store=" + store,
				"--deadletter_root=" + t.TempDir()}, args...)...)
			err := p.wait(t, 10*time.Minute)
			return p.output(), err
		}
		watermark := func() time.Time {
			t.Helper()
			st := openStore(t, store)
			runs, err := st.Runs(context.Background(), event.AppLoad)
			if err != nil {
				t.Fatal(err)
			}
			return serving.BatchCompleteOf(runs).Day
		}

		out, err := run()
		if err != nil || !strings.Contains(out, "as_of 2026-11-24") {
			t.Fatalf("batch with no --as_of while %s exists: %v; want a run as of 2026-11-24:\n%s", todayDir, err, tail(out, 30))
		}
		if w := watermark(); !w.Equal(sampleAsOf) {
			t.Fatalf("watermark %v after the default run, want 2026-11-24", w)
		}
		out, err = run("--as_of=" + today.Format(time.DateOnly))
		if err == nil || !strings.Contains(out, "--allow_partial_day") {
			t.Errorf("batch --as_of=today: %v; want a refusal naming --allow_partial_day:\n%s", err, tail(out, 10))
		}
		out, err = run("--as_of="+today.Format(time.DateOnly), "--allow_partial_day")
		if err != nil || !strings.Contains(out, "partial") {
			t.Errorf("batch --as_of=today --allow_partial_day: %v; want a partial run:\n%s", err, tail(out, 20))
		}
		if w := watermark(); !w.Equal(sampleAsOf) {
			t.Errorf("watermark %v after a partial run as of today, want it to stay 2026-11-24", w)
		}
		// A failed re-run of the newest day: its dead letters cannot be
		// written (a file where their directory goes; --full, so that they
		// are read from raw, not from the rollups, and written again).
		blocker := filepath.Join(t.TempDir(), "not-a-dir")
		if err := os.WriteFile(blocker, nil, 0o644); err != nil {
			t.Fatal(err)
		}
		out, err = run("--as_of=2026-11-24", "--full", "--deadletter_root="+blocker)
		if err == nil {
			t.Fatalf("batch with an unwritable --deadletter_root succeeded:\n%s", tail(out, 20))
		}
		st := openStore(t, store)
		runs, _ := st.Runs(context.Background(), event.AppLoad)
		var rerun serving.BatchRun
		for _, r := range runs {
			if r.AsOf.Equal(sampleAsOf) {
				rerun = r
			}
		}
		if rerun.Status != serving.RunFailed || rerun.Note == "" {
			t.Errorf("the failed re-run recorded %q (%q), want failed with its error", rerun.Status, rerun.Note)
		}
		if w := watermark(); !w.Equal(sampleAsOf) {
			t.Errorf("watermark %v after a failed re-run of 2026-11-24, want it to stay", w)
		}
	})
}

// A kind with no input for as_of (the archiver was down) records
// "incomplete" with the hours it misses, writes its rows, and does not
// move the watermark; --allow_incomplete is the override.
func TestBatchMissingInputIsIncomplete(t *testing.T) {
	eachStore(t, func(t *testing.T, fresh func() string) {
		root, store := copySample(t), fresh()
		opsRun(t, root, store, sampleAsOf.AddDate(0, 0, -1), nightOf(sampleAsOf.AddDate(0, 0, -1)))
		for _, tree := range []string{"raw", "seal"} {
			if err := os.RemoveAll(filepath.Join(root, tree, "handled_exception", "dt=2026-11-24")); err != nil {
				t.Fatal(err)
			}
		}
		opsRun(t, root, store, sampleAsOf, nightOf(sampleAsOf))
		st := openStore(t, store)
		check := func(k event.Kind, status serving.RunStatus, watermark time.Time) {
			t.Helper()
			runs, err := st.Runs(context.Background(), k)
			if err != nil || len(runs) == 0 {
				t.Fatalf("%s runs: %v, %v", k, runs, err)
			}
			if runs[0].Status != status || !runs[0].AsOf.Equal(sampleAsOf) {
				t.Errorf("%s: newest run %s %s (%q), want %s as of 2026-11-24", k, runs[0].AsOf.Format(time.DateOnly), runs[0].Status, runs[0].Note, status)
			}
			if status == serving.RunIncomplete && !strings.Contains(runs[0].Note, "00-23") {
				t.Errorf("%s: note %q does not name the unsealed hours 00-23", k, runs[0].Note)
			}
			if w := serving.BatchCompleteOf(runs).Day; !w.Equal(watermark) {
				t.Errorf("%s: watermark %v, want %v", k, w.Format(time.DateOnly), watermark.Format(time.DateOnly))
			}
		}
		check(event.HandledException, serving.RunIncomplete, sampleAsOf.AddDate(0, 0, -1))
		check(event.Crash, serving.RunSucceeded, sampleAsOf)
		// Its rows were written all the same: the other days' handled exceptions are there.
		if apps, _, err := serving.BatchCatalog(context.Background(), st, event.HandledException, sampleAsOf.AddDate(0, 0, -2), sampleAsOf); err != nil || len(apps) == 0 {
			t.Errorf("handled_exception apps after the incomplete run: %v, %v", apps, err)
		}
		runBatch(t, "prism", pipelines.BatchConfig{Input: root, AsOf: sampleAsOf, Store: store, DeadLetterRoot: t.TempDir(),
			Started: nightOf(sampleAsOf).Add(time.Hour), AllowIncomplete: true})
		check(event.HandledException, serving.RunSucceeded, sampleAsOf)
	})
}

// An incremental run deletes a bucket whose only input vanished from an
// old arrival partition (issue 20): one crash of an app nobody else sends
// lands in 11-22's hour 05; the run as of 11-23 writes its rows and the
// window state; the file is removed; the run as of 11-24 uses the state,
// recomputes the days 11-22's partition touches, and deletes the rows.
// The store then equals a fresh run as of 11-24.
func TestIncrementalVanishedBucket(t *testing.T) {
	eachStore(t, func(t *testing.T, fresh func() string) {
		root, store := copySample(t), fresh()
		lone := filepath.Join(root, "raw", "crash", "dt=2026-11-22", "hr=05", "part-lone.avro")
		writeEvents(t, lone, event.Crash, event.Event{Kind: event.Crash, AppID: "com.vanish.app", AppVersion: "9.9", Platform: "ios",
			DeviceID: []byte{0xde, 0xad}, Signature: "lone",
			EventTime:    time.Date(2026, 11, 21, 22, 10, 0, 0, time.UTC).UnixMilli(),
			ReceivedTime: time.Date(2026, 11, 22, 5, 20, 0, 0, time.UTC).UnixMilli()})
		day := sampleAsOf.AddDate(0, 0, -1)
		opsRun(t, root, store, day, nightOf(day))
		first := sampleAsOf.AddDate(0, 0, -29)
		lonely := func(snap map[string]string) (keys []string) {
			for k := range snap {
				if strings.Contains(k, "/com.vanish.app/") {
					keys = append(keys, k)
				}
			}
			return keys
		}
		if got := lonely(snapshot(t, openStore(t, store), first, sampleAsOf)); len(got) == 0 {
			t.Fatal("the run as of 11-23 wrote no row of com.vanish.app")
		} else {
			t.Logf("as of 11-23: %d rows of com.vanish.app: %v", len(got), got)
		}
		if err := os.Remove(lone); err != nil {
			t.Fatal(err)
		}
		opsRun(t, root, store, sampleAsOf, nightOf(sampleAsOf))
		c := runCounters(t, openStore(t, store), sampleAsOf)[event.Crash]
		if c["state.used"] != 1 || c["run.rows_deleted"] <= 0 {
			t.Errorf("crash run as of 11-24: state %v, run.rows_deleted %d; want the state used and rows deleted", stateOf(c), c["run.rows_deleted"])
		}
		got := snapshot(t, openStore(t, store), first, sampleAsOf)
		if keys := lonely(got); len(keys) > 0 {
			t.Errorf("rows of com.vanish.app left after its only file went: %v", keys)
		}
		clean := fresh()
		opsRun(t, root, clean, sampleAsOf, nightOf(sampleAsOf).Add(time.Hour))
		diffSnapshots(t, "incremental run after removing the lone file vs a fresh run", got, snapshot(t, openStore(t, clean), first, sampleAsOf))
		t.Logf("as of 11-24 (state used): %d rows deleted, %d written", c["run.rows_deleted"], c["run.count_rows"]+c["run.user_rows"])
	})
}

// writeEvents writes events of kind k to a new Avro file at path.
func writeEvents(t *testing.T, path string, k event.Kind, evs ...event.Event) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	w, err := avroio.NewEventWriter(f, k, avroio.WithCodec(avroio.CodecSnappy))
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
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// Kill -9 of an incremental run while it writes its rows (issue 20): the
// run left rows of its own in the store, but no window state; the next run
// must not trust the state before it (a run started since, the killed one,
// may have written the window), rebuilds, and leaves the store equal to a
// --full run into an empty store. Cassandra, throttled, so that the
// writing lasts long enough to be killed in.
func TestIncrementalKilledWhileWriting(t *testing.T) {
	inc, _ := cassandraStores(t)
	ctx := context.Background()
	root := copySample(t)
	day := sampleAsOf.AddDate(0, 0, -1)
	opsRun(t, root, inc, day, nightOf(day))
	stateRoot := winstate.Root(root, inc)
	before, err := winstate.Find(ctx, stateRoot, time.Time{}, sampleAsOf)
	if err != nil || len(before) != 1 {
		t.Fatalf("after the run as of 11-23: states %v (%v), want one", before, err)
	}

	bin := command(t, "batch")
	args := func(store string) []string {
		return []string{"--input=" + root, "--store=" + store, "--deadletter_root=" + t.TempDir(), "--as_of=" + sampleAsOf.Format(time.DateOnly)}
	}
	slow := strings.Replace(inc, "rate=50000", "rate=200", 1)
	p := startProcess(t, "batch", baseEnv(t), bin, args(slow)...)
	st := openStore(t, inc)
	written := func() int {
		rows, err := st.DayTotals(ctx, event.AppLoad, sampleAsOf, sampleAsOf)
		if err != nil {
			t.Fatal(err)
		}
		return len(rows)
	}
	for written() == 0 {
		select {
		case <-p.done:
			t.Fatalf("the run exited (%v) before a row of 11-24 was seen:\n%s", p.err, tail(p.output(), 30))
		case <-time.After(200 * time.Millisecond):
		}
	}
	if err := p.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-p.done
	t.Logf("killed (SIGKILL) with day rows of 11-24 for %d app versions written", written())

	marks, err := winstate.Marks(ctx, stateRoot)
	if err != nil || len(marks) == 0 {
		t.Fatalf("no run marks (%v)", err)
	}
	killed := marks[len(marks)-1]
	for _, m := range marks {
		if m.Started.After(killed.Started) {
			killed = m
		}
	}
	states, err := winstate.Find(ctx, stateRoot, time.Time{}, sampleAsOf)
	if err != nil {
		t.Fatal(err)
	}
	for _, path := range states {
		s, err := winstate.Read(ctx, path)
		if err != nil {
			t.Fatalf("state %s: %v", path, err)
		}
		if s.Stamp == killed.Stamp || !s.AsOf.Equal(day) {
			t.Errorf("state %s claims the killed run (as of %s, stamp %d; killed: stamp %d)", path, s.AsOf.Format(time.DateOnly), s.Stamp, killed.Stamp)
		}
	}

	out, err := runProcess(t, bin, args(inc)...)
	if err != nil {
		t.Fatalf("the run after the kill: %v\n%s", err, tail(out, 30))
	}
	if !strings.Contains(out, "state    rejected") {
		t.Errorf("the run after the kill did not reject the state of 11-23:\n%s", tail(out, 30))
	}
	full := sqliteURL(t)
	runBatch(t, "prism", pipelines.BatchConfig{Input: root, AsOf: sampleAsOf, Store: full, DeadLetterRoot: t.TempDir(), Full: true})
	first := sampleAsOf.AddDate(0, 0, -29)
	got, want := snapshot(t, st, first, sampleAsOf), snapshot(t, openStore(t, full), first, sampleAsOf)
	diffSnapshots(t, "the run after the killed one vs --full into an empty store", got, want)
	t.Logf("after the kill, the next run = --full: %d rows", len(want))
}

// runProcess runs bin to its end and returns its output.
func runProcess(t *testing.T, bin string, args ...string) (string, error) {
	t.Helper()
	p := startProcess(t, filepath.Base(bin), baseEnv(t), bin, args...)
	err := p.wait(t, 10*time.Minute)
	return p.output(), err
}

// --verify=new lists only the arrival days after the state's (issue 20).
// On a night with nothing changed in the old days it equals --full; a
// file added to an old day is what it cannot see, by design, until a run
// with the default --verify=window, which then equals --full again.
func TestIncrementalVerifyNew(t *testing.T) {
	root, store := copySample(t), sqliteURL(t)
	day := sampleAsOf.AddDate(0, 0, -1)
	opsRun(t, root, store, day, nightOf(day))
	lone := filepath.Join(root, "raw", "crash", "dt=2026-11-22", "hr=05", "part-lone.avro")
	writeEvents(t, lone, event.Crash, event.Event{Kind: event.Crash, AppID: "com.vanish.app", AppVersion: "9.9", Platform: "ios",
		DeviceID: []byte{0xbe, 0xef}, Signature: "lone",
		EventTime:    time.Date(2026, 11, 21, 22, 10, 0, 0, time.UTC).UnixMilli(),
		ReceivedTime: time.Date(2026, 11, 22, 5, 20, 0, 0, time.UTC).UnixMilli()})
	shards := shardBytes(t, winstate.Root(root, store))
	runBatch(t, "prism", pipelines.BatchConfig{Input: root, AsOf: sampleAsOf, Store: store, DeadLetterRoot: t.TempDir(),
		Started: nightOf(sampleAsOf), Verify: pipelines.VerifyNew})
	c := runCounters(t, openStore(t, store), sampleAsOf)[event.Crash]
	if c["state.used"] != 1 || c["state.verified_new"] != 1 {
		t.Fatalf("--verify=new: state %v; want used, verified_new", stateOf(c))
	}
	if c["state.bytes_read"] != shards {
		t.Errorf("state.bytes_read = %d, the state's shards on disk hold %d bytes", c["state.bytes_read"], shards)
	}
	first := sampleAsOf.AddDate(0, 0, -29)
	full := sqliteURL(t)
	runBatch(t, "prism", pipelines.BatchConfig{Input: root, AsOf: sampleAsOf, Store: full, DeadLetterRoot: t.TempDir(), Full: true})
	got, want := snapshot(t, openStore(t, store), first, sampleAsOf), snapshot(t, openStore(t, full), first, sampleAsOf)
	var missing []string
	for k := range want {
		if _, ok := got[k]; !ok {
			missing = append(missing, k)
		}
	}
	if len(missing) == 0 || len(missing) != len(lonelyKeys(want)) {
		t.Errorf("--verify=new after a file was added to 11-22: missing %v; want exactly the lone file's rows %v", missing, lonelyKeys(want))
	}
	delete := func(m map[string]string) map[string]string {
		out := map[string]string{}
		for k, v := range m {
			if !strings.Contains(k, "/com.vanish.app/") {
				out[k] = v
			}
		}
		return out
	}
	diffSnapshots(t, "--verify=new vs --full, but for the file added to an old day", got, delete(want))

	opsRun(t, root, store, sampleAsOf, nightOf(sampleAsOf).Add(time.Hour))
	c = runCounters(t, openStore(t, store), sampleAsOf)[event.Crash]
	if c["state.used"] != 1 || c["state.verified_new"] != 0 {
		t.Errorf("--verify=window: state %v; want used, the window listed", stateOf(c))
	}
	diffSnapshots(t, "--verify=window after --verify=new vs --full", snapshot(t, openStore(t, store), first, sampleAsOf), want)
}

func lonelyKeys(snap map[string]string) (keys []string) {
	for k := range snap {
		if strings.Contains(k, "/com.vanish.app/") {
			keys = append(keys, k)
		}
	}
	return keys
}

// shardBytes is the size of the window state shards under a store's
// state root (one state: the run before's).
func shardBytes(t *testing.T, root string) int64 {
	t.Helper()
	var n int64
	err := filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(p, ".ws") {
			return err
		}
		info, err := d.Info()
		n += info.Size()
		return err
	})
	if err != nil || n == 0 {
		t.Fatalf("the state's shards under %s: %d bytes, %v", root, n, err)
	}
	return n
}
