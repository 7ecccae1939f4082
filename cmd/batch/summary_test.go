package main

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lumenhq/lumen/aggregate"
	"github.com/lumenhq/lumen/event"
	"github.com/lumenhq/lumen/pipelines"
	"github.com/lumenhq/lumen/serving"
)

// The summary says when rollups were not reused, and why.
func TestSummaryRollupsNotReused(t *testing.T) {
	ctx := context.Background()
	st, err := serving.Open(ctx, "sqlite:"+filepath.Join(t.TempDir(), "s.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	asOf := time.Date(2026, 11, 20, 0, 0, 0, 0, time.UTC)
	for _, k := range event.Kinds {
		if err := st.RecordRun(ctx, serving.BatchRun{Kind: k, AsOf: asOf, WindowStart: asOf.AddDate(0, 0, -29),
			Started: asOf, Finished: asOf, Status: serving.RunSucceeded,
			Counters: map[string]int64{"read.partitions_from_raw": 2, "read.partitions_unversioned": 2, "read.rollups_skipped": 1}}); err != nil {
			t.Fatal(err)
		}
	}
	cfg := pipelines.BatchConfig{Input: "gs://bucket/root", AsOf: asOf, Store: "sqlite:x"}
	cfg.EnsureDefaults()
	var out bytes.Buffer
	if err := printSummary(ctx, &out, st, cfg, time.Second); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"rollups  not reused: gs:// lists no object versions (6 partitions read from raw, and not rolled up)",
		"rollups  not written for 3 partitions with files that could not be read",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("the summary does not say %q:\n%s", want, out.String())
		}
	}
}

// countingStore counts the reads the summary makes.
type countingStore struct {
	serving.Store
	reads int
}

func (s *countingStore) Counts(ctx context.Context, l serving.Layer, q serving.CountQuery) ([]serving.CountPoint, error) {
	s.reads++
	return s.Store.Counts(ctx, l, q)
}

func (s *countingStore) Users(ctx context.Context, l serving.Layer, q serving.UserQuery) ([]aggregate.UserRow, error) {
	s.reads++
	return s.Store.Users(ctx, l, q)
}

func (s *countingStore) Late(ctx context.Context, q serving.CountQuery) ([]serving.CountPoint, error) {
	s.reads++
	return s.Store.Late(ctx, q)
}

func (s *countingStore) Catalog(ctx context.Context, l serving.Layer, k event.Kind, from, to time.Time) ([]serving.AppVersion, error) {
	s.reads++
	return s.Store.Catalog(ctx, l, k, from, to)
}

func (s *countingStore) DayTotals(ctx context.Context, k event.Kind, from, to time.Time) ([]serving.AppTotal, error) {
	s.reads++
	return s.Store.DayTotals(ctx, k, from, to)
}

// The summary's store reads do not grow with the number of apps, and it
// still ranks them right: app i has i×7 loads, so the top ten are the ten
// highest i, most first.
func TestSummaryReadsAreBounded(t *testing.T) {
	ctx := context.Background()
	asOf := time.Date(2026, 11, 20, 0, 0, 0, 0, time.UTC)
	reads := map[int]int{}
	for _, apps := range []int{30, 300} {
		st, err := serving.Open(ctx, "sqlite:"+filepath.Join(t.TempDir(), "s.db"))
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		w, err := st.NewWriter(ctx, serving.Batch)
		if err != nil {
			t.Fatal(err)
		}
		var rows []aggregate.CountRow
		for i := 1; i <= apps; i++ {
			app := fmt.Sprintf("app-%03d", i)
			for _, v := range []string{aggregate.AllVersions, "1.0", "2.0"} {
				rows = append(rows, aggregate.CountRow{Kind: event.AppLoad, AppID: app, AppVersion: v, Gran: aggregate.Day, Bucket: asOf.UnixMilli(), Count: int64(7 * i)})
			}
		}
		if err := w.WriteCounts(ctx, rows); err != nil {
			t.Fatal(err)
		}
		if err := w.Close(ctx); err != nil {
			t.Fatal(err)
		}
		for _, k := range event.Kinds {
			if err := st.RecordRun(ctx, serving.BatchRun{Kind: k, AsOf: asOf, WindowStart: asOf.AddDate(0, 0, -29),
				Started: asOf, Finished: asOf.Add(25 * time.Hour), Status: serving.RunSucceeded}); err != nil {
				t.Fatal(err)
			}
		}
		cs := &countingStore{Store: st}
		cfg := pipelines.BatchConfig{Input: "x", AsOf: asOf, Store: "sqlite:x"}
		cfg.EnsureDefaults()
		var out bytes.Buffer
		if err := printSummary(ctx, &out, cs, cfg, time.Second); err != nil {
			t.Fatal(err)
		}
		reads[apps] = cs.reads
		var top []string
		for _, line := range strings.Split(out.String(), "\n") {
			if line = strings.TrimSpace(line); strings.HasPrefix(line, "app-") {
				top = append(top, strings.Fields(line)[0]+" "+strings.Fields(line)[1])
			}
		}
		var want []string
		for i := apps; i > apps-10; i-- {
			want = append(want, fmt.Sprintf("app-%03d %s", i, num(int64(7*i))))
		}
		if !slices.Equal(top, want) {
			t.Errorf("%d apps: top apps = %q, want %q\n%s", apps, top, want, out.String())
		}
	}
	if reads[300] != reads[30] {
		t.Errorf("the summary read the store %d times for 30 apps and %d times for 300", reads[30], reads[300])
	}
	t.Logf("store reads: %v", reads)
}

// The summary says how the run used the window state, and how many rows
// it left as they were: per kind counters (rows.unchanged, 1,200 each),
// summed over the kinds.
func TestSummaryState(t *testing.T) {
	ctx := context.Background()
	asOf := time.Date(2026, 11, 20, 0, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		counters map[string]int64
		note     string
		want     []string
	}{
		{map[string]int64{"state.used": 1, "state.written": 1, "state.bytes_read": 3 << 20, "read.partitions_from_state": 29, "rows.unchanged": 1200, "run.count_rows": 40, "run.user_rows": 4}, "",
			[]string{"87 unchanged partitions from the window state", "40 count rows and 4 daily sketch rows to sqlite:x: the rows that changed (3,600 left as they were)",
				"state    used: the last run's window state (3.0 MiB), extended with the partitions that changed since; a new state written for the next run"}},
		{map[string]int64{"state.rebuilt": 1, "state.rejected": 1, "state.written": 1}, "state rejected (damaged)",
			[]string{"state    rejected (see the status's note)", "(state rejected (damaged))"}},
		{map[string]int64{"state.full": 1}, "",
			[]string{"state    full: every partition read from raw, every row written; no state written"}},
	} {
		st, err := serving.Open(ctx, "sqlite:"+filepath.Join(t.TempDir(), "s.db"))
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range event.Kinds {
			if err := st.RecordRun(ctx, serving.BatchRun{Kind: k, AsOf: asOf, WindowStart: asOf.AddDate(0, 0, -29),
				Started: asOf, Finished: asOf, Status: serving.RunSucceeded, Note: c.note, Counters: c.counters}); err != nil {
				t.Fatal(err)
			}
		}
		cfg := pipelines.BatchConfig{Input: "/in", AsOf: asOf, Store: "sqlite:x"}
		cfg.EnsureDefaults()
		var out bytes.Buffer
		if err := printSummary(ctx, &out, st, cfg, time.Second); err != nil {
			t.Fatal(err)
		}
		st.Close()
		for _, want := range c.want {
			if !strings.Contains(out.String(), want) {
				t.Errorf("the summary does not say %q:\n%s", want, out.String())
			}
		}
	}
}
