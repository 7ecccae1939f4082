// Package cassandrastore is lumen's production store: serving.Store over
// Apache Cassandra, through io/cassandraio's throttled writer. Importing it
// registers the cassandra:// scheme with serving.Open:
//
//	cassandra://[user[:password]@]h1,h2:9042/lumen?rate=5000&consistency=LOCAL_QUORUM&adaptive=true
//
// See cassandraio.ParseURL for every parameter. It is a separate package so
// that programs without Cassandra do not link the driver.
package cassandrastore

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/lumenhq/lumen/aggregate"
	"github.com/lumenhq/lumen/event"
	"github.com/lumenhq/lumen/io/cassandraio"
	"github.com/lumenhq/lumen/serving"
)

func init() { serving.Register("cassandra", Open) }

// Store is serving.Store over Cassandra.
type Store struct {
	c  *cassandraio.Client
	ks string

	mu         sync.Mutex
	superseded map[string]bool // stream runs whose rows speed reads leave out
	readAt     time.Time
}

// supersededTTL bounds how old the superseded runs a speed read leaves out
// may be: a replay that takes over a run shows within it.
const supersededTTL = time.Second

// supersededRuns returns the stream runs that are superseded.
func (s *Store) supersededRuns(ctx context.Context) (map[string]bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.superseded != nil && time.Since(s.readAt) < supersededTTL {
		return s.superseded, nil
	}
	runs, err := s.StreamRuns(ctx)
	if err != nil {
		return nil, err
	}
	out := map[string]bool{}
	for _, r := range runs {
		if r.SupersededBy != "" {
			out[r.ID] = true
		}
	}
	s.superseded, s.readAt = out, time.Now()
	return out, nil
}

// runColumn is the run column a read of layer selects (speed rows only),
// and the runs whose rows it leaves out.
func (s *Store) runColumn(ctx context.Context, layer serving.Layer) (string, map[string]bool, error) {
	if layer != serving.Speed {
		return "", nil, nil
	}
	skip, err := s.supersededRuns(ctx)
	return ", run", skip, err
}

func (s *Store) RecordStreamRun(ctx context.Context, r serving.StreamRun) error {
	err := s.c.Query(ctx, fmt.Sprintf("INSERT INTO %s.stream_runs (run, started, start_offsets, end_offsets, drained, superseded_by) VALUES (?, ?, ?, ?, ?, ?)", s.ks),
		r.ID, r.Started, r.Start, r.End, r.End != nil, r.SupersededBy).Exec()
	if err != nil {
		return fmt.Errorf("cassandrastore: record stream run: %w", err)
	}
	s.mu.Lock()
	s.superseded = nil // read again
	s.mu.Unlock()
	return nil
}

// PruneStreamRuns deletes the runs whose rows the speed TTL has expired.
func (s *Store) PruneStreamRuns(ctx context.Context, now time.Time) (int, error) {
	runs, err := s.StreamRuns(ctx)
	if err != nil {
		return 0, err
	}
	expired := serving.ExpiredStreamRuns(runs, now, s.c.Config().SpeedTTL)
	for _, id := range expired {
		if err := s.c.Query(ctx, fmt.Sprintf("DELETE FROM %s.stream_runs WHERE run = ?", s.ks), id).Exec(); err != nil {
			return 0, fmt.Errorf("cassandrastore: prune stream runs: %w", err)
		}
	}
	if len(expired) > 0 {
		s.mu.Lock()
		s.superseded = nil // read again
		s.mu.Unlock()
	}
	return len(expired), nil
}

func (s *Store) StreamRuns(ctx context.Context) ([]serving.StreamRun, error) {
	it := s.c.Query(ctx, fmt.Sprintf("SELECT run, started, start_offsets, end_offsets, drained, superseded_by FROM %s.stream_runs", s.ks)).Iter()
	var out []serving.StreamRun
	for {
		var r serving.StreamRun
		var end map[string]int64
		var drained bool
		if !it.Scan(&r.ID, &r.Started, &r.Start, &end, &drained, &r.SupersededBy) {
			break
		}
		r.Started = r.Started.UTC()
		if drained {
			r.End = end
			if r.End == nil {
				r.End = map[string]int64{}
			}
		}
		out = append(out, r)
	}
	if err := it.Close(); err != nil {
		return nil, fmt.Errorf("cassandrastore: stream runs: %w", err)
	}
	slices.SortFunc(out, func(a, b serving.StreamRun) int {
		return cmp.Or(a.Started.Compare(b.Started), cmp.Compare(a.ID, b.ID))
	})
	return out, nil
}

// Open connects to the cluster of a cassandra:// URL and makes sure the
// schema exists.
func Open(ctx context.Context, url string) (serving.Store, error) {
	cfg, err := cassandraio.ParseURL(url)
	if err != nil {
		return nil, err
	}
	return OpenConfig(ctx, cfg)
}

// OpenConfig is Open with a ready Config.
func OpenConfig(ctx context.Context, cfg cassandraio.Config) (*Store, error) {
	c, err := cassandraio.Connect(ctx, cfg)
	if err != nil {
		return nil, err
	}
	if err := c.EnsureSchema(ctx); err != nil {
		c.Close()
		return nil, err
	}
	return &Store{c: c, ks: c.Config().Keyspace}, nil
}

// Client is the underlying client (stats, throttle).
func (s *Store) Client() *cassandraio.Client { return s.c }

// Close releases the connection.
func (s *Store) Close() error {
	s.c.Close()
	return nil
}

func (s *Store) Counts(ctx context.Context, layer serving.Layer, q serving.CountQuery) ([]serving.CountPoint, error) {
	runCol, skip, err := s.runColumn(ctx, layer)
	if err != nil {
		return nil, err
	}
	stmt := fmt.Sprintf("SELECT bucket%s, count FROM %s.%s WHERE kind = ? AND app_id = ? AND app_version = ? AND granularity = ? AND period = ? AND bucket >= ? AND bucket <= ?",
		runCol, s.ks, table(layer, "counts"))
	var out []serving.CountPoint
	for _, p := range serving.Periods(q.Gran, q.From, q.To) {
		it := s.c.Query(ctx, stmt, q.Kind.String(), q.AppID, q.Version, q.Gran.String(), p, q.From, q.To).Iter()
		var b time.Time
		var run string
		var n int64
		dest := []any{&b, &n}
		if runCol != "" {
			dest = []any{&b, &run, &n}
		}
		for it.Scan(dest...) {
			if skip[run] {
				continue
			}
			// Speed rows arrive by bucket, then run: sum each bucket's runs.
			if len(out) > 0 && out[len(out)-1].Bucket.Equal(b.UTC()) {
				out[len(out)-1].Count += n
			} else {
				out = append(out, serving.CountPoint{Bucket: b.UTC(), Count: n, Layer: layer})
			}
		}
		if err := it.Close(); err != nil {
			return nil, fmt.Errorf("cassandrastore: counts: %w", err)
		}
	}
	return out, nil
}

func (s *Store) Users(ctx context.Context, layer serving.Layer, q serving.UserQuery) ([]aggregate.UserRow, error) {
	runCol, skip, err := s.runColumn(ctx, layer)
	if err != nil {
		return nil, err
	}
	stmt := fmt.Sprintf("SELECT day%s, sketch, estimate, events FROM %s.%s WHERE kind = ? AND app_id = ? AND app_version = ? AND period = ? AND day >= ? AND day <= ?",
		runCol, s.ks, table(layer, "users"))
	var out []aggregate.UserRow
	for _, p := range serving.Periods(aggregate.Day, q.From, q.To) {
		it := s.c.Query(ctx, stmt, q.Kind.String(), q.AppID, q.Version, p, q.From, q.To).Iter()
		var day time.Time
		var run string
		var sketch []byte
		var est, events int64
		dest := []any{&day, &sketch, &est, &events}
		if runCol != "" {
			dest = []any{&day, &run, &sketch, &est, &events}
		}
		for it.Scan(dest...) {
			if skip[run] {
				continue
			}
			out = append(out, aggregate.UserRow{Kind: q.Kind, AppID: q.AppID, AppVersion: q.Version,
				Day: day.UnixMilli(), Sketch: slices.Clone(sketch), Estimate: est, Events: events})
		}
		if err := it.Close(); err != nil {
			return nil, fmt.Errorf("cassandrastore: users: %w", err)
		}
	}
	if layer == serving.Speed {
		return serving.MergeRunRows(out)
	}
	return out, nil
}

func (s *Store) Late(ctx context.Context, q serving.CountQuery) ([]serving.CountPoint, error) {
	skip, err := s.supersededRuns(ctx)
	if err != nil {
		return nil, err
	}
	stmt := fmt.Sprintf("SELECT bucket, source, count FROM %s.speed_late WHERE kind = ? AND app_id = ? AND app_version = ? AND granularity = ? AND period = ? AND bucket >= ? AND bucket <= ?", s.ks)
	var out []serving.CountPoint
	for _, p := range serving.Periods(q.Gran, q.From, q.To) {
		it := s.c.Query(ctx, stmt, q.Kind.String(), q.AppID, q.Version, q.Gran.String(), p, q.From, q.To).Iter()
		var b time.Time
		var source string
		var n int64
		for it.Scan(&b, &source, &n) {
			if run, _, _ := strings.Cut(source, "|"); skip[run] {
				continue
			}
			// Rows arrive by bucket, then source: sum each bucket's sources.
			if len(out) > 0 && out[len(out)-1].Bucket.Equal(b.UTC()) {
				out[len(out)-1].Count += n
			} else {
				out = append(out, serving.CountPoint{Bucket: b.UTC(), Count: n, Layer: serving.Speed})
			}
		}
		if err := it.Close(); err != nil {
			return nil, fmt.Errorf("cassandrastore: late: %w", err)
		}
	}
	return out, nil
}

// indexRows reads one layer's app_index for kind over the months of [from, to].
func (s *Store) indexRows(ctx context.Context, layer serving.Layer, kind event.Kind, from, to time.Time, fn func(app, version string)) error {
	stmt := fmt.Sprintf("SELECT app_id, app_version FROM %s.app_index WHERE layer = ? AND kind = ? AND period = ?", s.ks)
	for _, p := range serving.Periods(aggregate.Day, from, to) {
		it := s.c.Query(ctx, stmt, layer.String(), kind.String(), p).Iter()
		var app, version string
		for it.Scan(&app, &version) {
			fn(app, version)
		}
		if err := it.Close(); err != nil {
			return fmt.Errorf("cassandrastore: app index: %w", err)
		}
	}
	return nil
}

// Catalog reads one layer's app_index; speed entries carry the speed
// rows' TTL, so they expire with them.
func (s *Store) Catalog(ctx context.Context, layer serving.Layer, kind event.Kind, from, to time.Time) ([]serving.AppVersion, error) {
	if layer != serving.Batch && layer != serving.Speed {
		return nil, fmt.Errorf("cassandrastore: bad layer %v", layer)
	}
	seen := map[serving.AppVersion]bool{}
	err := s.indexRows(ctx, layer, kind, from, to, func(app, version string) { seen[serving.AppVersion{AppID: app, Version: version}] = true })
	out := make([]serving.AppVersion, 0, len(seen))
	for av := range seen {
		out = append(out, av)
	}
	slices.SortFunc(out, func(a, b serving.AppVersion) int {
		return cmp.Or(cmp.Compare(a.AppID, b.AppID), cmp.Compare(a.Version, b.Version))
	})
	return out, err
}

// DayTotals is one paged scan of batch_counts, filtered on the server to
// kind's day rows of [from, to] (ALLOW FILTERING: the table is partitioned
// by app, and the point is not to ask once per app).
func (s *Store) DayTotals(ctx context.Context, kind event.Kind, from, to time.Time) ([]serving.AppTotal, error) {
	stmt := fmt.Sprintf("SELECT app_id, app_version, count FROM %s.batch_counts WHERE kind = ? AND granularity = ? AND bucket >= ? AND bucket <= ? ALLOW FILTERING", s.ks)
	it := s.c.Query(ctx, stmt, kind.String(), aggregate.Day.String(), from, to).Iter()
	sums := map[serving.AppVersion]int64{}
	var av serving.AppVersion
	var n int64
	for it.Scan(&av.AppID, &av.Version, &n) {
		sums[av] += n
	}
	if err := it.Close(); err != nil {
		return nil, fmt.Errorf("cassandrastore: day totals: %w", err)
	}
	out := make([]serving.AppTotal, 0, len(sums))
	for av, n := range sums {
		out = append(out, serving.AppTotal{AppVersion: av, Count: n})
	}
	slices.SortFunc(out, func(a, b serving.AppTotal) int {
		return cmp.Or(cmp.Compare(a.AppID, b.AppID), cmp.Compare(a.Version, b.Version))
	})
	return out, nil
}

// PruneBatch writes range tombstones USING TIMESTAMP stamp−1 over the
// window's buckets in every batch partition of the apps in app_index: they
// shadow what older runs wrote, and neither the rows this run wrote nor a
// newer run's. They go through the throttled, retrying writer.
func (s *Store) PruneBatch(ctx context.Context, first, last time.Time, stamp int64) (int64, error) {
	first, last = first.UTC(), last.UTC()
	end := last.AddDate(0, 0, 1)
	countStmt := fmt.Sprintf("DELETE FROM %s.batch_counts USING TIMESTAMP ? WHERE kind = ? AND app_id = ? AND app_version = ? AND granularity = ? AND period = ? AND bucket >= ? AND bucket < ?", s.ks)
	userStmt := fmt.Sprintf("DELETE FROM %s.batch_users USING TIMESTAMP ? WHERE kind = ? AND app_id = ? AND app_version = ? AND period = ? AND day >= ? AND day < ?", s.ks)
	w := s.c.NewWriter()
	for _, k := range event.Kinds {
		series := map[serving.AppVersion]bool{}
		err := s.indexRows(ctx, serving.Batch, k, first, last, func(app, version string) {
			series[serving.AppVersion{AppID: app, Version: version}] = true
			series[serving.AppVersion{AppID: app, Version: aggregate.AllVersions}] = true
		})
		if err != nil {
			return 0, err
		}
		for av := range series {
			for _, g := range []aggregate.Granularity{aggregate.Hour, aggregate.Day} {
				for _, p := range serving.Periods(g, first, last) {
					err := w.Write(ctx, cassandraio.Mutation{
						Stmt:      countStmt,
						Args:      []any{stamp - 1, k.String(), av.AppID, av.Version, g.String(), p, first, end},
						Partition: fmt.Sprint("c|", k, "|", av.AppID, "|", av.Version, "|", g, "|", p),
						Bytes:     48 + len(av.AppID) + len(av.Version),
					})
					if err != nil {
						return 0, err
					}
				}
			}
			for _, p := range serving.Periods(aggregate.Day, first, last) {
				err := w.Write(ctx, cassandraio.Mutation{
					Stmt:      userStmt,
					Args:      []any{stamp - 1, k.String(), av.AppID, av.Version, p, first, end},
					Partition: fmt.Sprint("u|", k, "|", av.AppID, "|", av.Version, "|", p),
					Bytes:     48 + len(av.AppID) + len(av.Version),
				})
				if err != nil {
					return 0, err
				}
			}
		}
	}
	if err := w.Flush(ctx); err != nil {
		return 0, fmt.Errorf("cassandrastore: prune: %w", err)
	}
	return -1, nil
}

func (s *Store) RecordRun(ctx context.Context, r serving.BatchRun) error {
	var finished any
	if !r.Finished.IsZero() {
		finished = r.Finished
	}
	// complete_at: left alone by running and failed attempts, set by a
	// success, cleared (null) by any other finish.
	cols, vals, args := "", "", []any{r.Kind.String(), r.AsOf, r.WindowStart, r.Started, finished, string(r.Status), r.Counters, r.Note}
	switch r.Status {
	case serving.RunRunning, serving.RunFailed:
	case serving.RunSucceeded:
		cols, vals, args = ", complete_at", ", ?", append(args, r.Finished)
	default:
		cols, vals, args = ", complete_at", ", ?", append(args, nil)
	}
	err := s.c.Query(ctx, fmt.Sprintf("INSERT INTO %s.batch_runs (kind, as_of, window_start, started, finished, status, counters, note%s) VALUES (?, ?, ?, ?, ?, ?, ?, ?%s)", s.ks, cols, vals),
		args...).Exec()
	if err != nil {
		return fmt.Errorf("cassandrastore: record run: %w", err)
	}
	return nil
}

func (s *Store) Runs(ctx context.Context, kind event.Kind) ([]serving.BatchRun, error) {
	it := s.c.Query(ctx, fmt.Sprintf("SELECT as_of, window_start, started, finished, status, counters, note, complete_at FROM %s.batch_runs WHERE kind = ?", s.ks), kind.String()).Iter()
	var out []serving.BatchRun
	for {
		r := serving.BatchRun{Kind: kind}
		var status string
		var finished, completeAt time.Time
		if !it.Scan(&r.AsOf, &r.WindowStart, &r.Started, &finished, &status, &r.Counters, &r.Note, &completeAt) {
			break
		}
		if !completeAt.IsZero() {
			r.CompleteAt = completeAt.UTC()
		}
		r.Status = serving.RunStatus(status)
		r.AsOf, r.WindowStart, r.Started = r.AsOf.UTC(), r.WindowStart.UTC(), r.Started.UTC()
		if !finished.IsZero() {
			r.Finished = finished.UTC()
		}
		out = append(out, r)
	}
	if err := it.Close(); err != nil {
		return nil, fmt.Errorf("cassandrastore: runs: %w", err)
	}
	return out, nil
}
