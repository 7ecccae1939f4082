package sqlitestore

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/lumenhq/lumen/event"
	"github.com/lumenhq/lumen/serving"
)

// The run tables of the SQLite store: batch_runs and stream_runs.

func (s *sqliteStore) RecordRun(ctx context.Context, r serving.BatchRun) error {
	counters, err := json.Marshal(r.Counters)
	if err != nil {
		return err
	}
	var finished int64
	if !r.Finished.IsZero() {
		finished = r.Finished.UnixMilli()
	}
	// complete_at: kept (-1) by running and failed attempts, set by a
	// success, cleared by any other finish.
	completeAt := int64(0)
	switch r.Status {
	case serving.RunRunning, serving.RunFailed:
		completeAt = -1
	case serving.RunSucceeded:
		completeAt = finished
	}
	_, err = s.db.ExecContext(ctx, `INSERT INTO batch_runs (kind, as_of, window_start, started, finished, status, counters, note, complete_at)
		VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, MAX(?9, 0))
		ON CONFLICT DO UPDATE SET window_start = excluded.window_start, started = excluded.started,
		finished = excluded.finished, status = excluded.status, counters = excluded.counters, note = excluded.note,
		complete_at = CASE WHEN ?9 < 0 THEN batch_runs.complete_at ELSE ?9 END`,
		r.Kind.String(), r.AsOf.Format(time.DateOnly), r.WindowStart.Format(time.DateOnly),
		r.Started.UnixMilli(), finished, string(r.Status), string(counters), r.Note, completeAt)
	if err != nil {
		return fmt.Errorf("serving: sqlite record run: %w", err)
	}
	return nil
}

func (s *sqliteStore) Runs(ctx context.Context, kind event.Kind) ([]serving.BatchRun, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT as_of, window_start, started, finished, status, counters, note, complete_at
		FROM batch_runs WHERE kind = ? ORDER BY as_of DESC`, kind.String())
	if err != nil {
		return nil, fmt.Errorf("serving: sqlite runs: %w", err)
	}
	defer rows.Close()
	var out []serving.BatchRun
	for rows.Next() {
		var asOf, ws, status, counters, note string
		var started, finished, completeAt int64
		if err := rows.Scan(&asOf, &ws, &started, &finished, &status, &counters, &note, &completeAt); err != nil {
			return nil, err
		}
		r := serving.BatchRun{Kind: kind, Status: serving.RunStatus(status), Note: note, Started: time.UnixMilli(started).UTC()}
		if completeAt > 0 {
			r.CompleteAt = time.UnixMilli(completeAt).UTC()
		}
		r.AsOf, _ = time.Parse(time.DateOnly, asOf)
		r.WindowStart, _ = time.Parse(time.DateOnly, ws)
		if finished > 0 {
			r.Finished = time.UnixMilli(finished).UTC()
		}
		if err := json.Unmarshal([]byte(counters), &r.Counters); err != nil {
			return nil, fmt.Errorf("serving: sqlite run counters: %w", err)
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

func (s *sqliteStore) RecordStreamRun(ctx context.Context, r serving.StreamRun) error {
	start, err := json.Marshal(r.Start)
	if err != nil {
		return err
	}
	end := []byte{}
	if r.End != nil {
		if end, err = json.Marshal(r.End); err != nil {
			return err
		}
	}
	_, err = s.db.ExecContext(ctx, `INSERT INTO stream_runs (run, started, start_offsets, end_offsets, superseded_by)
		VALUES (?, ?, ?, ?, ?) ON CONFLICT DO UPDATE SET started = excluded.started, start_offsets = excluded.start_offsets,
		end_offsets = excluded.end_offsets, superseded_by = excluded.superseded_by`,
		r.ID, r.Started.UnixMilli(), string(start), string(end), r.SupersededBy)
	if err != nil {
		return fmt.Errorf("serving: sqlite record stream run: %w", err)
	}
	return nil
}

func (s *sqliteStore) StreamRuns(ctx context.Context) ([]serving.StreamRun, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT run, started, start_offsets, end_offsets, superseded_by FROM stream_runs ORDER BY started, run`)
	if err != nil {
		return nil, fmt.Errorf("serving: sqlite stream runs: %w", err)
	}
	defer rows.Close()
	var out []serving.StreamRun
	for rows.Next() {
		var r serving.StreamRun
		var started int64
		var start, end string
		if err := rows.Scan(&r.ID, &started, &start, &end, &r.SupersededBy); err != nil {
			return nil, err
		}
		r.Started = time.UnixMilli(started).UTC()
		if err := json.Unmarshal([]byte(start), &r.Start); err != nil {
			return nil, fmt.Errorf("serving: sqlite stream run %s: %w", r.ID, err)
		}
		if end != "" {
			if err := json.Unmarshal([]byte(end), &r.End); err != nil {
				return nil, fmt.Errorf("serving: sqlite stream run %s: %w", r.ID, err)
			}
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

func (s *sqliteStore) PruneStreamRuns(ctx context.Context, now time.Time) (int, error) {
	runs, err := s.StreamRuns(ctx)
	if err != nil {
		return 0, err
	}
	expired := serving.ExpiredStreamRuns(runs, now, s.ttl)
	for _, id := range expired {
		if _, err := s.db.ExecContext(ctx, `DELETE FROM stream_runs WHERE run = ?`, id); err != nil {
			return 0, fmt.Errorf("serving: sqlite prune stream runs: %w", err)
		}
	}
	return len(expired), nil
}
