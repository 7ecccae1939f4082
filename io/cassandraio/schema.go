package cassandraio

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	gocql "github.com/apache/cassandra-gocql-driver/v2"
)

// SchemaVersion is the version of lumen's Cassandra tables, recorded in
// <keyspace>.schema_version so a later layout can migrate or refuse.
const SchemaVersion = 5

// The tables of DESIGN §2, refined:
//
//   - app_version is part of the partition key of the count and user
//     tables. Every query the serving layer makes is for one version (or
//     ” for all), so a read touches one partition and no other version's
//     rows, and partitions stay small (a month of hours of one version).
//   - app_index lists, per kind and month, the (app, version) pairs that
//     have rows, so listing apps and versions is a partition read instead
//     of a scan over all partition keys.
//   - batch_runs is partitioned by kind and clustered by as_of descending,
//     so "the newest successful run" reads the head of one partition.
//   - Speed rows are written with USING TTL (default 7 days): the batch
//     layer supersedes them. Speed counts and sketches are written USING
//     TIMESTAMP of their count (events, for sketches): panes of an
//     accumulating window may arrive out of order, and last-write-wins on
//     that timestamp keeps the largest total without a lightweight
//     transaction.
//   - Speed counts and sketches are clustered by run (one per stream run)
//     within their bucket: a restarted stream starts its windows empty, so
//     reads sum counts and merge sketches over runs.
//   - speed_late sums over its source column: each late pane or record is
//     its own idempotent row.
//   - Batch counts and sketches, and their deletes, are written USING
//     TIMESTAMP of the run's stamp (serving.BatchStamp: as_of, then the
//     run's start), so last-write-wins makes batch writes monotone: a run
//     of an older as_of never replaces or deletes a newer one's rows.
//   - batch_runs keeps, per (kind, as_of), its latest attempt and
//     complete_at, when an attempt last succeeded on complete input.
//   - stream_runs holds one row per stream run (a handful a week): the
//     offsets it started at, where it stopped if it drained, and the run
//     that superseded it. Speed reads read it whole (version 5).
var tableDDL = []string{
	`CREATE TABLE IF NOT EXISTS %s.schema_version (
		component text PRIMARY KEY, version int, applied timestamp)`,
	`CREATE TABLE IF NOT EXISTS %s.batch_counts (
		kind text, app_id text, app_version text, granularity text, period text, bucket timestamp, count bigint,
		PRIMARY KEY ((kind, app_id, app_version, granularity, period), bucket))`,
	`CREATE TABLE IF NOT EXISTS %s.speed_counts (
		kind text, app_id text, app_version text, granularity text, period text, bucket timestamp, run text, count bigint,
		PRIMARY KEY ((kind, app_id, app_version, granularity, period), bucket, run))`,
	`CREATE TABLE IF NOT EXISTS %s.batch_users (
		kind text, app_id text, app_version text, period text, day timestamp, sketch blob, estimate bigint, events bigint,
		PRIMARY KEY ((kind, app_id, app_version, period), day))`,
	`CREATE TABLE IF NOT EXISTS %s.speed_users (
		kind text, app_id text, app_version text, period text, day timestamp, run text, sketch blob, estimate bigint, events bigint,
		PRIMARY KEY ((kind, app_id, app_version, period), day, run))`,
	`CREATE TABLE IF NOT EXISTS %s.speed_late (
		kind text, app_id text, app_version text, granularity text, period text, bucket timestamp, source text, count bigint,
		PRIMARY KEY ((kind, app_id, app_version, granularity, period), bucket, source))`,
	`CREATE TABLE IF NOT EXISTS %s.app_index (
		layer text, kind text, period text, app_id text, app_version text,
		PRIMARY KEY ((layer, kind, period), app_id, app_version))`,
	`CREATE TABLE IF NOT EXISTS %s.batch_runs (
		kind text, as_of date, window_start date, started timestamp, finished timestamp, status text,
		counters map<text, bigint>, note text, complete_at timestamp,
		PRIMARY KEY ((kind), as_of)) WITH CLUSTERING ORDER BY (as_of DESC)`,
	`CREATE TABLE IF NOT EXISTS %s.stream_runs (
		run text PRIMARY KEY, started timestamp, start_offsets map<text, bigint>, end_offsets map<text, bigint>,
		drained boolean, superseded_by text)`,
}

// EnsureSchema creates the keyspace (with the configured replication) and
// lumen's tables if they do not exist, and records the schema version. It
// is idempotent and safe to run from many processes; it refuses a keyspace
// whose recorded version is newer than this build's.
func (c *Client) EnsureSchema(ctx context.Context) error {
	ks := c.cfg.Keyspace // a validated identifier: safe to format into DDL
	stmts := []string{fmt.Sprintf("CREATE KEYSPACE IF NOT EXISTS %s WITH replication = %s", ks, c.cfg.Replication.cql())}
	for _, t := range tableDDL {
		stmts = append(stmts, fmt.Sprintf(t, ks))
	}
	for _, s := range stmts {
		if err := c.ddl(ctx, s); err != nil {
			return fmt.Errorf("cassandraio: schema: %s: %w", strings.Fields(s)[2]+" "+strings.Fields(s)[5], err)
		}
		if err := c.session.AwaitSchemaAgreement(ctx); err != nil {
			return fmt.Errorf("cassandraio: schema agreement: %w", err)
		}
	}
	var version int
	err := c.session.Query(fmt.Sprintf("SELECT version FROM %s.schema_version WHERE component = ?", ks), "lumen").
		WithContext(ctx).Consistency(c.cfg.Consistency).Scan(&version)
	if err != nil && !errors.Is(err, gocql.ErrNotFound) {
		return fmt.Errorf("cassandraio: read schema version: %w", err)
	}
	if version > SchemaVersion {
		return fmt.Errorf("cassandraio: keyspace %s has schema version %d, newer than this build's %d", ks, version, SchemaVersion)
	}
	if version > 0 && version < 3 {
		// Version 3 clusters speed rows by run. A primary key cannot
		// change in place, and speed rows are transient (the batch
		// supersedes them): recreate those two tables.
		// Every node must see a drop before the table is created again.
		var stmts []string
		for _, t := range []string{"speed_counts", "speed_users"} {
			stmts = append(stmts, fmt.Sprintf("DROP TABLE IF EXISTS %s.%s", ks, t))
		}
		for _, t := range tableDDL {
			if strings.Contains(t, ".speed_counts (") || strings.Contains(t, ".speed_users (") {
				stmts = append(stmts, fmt.Sprintf(t, ks))
			}
		}
		for _, st := range stmts {
			if err := c.ddl(ctx, st); err != nil {
				return fmt.Errorf("cassandraio: migrate to schema 3: %w", err)
			}
			if err := c.session.AwaitSchemaAgreement(ctx); err != nil {
				return fmt.Errorf("cassandraio: schema agreement: %w", err)
			}
		}
	}
	if version == 1 {
		// Version 2 added events to the sketch tables.
		for _, t := range []string{"batch_users"} {
			err := c.ddl(ctx, fmt.Sprintf("ALTER TABLE %s.%s ADD events bigint", ks, t))
			if err != nil && !strings.Contains(err.Error(), "already exist") {
				return fmt.Errorf("cassandraio: migrate %s to schema 2: %w", t, err)
			}
		}
	}
	if version > 0 && version < 4 {
		// Version 4 records a note and complete_at per run; every success
		// before it counted as complete.
		for _, col := range []string{"note text", "complete_at timestamp"} {
			err := c.ddl(ctx, fmt.Sprintf("ALTER TABLE %s.batch_runs ADD %s", ks, col))
			if err != nil && !strings.Contains(err.Error(), "already exist") {
				return fmt.Errorf("cassandraio: migrate batch_runs to schema 4: %w", err)
			}
			if err := c.session.AwaitSchemaAgreement(ctx); err != nil {
				return fmt.Errorf("cassandraio: schema agreement: %w", err)
			}
		}
		it := c.session.Query(fmt.Sprintf("SELECT kind, as_of, finished, status FROM %s.batch_runs", ks)).WithContext(ctx).Iter()
		type key struct {
			kind string
			asOf time.Time
		}
		done := map[key]time.Time{}
		var k key
		var finished time.Time
		var status string
		for it.Scan(&k.kind, &k.asOf, &finished, &status) {
			if status == "succeeded" {
				done[k] = finished
			}
		}
		if err := it.Close(); err != nil {
			return fmt.Errorf("cassandraio: migrate batch_runs to schema 4: %w", err)
		}
		for k, f := range done {
			err := c.session.Query(fmt.Sprintf("UPDATE %s.batch_runs SET complete_at = ? WHERE kind = ? AND as_of = ?", ks), f, k.kind, k.asOf).
				WithContext(ctx).Consistency(c.cfg.Consistency).Exec()
			if err != nil {
				return fmt.Errorf("cassandraio: migrate batch_runs to schema 4: %w", err)
			}
		}
	}
	if version < SchemaVersion {
		err := c.session.Query(fmt.Sprintf("INSERT INTO %s.schema_version (component, version, applied) VALUES (?, ?, ?)", ks),
			"lumen", SchemaVersion, time.Now()).WithContext(ctx).Consistency(c.cfg.Consistency).Exec()
		if err != nil {
			return fmt.Errorf("cassandraio: record schema version: %w", err)
		}
	}
	return nil
}

// ddl runs one schema statement, again if it timed out: a schema change
// on a loaded node can take longer than a request's timeout, and lumen's
// statements are idempotent (IF [NOT] EXISTS; an ALTER that added its
// column answers "already exists", which the callers accept).
func (c *Client) ddl(ctx context.Context, stmt string) error {
	var err error
	for attempt := 0; attempt < 4; attempt++ {
		if err = c.session.Query(stmt).WithContext(ctx).Exec(); err == nil || !errors.Is(err, gocql.ErrTimeoutNoResponse) {
			return err
		}
		if err := c.session.AwaitSchemaAgreement(ctx); err != nil {
			return err
		}
	}
	return err
}
