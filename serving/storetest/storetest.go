// Package storetest is the conformance suite every serving.Store must pass:
// the embedded SQLite store and Cassandra run the same assertions, so a
// query answers the same whichever store holds the rows.
package storetest

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"reflect"
	"testing"
	"time"

	"github.com/lumenhq/lumen/aggregate"
	"github.com/lumenhq/lumen/aggregate/hll"
	"github.com/lumenhq/lumen/event"
	"github.com/lumenhq/lumen/serving"
)

// Run runs the suite; open returns a fresh, empty store each call.
func Run(t *testing.T, open func(t *testing.T) serving.Store) {
	for _, c := range []struct {
		name string
		fn   func(*testing.T, serving.Store)
	}{
		{"CountsRoundTrip", testCounts},
		{"UpsertOverwrites", testUpsert},
		{"UsersRoundTrip", testUsers},
		{"AppsAndVersions", testIndex},
		{"Runs", testRuns},
		{"LayersAreSeparate", testLayers},
		{"QuerierMergesLayers", testQuerier},
		{"QuerierMergesHoursAtTheWatermark", testQuerierHours},
		{"QuerierMergesUsers", testUsersAcrossLayers},
		{"Catalog", testCatalog},
		{"DayTotalsSumTheRange", testDayTotals},
		{"ValuesAreBoundNotFormatted", testHostileStrings},
		{"SpeedKeepsTheLargestTotal", testSpeedMonotone},
		{"LateSumsSources", testLate},
		{"SpeedAddsUpRuns", testSpeedRuns},
		{"StreamRunsRoundTrip", testStreamRuns},
		{"ExpiredStreamRunsPruned", testPruneStreamRuns},
		{"SupersededRunsLeaveTheReads", testSupersededRuns},
		{"BatchWritesAreMonotone", testBatchMonotone},
		{"PruneBatchDeletesOlderStamps", testPruneBatch},
		{"DeletesAreMonotone", testDeleteBatchRows},
		{"RunsKeepTheWatermark", testRunsWatermark},
	} {
		t.Run(c.name, func(t *testing.T) { c.fn(t, open(t)) })
	}
}

var (
	ctx = context.Background()
	// Spans a month boundary, so partitions by period are exercised.
	t0 = time.Date(2026, 10, 31, 20, 0, 0, 0, time.UTC)
)

// finishedAfter is when a run as of day finishes: the next night.
func finishedAfter(day time.Time) time.Time { return day.Add(24*time.Hour + 40*time.Minute) }

func hour(i int) int64 { return t0.Add(time.Duration(i) * time.Hour).UnixMilli() }

func write(t *testing.T, st serving.Store, layer serving.Layer, counts []aggregate.CountRow, users []aggregate.UserRow, opts ...serving.WriterOption) {
	t.Helper()
	w, err := st.NewWriter(ctx, layer, opts...)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.WriteCounts(ctx, counts); err != nil {
		t.Fatal(err)
	}
	if err := w.WriteUsers(ctx, users); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(ctx); err != nil {
		t.Fatal(err)
	}
}

func countRows(app, version string, n int, scale int64) []aggregate.CountRow {
	var rows []aggregate.CountRow
	for i := 0; i < n; i++ {
		rows = append(rows, aggregate.CountRow{Kind: event.Crash, AppID: app, AppVersion: version, Gran: aggregate.Hour, Bucket: hour(i), Count: scale * int64(i+1)})
	}
	return rows
}

func points(t *testing.T, st serving.Store, layer serving.Layer, app, version string, from, to time.Time) []serving.CountPoint {
	t.Helper()
	pts, err := st.Counts(ctx, layer, serving.CountQuery{Kind: event.Crash, AppID: app, Version: version, Gran: aggregate.Hour, From: from, To: to})
	if err != nil {
		t.Fatal(err)
	}
	return pts
}

func testCounts(t *testing.T, st serving.Store) {
	write(t, st, serving.Batch, append(countRows("a", "1.0", 10, 1), countRows("a", "", 10, 2)...), nil)
	// Inclusive at both ends, ascending, across the month boundary.
	pts := points(t, st, serving.Batch, "a", "1.0", time.UnixMilli(hour(2)), time.UnixMilli(hour(7)))
	if len(pts) != 6 {
		t.Fatalf("got %d points, want 6: %v", len(pts), pts)
	}
	for i, p := range pts {
		if p.Bucket.UnixMilli() != hour(i+2) || p.Count != int64(i+3) || p.Bucket.Location() != time.UTC {
			t.Errorf("point %d = %v %d, want %v %d", i, p.Bucket, p.Count, time.UnixMilli(hour(i+2)).UTC(), i+3)
		}
	}
	// The version filter: '' is the all-versions series, not a wildcard.
	all := points(t, st, serving.Batch, "a", "", t0, t0.Add(24*time.Hour))
	if len(all) != 10 || all[0].Count != 2 {
		t.Errorf("all-versions series = %v", all)
	}
	if got := points(t, st, serving.Batch, "a", "2.0", t0, t0.Add(24*time.Hour)); len(got) != 0 {
		t.Errorf("unknown version returned %v", got)
	}
	if got := points(t, st, serving.Batch, "b", "1.0", t0, t0.Add(24*time.Hour)); len(got) != 0 {
		t.Errorf("unknown app returned %v", got)
	}
}

func testUpsert(t *testing.T, st serving.Store) {
	write(t, st, serving.Batch, countRows("a", "1.0", 5, 1), nil)
	write(t, st, serving.Batch, countRows("a", "1.0", 5, 7), nil)
	pts := points(t, st, serving.Batch, "a", "1.0", t0, t0.Add(time.Hour*5))
	if len(pts) != 5 || pts[4].Count != 35 {
		t.Errorf("after rewriting, points = %v (want the second write's values)", pts)
	}
}

func sketchOf(ids ...string) ([]byte, int64) {
	s := hll.MustNew(14)
	for _, id := range ids {
		s.Add([]byte(id))
	}
	b, _ := s.MarshalBinary()
	return b, int64(s.Estimate())
}

func testUsers(t *testing.T, st serving.Store) {
	var rows []aggregate.UserRow
	for d := 0; d < 4; d++ {
		b, est := sketchOf(fmt.Sprint("dev", d), fmt.Sprint("dev", d+1))
		rows = append(rows, aggregate.UserRow{Kind: event.AppLoad, AppID: "a", AppVersion: "", Day: t0.Truncate(24*time.Hour).AddDate(0, 0, d).UnixMilli(), Sketch: b, Estimate: est})
	}
	write(t, st, serving.Batch, nil, rows)
	day0 := t0.Truncate(24 * time.Hour)
	got, err := st.Users(ctx, serving.Batch, serving.UserQuery{Kind: event.AppLoad, AppID: "a", Version: "", From: day0.AddDate(0, 0, 1), To: day0.AddDate(0, 0, 2)})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || !bytes.Equal(got[0].Sketch, rows[1].Sketch) || got[1].Day != rows[2].Day || got[1].Estimate != 2 {
		t.Fatalf("users = %+v", got)
	}
	q := &serving.Querier{Store: st}
	// Without a successful run everything is "speed": record one.
	if err := st.RecordRun(ctx, serving.BatchRun{Kind: event.AppLoad, AsOf: day0.AddDate(0, 0, 3), WindowStart: day0, Started: t0, Finished: finishedAfter(day0.AddDate(0, 0, 3)), Status: serving.RunSucceeded, Counters: map[string]int64{}}); err != nil {
		t.Fatal(err)
	}
	res, err := q.Users(ctx, serving.UserQuery{Kind: event.AppLoad, AppID: "a", From: day0, To: day0.AddDate(0, 0, 3)})
	if err != nil {
		t.Fatal(err)
	}
	if res.Estimate != 5 || res.BatchDays != 4 {
		t.Errorf("merged users = %+v, want 5 devices over 4 batch days", res)
	}
}

func testIndex(t *testing.T, st serving.Store) {
	rows := append(countRows("zeta", "2.0", 3, 1), countRows("alpha", "1.0", 3, 1)...)
	rows = append(rows, countRows("alpha", "1.1", 3, 1)...)
	rows = append(rows, countRows("alpha", "", 3, 1)...)
	for i := range rows {
		rows[i].Gran = aggregate.Day
		rows[i].Bucket = aggregate.Day.Truncate(rows[i].Bucket)
	}
	write(t, st, serving.Batch, rows, nil)
	avs, err := st.Catalog(ctx, serving.Batch, event.Crash, t0, t0)
	if err != nil {
		t.Fatal(err)
	}
	if want := []serving.AppVersion{{AppID: "alpha", Version: "1.0"}, {AppID: "alpha", Version: "1.1"}, {AppID: "zeta", Version: "2.0"}}; !reflect.DeepEqual(avs, want) {
		t.Errorf("Catalog = %v, want %v", avs, want)
	}
	apps, versions, err := serving.BatchCatalog(ctx, st, event.Crash, t0, t0)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(apps, []string{"alpha", "zeta"}) {
		t.Errorf("BatchCatalog apps = %v", apps)
	}
	if !reflect.DeepEqual(versions["alpha"], []string{"1.0", "1.1"}) {
		t.Errorf("BatchCatalog versions of alpha = %v", versions["alpha"])
	}
	if avs, _ := st.Catalog(ctx, serving.Speed, event.Crash, t0, t0); len(avs) != 0 {
		t.Errorf("speed Catalog of batch rows = %v", avs)
	}
	if apps, _, _ := serving.BatchCatalog(ctx, st, event.AppLoad, t0, t0); len(apps) != 0 {
		t.Errorf("apps of another kind = %v", apps)
	}
}

func testRuns(t *testing.T, st serving.Store) {
	day := time.Date(2026, 11, 20, 0, 0, 0, 0, time.UTC)
	started := time.Date(2026, 11, 21, 1, 2, 3, 0, time.UTC)
	for i, status := range []serving.RunStatus{serving.RunSucceeded, serving.RunRunning} {
		r := serving.BatchRun{Kind: event.HandledException, AsOf: day.AddDate(0, 0, i), WindowStart: day.AddDate(0, 0, i-29),
			Started: started, Status: status, Counters: map[string]int64{"too_old": int64(10 + i), "counted": 1 << 40}}
		if status == serving.RunSucceeded {
			r.Finished = started.Add(90 * time.Second)
		}
		if err := st.RecordRun(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	// Re-recording a run replaces it.
	r := serving.BatchRun{Kind: event.HandledException, AsOf: day.AddDate(0, 0, 1), WindowStart: day.AddDate(0, 0, -28),
		Started: started, Finished: started.Add(time.Minute), Status: serving.RunFailed, Counters: map[string]int64{"too_old": 3}}
	if err := st.RecordRun(ctx, r); err != nil {
		t.Fatal(err)
	}
	runs, err := st.Runs(ctx, event.HandledException)
	if err != nil {
		t.Fatal(err)
	}
	if len(runs) != 2 || !runs[0].AsOf.Equal(day.AddDate(0, 0, 1)) || runs[0].Status != serving.RunFailed ||
		runs[0].Counters["too_old"] != 3 || !runs[0].Finished.Equal(started.Add(time.Minute)) {
		t.Fatalf("runs (newest first) = %+v", runs)
	}
	if runs[1].Counters["counted"] != 1<<40 || !runs[1].WindowStart.Equal(day.AddDate(0, 0, -29)) || !runs[1].Started.Equal(started) {
		t.Errorf("older run = %+v", runs[1])
	}
	if other, _ := st.Runs(ctx, event.AppLoad); len(other) != 0 {
		t.Errorf("runs of another kind: %v", other)
	}
}

func testLayers(t *testing.T, st serving.Store) {
	write(t, st, serving.Speed, countRows("a", "1.0", 3, 5), nil)
	if got := points(t, st, serving.Batch, "a", "1.0", t0, t0.Add(3*time.Hour)); len(got) != 0 {
		t.Errorf("speed rows visible in batch: %v", got)
	}
	if got := points(t, st, serving.Speed, "a", "1.0", t0, t0.Add(3*time.Hour)); len(got) != 3 || got[2].Count != 15 {
		t.Errorf("speed rows = %v", got)
	}
}

// Batch days come from batch tables, later days from speed tables.
func testQuerier(t *testing.T, st serving.Store) {
	day0 := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	var batch, speed []aggregate.CountRow
	for d := 0; d < 4; d++ {
		r := aggregate.CountRow{Kind: event.AppLoad, AppID: "m", Gran: aggregate.Day, Bucket: day0.AddDate(0, 0, d).UnixMilli(), Count: 100}
		batch = append(batch, r)
		r.Count = 1 // the speed layer's (stale) view
		speed = append(speed, r)
	}
	write(t, st, serving.Batch, batch[:3], nil) // batch has days 0..2
	write(t, st, serving.Speed, speed, nil)     // speed has days 0..3
	if err := st.RecordRun(ctx, serving.BatchRun{Kind: event.AppLoad, AsOf: day0.AddDate(0, 0, 2), WindowStart: day0, Started: day0, Finished: finishedAfter(day0.AddDate(0, 0, 2)), Status: serving.RunSucceeded, Counters: map[string]int64{}}); err != nil {
		t.Fatal(err)
	}
	q := &serving.Querier{Store: st}
	pts, err := q.Counts(ctx, serving.CountQuery{Kind: event.AppLoad, AppID: "m", Gran: aggregate.Day, From: day0, To: day0.AddDate(0, 0, 4)})
	if err != nil {
		t.Fatal(err)
	}
	var got []int64
	for _, p := range pts {
		got = append(got, p.Count)
	}
	if !reflect.DeepEqual(got, []int64{100, 100, 100, 1}) {
		t.Errorf("merged counts = %v, want batch for days 0-2 and speed for day 3", got)
	}
	var layers []serving.Layer
	for _, p := range pts {
		layers = append(layers, p.Layer)
	}
	if !reflect.DeepEqual(layers, []serving.Layer{serving.Batch, serving.Batch, serving.Batch, serving.Speed}) {
		t.Errorf("layers = %v, want batch×3 then speed", layers)
	}
	// The store labels what it reads too.
	if raw := points(t, st, serving.Batch, "a", "1.0", t0, t0); len(raw) > 0 && raw[0].Layer != serving.Batch {
		t.Errorf("a batch read is labelled %v", raw[0].Layer)
	}
	// A failed run after the successful one does not move the watermark.
	if err := st.RecordRun(ctx, serving.BatchRun{Kind: event.AppLoad, AsOf: day0.AddDate(0, 0, 3), WindowStart: day0, Started: day0, Status: serving.RunFailed, Counters: map[string]int64{}}); err != nil {
		t.Fatal(err)
	}
	w, err := q.BatchComplete(ctx, event.AppLoad)
	if err != nil || !w.Day.Equal(day0.AddDate(0, 0, 2)) {
		t.Errorf("watermark = %v, %v; want %v (the newest successful run)", w.Day, err, day0.AddDate(0, 0, 2))
	}
	if w, _ := q.BatchComplete(ctx, event.Crash); w.OK() {
		t.Errorf("crash has no runs but a watermark %v", w.Day)
	}
}

// Hours on either side of the watermark come from their own layer, in one
// call; a minute is always speed.
func testQuerierHours(t *testing.T, st serving.Store) {
	day0 := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	var batch, speed []aggregate.CountRow
	for h := 20; h < 28; h++ { // 20:00 on day 0 .. 03:00 on day 1
		r := aggregate.CountRow{Kind: event.Crash, AppID: "h", AppVersion: "2.0", Gran: aggregate.Hour, Bucket: day0.Add(time.Duration(h) * time.Hour).UnixMilli(), Count: int64(h)}
		batch = append(batch, r)
		r.Count = 1000 + int64(h)
		speed = append(speed, r)
	}
	write(t, st, serving.Batch, batch, nil)
	m := aggregate.CountRow{Kind: event.Crash, AppID: "h", AppVersion: "2.0", Gran: aggregate.Minute, Bucket: day0.Add(23*time.Hour + 59*time.Minute).UnixMilli(), Count: 3}
	write(t, st, serving.Speed, append(speed, m), nil)
	if err := st.RecordRun(ctx, serving.BatchRun{Kind: event.Crash, AsOf: day0, WindowStart: day0, Started: day0, Finished: finishedAfter(day0), Status: serving.RunSucceeded, Counters: map[string]int64{}}); err != nil {
		t.Fatal(err)
	}
	q := &serving.Querier{Store: st}
	pts, w, err := q.CountsAt(ctx, serving.CountQuery{Kind: event.Crash, AppID: "h", Version: "2.0", Gran: aggregate.Hour, From: day0.Add(22 * time.Hour), To: day0.Add(25 * time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	want := []serving.CountPoint{
		{Bucket: day0.Add(22 * time.Hour), Count: 22, Layer: serving.Batch},
		{Bucket: day0.Add(23 * time.Hour), Count: 23, Layer: serving.Batch},
		{Bucket: day0.Add(24 * time.Hour), Count: 1024, Layer: serving.Speed},
		{Bucket: day0.Add(25 * time.Hour), Count: 1025, Layer: serving.Speed},
	}
	if !reflect.DeepEqual(pts, want) {
		t.Errorf("hours across the watermark = %v, want %v", pts, want)
	}
	if !w.Cutoff().Equal(day0.AddDate(0, 0, 1)) || w.LayerOf(day0.Add(23*time.Hour)) != serving.Batch || w.LayerOf(day0.AddDate(0, 0, 1)) != serving.Speed {
		t.Errorf("watermark %v: cutoff %v", w.Day, w.Cutoff())
	}
	mins, err := q.Counts(ctx, serving.CountQuery{Kind: event.Crash, AppID: "h", Version: "2.0", Gran: aggregate.Minute, From: day0, To: day0.AddDate(0, 0, 1)})
	if err != nil || len(mins) != 1 || mins[0].Count != 3 || mins[0].Layer != serving.Speed {
		t.Errorf("minutes = %v, %v; want one speed point of 3", mins, err)
	}
}

// Users over a range merge batch days before the watermark with speed
// days after; DAU/WAU/MAU and crash-free users come from the same merge.
// Small sets are counted exactly by HLL++'s sparse form, so the numbers
// are exact here.
func testUsersAcrossLayers(t *testing.T, st serving.Store) {
	day0 := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	row := func(k event.Kind, version string, d int, ids ...string) aggregate.UserRow {
		b, est := sketchOf(ids...)
		return aggregate.UserRow{Kind: k, AppID: "u", AppVersion: version, Day: day0.AddDate(0, 0, d).UnixMilli(), Sketch: b, Estimate: est, Events: int64(len(ids))}
	}
	ids := func(lo, hi int) []string {
		var out []string
		for i := lo; i < hi; i++ {
			out = append(out, fmt.Sprint("d", i))
		}
		return out
	}
	var batch []aggregate.UserRow
	for d := 0; d < 30; d++ { // day d: devices d..d+9
		batch = append(batch, row(event.AppLoad, "", d, ids(d, d+10)...))
	}
	batch = append(batch, row(event.Crash, "", 29, "d29", "d30"), row(event.AppLoad, "1.0", 29, ids(29, 39)...), row(event.Crash, "1.0", 29, "d30"))
	write(t, st, serving.Batch, nil, batch)
	// Speed: day 30 has devices 30..49 (and a stale view of day 29, which the
	// batch supersedes).
	speed := []aggregate.UserRow{row(event.AppLoad, "", 30, ids(30, 50)...), row(event.AppLoad, "", 29, "zzz"),
		row(event.Crash, "", 30, "d45"), row(event.AppLoad, "2.0", 30, ids(40, 50)...), row(event.Crash, "2.0", 30, "d45")}
	write(t, st, serving.Speed, nil, speed)
	for _, k := range []event.Kind{event.AppLoad, event.Crash} {
		if err := st.RecordRun(ctx, serving.BatchRun{Kind: k, AsOf: day0.AddDate(0, 0, 29), WindowStart: day0, Started: day0, Finished: finishedAfter(day0.AddDate(0, 0, 29)), Status: serving.RunSucceeded, Counters: map[string]int64{}}); err != nil {
			t.Fatal(err)
		}
	}
	q := &serving.Querier{Store: st}
	daily, total, w, err := q.Daily(ctx, serving.UserQuery{Kind: event.AppLoad, AppID: "u", From: day0.AddDate(0, 0, 28), To: day0.AddDate(0, 0, 30)})
	if err != nil {
		t.Fatal(err)
	}
	wantDaily := []serving.DayUsers{
		{Day: day0.AddDate(0, 0, 28), Estimate: 10, Layer: serving.Batch},
		{Day: day0.AddDate(0, 0, 29), Estimate: 10, Layer: serving.Batch},
		{Day: day0.AddDate(0, 0, 30), Estimate: 20, Layer: serving.Speed},
	}
	if !reflect.DeepEqual(daily, wantDaily) || !w.Day.Equal(day0.AddDate(0, 0, 29)) {
		t.Errorf("daily = %v (watermark %v), want %v", daily, w.Day, wantDaily)
	}
	// Days 28..30: devices 28..49 (the speed layer's stale day 29 unused).
	if total.Estimate != 22 || total.BatchDays != 2 || total.SpeedDays != 1 {
		t.Errorf("users over days 28..30 = %+v, want 22 from 2 batch + 1 speed days", total)
	}
	a, err := q.ActiveUsers(ctx, event.AppLoad, "u", "", day0.AddDate(0, 0, 30).Add(13*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	// DAU day 30: 20. WAU days 24..30: devices 24..49 = 26. MAU days 1..30:
	// devices 1..49 = 49 (day 0's d0 falls out).
	if a.DAU.Estimate != 20 || a.WAU.Estimate != 26 || a.MAU.Estimate != 49 {
		t.Errorf("DAU/WAU/MAU = %d/%d/%d, want 20/26/49", a.DAU.Estimate, a.WAU.Estimate, a.MAU.Estimate)
	}
	if a.MAU.BatchDays != 29 || a.MAU.SpeedDays != 1 || a.DAU.BatchDays != 0 || a.DAU.SpeedDays != 1 {
		t.Errorf("MAU from %d batch + %d speed days, DAU %d + %d; want 29+1 and 0+1", a.MAU.BatchDays, a.MAU.SpeedDays, a.DAU.BatchDays, a.DAU.SpeedDays)
	}
	if a.MAU.RelError < 0.008 || a.MAU.RelError > 0.0082 {
		t.Errorf("relative error at p=14 = %v, want 0.0081", a.MAU.RelError)
	}
	cf, _, err := q.CrashFreeUsers(ctx, "u", []string{"1.0", "2.0"}, day0.AddDate(0, 0, 29), day0.AddDate(0, 0, 30))
	if err != nil {
		t.Fatal(err)
	}
	// All versions: active 29..49 = 21 devices, crashed {29, 30, 45} = 3.
	// 1.0 (batch day 29): 10 active, 1 crashed. 2.0 (speed day 30): 10, 1.
	want := map[string][2]int64{"": {21, 3}, "1.0": {10, 1}, "2.0": {10, 1}}
	if len(cf) != 3 || cf[0].Version != "" {
		t.Fatalf("crash-free = %+v, want all versions first, then 1.0 and 2.0", cf)
	}
	for _, c := range cf {
		if w := want[c.Version]; c.Active != w[0] || c.Crashed != w[1] || math.Abs(c.Rate-(1-float64(w[1])/float64(w[0]))) > 1e-12 || c.ErrorBound <= 0 {
			t.Errorf("crash-free %q = %+v, want active %d crashed %d", c.Version, c, w[0], w[1])
		}
	}
}

// The catalog lists (app, version) pairs per layer, never the
// all-versions series.
func testCatalog(t *testing.T, st serving.Store) {
	day := time.Date(2026, 11, 3, 0, 0, 0, 0, time.UTC).UnixMilli()
	row := func(app, v string) aggregate.CountRow {
		return aggregate.CountRow{Kind: event.AppLoad, AppID: app, AppVersion: v, Gran: aggregate.Day, Bucket: day, Count: 1}
	}
	write(t, st, serving.Batch, []aggregate.CountRow{row("old", "1.0"), row("old", ""), row("old", "1.1")}, nil)
	write(t, st, serving.Speed, []aggregate.CountRow{row("new", "0.1"), row("new", ""), row("old", "1.2")}, nil)
	from, to := time.UnixMilli(day).UTC().AddDate(0, 0, -40), time.UnixMilli(day).UTC()
	for _, c := range []struct {
		layer serving.Layer
		want  []serving.AppVersion
	}{
		{serving.Batch, []serving.AppVersion{{AppID: "old", Version: "1.0"}, {AppID: "old", Version: "1.1"}}},
		{serving.Speed, []serving.AppVersion{{AppID: "new", Version: "0.1"}, {AppID: "old", Version: "1.2"}}},
	} {
		got, err := st.Catalog(ctx, c.layer, event.AppLoad, from, to)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, c.want) {
			t.Errorf("%v catalog = %v, want %v", c.layer, got, c.want)
		}
	}
	if got, _ := st.Catalog(ctx, serving.Batch, event.AppLoad, from.AddDate(-1, 0, 0), from.AddDate(0, -1, 0)); len(got) != 0 {
		t.Errorf("catalog of other months = %v", got)
	}
	apps, err := (&serving.Querier{Store: st}).Apps(ctx, time.UnixMilli(day))
	if err != nil {
		t.Fatal(err)
	}
	want := []serving.AppInfo{
		{AppID: "new", Versions: []string{"0.1"}, Layers: []serving.Layer{serving.Speed}},
		{AppID: "old", Versions: []string{"1.0", "1.1", "1.2"}, Layers: []serving.Layer{serving.Batch, serving.Speed}},
	}
	if !reflect.DeepEqual(apps, want) {
		t.Errorf("apps = %+v, want %+v", apps, want)
	}
	// No batch run has succeeded, so the speed layer answers for every
	// day: its apps of 40 days ago are known (a replay of history into a
	// store the batch has not run on yet).
	if apps, err = (&serving.Querier{Store: st}).Apps(ctx, time.UnixMilli(day).AddDate(0, 0, 40)); err != nil || !reflect.DeepEqual(apps, want) {
		t.Errorf("apps 40 days on, with no batch run = %+v, %v; want %+v", apps, err, want)
	}
}

// Strings that would break formatted CQL or SQL are stored as data.
func testHostileStrings(t *testing.T, st serving.Store) {
	app := `x'); DROP TABLE batch_counts; --"é`
	write(t, st, serving.Batch, countRows(app, `1.0' OR '1'='1`, 2, 1), nil)
	if got := points(t, st, serving.Batch, app, `1.0' OR '1'='1`, t0, t0.Add(time.Hour)); len(got) != 2 {
		t.Errorf("hostile strings: %v", got)
	}
	if got := points(t, st, serving.Batch, app, "1.0", t0, t0.Add(time.Hour)); len(got) != 0 {
		t.Errorf("injection matched: %v", got)
	}
}

// Speed panes may arrive out of order: a smaller total never overwrites a
// larger one, for counts and for sketches.
func testSpeedMonotone(t *testing.T, st serving.Store) {
	row := func(n int64) aggregate.CountRow {
		return aggregate.CountRow{Kind: event.AppLoad, AppID: "live", Gran: aggregate.Minute, Bucket: t0.UnixMilli(), Count: n}
	}
	small, _ := sketchOf("a")
	big, _ := sketchOf("a", "b", "c")
	user := func(sk []byte, events int64) aggregate.UserRow {
		return aggregate.UserRow{Kind: event.AppLoad, AppID: "live", Day: t0.Truncate(24 * time.Hour).UnixMilli(), Sketch: sk, Estimate: events, Events: events}
	}
	write(t, st, serving.Speed, []aggregate.CountRow{row(10)}, []aggregate.UserRow{user(big, 3)})
	write(t, st, serving.Speed, []aggregate.CountRow{row(7)}, []aggregate.UserRow{user(small, 1)}) // a stale pane
	pts, err := st.Counts(ctx, serving.Speed, serving.CountQuery{Kind: event.AppLoad, AppID: "live", Gran: aggregate.Minute, From: t0, To: t0})
	if err != nil || len(pts) != 1 || pts[0].Count != 10 {
		t.Errorf("after a stale pane: %v, %v (want 10)", pts, err)
	}
	users, _ := st.Users(ctx, serving.Speed, serving.UserQuery{Kind: event.AppLoad, AppID: "live", From: t0.Truncate(24 * time.Hour), To: t0.Truncate(24 * time.Hour)})
	if len(users) != 1 || !bytes.Equal(users[0].Sketch, big) || users[0].Events != 3 {
		t.Errorf("stale sketch overwrote the newer one: %+v", users)
	}
	write(t, st, serving.Speed, []aggregate.CountRow{row(12)}, nil)
	pts, _ = st.Counts(ctx, serving.Speed, serving.CountQuery{Kind: event.AppLoad, AppID: "live", Gran: aggregate.Minute, From: t0, To: t0})
	if len(pts) != 1 || pts[0].Count != 12 {
		t.Errorf("a newer total was not written: %v", pts)
	}
}

// Late rows are summed over their sources; rewriting a source is idempotent.
func testLate(t *testing.T, st serving.Store) {
	late := func(source string, n int64) aggregate.LateRow {
		return aggregate.LateRow{Kind: event.Crash, AppID: "a", Gran: aggregate.Minute, Bucket: t0.UnixMilli(), Source: source, Count: n}
	}
	w, err := st.NewWriter(ctx, serving.Speed)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.WriteLate(ctx, []aggregate.LateRow{late("pane/1/1", 3), late("pane/1/2", 4), late("lumen.crash/0/77", 1), late("pane/1/1", 3)}); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(ctx); err != nil {
		t.Fatal(err)
	}
	pts, err := st.Late(ctx, serving.CountQuery{Kind: event.Crash, AppID: "a", Gran: aggregate.Minute, From: t0.Add(-time.Hour), To: t0.Add(time.Hour)})
	if err != nil || len(pts) != 1 || pts[0].Count != 8 || !pts[0].Bucket.Equal(t0) {
		t.Errorf("late = %v, %v (want 8 at %v)", pts, err, t0)
	}
	bw, _ := st.NewWriter(ctx, serving.Batch)
	if err := bw.WriteLate(ctx, []aggregate.LateRow{late("x", 1)}); err == nil {
		t.Error("batch writer accepted late rows")
	}
}

// DayTotals sums batch day rows of one kind in the range, and nothing else:
// not hours, not other kinds or days, not the speed layer.
func testDayTotals(t *testing.T, st serving.Store) {
	day := func(i int) time.Time { return time.Date(2026, 10, 29, 0, 0, 0, 0, time.UTC).AddDate(0, 0, i) }
	var rows []aggregate.CountRow
	want := map[serving.AppVersion]int64{}
	add := func(k event.Kind, g aggregate.Granularity, app, version string, d, n int, counted bool) {
		rows = append(rows, aggregate.CountRow{Kind: k, AppID: app, AppVersion: version, Gran: g, Bucket: day(d).UnixMilli(), Count: int64(n)})
		if counted {
			want[serving.AppVersion{AppID: app, Version: version}] += int64(n)
		}
	}
	for d := 0; d < 6; d++ { // 10-29 .. 11-03; the range is 10-30 .. 11-02
		in := d >= 1 && d <= 4
		add(event.Crash, aggregate.Day, "a", "1.0", d, 10+d, in)
		add(event.Crash, aggregate.Day, "a", aggregate.AllVersions, d, 20+d, in)
		add(event.Crash, aggregate.Day, "b", "2.0", d, 100*(d+1), in)
		add(event.Crash, aggregate.Hour, "a", "1.0", d, 1000, false)
		add(event.AppLoad, aggregate.Day, "a", "1.0", d, 5000, false)
	}
	write(t, st, serving.Batch, rows, nil)
	write(t, st, serving.Speed, []aggregate.CountRow{{Kind: event.Crash, AppID: "c", AppVersion: "1", Gran: aggregate.Day, Bucket: day(2).UnixMilli(), Count: 7}}, nil, serving.WithRun("r"))
	got, err := st.DayTotals(ctx, event.Crash, day(1), day(4))
	if err != nil {
		t.Fatal(err)
	}
	var wantRows []serving.AppTotal
	for _, av := range []serving.AppVersion{{AppID: "a", Version: aggregate.AllVersions}, {AppID: "a", Version: "1.0"}, {AppID: "b", Version: "2.0"}} {
		wantRows = append(wantRows, serving.AppTotal{AppVersion: av, Count: want[av]})
	}
	if !reflect.DeepEqual(got, wantRows) {
		t.Errorf("DayTotals = %v, want %v", got, wantRows)
	}
}
