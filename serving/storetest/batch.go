package storetest

import (
	"reflect"
	"testing"
	"time"

	"github.com/lumenhq/lumen/aggregate"
	"github.com/lumenhq/lumen/event"
	"github.com/lumenhq/lumen/serving"
)

// The batch layer's monotone writes, its prune, and the runs that keep
// the watermark.

func writeStamped(t *testing.T, st serving.Store, stamp int64, counts []aggregate.CountRow, users []aggregate.UserRow) {
	t.Helper()
	write(t, st, serving.Batch, counts, users, serving.WithStamp(stamp))
}

func userRow(app, version string, day time.Time, ids ...string) aggregate.UserRow {
	sk, est := sketchOf(ids...)
	return aggregate.UserRow{Kind: event.Crash, AppID: app, AppVersion: version, Day: day.UnixMilli(), Sketch: sk, Estimate: est, Events: int64(len(ids))}
}

func estimates(t *testing.T, st serving.Store, app, version string, from, to time.Time) []int64 {
	t.Helper()
	rows, err := st.Users(ctx, serving.Batch, serving.UserQuery{Kind: event.Crash, AppID: app, Version: version, From: from, To: to})
	if err != nil {
		t.Fatal(err)
	}
	var out []int64
	for _, r := range rows {
		out = append(out, r.Estimate)
	}
	return out
}

// A write stamped with an older as_of never replaces a newer one's row; a
// re-run of the same as_of, started later, does.
func testBatchMonotone(t *testing.T, st serving.Store) {
	asOf := time.Date(2026, 11, 24, 0, 0, 0, 0, time.UTC)
	day := t0.Truncate(24 * time.Hour)
	newer := serving.BatchStamp(asOf, asOf.Add(25*time.Hour))
	older := serving.BatchStamp(asOf.AddDate(0, 0, -5), asOf.Add(26*time.Hour)) // started later, as of an older day
	rerun := serving.BatchStamp(asOf, asOf.Add(27*time.Hour))
	if !(older < newer && newer < rerun) {
		t.Fatalf("stamps out of order: older %d, newer %d, rerun %d", older, newer, rerun)
	}
	writeStamped(t, st, newer, countRows("a", "1.0", 3, 10), []aggregate.UserRow{userRow("a", "1.0", day, "x", "y", "z")})
	writeStamped(t, st, older, countRows("a", "1.0", 3, 1), []aggregate.UserRow{userRow("a", "1.0", day, "x")})
	if got := points(t, st, serving.Batch, "a", "1.0", t0, t0.Add(3*time.Hour)); len(got) != 3 || got[2].Count != 30 {
		t.Errorf("after an older as_of's write, counts = %v; want the newer run's (10, 20, 30)", got)
	}
	if got := estimates(t, st, "a", "1.0", day, day); len(got) != 1 || got[0] != 3 {
		t.Errorf("after an older as_of's write, estimates = %v; want the newer run's [3]", got)
	}
	writeStamped(t, st, rerun, countRows("a", "1.0", 3, 2), []aggregate.UserRow{userRow("a", "1.0", day, "x", "y")})
	if got := points(t, st, serving.Batch, "a", "1.0", t0, t0.Add(3*time.Hour)); len(got) != 3 || got[2].Count != 6 {
		t.Errorf("after a re-run of the same as_of, counts = %v; want the re-run's (2, 4, 6)", got)
	}
	if got := estimates(t, st, "a", "1.0", day, day); len(got) != 1 || got[0] != 2 {
		t.Errorf("after a re-run of the same as_of, estimates = %v; want the re-run's [2]", got)
	}
}

// PruneBatch deletes the rows of its days with an older stamp, and keeps
// newer ones and every row outside its days.
func testPruneBatch(t *testing.T, st serving.Store) {
	d := func(i int) time.Time { return time.Date(2026, 11, 28, 0, 0, 0, 0, time.UTC).AddDate(0, 0, i) } // days 0..4 span a month
	asOf := d(3)
	old, cur, newer := serving.BatchStamp(asOf.AddDate(0, 0, -1), d(3)), serving.BatchStamp(asOf, d(4)), serving.BatchStamp(asOf.AddDate(0, 0, 1), d(5))
	rowsOf := func(app string, days ...int) ([]aggregate.CountRow, []aggregate.UserRow) {
		var cs []aggregate.CountRow
		var us []aggregate.UserRow
		for _, i := range days {
			for _, v := range []string{"1.0", aggregate.AllVersions} {
				cs = append(cs,
					aggregate.CountRow{Kind: event.Crash, AppID: app, AppVersion: v, Gran: aggregate.Hour, Bucket: d(i).Add(5 * time.Hour).UnixMilli(), Count: 1},
					aggregate.CountRow{Kind: event.Crash, AppID: app, AppVersion: v, Gran: aggregate.Day, Bucket: d(i).UnixMilli(), Count: 1})
				us = append(us, userRow(app, v, d(i), "x"))
			}
		}
		return cs, us
	}
	// Days 0..4 by an old run; day 2 rewritten by this run; app "b"'s day 3
	// by a newer run.
	c, u := rowsOf("a", 0, 1, 2, 3, 4)
	writeStamped(t, st, old, c, u)
	c, u = rowsOf("a", 2)
	writeStamped(t, st, cur, c, u)
	c, u = rowsOf("b", 3)
	writeStamped(t, st, newer, c, u)

	if _, err := st.PruneBatch(ctx, d(1), d(3), cur); err != nil {
		t.Fatal(err)
	}
	days := func(app, version string, g aggregate.Granularity) []int {
		pts, err := st.Counts(ctx, serving.Batch, serving.CountQuery{Kind: event.Crash, AppID: app, Version: version, Gran: g, From: d(0), To: d(5)})
		if err != nil {
			t.Fatal(err)
		}
		var out []int
		for _, p := range pts {
			out = append(out, int(p.Bucket.Sub(d(0))/(24*time.Hour)))
		}
		return out
	}
	for _, v := range []string{"1.0", aggregate.AllVersions} {
		for _, g := range []aggregate.Granularity{aggregate.Hour, aggregate.Day} {
			if got := days("a", v, g); !reflect.DeepEqual(got, []int{0, 2, 4}) {
				t.Errorf("app a %q %s rows on days %v after the prune of days 1..3, want [0 2 4]", v, g, got)
			}
			if got := days("b", v, g); !reflect.DeepEqual(got, []int{3}) {
				t.Errorf("app b %q %s rows on days %v, want the newer run's [3]", v, g, got)
			}
		}
		if got := estimates(t, st, "a", v, d(0), d(5)); len(got) != 3 {
			t.Errorf("app a %q: %d sketch rows after the prune, want 3 (days 0, 2, 4)", v, len(got))
		}
		if got := estimates(t, st, "b", v, d(0), d(5)); len(got) != 1 {
			t.Errorf("app b %q: %d sketch rows, want the newer run's 1", v, len(got))
		}
	}
	// An older run's prune removes nothing newer.
	if _, err := st.PruneBatch(ctx, d(0), d(4), old); err != nil {
		t.Fatal(err)
	}
	if got := days("a", "1.0", aggregate.Day); !reflect.DeepEqual(got, []int{0, 2, 4}) {
		t.Errorf("after an older run's prune, app a rows on days %v, want [0 2 4]", got)
	}
}

// A running or failed attempt keeps the watermark an earlier success of
// the same as_of set; an incomplete or partial finish clears it; the
// watermark is never past the day before the run finished.
func testRunsWatermark(t *testing.T, st serving.Store) {
	asOf := time.Date(2026, 11, 24, 0, 0, 0, 0, time.UTC)
	record := func(day time.Time, status serving.RunStatus, started, finished time.Time) {
		t.Helper()
		if err := st.RecordRun(ctx, serving.BatchRun{Kind: event.AppLoad, AsOf: day, WindowStart: day.AddDate(0, 0, -29),
			Started: started, Finished: finished, Status: status, Note: string(status) + " note", Counters: map[string]int64{}}); err != nil {
			t.Fatal(err)
		}
	}
	watermark := func() time.Time {
		t.Helper()
		runs, err := st.Runs(ctx, event.AppLoad)
		if err != nil {
			t.Fatal(err)
		}
		return serving.BatchCompleteOf(runs).Day
	}
	next := asOf.AddDate(0, 0, 1)
	record(asOf, serving.RunSucceeded, next.Add(30*time.Minute), next.Add(40*time.Minute))
	if w := watermark(); !w.Equal(asOf) {
		t.Fatalf("watermark %v after a success, want %v", w, asOf)
	}
	record(asOf, serving.RunRunning, next.Add(2*time.Hour), time.Time{})
	if w := watermark(); !w.Equal(asOf) {
		t.Errorf("watermark %v while a re-run is running, want %v", w, asOf)
	}
	runs, _ := st.Runs(ctx, event.AppLoad)
	if len(runs) != 1 || runs[0].Status != serving.RunRunning || runs[0].Note != "running note" || !runs[0].Finished.IsZero() {
		t.Errorf("runs while running: %+v", runs)
	}
	record(asOf, serving.RunFailed, next.Add(2*time.Hour), next.Add(3*time.Hour))
	if w := watermark(); !w.Equal(asOf) {
		t.Errorf("watermark %v after a failed re-run, want %v", w, asOf)
	}
	// A newer day that fails or is incomplete does not move it.
	record(next, serving.RunFailed, next.Add(25*time.Hour), next.Add(26*time.Hour))
	record(next, serving.RunIncomplete, next.Add(27*time.Hour), next.Add(28*time.Hour))
	if w := watermark(); !w.Equal(asOf) {
		t.Errorf("watermark %v after a failed and an incomplete run of %v, want %v", w, next, asOf)
	}
	// A success as of a day that had not ended counts only through the
	// day before it finished.
	later := next.AddDate(0, 0, 1)
	record(later, serving.RunSucceeded, later.Add(time.Hour), later.Add(2*time.Hour))
	if w := watermark(); !w.Equal(next) {
		t.Errorf("watermark %v after a success as of %v that finished that day, want %v", w, later, next)
	}
	// An incomplete re-run of the newest complete day clears its claim.
	record(later, serving.RunIncomplete, later.Add(30*time.Hour), later.Add(31*time.Hour))
	if w := watermark(); !w.Equal(asOf) {
		t.Errorf("watermark %v after %v was re-run on incomplete input, want %v", w, later, asOf)
	}
}

// DeleteCounts and DeleteUsers delete batch rows by key, monotone as
// writes are: a row an older stamp wrote goes; one this stamp or a newer
// one wrote stays; other keys are untouched.
func testDeleteBatchRows(t *testing.T, st serving.Store) {
	day := time.Date(2026, 11, 30, 0, 0, 0, 0, time.UTC) // its hours span a month's end in period terms
	old, cur, newer := serving.BatchStamp(day, day.Add(25*time.Hour)), serving.BatchStamp(day.AddDate(0, 0, 1), day.Add(26*time.Hour)),
		serving.BatchStamp(day.AddDate(0, 0, 2), day.Add(27*time.Hour))
	hourRow := func(app string, h int) aggregate.CountRow {
		return aggregate.CountRow{Kind: event.Crash, AppID: app, AppVersion: "1.0", Gran: aggregate.Hour, Bucket: day.Add(time.Duration(h) * time.Hour).UnixMilli(), Count: int64(h + 1)}
	}
	writeStamped(t, st, old, []aggregate.CountRow{hourRow("a", 1), hourRow("a", 2), hourRow("a", 3)}, []aggregate.UserRow{userRow("a", "1.0", day, "x")})
	writeStamped(t, st, newer, []aggregate.CountRow{hourRow("b", 1)}, []aggregate.UserRow{userRow("b", "1.0", day, "x")})

	w, err := st.NewWriter(ctx, serving.Batch, serving.WithStamp(cur))
	if err != nil {
		t.Fatal(err)
	}
	del := []aggregate.CountRow{hourRow("a", 1), hourRow("a", 3), hourRow("b", 1), hourRow("c", 7)} // c: never written
	del[0].Count, del[1].Count = 999, 0                                                             // values do not matter
	if err := w.DeleteCounts(ctx, del); err != nil {
		t.Fatal(err)
	}
	if err := w.DeleteUsers(ctx, []aggregate.UserRow{userRow("a", "1.0", day), userRow("b", "1.0", day)}); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(ctx); err != nil {
		t.Fatal(err)
	}
	hours := func(app string) []int64 {
		var out []int64
		for _, p := range points(t, st, serving.Batch, app, "1.0", day, day.Add(24*time.Hour)) {
			out = append(out, p.Count)
		}
		return out
	}
	if got := hours("a"); !reflect.DeepEqual(got, []int64{3}) {
		t.Errorf("app a's hours after deleting hours 1 and 3: counts %v, want [3] (hour 2's)", got)
	}
	if got := hours("b"); !reflect.DeepEqual(got, []int64{2}) {
		t.Errorf("app b's hour, written by a newer run: %v after an older delete, want [2]", got)
	}
	if got := estimates(t, st, "a", "1.0", day, day); len(got) != 0 {
		t.Errorf("app a's sketch row after its delete: %v, want none", got)
	}
	if got := estimates(t, st, "b", "1.0", day, day); len(got) != 1 {
		t.Errorf("app b's sketch row, written by a newer run, after an older delete: %v, want it kept", got)
	}
	// A speed writer refuses deletes.
	sw, err := st.NewWriter(ctx, serving.Speed, serving.WithRun("r"))
	if err != nil {
		t.Fatal(err)
	}
	if err := sw.DeleteCounts(ctx, del[:1]); err == nil {
		t.Error("a speed writer deleted batch rows")
	}
	sw.Close(ctx)
}
