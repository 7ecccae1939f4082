package serving

import (
	"context"
	"fmt"
	"time"

	"github.com/lumenhq/lumen/aggregate"
	"github.com/lumenhq/lumen/aggregate/hll"
	"github.com/lumenhq/lumen/event"
)

// Querier answers queries over both layers: completed batch days come from
// the batch tables, everything after from the speed tables (DESIGN, the
// serving layer). Minutes exist in the speed layer only.
type Querier struct {
	Store Store
}

// BatchCutoff returns the first instant not covered by a successful batch
// run of kind: midnight after its newest as_of. ok is false if no run has
// succeeded, in which case everything comes from the speed layer.
func (q *Querier) BatchCutoff(ctx context.Context, kind event.Kind) (time.Time, bool, error) {
	runs, err := q.Store.Runs(ctx, kind)
	if err != nil {
		return time.Time{}, false, err
	}
	for _, r := range runs { // newest first
		if r.Status == RunSucceeded {
			return r.AsOf.AddDate(0, 0, 1), true, nil
		}
	}
	return time.Time{}, false, nil
}

// Counts returns the counts of cq over both layers, ascending by bucket, one
// point per bucket that has events.
func (q *Querier) Counts(ctx context.Context, cq CountQuery) ([]CountPoint, error) {
	if cq.Gran == aggregate.Minute {
		return q.Store.Counts(ctx, Speed, cq)
	}
	cut, ok, err := q.BatchCutoff(ctx, cq.Kind)
	if err != nil {
		return nil, err
	}
	var out []CountPoint
	if ok && cq.From.Before(cut) {
		b := cq
		if !b.To.Before(cut) {
			b.To = cut.Add(-time.Millisecond)
		}
		pts, err := q.Store.Counts(ctx, Batch, b)
		if err != nil {
			return nil, err
		}
		out = append(out, pts...)
	}
	if !ok || !cq.To.Before(cut) {
		sp := cq
		if ok && sp.From.Before(cut) {
			sp.From = cut
		}
		pts, err := q.Store.Counts(ctx, Speed, sp)
		if err != nil {
			return nil, err
		}
		out = append(out, pts...)
	}
	return out, nil
}

// UsersResult is a distinct-device estimate over a range of days.
type UsersResult struct {
	Estimate  int64
	BatchDays int // days whose sketch came from the batch layer
	SpeedDays int // days whose sketch came from the speed layer
}

// Users estimates distinct devices over the days [uq.From, uq.To] by
// merging daily sketches: batch days before the cutoff, speed days after.
// Today's MAU is thus 29 batch days merged with today's speed sketch.
func (q *Querier) Users(ctx context.Context, uq UserQuery) (UsersResult, error) {
	cut, ok, err := q.BatchCutoff(ctx, uq.Kind)
	if err != nil {
		return UsersResult{}, err
	}
	var res UsersResult
	var merged *hll.Sketch
	add := func(rows []aggregate.UserRow) error {
		for _, r := range rows {
			s := new(hll.Sketch)
			if err := s.UnmarshalBinary(r.Sketch); err != nil {
				return fmt.Errorf("serving: sketch of %s %s %s: %w", r.Kind, r.AppID, r.DayTime().Format(time.DateOnly), err)
			}
			if merged == nil {
				merged = s
			} else if err := merged.Merge(s); err != nil {
				return fmt.Errorf("serving: merging sketches: %w", err)
			}
		}
		return nil
	}
	if ok && uq.From.Before(cut) {
		b := uq
		if !b.To.Before(cut) {
			b.To = cut.AddDate(0, 0, -1)
		}
		rows, err := q.Store.Users(ctx, Batch, b)
		if err != nil {
			return res, err
		}
		res.BatchDays = len(rows)
		if err := add(rows); err != nil {
			return res, err
		}
	}
	if !ok || !uq.To.Before(cut) {
		sp := uq
		if ok && sp.From.Before(cut) {
			sp.From = cut
		}
		rows, err := q.Store.Users(ctx, Speed, sp)
		if err != nil {
			return res, err
		}
		res.SpeedDays = len(rows)
		if err := add(rows); err != nil {
			return res, err
		}
	}
	if merged != nil {
		res.Estimate = int64(merged.Estimate())
	}
	return res, nil
}
