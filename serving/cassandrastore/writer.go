package cassandrastore

import (
	"context"
	"fmt"
	"time"

	"github.com/lumenhq/lumen/aggregate"
	"github.com/lumenhq/lumen/event"
	"github.com/lumenhq/lumen/io/cassandraio"
	"github.com/lumenhq/lumen/serving"
)

// The throttled writer of one layer's rows (serving.RowWriter).

func table(layer serving.Layer, what string) string { return layer.String() + "_" + what }

// NewWriter returns a throttled writer for one layer.
func (s *Store) NewWriter(ctx context.Context, layer serving.Layer, opts ...serving.WriterOption) (serving.RowWriter, error) {
	if layer != serving.Batch && layer != serving.Speed {
		return nil, fmt.Errorf("cassandrastore: bad layer %v", layer)
	}
	// Batch rows: USING TIMESTAMP <the run's stamp>, so an older run
	// never replaces a newer one's rows (see the schema notes in
	// cassandraio).
	ttl, ttlTS, runCol, runVal := "", " USING TIMESTAMP ?", "", ""
	if layer == serving.Speed {
		runCol, runVal = ", run", ", ?"
		// USING TIMESTAMP <total>: out-of-order panes cannot overwrite a
		// larger total.
		ttl, ttlTS = " USING TTL ?", " USING TTL ? AND TIMESTAMP ?"
	}
	o := serving.NewWriterOptions(opts...)
	return &rowWriter{
		s: s, w: s.c.NewWriter(), layer: layer,
		countStmt: fmt.Sprintf("INSERT INTO %s.%s (kind, app_id, app_version, granularity, period, bucket, count%s) VALUES (?, ?, ?, ?, ?, ?, ?%s)%s", s.ks, table(layer, "counts"), runCol, runVal, ttlTS),
		userStmt:  fmt.Sprintf("INSERT INTO %s.%s (kind, app_id, app_version, period, day, sketch, estimate, events%s) VALUES (?, ?, ?, ?, ?, ?, ?, ?%s)%s", s.ks, table(layer, "users"), runCol, runVal, ttlTS),
		run:       o.Run,
		stamp:     o.Stamp,
		lateStmt:  fmt.Sprintf("INSERT INTO %s.speed_late (kind, app_id, app_version, granularity, period, bucket, source, count) VALUES (?, ?, ?, ?, ?, ?, ?, ?) USING TTL ?", s.ks),
		indexStmt: fmt.Sprintf("INSERT INTO %s.app_index (layer, kind, period, app_id, app_version) VALUES (?, ?, ?, ?, ?)%s", s.ks, ttl),
		ttl:       int(s.c.Config().SpeedTTL / time.Second),
		indexed:   map[indexKey]bool{},
	}, nil
}

type indexKey struct {
	kind                 event.Kind
	period, app, version string
}

type rowWriter struct {
	s                                        *Store
	w                                        *cassandraio.Writer
	layer                                    serving.Layer
	countStmt, userStmt, lateStmt, indexStmt string
	ttl                                      int
	run                                      string
	stamp                                    int64
	indexed                                  map[indexKey]bool
}

func (r *rowWriter) args(a ...any) []any {
	if r.layer == serving.Speed {
		a = append(a, r.ttl)
	}
	return a
}

// argsTS is args for a monotone row. A speed row takes its run, the TTL,
// then the write timestamp, which callers make the bucket's start in
// microseconds plus the row's total: increasing with the total for one
// row, and of a magnitude that no ordinary write's clock timestamp dwarfs.
// A batch row takes the run's stamp.
func (r *rowWriter) argsTS(total int64, a ...any) []any {
	if r.layer == serving.Speed {
		return append(a, r.run, r.ttl, total)
	}
	if r.stamp == 0 {
		// Unstamped (not a batch run's): the clock, older than any stamp.
		return append(a, time.Now().UnixMicro())
	}
	return append(a, r.stamp)
}

// index records that (kind, app, version) has rows in a month.
func (r *rowWriter) index(ctx context.Context, k event.Kind, app, version string, t time.Time) error {
	key := indexKey{k, serving.Period(aggregate.Day, t), app, version}
	if r.indexed[key] {
		return nil
	}
	r.indexed[key] = true
	return r.w.Write(ctx, cassandraio.Mutation{
		Stmt: r.indexStmt, Args: r.args(r.layer.String(), k.String(), key.period, app, version),
		Partition: "i|" + r.layer.String() + "|" + k.String() + "|" + key.period, Bytes: 16 + len(app) + len(version),
	})
}

func (r *rowWriter) WriteCounts(ctx context.Context, rows []aggregate.CountRow) error {
	for i := range rows {
		row := &rows[i]
		t := row.BucketTime()
		period := serving.Period(row.Gran, t)
		err := r.w.Write(ctx, cassandraio.Mutation{
			Stmt:      r.countStmt,
			Args:      r.argsTS(row.Bucket*1000+row.Count, row.Kind.String(), row.AppID, row.AppVersion, row.Gran.String(), period, t, row.Count),
			Partition: fmt.Sprint("c|", row.Kind, "|", row.AppID, "|", row.AppVersion, "|", row.Gran, "|", period),
			Bytes:     48 + len(row.AppID) + len(row.AppVersion),
		})
		if err != nil {
			return err
		}
		if row.AppVersion != aggregate.AllVersions {
			if err := r.index(ctx, row.Kind, row.AppID, row.AppVersion, t); err != nil {
				return err
			}
		}
	}
	return nil
}

func (r *rowWriter) WriteUsers(ctx context.Context, rows []aggregate.UserRow) error {
	for i := range rows {
		row := &rows[i]
		t := row.DayTime()
		period := serving.Period(aggregate.Day, t)
		err := r.w.Write(ctx, cassandraio.Mutation{
			Stmt:      r.userStmt,
			Args:      r.argsTS(row.Day*1000+row.Events, row.Kind.String(), row.AppID, row.AppVersion, period, t, row.Sketch, row.Estimate, row.Events),
			Partition: fmt.Sprint("u|", row.Kind, "|", row.AppID, "|", row.AppVersion, "|", period),
			Bytes:     32 + len(row.AppID) + len(row.AppVersion) + len(row.Sketch),
		})
		if err != nil {
			return err
		}
	}
	return nil
}

func (r *rowWriter) WriteLate(ctx context.Context, rows []aggregate.LateRow) error {
	if r.layer != serving.Speed {
		return fmt.Errorf("cassandrastore: late rows belong to the speed layer")
	}
	for i := range rows {
		row := &rows[i]
		t := time.UnixMilli(row.Bucket).UTC()
		period := serving.Period(row.Gran, t)
		err := r.w.Write(ctx, cassandraio.Mutation{
			Stmt:      r.lateStmt,
			Args:      []any{row.Kind.String(), row.AppID, row.AppVersion, row.Gran.String(), period, t, row.Source, row.Count, r.ttl},
			Partition: fmt.Sprint("l|", row.Kind, "|", row.AppID, "|", row.AppVersion, "|", row.Gran, "|", period),
			Bytes:     48 + len(row.AppID) + len(row.AppVersion) + len(row.Source),
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// DeleteCounts deletes batch count rows by key, at the run's stamp less
// one: the delete shadows what older runs wrote, and neither this run's
// rows nor a newer run's (as PruneBatch's range tombstones).
func (r *rowWriter) DeleteCounts(ctx context.Context, rows []aggregate.CountRow) error {
	stmt := fmt.Sprintf("DELETE FROM %s.batch_counts USING TIMESTAMP ? WHERE kind = ? AND app_id = ? AND app_version = ? AND granularity = ? AND period = ? AND bucket = ?", r.s.ks)
	return r.deleteKeys(ctx, stmt, len(rows), func(i int) cassandraio.Mutation {
		row := &rows[i]
		t := row.BucketTime()
		period := serving.Period(row.Gran, t)
		return cassandraio.Mutation{
			Args:      []any{row.Kind.String(), row.AppID, row.AppVersion, row.Gran.String(), period, t},
			Partition: fmt.Sprint("c|", row.Kind, "|", row.AppID, "|", row.AppVersion, "|", row.Gran, "|", period),
			Bytes:     40 + len(row.AppID) + len(row.AppVersion),
		}
	})
}

// DeleteUsers deletes batch sketch rows by key, as DeleteCounts.
func (r *rowWriter) DeleteUsers(ctx context.Context, rows []aggregate.UserRow) error {
	stmt := fmt.Sprintf("DELETE FROM %s.batch_users USING TIMESTAMP ? WHERE kind = ? AND app_id = ? AND app_version = ? AND period = ? AND day = ?", r.s.ks)
	return r.deleteKeys(ctx, stmt, len(rows), func(i int) cassandraio.Mutation {
		row := &rows[i]
		t := row.DayTime()
		period := serving.Period(aggregate.Day, t)
		return cassandraio.Mutation{
			Args:      []any{row.Kind.String(), row.AppID, row.AppVersion, period, t},
			Partition: fmt.Sprint("u|", row.Kind, "|", row.AppID, "|", row.AppVersion, "|", period),
			Bytes:     32 + len(row.AppID) + len(row.AppVersion),
		}
	})
}

// deleteKeys writes n deletes of stmt, each key's mutation from key(i)
// (its Args without the timestamp, which is the run's stamp less one).
func (r *rowWriter) deleteKeys(ctx context.Context, stmt string, n int, key func(i int) cassandraio.Mutation) error {
	if r.layer != serving.Batch {
		return fmt.Errorf("cassandrastore: deletes are of batch rows")
	}
	for i := range n {
		m := key(i)
		m.Stmt, m.Args = stmt, append([]any{r.stamp - 1}, m.Args...)
		if err := r.w.Write(ctx, m); err != nil {
			return err
		}
	}
	return nil
}

func (r *rowWriter) Flush(ctx context.Context) error { return r.w.Flush(ctx) }
func (r *rowWriter) Close(ctx context.Context) error { return r.w.Flush(ctx) }

// Stats reports this writer's counters, for per-bundle Beam metrics
// (serving.StatsReporter).
func (r *rowWriter) Stats() map[string]int64 {
	st := r.w.Stats()
	return map[string]int64{
		"cassandra_rows_written":     st.Rows,
		"cassandra_retries":          st.Retries,
		"cassandra_failures":         st.Failures,
		"cassandra_throttle_wait_ms": st.ThrottleWait.Milliseconds(),
	}
}
