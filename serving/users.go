package serving

import (
	"context"
	"fmt"
	"math"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/lumenhq/lumen/aggregate"
	"github.com/lumenhq/lumen/aggregate/hll"
	"github.com/lumenhq/lumen/event"
)

// daySketch is one day's decoded sketch and the layer it came from.
type daySketch struct {
	day    time.Time
	sketch *hll.Sketch
	layer  Layer
}

// sketches reads the daily sketches of uq (days [From, To]) over both
// layers, split at the watermark like counts, ascending by day.
func (q *Querier) sketches(ctx context.Context, uq UserQuery) ([]daySketch, BatchComplete, error) {
	w, err := q.BatchComplete(ctx, uq.Kind)
	if err != nil {
		return nil, w, err
	}
	// The two layers' reads are independent: they run together.
	var parts [2][]daySketch
	g, gctx := errgroup.WithContext(ctx)
	read := func(i int, l Layer, sub UserQuery) {
		g.Go(func() error {
			rows, err := q.Store.Users(gctx, l, sub)
			if err != nil {
				return err
			}
			for _, r := range rows {
				s := new(hll.Sketch)
				if err := s.UnmarshalBinary(r.Sketch); err != nil {
					return fmt.Errorf("serving: %s sketch of %s %s %q %s: %w", l, r.Kind, r.AppID, r.AppVersion, r.DayTime().Format(time.DateOnly), err)
				}
				parts[i] = append(parts[i], daySketch{day: r.DayTime(), sketch: s, layer: l})
			}
			return nil
		})
	}
	batchTo, batchOK, speedFrom, speedOK := w.split(uq.From, uq.To, 24*time.Hour)
	if batchOK {
		b := uq
		b.To = batchTo
		read(0, Batch, b)
	}
	if speedOK {
		sp := uq
		sp.From = speedFrom
		read(1, Speed, sp)
	}
	if err := g.Wait(); err != nil {
		return nil, w, err
	}
	return append(parts[0], parts[1]...), w, nil
}

// UsersResult is a distinct-device estimate over a range of days, merged
// from daily sketches.
type UsersResult struct {
	From, To  time.Time // the days, inclusive
	Estimate  int64
	BatchDays int // days whose sketch came from the batch layer
	SpeedDays int // days whose sketch came from the speed layer
	// RelError is the estimate's relative standard error: 1.04/√(2^p) for
	// the sketches' precision p (0.81 % at lumen's default 14), 0 when
	// no day had devices.
	RelError float64
}

// merge estimates distinct devices over the days of ds in [from, to].
func merge(ds []daySketch, from, to time.Time) (UsersResult, error) {
	res := UsersResult{From: from, To: to}
	var m *hll.Sketch
	for _, d := range ds {
		if d.day.Before(from) || d.day.After(to) {
			continue
		}
		if d.layer == Batch {
			res.BatchDays++
		} else {
			res.SpeedDays++
		}
		if m == nil {
			m = d.sketch.Clone()
			continue
		}
		if err := m.Merge(d.sketch); err != nil {
			return res, fmt.Errorf("serving: merging the sketch of %s: %w", d.day.Format(time.DateOnly), err)
		}
	}
	if m != nil {
		res.Estimate = int64(m.Estimate())
		res.RelError = RelativeError(m.Precision())
	}
	return res, nil
}

// RelativeError is the relative standard error of a HyperLogLog++
// estimate at precision p: 1.04/√(2^p). Small sets (HLL++'s sparse form)
// are counted nearly exactly, so this is an upper bound for them.
func RelativeError(p uint8) float64 { return 1.04 / math.Sqrt(float64(uint64(1)<<p)) }

// Users estimates distinct devices over the days [uq.From, uq.To] by
// merging daily sketches: batch days up to the watermark, speed days after.
// Today's MAU is thus 29 batch days merged with today's speed sketch.
func (q *Querier) Users(ctx context.Context, uq UserQuery) (UsersResult, error) {
	ds, _, err := q.sketches(ctx, uq)
	if err != nil {
		return UsersResult{}, err
	}
	return merge(ds, uq.From, uq.To)
}

// DayUsers is one day's distinct devices and the layer that answered.
type DayUsers struct {
	Day      time.Time
	Estimate int64
	Layer    Layer
}

// Daily returns the distinct devices of each day of uq that has any
// (DAU as a series), labelled by layer, and over the whole range, from one
// read of the sketches, with the watermark.
func (q *Querier) Daily(ctx context.Context, uq UserQuery) ([]DayUsers, UsersResult, BatchComplete, error) {
	ds, w, err := q.sketches(ctx, uq)
	if err != nil {
		return nil, UsersResult{}, w, err
	}
	out := make([]DayUsers, len(ds))
	for i, d := range ds {
		out[i] = DayUsers{Day: d.day, Estimate: int64(d.sketch.Estimate()), Layer: d.layer}
	}
	total, err := merge(ds, uq.From, uq.To)
	return out, total, w, err
}

// Active is the active users of a date: DAU (the day), WAU (the 7 days
// ending with it) and MAU (the 30 days ending with it).
type Active struct {
	Date          time.Time
	DAU, WAU, MAU UsersResult
	Batch         BatchComplete
}

// ActiveUsers returns DAU, WAU and MAU of a day for kind, app and version
// (AllVersions for the app), from one read of 30 days of sketches.
func (q *Querier) ActiveUsers(ctx context.Context, kind event.Kind, app, version string, date time.Time) (Active, error) {
	date = aggregate.Day.TruncateTime(date)
	a := Active{Date: date}
	ds, w, err := q.sketches(ctx, UserQuery{Kind: kind, AppID: app, Version: version, From: date.AddDate(0, 0, -29), To: date})
	if err != nil {
		return a, err
	}
	a.Batch = w
	for _, x := range []struct {
		res  *UsersResult
		days int
	}{{&a.DAU, 1}, {&a.WAU, 7}, {&a.MAU, 30}} {
		if *x.res, err = merge(ds, date.AddDate(0, 0, 1-x.days), date); err != nil {
			return a, err
		}
	}
	return a, nil
}

// CrashFree is the crash-free users of one version over a range of days
// (DESIGN §4): 1 − devices with a crash / devices with an app load, each
// from merged daily sketches.
type CrashFree struct {
	Version string // AllVersions for the app as a whole
	Active  int64  // distinct devices with an app load
	Crashed int64  // distinct devices with a crash
	// Rate is 1 − Crashed/Active, in [0, 1]; 1 when nobody was active.
	Rate float64
	// ErrorBound is a 95 % bound on |Rate − exact| from the sketches'
	// error alone: two standard errors of the ratio of two estimates,
	// each with relative error ε, 2·√2·ε·Crashed/Active (at precision 14,
	// ε = 0.81 %: at most 2.3 points, and 0.23 points for an app with
	// 10 % crashing users).
	ErrorBound float64
}

// crashFree computes a CrashFree from two estimates and the sketches'
// relative standard error.
func crashFree(version string, active, crashed int64, relErr float64) CrashFree {
	c := CrashFree{Version: version, Active: active, Crashed: crashed, Rate: 1}
	if active > 0 {
		ratio := float64(min(crashed, active)) / float64(active)
		c.Rate = 1 - ratio
		c.ErrorBound = math.Min(1, 2*math.Sqrt2*relErr*ratio)
	}
	return c
}

// CrashFreeUsers returns the crash-free users of app over the days
// [from, to]: the app as a whole first, then each of versions, in order.
// Versions are read concurrently (a few at a time): each is two series of
// daily sketches, and a store answers them in parallel.
func (q *Querier) CrashFreeUsers(ctx context.Context, app string, versions []string, from, to time.Time) ([]CrashFree, BatchComplete, error) {
	all := append([]string{aggregate.AllVersions}, versions...)
	out := make([]CrashFree, len(all))
	var w BatchComplete
	var mu sync.Mutex
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(4)
	for i, v := range all {
		g.Go(func() error {
			var res [2]UsersResult
			for j, k := range []event.Kind{event.AppLoad, event.Crash} {
				ds, kw, err := q.sketches(ctx, UserQuery{Kind: k, AppID: app, Version: v, From: from, To: to})
				if err != nil {
					return err
				}
				if res[j], err = merge(ds, from, to); err != nil {
					return err
				}
				if k == event.AppLoad && i == 0 {
					mu.Lock()
					w = kw
					mu.Unlock()
				}
			}
			out[i] = crashFree(v, res[0].Estimate, res[1].Estimate, max(res[0].RelError, res[1].RelError))
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, w, err
	}
	return out, w, nil
}
