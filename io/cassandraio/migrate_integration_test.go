package cassandraio_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/lumenhq/lumen/io/cassandraio"
	"github.com/lumenhq/lumen/testing/servicetest"
)

// Migration tests: a keyspace is laid out by hand as an older build left
// it, then EnsureSchema brings it to SchemaVersion. The old layouts are
// written out here, not derived from tableDDL, so a change to today's
// DDL cannot silently change what is being migrated from.

// schemaV1 is the layout of schema version 1: no events in the sketch
// tables, no speed_late, speed rows keyed by bucket/day alone.
var schemaV1 = []string{
	`CREATE TABLE %s.schema_version (
		component text PRIMARY KEY, version int, applied timestamp)`,
	`CREATE TABLE %s.batch_counts (
		kind text, app_id text, app_version text, granularity text, period text, bucket timestamp, count bigint,
		PRIMARY KEY ((kind, app_id, app_version, granularity, period), bucket))`,
	`CREATE TABLE %s.speed_counts (
		kind text, app_id text, app_version text, granularity text, period text, bucket timestamp, count bigint,
		PRIMARY KEY ((kind, app_id, app_version, granularity, period), bucket))`,
	`CREATE TABLE %s.batch_users (
		kind text, app_id text, app_version text, period text, day timestamp, sketch blob, estimate bigint,
		PRIMARY KEY ((kind, app_id, app_version, period), day))`,
	`CREATE TABLE %s.speed_users (
		kind text, app_id text, app_version text, period text, day timestamp, sketch blob, estimate bigint,
		PRIMARY KEY ((kind, app_id, app_version, period), day))`,
	`CREATE TABLE %s.app_index (
		layer text, kind text, period text, app_id text, app_version text,
		PRIMARY KEY ((layer, kind, period), app_id, app_version))`,
	`CREATE TABLE %s.batch_runs (
		kind text, as_of date, window_start date, started timestamp, finished timestamp, status text,
		counters map<text, bigint>,
		PRIMARY KEY ((kind), as_of)) WITH CLUSTERING ORDER BY (as_of DESC)`,
}

// schemaV2 is the layout of schema version 2: events in the sketch tables
// and speed_late, but speed rows still keyed by bucket/day alone (no run).
var schemaV2 = []string{
	`CREATE TABLE %s.schema_version (
		component text PRIMARY KEY, version int, applied timestamp)`,
	`CREATE TABLE %s.batch_counts (
		kind text, app_id text, app_version text, granularity text, period text, bucket timestamp, count bigint,
		PRIMARY KEY ((kind, app_id, app_version, granularity, period), bucket))`,
	`CREATE TABLE %s.speed_counts (
		kind text, app_id text, app_version text, granularity text, period text, bucket timestamp, count bigint,
		PRIMARY KEY ((kind, app_id, app_version, granularity, period), bucket))`,
	`CREATE TABLE %s.batch_users (
		kind text, app_id text, app_version text, period text, day timestamp, sketch blob, estimate bigint, events bigint,
		PRIMARY KEY ((kind, app_id, app_version, period), day))`,
	`CREATE TABLE %s.speed_users (
		kind text, app_id text, app_version text, period text, day timestamp, sketch blob, estimate bigint, events bigint,
		PRIMARY KEY ((kind, app_id, app_version, period), day))`,
	`CREATE TABLE %s.speed_late (
		kind text, app_id text, app_version text, granularity text, period text, bucket timestamp, source text, count bigint,
		PRIMARY KEY ((kind, app_id, app_version, granularity, period), bucket, source))`,
	`CREATE TABLE %s.app_index (
		layer text, kind text, period text, app_id text, app_version text,
		PRIMARY KEY ((layer, kind, period), app_id, app_version))`,
	`CREATE TABLE %s.batch_runs (
		kind text, as_of date, window_start date, started timestamp, finished timestamp, status text,
		counters map<text, bigint>,
		PRIMARY KEY ((kind), as_of)) WITH CLUSTERING ORDER BY (as_of DESC)`,
}

var (
	migBucket   = time.Date(2024, 3, 5, 14, 0, 0, 0, time.UTC)
	migDay      = time.Date(2024, 3, 5, 0, 0, 0, 0, time.UTC)
	migFinished = time.Date(2024, 3, 6, 0, 30, 0, 0, time.UTC)
)

// oldKeyspace connects without running EnsureSchema, creates a fresh
// keyspace (dropped when the test ends) laid out by ddl, records version,
// and writes one row to each of batch_counts, speed_counts and
// batch_users. extra statements (formatted with the keyspace) run last.
func oldKeyspace(t *testing.T, ddl []string, version int, extra ...string) (*cassandraio.Client, string) {
	t.Helper()
	c, ks := dial(t, "migrate", "")
	ctx := context.Background()
	t.Cleanup(func() { // runs before Close
		if err := c.Session().Query("DROP KEYSPACE IF EXISTS " + ks).Exec(); err != nil {
			t.Logf("drop keyspace %s: %v", ks, err)
		}
	})
	exec := func(stmt string, args ...any) {
		t.Helper()
		if err := c.Session().Query(stmt, args...).WithContext(ctx).Exec(); err != nil {
			t.Fatalf("%s: %v", strings.Join(strings.Fields(stmt), " "), err)
		}
	}
	exec(fmt.Sprintf("CREATE KEYSPACE %s WITH replication = {'class': 'SimpleStrategy', 'replication_factor': 1}", ks))
	for _, d := range ddl {
		exec(fmt.Sprintf(d, ks))
	}
	if err := c.Session().AwaitSchemaAgreement(ctx); err != nil {
		t.Fatal(err)
	}
	exec(fmt.Sprintf("INSERT INTO %s.schema_version (component, version, applied) VALUES (?, ?, ?)", ks), "lumen", version, time.Now())
	exec(fmt.Sprintf("INSERT INTO %s.batch_counts (kind, app_id, app_version, granularity, period, bucket, count) VALUES (?, ?, ?, ?, ?, ?, ?)", ks),
		"events", "app1", "1.0", "hour", "2024-03", migBucket, int64(42))
	exec(fmt.Sprintf("INSERT INTO %s.speed_counts (kind, app_id, app_version, granularity, period, bucket, count) VALUES (?, ?, ?, ?, ?, ?, ?)", ks),
		"events", "app1", "1.0", "hour", "2024-03", migBucket, int64(7))
	exec(fmt.Sprintf("INSERT INTO %s.batch_users (kind, app_id, app_version, period, day, sketch, estimate) VALUES (?, ?, ?, ?, ?, ?, ?)", ks),
		"users", "app1", "1.0", "2024-03", migDay, []byte{1, 2, 3}, int64(5))
	exec(fmt.Sprintf("INSERT INTO %s.batch_runs (kind, as_of, window_start, started, finished, status, counters) VALUES (?, ?, ?, ?, ?, ?, ?)", ks),
		"app_load", migDay, migDay, migFinished.Add(-time.Minute), migFinished, "succeeded", map[string]int64{"events": 1})
	for _, s := range extra {
		exec(fmt.Sprintf(s, ks))
	}
	if err := c.Session().AwaitSchemaAgreement(ctx); err != nil {
		t.Fatal(err)
	}
	return c, ks
}

type column struct {
	kind     string // partition_key, clustering, regular
	position int
}

func columns(t *testing.T, c *cassandraio.Client, ks, table string) map[string]column {
	t.Helper()
	cols := map[string]column{}
	iter := c.Session().Query("SELECT column_name, kind, position FROM system_schema.columns WHERE keyspace_name = ? AND table_name = ?", ks, table).Iter()
	var name, kind string
	var pos int
	for iter.Scan(&name, &kind, &pos) {
		cols[name] = column{kind, pos}
	}
	if err := iter.Close(); err != nil {
		t.Fatal(err)
	}
	if len(cols) == 0 {
		t.Fatalf("%s.%s: no columns (table missing)", ks, table)
	}
	return cols
}

func schemaVersion(t *testing.T, c *cassandraio.Client, ks string) (int, time.Time) {
	t.Helper()
	var v int
	var applied time.Time
	if err := c.Session().Query(fmt.Sprintf("SELECT version, applied FROM %s.schema_version WHERE component = 'lumen'", ks)).Scan(&v, &applied); err != nil {
		t.Fatal(err)
	}
	return v, applied
}

// checkMigrated asserts the keyspace has today's layout and the batch rows
// oldKeyspace wrote, then that a second EnsureSchema changes nothing.
func checkMigrated(t *testing.T, c *cassandraio.Client, ks string) {
	ctx := context.Background()
	v, applied := schemaVersion(t, c, ks)
	if v != cassandraio.SchemaVersion || cassandraio.SchemaVersion != 5 {
		t.Fatalf("schema version %d after EnsureSchema, want %d (= 5)", v, cassandraio.SchemaVersion)
	}
	// Version 5 adds stream_runs.
	if cols := columns(t, c, ks, "stream_runs"); cols["run"].kind != "partition_key" || cols["superseded_by"].kind != "regular" {
		t.Errorf("stream_runs columns %+v", cols)
	}
	runCols := columns(t, c, ks, "batch_runs")
	for _, name := range []string{"note", "complete_at"} {
		if col, ok := runCols[name]; !ok || col.kind != "regular" {
			t.Errorf("batch_runs.%s: %+v, %v; want a regular column", name, col, ok)
		}
	}
	// A success from before version 4 counted as complete, and keeps the
	// watermark it set.
	var completeAt time.Time
	if err := c.Session().Query(fmt.Sprintf("SELECT complete_at FROM %s.batch_runs WHERE kind = ? AND as_of = ?", ks), "app_load", migDay).
		Scan(&completeAt); err != nil || !completeAt.Equal(migFinished) {
		t.Errorf("batch_runs.complete_at of an old success: %v, %v; want %v", completeAt, err, migFinished)
	}

	// The batch layer's rows survive.
	var count int64
	if err := c.Session().Query(fmt.Sprintf("SELECT count FROM %s.batch_counts WHERE kind = ? AND app_id = ? AND app_version = ? AND granularity = ? AND period = ? AND bucket = ?", ks),
		"events", "app1", "1.0", "hour", "2024-03", migBucket).Scan(&count); err != nil || count != 42 {
		t.Errorf("batch_counts row after migration: count %d, %v; want 42", count, err)
	}
	var estimate int64
	var events *int64
	if err := c.Session().Query(fmt.Sprintf("SELECT estimate, events FROM %s.batch_users WHERE kind = ? AND app_id = ? AND app_version = ? AND period = ? AND day = ?", ks),
		"users", "app1", "1.0", "2024-03", migDay).Scan(&estimate, &events); err != nil || estimate != 5 || events != nil {
		t.Errorf("batch_users row after migration: estimate %d, events %v, %v; want 5, null", estimate, events, err)
	}
	if col, ok := columns(t, c, ks, "batch_users")["events"]; !ok || col.kind != "regular" {
		t.Errorf("batch_users.events: %+v, %v; want a regular column", col, ok)
	}

	// The speed tables are clustered by run after bucket/day.
	for table, after := range map[string]string{"speed_counts": "bucket", "speed_users": "day"} {
		cols := columns(t, c, ks, table)
		if cols[after] != (column{"clustering", 0}) || cols["run"] != (column{"clustering", 1}) {
			t.Errorf("%s: %s %+v, run %+v; want clustering 0 and 1", table, after, cols[after], cols["run"])
		}
	}
	if _, ok := columns(t, c, ks, "speed_users")["events"]; !ok {
		t.Error("speed_users has no events column")
	}
	// The old speed rows went with the old tables (the batch supersedes them).
	var n int
	if err := c.Session().Query(fmt.Sprintf("SELECT COUNT(*) FROM %s.speed_counts", ks)).Scan(&n); err != nil || n != 0 {
		t.Errorf("speed_counts holds %d rows after migration (%v), want 0", n, err)
	}
	// ...and the new tables take rows per run.
	for _, run := range []string{"run-a", "run-b"} {
		if err := c.Session().Query(fmt.Sprintf("INSERT INTO %s.speed_counts (kind, app_id, app_version, granularity, period, bucket, run, count) VALUES (?, ?, ?, ?, ?, ?, ?, ?)", ks),
			"events", "app1", "1.0", "hour", "2024-03", migBucket, run, int64(3)).Exec(); err != nil {
			t.Fatalf("insert into migrated speed_counts: %v", err)
		}
	}
	if err := c.Session().Query(fmt.Sprintf("INSERT INTO %s.speed_users (kind, app_id, app_version, period, day, run, sketch, estimate, events) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", ks),
		"users", "app1", "1.0", "2024-03", migDay, "run-a", []byte{9}, int64(1), int64(2)).Exec(); err != nil {
		t.Fatalf("insert into migrated speed_users: %v", err)
	}
	speedRuns := func() int {
		t.Helper()
		var n int
		if err := c.Session().Query(fmt.Sprintf("SELECT COUNT(*) FROM %s.speed_counts WHERE kind = ? AND app_id = ? AND app_version = ? AND granularity = ? AND period = ? AND bucket = ?", ks),
			"events", "app1", "1.0", "hour", "2024-03", migBucket).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	if got := speedRuns(); got != 2 {
		t.Errorf("%d speed_counts rows for one bucket and two runs, want 2", got)
	}

	// A second EnsureSchema is a no-op: same version, same applied time,
	// and the new speed rows are not dropped again.
	if err := c.EnsureSchema(ctx); err != nil {
		t.Fatalf("second EnsureSchema: %v", err)
	}
	if v2, applied2 := schemaVersion(t, c, ks); v2 != cassandraio.SchemaVersion || !applied2.Equal(applied) {
		t.Errorf("second EnsureSchema: version %d applied %v, want %d applied %v", v2, applied2, cassandraio.SchemaVersion, applied)
	}
	if got := speedRuns(); got != 2 {
		t.Errorf("second EnsureSchema: %d speed_counts rows, want the 2 written before it", got)
	}
}

func TestSchemaMigratesFromVersion2(t *testing.T) {
	servicetest.Use(t, "cassandra")
	c, ks := oldKeyspace(t, schemaV2, 2)
	if cols := columns(t, c, ks, "speed_counts"); cols["run"] != (column{}) {
		t.Fatalf("the version-2 speed_counts already has run: %+v", cols)
	}
	if err := c.EnsureSchema(context.Background()); err != nil {
		t.Fatalf("EnsureSchema on a version-2 keyspace: %v", err)
	}
	checkMigrated(t, c, ks)
}

func TestSchemaMigratesFromVersion1(t *testing.T) {
	servicetest.Use(t, "cassandra")
	c, ks := oldKeyspace(t, schemaV1, 1)
	if _, ok := columns(t, c, ks, "batch_users")["events"]; ok {
		t.Fatal("the version-1 batch_users already has events")
	}
	if err := c.EnsureSchema(context.Background()); err != nil {
		t.Fatalf("EnsureSchema on a version-1 keyspace: %v", err)
	}
	checkMigrated(t, c, ks)
	// Version 2's speed_late is there too.
	columns(t, c, ks, "speed_late")
}

// A migration interrupted before it recorded the new version is redone
// on the next EnsureSchema.
func TestSchemaMigratesAfterInterruptedMigration(t *testing.T) {
	// Skip here, not in each subtest: a test whose subtests all skipped
	// must not report a pass.
	servicetest.Addr(t, "LUMEN_TEST_CASSANDRA")
	servicetest.Use(t, "cassandra")
	t.Run("v1 events already added", func(t *testing.T) {
		c, ks := oldKeyspace(t, schemaV1, 1, "ALTER TABLE %s.batch_users ADD events bigint")
		if err := c.EnsureSchema(context.Background()); err != nil {
			t.Fatalf("EnsureSchema on a version-1 keyspace whose batch_users has events: %v", err)
		}
		checkMigrated(t, c, ks)
	})
	t.Run("v2 speed tables dropped", func(t *testing.T) {
		c, ks := oldKeyspace(t, schemaV2, 2, "DROP TABLE %s.speed_counts", "DROP TABLE %s.speed_users")
		if err := c.EnsureSchema(context.Background()); err != nil {
			t.Fatalf("EnsureSchema on a version-2 keyspace without speed tables: %v", err)
		}
		checkMigrated(t, c, ks)
	})
}
