package storetest

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	"github.com/lumenhq/lumen/aggregate"
	"github.com/lumenhq/lumen/event"
	"github.com/lumenhq/lumen/serving"
)

// The speed layer's runs: how restarted runs add up, and how a run that a
// replay takes over leaves the reads.

// A restarted stream is a new run: its rows add to the previous run's
// (counts sum, sketches merge), while within a run the largest total wins.
func testSpeedRuns(t *testing.T, st serving.Store) {
	day := t0.Truncate(24 * time.Hour)
	writeRun := func(run string, n int64, devices ...string) {
		t.Helper()
		writeSpeedRun(t, st, "r", run, n, nil, devices...)
	}
	writeRun("run-1", 10, "a", "b")
	writeRun("run-2", 4, "b", "c")
	writeRun("run-2", 3, "b") // a stale total of run 2
	pts, err := st.Counts(ctx, serving.Speed, serving.CountQuery{Kind: event.Crash, AppID: "r", Gran: aggregate.Hour, From: t0, To: t0})
	if err != nil || len(pts) != 1 || pts[0].Count != 14 {
		t.Errorf("counts over two runs = %v, %v (want 10 + 4)", pts, err)
	}
	users, err := st.Users(ctx, serving.Speed, serving.UserQuery{Kind: event.Crash, AppID: "r", From: day, To: day})
	if err != nil || len(users) != 1 || users[0].Estimate != 3 || users[0].Events != 4 {
		t.Fatalf("sketches over two runs = %+v, %v (want one day, 3 devices, 4 events)", users, err)
	}
	want, _ := sketchOf("a", "b", "c")
	if !bytes.Equal(users[0].Sketch, want) {
		t.Error("the merged sketch differs from the sketch of the union")
	}
}

// Stream runs come back as recorded, oldest first, with a drained run's
// end (empty or not) told apart from an unknown one.
func testStreamRuns(t *testing.T, st serving.Store) {
	started := t0.Add(time.Hour)
	runs := []serving.StreamRun{
		{ID: "r1", Started: t0, Start: map[string]int64{"lumen.crash/0": 5, "lumen.crash/1": 0}},
		{ID: "r2", Started: started, Start: map[string]int64{"lumen.crash/0": 9}, End: map[string]int64{"lumen.crash/0": 12}, SupersededBy: "r3"},
		{ID: "r3", Started: started.Add(time.Minute), Start: map[string]int64{}, End: map[string]int64{}},
	}
	for _, r := range []serving.StreamRun{runs[2], runs[0], runs[1]} {
		if err := st.RecordStreamRun(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	got, err := st.StreamRuns(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(runs) {
		t.Fatalf("%d runs, want %d: %+v", len(got), len(runs), got)
	}
	for i, r := range runs {
		g := got[i]
		if g.ID != r.ID || !g.Started.Equal(r.Started) || g.SupersededBy != r.SupersededBy || (g.End == nil) != (r.End == nil) ||
			fmt.Sprint(g.Start) != fmt.Sprint(r.Start) || fmt.Sprint(g.End) != fmt.Sprint(r.End) {
			t.Errorf("run %d = %+v, want %+v", i, g, r)
		}
	}
}

// Runs whose speed rows have all expired, by the store's own speed
// lifetime (7 days in both stores by default), are forgotten; the others,
// and the newest, stay. A second prune forgets nothing more.
func testPruneStreamRuns(t *testing.T, st serving.Store) {
	now := time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)
	day := 24 * time.Hour
	for _, r := range []serving.StreamRun{
		{ID: "month-old", Started: now.Add(-30 * day), Start: map[string]int64{}, End: map[string]int64{}, SupersededBy: "week-old"},
		{ID: "week-old", Started: now.Add(-10 * day), Start: map[string]int64{}},
		{ID: "yesterday", Started: now.Add(-day), Start: map[string]int64{}, End: map[string]int64{}},
		{ID: "today", Started: now.Add(-time.Hour), Start: map[string]int64{}},
	} {
		if err := st.RecordStreamRun(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	n, err := st.PruneStreamRuns(ctx, now)
	if err != nil || n != 1 {
		t.Fatalf("PruneStreamRuns = %d, %v; want 1 (month-old, whose successor started 10 days ago)", n, err)
	}
	runs, err := st.StreamRuns(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, r := range runs {
		ids = append(ids, r.ID)
	}
	if want := []string{"week-old", "yesterday", "today"}; fmt.Sprint(ids) != fmt.Sprint(want) {
		t.Errorf("runs after the prune %v, want %v", ids, want)
	}
	if n, err := st.PruneStreamRuns(ctx, now); err != nil || n != 0 {
		t.Errorf("a second prune: %d, %v; want 0", n, err)
	}
}

// A superseded run's counts, sketches and late rows leave the speed
// reads; the runs that are live still add up.
func testSupersededRuns(t *testing.T, st serving.Store) {
	day := t0.Truncate(24 * time.Hour)
	writeRun := func(run string, n int64, devices ...string) {
		t.Helper()
		// The stream's late writer names the run in each source.
		writeSpeedRun(t, st, "s", run, n, []aggregate.LateRow{{Kind: event.Crash, AppID: "s", Gran: aggregate.Hour,
			Bucket: t0.UnixMilli(), Source: run + "|pane/1/1", Count: n * 10}}, devices...)
		if err := st.RecordStreamRun(ctx, serving.StreamRun{ID: run, Started: t0, Start: map[string]int64{}}); err != nil {
			t.Fatal(err)
		}
	}
	read := func() (count, devices, late int64) {
		t.Helper()
		q := serving.CountQuery{Kind: event.Crash, AppID: "s", Gran: aggregate.Hour, From: t0, To: t0}
		pts, err := st.Counts(ctx, serving.Speed, q)
		if err != nil || len(pts) != 1 {
			t.Fatalf("counts %v, %v", pts, err)
		}
		users, err := st.Users(ctx, serving.Speed, serving.UserQuery{Kind: event.Crash, AppID: "s", From: day, To: day})
		if err != nil || len(users) != 1 {
			t.Fatalf("users %v, %v", users, err)
		}
		lp, err := st.Late(ctx, q)
		if err != nil || len(lp) != 1 {
			t.Fatalf("late %v, %v", lp, err)
		}
		return pts[0].Count, users[0].Estimate, lp[0].Count
	}
	writeRun("old", 10, "a", "b")
	writeRun("kept", 3, "z")
	writeRun("replay", 12, "a", "b", "c")
	if c, d, l := read(); c != 25 || d != 4 || l != 250 {
		t.Errorf("three live runs: count %d, devices %d, late %d; want 25, 4, 250", c, d, l)
	}
	if err := st.RecordStreamRun(ctx, serving.StreamRun{ID: "old", Started: t0, Start: map[string]int64{}, SupersededBy: "replay"}); err != nil {
		t.Fatal(err)
	}
	if c, d, l := read(); c != 15 || d != 4 || l != 150 {
		t.Errorf("old superseded by replay: count %d, devices %d, late %d; want 15, 4, 150", c, d, l)
	}
}

// writeSpeedRun writes, as stream run run, app's crash count n in t0's
// hour, the sketch of devices for t0's day, and late.
func writeSpeedRun(t *testing.T, st serving.Store, app, run string, n int64, late []aggregate.LateRow, devices ...string) {
	t.Helper()
	w, err := st.NewWriter(ctx, serving.Speed, serving.WithRun(run))
	if err != nil {
		t.Fatal(err)
	}
	sk, _ := sketchOf(devices...)
	day := t0.Truncate(24 * time.Hour)
	if err := w.WriteCounts(ctx, []aggregate.CountRow{{Kind: event.Crash, AppID: app, Gran: aggregate.Hour, Bucket: t0.UnixMilli(), Count: n}}); err != nil {
		t.Fatal(err)
	}
	if err := w.WriteUsers(ctx, []aggregate.UserRow{{Kind: event.Crash, AppID: app, Day: day.UnixMilli(), Sketch: sk, Estimate: int64(len(devices)), Events: int64(len(devices))}}); err != nil {
		t.Fatal(err)
	}
	if len(late) > 0 {
		if err := w.WriteLate(ctx, late); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(ctx); err != nil {
		t.Fatal(err)
	}
}
