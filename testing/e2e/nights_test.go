package e2e

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/lumenhq/lumen/event"
	"github.com/lumenhq/lumen/gen"
	"github.com/lumenhq/lumen/io/rollup"
	"github.com/lumenhq/lumen/io/winstate"
	"github.com/lumenhq/lumen/pipelines"
	"github.com/lumenhq/lumen/testing/s3test"
)

// nightsConfig is 40 arrival days with late, too-old, clock-skewed and
// invalid events.
var nightsConfig = gen.Config{Seed: 1213, Start: time.Date(2026, 9, 1, 0, 0, 0, 0, time.UTC), Days: 40, WindowDays: 30,
	Events: 80_000, Apps: 8, OfflineShare: 0.08, SkewShare: 0.02, TooOld: 200, InvalidShare: 0.001, FilesPerHour: 2}

// TestTenNights is DESIGN §3's incremental identity in operation: the
// nights D..D+9, each bringing a new arrival day (with late events for
// older days), run incrementally from the window state. One night a file
// of an old arrival partition changes; one night the state is deleted;
// one night a rollup is garbled while an older partition gets a file
// (so that the garbled rollup's partition is read to recompute days).
//
// After every night the store equals what a --full run of that day writes
// into an empty store: every count, every sketch's bytes and events, the
// data counters, no row more or less. And the rows the night wrote are
// exactly those whose value differs from the night before, and the rows it
// deleted those that went, both computed from the two --full results.
// On local files and SQLite, on moto and SQLite, and on local files and
// Cassandra.
func TestTenNights(t *testing.T) {
	if testing.Short() {
		t.Skip("-short")
	}
	src, _ := dataset(t, "nights", nightsConfig)
	for _, c := range []struct {
		name  string
		input func(t *testing.T) (string, *s3test.Counter)
		store func(t *testing.T) (incremental, full string)
	}{
		{"local", func(t *testing.T) (string, *s3test.Counter) { return t.TempDir(), nil }, sqliteStores},
		{"moto", s3Input(s3test.Moto), sqliteStores},
		{"cassandra", func(t *testing.T) (string, *s3test.Counter) { return t.TempDir(), nil }, cassandraStores},
	} {
		t.Run(c.name, func(t *testing.T) {
			root, _ := c.input(t)
			inc, _ := c.store(t)
			tenNights(t, src, root, inc)
		})
	}
}

func tenNights(t *testing.T, src, root, inc string) {
	ctx := context.Background()
	first := nightsConfig.Start.AddDate(0, 0, 30) // a full window behind it
	day := func(d time.Time) string { return "/dt=" + d.Format(time.DateOnly) + "/" }
	copyRaw(t, src, root, func(rel string) bool {
		for d := nightsConfig.Start; !d.After(first); d = d.AddDate(0, 0, 1) {
			if strings.Contains(rel, day(d)) {
				return true
			}
		}
		return false
	})
	var prevFull map[string]string
	for i := range 10 {
		night := first.AddDate(0, 0, i)
		if i > 0 {
			copyRaw(t, src, root, func(rel string) bool { return strings.Contains(rel, day(night)) })
		}
		what := "a new arrival day"
		switch i {
		case 3:
			rewriteShorter(t, listRaw(t, root, night.AddDate(0, 0, -10))[0])
			what = "and a file of D-10 cut short"
		case 5:
			states, err := winstate.Find(ctx, winstate.Root(root, inc), night.AddDate(0, 0, -60), night)
			if err != nil || len(states) == 0 {
				t.Fatalf("night %d: no state to delete (%v)", i, err)
			}
			for _, p := range states {
				if err := winstate.Remove(ctx, p); err != nil {
					t.Fatal(err)
				}
			}
			what = "and the state deleted"
		case 7:
			// A late file for D-6 makes the days D-6 touches recomputed, and
			// D-5's partition, which touches them too, is read for them:
			// from its rollup, which is garbled.
			garbled := garbleRollup(t, root, night.AddDate(0, 0, -5))
			added := listRaw(t, root, night.AddDate(0, 0, -6))[0]
			copyFile(t, added, strings.TrimSuffix(added, ".avro")+"-late.avro")
			what = "and a file added to D-6, and D-5's rollup garbled: " + garbled
		}
		runBatch(t, "prism", pipelines.BatchConfig{Input: root, AsOf: night, Store: inc, DeadLetterRoot: t.TempDir()})
		incCounters := runCounters(t, openStore(t, inc), night)
		full := sqliteURL(t) // an empty store
		runBatch(t, "prism", pipelines.BatchConfig{Input: root, AsOf: night, Store: full, DeadLetterRoot: t.TempDir(), Full: true})
		from := night.AddDate(0, 0, -29)
		got, want := snapshot(t, openStore(t, inc), from, night), snapshot(t, openStore(t, full), from, night)
		diffSnapshots(t, fmt.Sprintf("night %d, %s: incremental vs --full", i, night.Format(time.DateOnly)), got, want)
		fullCounters := runCounters(t, openStore(t, full), night)
		for _, k := range event.Kinds {
			for name, n := range fullCounters[k] {
				if isDataCounter(name) && incCounters[k][name] != n {
					t.Errorf("night %d: %s counter %s: incremental %d, --full %d", i, k, name, incCounters[k][name], n)
				}
			}
		}
		c := incCounters[event.AppLoad]
		mode := map[bool]string{true: "used", false: "rebuilt"}[c["state.used"] == 1]
		if i == 0 || i == 5 {
			if c["state.rebuilt"] != 1 {
				t.Errorf("night %d: state %v, want rebuilt", i, stateOf(c))
			}
		} else if c["state.used"] != 1 {
			t.Errorf("night %d: state %v, want used", i, stateOf(c))
		}
		written, deleted := c["run.count_rows"]+c["run.user_rows"], c["run.rows_deleted"]
		if mode == "used" {
			changed, gone := rowChanges(prevFull, want)
			if written != changed || deleted != gone {
				t.Errorf("night %d: wrote %d rows and deleted %d; the --full results differ from the night before in %d rows, %d gone",
					i, written, deleted, changed, gone)
			}
		}
		if i == 7 && sumKinds(incCounters, "read.rollups_rejected") != 1 {
			t.Errorf("night 7: %d rollups rejected, want the garbled one", sumKinds(incCounters, "read.rollups_rejected"))
		}
		t.Logf("night %d, %s (%s): state %s; %d of %d rows written, %d deleted; = --full", i, night.Format(time.DateOnly), what, mode,
			written, len(want), deleted)
		prevFull = want
	}
}

// rowChanges are the rows of cur that are new or differ from prev, and
// the rows of prev inside cur's window (its first day and on) that cur
// lacks.
func rowChanges(prev, cur map[string]string) (changed, gone int64) {
	for k, v := range cur {
		if prev[k] != v {
			changed++
		}
	}
	first := ""
	for k := range cur {
		if d := rowDay(k); first == "" || d < first {
			first = d
		}
	}
	for k := range prev {
		if _, ok := cur[k]; !ok && rowDay(k) >= first {
			gone++
		}
	}
	return changed, gone
}

// rowDay is the day (YYYY-MM-DD) of a snapshot key.
func rowDay(key string) string {
	i := strings.LastIndex(key, "/")
	return key[i+1 : i+11]
}

func stateOf(c map[string]int64) []string {
	var out []string
	for k := range c {
		if strings.HasPrefix(k, "state.") {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}

func sumKinds(c map[event.Kind]map[string]int64, name string) (n int64) {
	for _, m := range c {
		n += m[name]
	}
	return n
}

// garbleRollup garbles one rollup of an arrival day under root and
// returns its path.
func garbleRollup(t *testing.T, root string, day time.Time) string {
	t.Helper()
	path := firstRollup(t, root, day)
	damage(t, path, func(b []byte) []byte { b[len(b)/2] ^= 0x5a; b[len(b)/2+1] ^= 0xa5; return b })
	return path
}

// firstRollup is the first (by path) rollup of an arrival day under root.
func firstRollup(t *testing.T, root string, day time.Time) string {
	t.Helper()
	rollups, err := rollup.List(context.Background(), root, day, day, 4)
	if err != nil {
		t.Fatal(err)
	}
	var ps []string
	for _, p := range rollups {
		ps = append(ps, p...)
	}
	if len(ps) == 0 {
		t.Fatalf("no rollup of %s", day.Format(time.DateOnly))
	}
	sort.Strings(ps)
	return ps[0]
}
