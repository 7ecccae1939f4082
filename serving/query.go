package serving

import (
	"context"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/lumenhq/lumen/aggregate"
	"github.com/lumenhq/lumen/event"
)

// Querier answers queries over both layers (DESIGN, the serving layer).
// The merge is one rule, applied the same way to counts, sketches and the
// late ledger:
//
//   - the batch watermark of a kind is the as_of of its newest successful
//     run in batch_runs;
//   - a bucket on or before the watermark day comes from the batch tables,
//     a later one from the speed tables (minutes from speed minutes, hours
//     from speed hours, days from speed days, users from speed day
//     sketches);
//   - every point carries the layer it came from, and a range that crosses
//     the watermark is answered in one call.
//
// Minutes exist in the speed layer only, so a minute is a speed point on
// either side of the watermark (for as long as speed rows live, 7 days).
type Querier struct {
	Store Store
}

// BatchComplete is how far the batch layer of a kind is complete: the
// serving side's split between the layers (DESIGN's "batch watermark").
// It is a day, not an event-time watermark like the stream's. The query
// API (v1) keeps calling it "watermark" in its JSON.
type BatchComplete struct {
	// Day is the as_of of the newest batch run that succeeded on complete
	// input (a UTC day start), never later than the day before that run
	// finished; zero if no run has.
	Day time.Time
}

// OK reports whether a batch run has succeeded.
func (w BatchComplete) OK() bool { return !w.Day.IsZero() }

// Cutoff is the first instant the batch layer does not cover: midnight
// after Day. Without a successful run it is the zero time, and everything
// is speed.
func (w BatchComplete) Cutoff() time.Time {
	if !w.OK() {
		return time.Time{}
	}
	return w.Day.AddDate(0, 0, 1)
}

// LayerOf returns the layer that answers for the bucket starting at t.
func (w BatchComplete) LayerOf(t time.Time) Layer {
	if w.OK() && t.Before(w.Cutoff()) {
		return Batch
	}
	return Speed
}

// BatchComplete returns how far the batch layer of kind is complete.
func (q *Querier) BatchComplete(ctx context.Context, kind event.Kind) (BatchComplete, error) {
	runs, err := q.Store.Runs(ctx, kind)
	if err != nil {
		return BatchComplete{}, err
	}
	return BatchCompleteOf(runs), nil
}

// BatchCompleteOf computes BatchComplete from batch_runs rows: the newest
// as_of that an attempt completed (CompleteAt), capped at the day before
// that attempt finished, since a day that had not ended cannot be
// complete. Running, failed, incomplete and partial attempts do not move
// it, and a running or failed re-run keeps the CompleteAt of the success
// before it (DESIGN §3).
func BatchCompleteOf(runs []BatchRun) BatchComplete {
	var w BatchComplete
	for _, r := range runs {
		if r.CompleteAt.IsZero() {
			continue
		}
		d := r.AsOf.UTC()
		if ended := r.CompleteAt.UTC().Truncate(24*time.Hour).AddDate(0, 0, -1); ended.Before(d) {
			d = ended
		}
		if d.After(w.Day) {
			w.Day = d
		}
	}
	return w
}

// split divides [from, to] at the watermark into the part the batch layer
// answers and the part the speed layer answers; an empty part has ok false.
func (w BatchComplete) split(from, to time.Time, step time.Duration) (batchTo time.Time, batchOK bool, speedFrom time.Time, speedOK bool) {
	cut := w.Cutoff()
	if !w.OK() {
		return time.Time{}, false, from, true
	}
	batchOK = from.Before(cut)
	batchTo = to
	if !to.Before(cut) {
		batchTo = cut.Add(-step)
	}
	speedOK = !to.Before(cut)
	speedFrom = from
	if from.Before(cut) {
		speedFrom = cut
	}
	return batchTo, batchOK, speedFrom, speedOK
}

// Counts returns the counts of cq over both layers, ascending by bucket,
// one point per bucket with events, each labelled with its layer.
func (q *Querier) Counts(ctx context.Context, cq CountQuery) ([]CountPoint, error) {
	pts, _, err := q.CountsAt(ctx, cq)
	return pts, err
}

// CountsAt is Counts that also returns the watermark it merged at (read
// once, so the points and the boundary a chart draws agree).
func (q *Querier) CountsAt(ctx context.Context, cq CountQuery) ([]CountPoint, BatchComplete, error) {
	w, err := q.BatchComplete(ctx, cq.Kind)
	if err != nil {
		return nil, w, err
	}
	if cq.Gran == aggregate.Minute {
		pts, err := q.Store.Counts(ctx, Speed, cq)
		return label(pts, Speed), w, err
	}
	// The two layers' reads are independent: they run together.
	var batch, speed []CountPoint
	batchTo, batchOK, speedFrom, speedOK := w.split(cq.From, cq.To, time.Millisecond)
	g, gctx := errgroup.WithContext(ctx)
	if batchOK {
		b := cq
		b.To = batchTo
		g.Go(func() (err error) {
			batch, err = q.Store.Counts(gctx, Batch, b)
			return err
		})
	}
	if speedOK {
		sp := cq
		sp.From = speedFrom
		g.Go(func() (err error) {
			speed, err = q.Store.Counts(gctx, Speed, sp)
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return nil, w, err
	}
	return append(label(batch, Batch), label(speed, Speed)...), w, nil
}

// label sets the layer of points read from one layer's tables: the store
// knows, but the merge is where it must be right.
func label(pts []CountPoint, l Layer) []CountPoint {
	for i := range pts {
		pts[i].Layer = l
	}
	return pts
}

// Late returns the late-data ledger of cq: events the speed layer dropped
// as late, per bucket, ascending. The stream records drops per minute and
// hour; a day's drops are the sum of its hours. Each point is labelled
// Speed; pending (bucket after the watermark) or not is for the caller to
// judge with the returned watermark: a dropped event in a bucket on or
// before the watermark has already been counted by the batch.
func (q *Querier) Late(ctx context.Context, cq CountQuery) ([]CountPoint, BatchComplete, error) {
	w, err := q.BatchComplete(ctx, cq.Kind)
	if err != nil {
		return nil, w, err
	}
	if cq.Gran != aggregate.Day {
		pts, err := q.Store.Late(ctx, cq)
		return label(pts, Speed), w, err
	}
	hq := cq
	hq.Gran = aggregate.Hour
	hours, err := q.Store.Late(ctx, hq)
	if err != nil {
		return nil, w, err
	}
	var out []CountPoint
	for _, h := range hours {
		d := h.Bucket.Truncate(24 * time.Hour)
		if n := len(out); n > 0 && out[n-1].Bucket.Equal(d) {
			out[n-1].Count += h.Count
			continue
		}
		out = append(out, CountPoint{Bucket: d, Count: h.Count, Layer: Speed})
	}
	return out, w, nil
}
