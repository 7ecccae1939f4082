package sqlitestore_test

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/lumenhq/lumen/aggregate"
	"github.com/lumenhq/lumen/event"
	"github.com/lumenhq/lumen/serving"
	"github.com/lumenhq/lumen/serving/storetest"
)

func TestSQLiteConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) serving.Store {
		st, err := serving.Open(context.Background(), "sqlite:"+filepath.Join(t.TempDir(), "s.db"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		return st
	})
}

func TestOpenErrors(t *testing.T) {
	for _, url := range []string{"lumen.db", "postgres://x", "sqlite:"} {
		if _, err := serving.Open(context.Background(), url); err == nil {
			t.Errorf("Open(%q) succeeded", url)
		}
	}
}

func TestRedact(t *testing.T) {
	got := serving.Redact("cassandra://bob:hunter2@h1,h2:9042/lumen?rate=5&password=hunter2&tls=true")
	if want := "cassandra://REDACTED@h1,h2:9042/lumen?rate=5&password=REDACTED&tls=true"; got != want {
		t.Errorf("Redact = %q, want %q", got, want)
	}
}

// A version-2 file (speed rows not keyed by run) opens: its speed tables
// are recreated with the run column, and its batch rows are kept.
func TestSQLiteMigratesFromVersion2(t *testing.T) {
	path := filepath.Join(t.TempDir(), "v2.db")
	db, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	for _, stmt := range []string{
		`CREATE TABLE schema_version (version INTEGER NOT NULL PRIMARY KEY, applied INTEGER NOT NULL)`,
		`INSERT INTO schema_version VALUES (1, 0), (2, 0)`,
		`CREATE TABLE batch_counts (kind TEXT NOT NULL, app_id TEXT NOT NULL, granularity TEXT NOT NULL, period TEXT NOT NULL,
			bucket INTEGER NOT NULL, app_version TEXT NOT NULL, count INTEGER NOT NULL,
			PRIMARY KEY (kind, app_id, granularity, period, bucket, app_version)) WITHOUT ROWID`,
		`INSERT INTO batch_counts VALUES ('crash', 'a', 'day', '2026-11', 1795651200000, '', 7)`,
		`CREATE TABLE speed_counts (kind TEXT NOT NULL, app_id TEXT NOT NULL, granularity TEXT NOT NULL, period TEXT NOT NULL,
			bucket INTEGER NOT NULL, app_version TEXT NOT NULL, count INTEGER NOT NULL, expires INTEGER NOT NULL,
			PRIMARY KEY (kind, app_id, granularity, period, bucket, app_version)) WITHOUT ROWID`,
	} {
		if _, err := db.Exec(stmt); err != nil {
			t.Fatal(err)
		}
	}
	db.Close()
	ctx := context.Background()
	st, err := serving.Open(ctx, "sqlite:"+path)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	day := time.UnixMilli(1795651200000).UTC()
	pts, err := st.Counts(ctx, serving.Batch, serving.CountQuery{Kind: event.Crash, AppID: "a", Gran: aggregate.Day, From: day, To: day})
	if err != nil || len(pts) != 1 || pts[0].Count != 7 {
		t.Errorf("batch rows after migration: %v, %v", pts, err)
	}
	w, err := st.NewWriter(ctx, serving.Speed, serving.WithRun("r"))
	if err != nil {
		t.Fatal(err)
	}
	if err := w.WriteCounts(ctx, []aggregate.CountRow{{Kind: event.Crash, AppID: "a", Gran: aggregate.Day, Bucket: day.UnixMilli(), Count: 3}}); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(ctx); err != nil {
		t.Fatalf("speed write after migration: %v", err)
	}
}

// A version-3 file (batch rows without a stamp, runs without complete_at)
// opens: its rows count as older than any run, and its successes keep the
// watermark they set.
func TestSQLiteMigratesFromVersion3(t *testing.T) {
	path := filepath.Join(t.TempDir(), "v3.db")
	db, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	asOf := time.Date(2026, 11, 24, 0, 0, 0, 0, time.UTC)
	finished := asOf.Add(25 * time.Hour)
	for _, stmt := range []string{
		`CREATE TABLE schema_version (version INTEGER NOT NULL PRIMARY KEY, applied INTEGER NOT NULL)`,
		`INSERT INTO schema_version VALUES (1, 0), (2, 0), (3, 0)`,
		`CREATE TABLE batch_counts (kind TEXT NOT NULL, app_id TEXT NOT NULL, granularity TEXT NOT NULL, period TEXT NOT NULL,
			bucket INTEGER NOT NULL, app_version TEXT NOT NULL, count INTEGER NOT NULL,
			PRIMARY KEY (kind, app_id, granularity, period, bucket, app_version)) WITHOUT ROWID`,
		`INSERT INTO batch_counts VALUES ('crash', 'a', 'day', '2026-11', 1795651200000, '', 7)`,
		`CREATE TABLE batch_runs (kind TEXT NOT NULL, as_of TEXT NOT NULL, window_start TEXT NOT NULL, started INTEGER NOT NULL,
			finished INTEGER NOT NULL, status TEXT NOT NULL, counters TEXT NOT NULL, PRIMARY KEY (kind, as_of)) WITHOUT ROWID`,
		`INSERT INTO batch_runs VALUES ('crash', '2026-11-24', '2026-10-26', 0, ` + fmt.Sprint(finished.UnixMilli()) + `, 'succeeded', '{}')`,
	} {
		if _, err := db.Exec(stmt); err != nil {
			t.Fatal(err)
		}
	}
	db.Close()
	ctx := context.Background()
	st, err := serving.Open(ctx, "sqlite:"+path)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	runs, err := st.Runs(ctx, event.Crash)
	if err != nil || len(runs) != 1 || !runs[0].CompleteAt.Equal(finished) {
		t.Fatalf("runs after migration: %+v, %v; want one complete at %v", runs, err, finished)
	}
	if w := serving.BatchCompleteOf(runs); !w.Day.Equal(asOf) {
		t.Errorf("watermark after migration %v, want %v", w.Day, asOf)
	}
	day := time.UnixMilli(1795651200000).UTC()
	if n, err := st.PruneBatch(ctx, day, day, serving.BatchStamp(asOf, finished)); err != nil || n != 1 {
		t.Errorf("prune of the unstamped row: %d, %v; want 1 row deleted", n, err)
	}
}
