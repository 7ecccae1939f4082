// Package sqlitestore is lumen's embedded store: one SQLite file (pure Go,
// no cgo), with DESIGN §2's Cassandra tables column for column, so that it
// passes the same conformance suite (serving/storetest). Importing it
// registers the "sqlite:PATH" scheme with serving.Open.
package sqlitestore

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"sync"
	"time"

	_ "modernc.org/sqlite" // pure-Go SQLite: the embedded default needs no cgo and no server

	"github.com/lumenhq/lumen/aggregate"
	"github.com/lumenhq/lumen/event"
	"github.com/lumenhq/lumen/serving"
)

func init() { serving.Register("sqlite", openSQLite) }

// SchemaVersion is the version of the table layout, recorded in the store so
// a future layout change can migrate or refuse an old file.
const SchemaVersion = 5

// The tables mirror DESIGN §2's Cassandra tables column for column, so the
// two stores pass one conformance suite. Speed rows carry an expiry instead
// of a Cassandra TTL; reads ignore expired rows.
var sqliteSchema = []string{
	`CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL PRIMARY KEY, applied INTEGER NOT NULL)`,
	`CREATE TABLE IF NOT EXISTS batch_counts (
		kind TEXT NOT NULL, app_id TEXT NOT NULL, granularity TEXT NOT NULL, period TEXT NOT NULL,
		bucket INTEGER NOT NULL, app_version TEXT NOT NULL, count INTEGER NOT NULL, stamp INTEGER NOT NULL DEFAULT 0,
		PRIMARY KEY (kind, app_id, granularity, period, bucket, app_version)) WITHOUT ROWID`,
	`CREATE TABLE IF NOT EXISTS speed_counts (
		kind TEXT NOT NULL, app_id TEXT NOT NULL, granularity TEXT NOT NULL, period TEXT NOT NULL,
		bucket INTEGER NOT NULL, app_version TEXT NOT NULL, run TEXT NOT NULL, count INTEGER NOT NULL, expires INTEGER NOT NULL,
		PRIMARY KEY (kind, app_id, granularity, period, bucket, app_version, run)) WITHOUT ROWID`,
	`CREATE TABLE IF NOT EXISTS batch_users (
		kind TEXT NOT NULL, app_id TEXT NOT NULL, period TEXT NOT NULL, day INTEGER NOT NULL,
		app_version TEXT NOT NULL, sketch BLOB NOT NULL, estimate INTEGER NOT NULL, events INTEGER NOT NULL DEFAULT 0,
		stamp INTEGER NOT NULL DEFAULT 0,
		PRIMARY KEY (kind, app_id, period, day, app_version)) WITHOUT ROWID`,
	`CREATE TABLE IF NOT EXISTS speed_users (
		kind TEXT NOT NULL, app_id TEXT NOT NULL, period TEXT NOT NULL, day INTEGER NOT NULL,
		app_version TEXT NOT NULL, run TEXT NOT NULL, sketch BLOB NOT NULL, estimate INTEGER NOT NULL, events INTEGER NOT NULL DEFAULT 0,
		expires INTEGER NOT NULL,
		PRIMARY KEY (kind, app_id, period, day, app_version, run)) WITHOUT ROWID`,
	`CREATE TABLE IF NOT EXISTS speed_late (
		kind TEXT NOT NULL, app_id TEXT NOT NULL, granularity TEXT NOT NULL, period TEXT NOT NULL,
		bucket INTEGER NOT NULL, app_version TEXT NOT NULL, source TEXT NOT NULL, count INTEGER NOT NULL, expires INTEGER NOT NULL,
		PRIMARY KEY (kind, app_id, granularity, period, bucket, app_version, source)) WITHOUT ROWID`,
	`CREATE TABLE IF NOT EXISTS batch_runs (
		kind TEXT NOT NULL, as_of TEXT NOT NULL, window_start TEXT NOT NULL, started INTEGER NOT NULL,
		finished INTEGER NOT NULL, status TEXT NOT NULL, counters TEXT NOT NULL,
		note TEXT NOT NULL DEFAULT '', complete_at INTEGER NOT NULL DEFAULT 0,
		PRIMARY KEY (kind, as_of)) WITHOUT ROWID`,
	`CREATE TABLE IF NOT EXISTS stream_runs (
		run TEXT NOT NULL PRIMARY KEY, started INTEGER NOT NULL, start_offsets TEXT NOT NULL,
		end_offsets TEXT NOT NULL DEFAULT '', superseded_by TEXT NOT NULL DEFAULT '')`,
}

// liveRuns is the condition on a speed row's run that leaves out the rows
// of superseded stream runs (StreamRun).
const liveRuns = ` AND run NOT IN (SELECT run FROM stream_runs WHERE superseded_by != '')`

// SpeedTTL is how long speed rows live by default: the batch layer
// supersedes them well before (DESIGN §2).
const SpeedTTL = 7 * 24 * time.Hour

type sqliteStore struct {
	path string
	db   *sql.DB
	ttl  time.Duration
}

// One *sql.DB per file per process, shared by every worker's writer: SQLite
// has one writer at a time anyway, and a shared handle serialises them
// without lock errors.
var (
	sqliteMu  sync.Mutex
	sqliteDBs = map[string]*sharedDB{}
)

type sharedDB struct {
	db   *sql.DB
	refs int
}

func openSQLite(ctx context.Context, url string) (serving.Store, error) {
	path := strings.TrimPrefix(strings.TrimPrefix(url, "sqlite:"), "//")
	if path == "" {
		return nil, fmt.Errorf("serving: sqlite store needs a path: sqlite:PATH")
	}
	sqliteMu.Lock()
	defer sqliteMu.Unlock()
	sh := sqliteDBs[path]
	if sh == nil {
		dsn := "file:" + path + "?_pragma=busy_timeout(30000)&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)&_pragma=cache_size(-65536)"
		db, err := sql.Open("sqlite", dsn)
		if err != nil {
			return nil, fmt.Errorf("serving: open sqlite %s: %w", path, err)
		}
		db.SetMaxOpenConns(1)
		for _, stmt := range sqliteSchema {
			if _, err := db.ExecContext(ctx, stmt); err != nil {
				db.Close()
				return nil, fmt.Errorf("serving: sqlite %s: create schema: %w", path, err)
			}
		}
		if err := migrateSQLite(ctx, db); err != nil {
			db.Close()
			return nil, fmt.Errorf("serving: sqlite %s: %w", path, err)
		}
		if _, err := db.ExecContext(ctx, `INSERT OR IGNORE INTO schema_version VALUES (?, ?)`, SchemaVersion, time.Now().UnixMilli()); err != nil {
			db.Close()
			return nil, fmt.Errorf("serving: sqlite %s: %w", path, err)
		}
		var v int
		if err := db.QueryRowContext(ctx, `SELECT MAX(version) FROM schema_version`).Scan(&v); err != nil || v != SchemaVersion {
			db.Close()
			return nil, fmt.Errorf("serving: sqlite %s has schema version %d, this build uses %d (%v)", path, v, SchemaVersion, err)
		}
		sh = &sharedDB{db: db}
		sqliteDBs[path] = sh
	}
	sh.refs++
	return &sqliteStore{path: path, db: sh.db, ttl: SpeedTTL}, nil
}

// migrateSQLite brings an older file up to date: version 2 counted the
// events of sketch rows; version 3 keys speed rows by stream run, and since
// a primary key cannot change in place and speed rows are transient (the
// batch supersedes them), the speed count and sketch tables are recreated;
// version 4 stamps batch rows (rows from before have stamp 0, older than
// any run) and records when an as_of last succeeded on complete input
// (every success before counted as complete).
func migrateSQLite(ctx context.Context, db *sql.DB) error {
	var v sql.NullInt64
	if err := db.QueryRowContext(ctx, `SELECT MAX(version) FROM schema_version`).Scan(&v); err != nil {
		return err
	}
	if !v.Valid || v.Int64 >= 4 {
		return nil
	}
	for _, c := range []struct{ table, col, def string }{
		{"batch_counts", "stamp", "INTEGER NOT NULL DEFAULT 0"},
		{"batch_users", "stamp", "INTEGER NOT NULL DEFAULT 0"},
		{"batch_runs", "note", "TEXT NOT NULL DEFAULT ''"},
		{"batch_runs", "complete_at", "INTEGER NOT NULL DEFAULT 0"},
	} {
		if err := addColumn(ctx, db, c.table, c.col, c.def); err != nil {
			return err
		}
	}
	if _, err := db.ExecContext(ctx, `UPDATE batch_runs SET complete_at = finished WHERE status = 'succeeded' AND complete_at = 0`); err != nil {
		return err
	}
	if v.Int64 >= 3 {
		return nil
	}
	for _, t := range []string{"speed_counts", "speed_users"} {
		if _, err := db.ExecContext(ctx, `DROP TABLE IF EXISTS `+t); err != nil {
			return err
		}
	}
	for _, stmt := range sqliteSchema {
		if _, err := db.ExecContext(ctx, stmt); err != nil {
			return err
		}
	}
	if v.Int64 >= 2 {
		return nil
	}
	return addColumn(ctx, db, "batch_users", "events", "INTEGER NOT NULL DEFAULT 0")
}

// addColumn adds a column to a table that lacks it.
func addColumn(ctx context.Context, db *sql.DB, table, col, def string) error {
	var n int
	if err := db.QueryRowContext(ctx, `SELECT COUNT(*) FROM pragma_table_info(?) WHERE name = ?`, table, col).Scan(&n); err != nil {
		return err
	}
	if n > 0 {
		return nil
	}
	_, err := db.ExecContext(ctx, `ALTER TABLE `+table+` ADD COLUMN `+col+` `+def)
	return err
}

func (s *sqliteStore) Close() error {
	sqliteMu.Lock()
	defer sqliteMu.Unlock()
	sh := sqliteDBs[s.path]
	if sh == nil || sh.db != s.db {
		return nil
	}
	sh.refs--
	if sh.refs == 0 {
		delete(sqliteDBs, s.path)
		return sh.db.Close()
	}
	return nil
}

func (s *sqliteStore) Counts(ctx context.Context, layer serving.Layer, q serving.CountQuery) ([]serving.CountPoint, error) {
	table, live := "batch_counts", ""
	if layer == serving.Speed {
		table, live = "speed_counts", fmt.Sprintf(" AND expires > %d", time.Now().UnixMilli())+liveRuns
	}
	periods := serving.Periods(q.Gran, q.From, q.To)
	// Speed rows are summed over runs; a batch bucket has one row.
	rows, err := s.db.QueryContext(ctx, `SELECT bucket, SUM(count) FROM `+table+`
		WHERE kind = ? AND app_id = ? AND granularity = ? AND period IN (`+placeholders(len(periods))+`)
		AND bucket >= ? AND bucket <= ? AND app_version = ?`+live+` GROUP BY bucket ORDER BY bucket`,
		append(append([]any{q.Kind.String(), q.AppID, q.Gran.String()}, anys(periods)...),
			q.From.UnixMilli(), q.To.UnixMilli(), q.Version)...)
	if err != nil {
		return nil, fmt.Errorf("serving: sqlite counts: %w", err)
	}
	defer rows.Close()
	var out []serving.CountPoint
	for rows.Next() {
		var b, n int64
		if err := rows.Scan(&b, &n); err != nil {
			return nil, err
		}
		out = append(out, serving.CountPoint{Bucket: time.UnixMilli(b).UTC(), Count: n, Layer: layer})
	}
	return out, rows.Err()
}

func (s *sqliteStore) Users(ctx context.Context, layer serving.Layer, q serving.UserQuery) ([]aggregate.UserRow, error) {
	table, live := "batch_users", ""
	if layer == serving.Speed {
		table, live = "speed_users", fmt.Sprintf(" AND expires > %d", time.Now().UnixMilli())+liveRuns
	}
	periods := serving.Periods(aggregate.Day, q.From, q.To)
	rows, err := s.db.QueryContext(ctx, `SELECT day, sketch, estimate, events FROM `+table+`
		WHERE kind = ? AND app_id = ? AND period IN (`+placeholders(len(periods))+`)
		AND day >= ? AND day <= ? AND app_version = ?`+live+` ORDER BY day`,
		append(append([]any{q.Kind.String(), q.AppID}, anys(periods)...), q.From.UnixMilli(), q.To.UnixMilli(), q.Version)...)
	if err != nil {
		return nil, fmt.Errorf("serving: sqlite users: %w", err)
	}
	defer rows.Close()
	var out []aggregate.UserRow
	for rows.Next() {
		r := aggregate.UserRow{Kind: q.Kind, AppID: q.AppID, AppVersion: q.Version}
		if err := rows.Scan(&r.Day, &r.Sketch, &r.Estimate, &r.Events); err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	if layer == serving.Speed {
		return serving.MergeRunRows(out)
	}
	return out, nil
}

func (s *sqliteStore) Late(ctx context.Context, q serving.CountQuery) ([]serving.CountPoint, error) {
	periods := serving.Periods(q.Gran, q.From, q.To)
	rows, err := s.db.QueryContext(ctx, `SELECT bucket, SUM(count) FROM speed_late
		WHERE kind = ? AND app_id = ? AND granularity = ? AND period IN (`+placeholders(len(periods))+`)
		AND bucket >= ? AND bucket <= ? AND app_version = ? AND expires > ?
		AND substr(source, 1, instr(source, '|') - 1) NOT IN (SELECT run FROM stream_runs WHERE superseded_by != '')
		GROUP BY bucket ORDER BY bucket`,
		append(append([]any{q.Kind.String(), q.AppID, q.Gran.String()}, anys(periods)...),
			q.From.UnixMilli(), q.To.UnixMilli(), q.Version, time.Now().UnixMilli())...)
	if err != nil {
		return nil, fmt.Errorf("serving: sqlite late: %w", err)
	}
	defer rows.Close()
	var out []serving.CountPoint
	for rows.Next() {
		var b, n int64
		if err := rows.Scan(&b, &n); err != nil {
			return nil, err
		}
		out = append(out, serving.CountPoint{Bucket: time.UnixMilli(b).UTC(), Count: n, Layer: serving.Speed})
	}
	return out, rows.Err()
}

// Catalog reads the day rows' keys: every count row has a day row, and
// speed rows past their expiry are left out, as Cassandra's TTL would.
func (s *sqliteStore) Catalog(ctx context.Context, layer serving.Layer, kind event.Kind, from, to time.Time) ([]serving.AppVersion, error) {
	table, live := "batch_counts", ""
	if layer == serving.Speed {
		table, live = "speed_counts", fmt.Sprintf(" AND expires > %d", time.Now().UnixMilli())
	} else if layer != serving.Batch {
		return nil, fmt.Errorf("serving: bad layer %v", layer)
	}
	periods := serving.Periods(aggregate.Day, from, to)
	rows, err := s.db.QueryContext(ctx, `SELECT DISTINCT app_id, app_version FROM `+table+`
		WHERE kind = ? AND granularity = 'day' AND period IN (`+placeholders(len(periods))+`)
		AND app_version != ''`+live+` ORDER BY app_id, app_version`,
		append([]any{kind.String()}, anys(periods)...)...)
	if err != nil {
		return nil, fmt.Errorf("serving: sqlite catalog: %w", err)
	}
	defer rows.Close()
	var out []serving.AppVersion
	for rows.Next() {
		var av serving.AppVersion
		if err := rows.Scan(&av.AppID, &av.Version); err != nil {
			return nil, err
		}
		out = append(out, av)
	}
	return out, rows.Err()
}

func (s *sqliteStore) DayTotals(ctx context.Context, kind event.Kind, from, to time.Time) ([]serving.AppTotal, error) {
	periods := serving.Periods(aggregate.Day, from, to)
	rows, err := s.db.QueryContext(ctx, `SELECT app_id, app_version, SUM(count) FROM batch_counts
		WHERE kind = ? AND granularity = 'day' AND period IN (`+placeholders(len(periods))+`)
		AND bucket >= ? AND bucket <= ? GROUP BY app_id, app_version ORDER BY app_id, app_version`,
		append(append([]any{kind.String()}, anys(periods)...), from.UnixMilli(), to.UnixMilli())...)
	if err != nil {
		return nil, fmt.Errorf("serving: sqlite day totals: %w", err)
	}
	defer rows.Close()
	var out []serving.AppTotal
	for rows.Next() {
		var t serving.AppTotal
		if err := rows.Scan(&t.AppID, &t.Version, &t.Count); err != nil {
			return nil, err
		}
		out = append(out, t)
	}
	return out, rows.Err()
}

// PruneBatch deletes in one transaction; count rows are matched by their
// bucket, which covers hours and days alike.
func (s *sqliteStore) PruneBatch(ctx context.Context, first, last time.Time, stamp int64) (int64, error) {
	lo, hi := first.UTC().UnixMilli(), last.UTC().AddDate(0, 0, 1).UnixMilli()
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return 0, fmt.Errorf("serving: sqlite prune: %w", err)
	}
	defer tx.Rollback()
	var n int64
	for _, q := range []string{
		`DELETE FROM batch_counts WHERE bucket >= ? AND bucket < ? AND stamp < ?`,
		`DELETE FROM batch_users WHERE day >= ? AND day < ? AND stamp < ?`,
	} {
		res, err := tx.ExecContext(ctx, q, lo, hi, stamp)
		if err != nil {
			return 0, fmt.Errorf("serving: sqlite prune: %w", err)
		}
		d, _ := res.RowsAffected()
		n += d
	}
	if err := tx.Commit(); err != nil {
		return 0, fmt.Errorf("serving: sqlite prune: %w", err)
	}
	return n, nil
}

func placeholders(n int) string {
	if n == 0 {
		return "NULL"
	}
	return strings.TrimSuffix(strings.Repeat("?,", n), ",")
}

func anys[T any](xs []T) []any {
	out := make([]any, len(xs))
	for i, x := range xs {
		out[i] = x
	}
	return out
}
