package main

import (
	"cmp"
	"context"
	"slices"
	"time"

	"github.com/lumenhq/lumen/aggregate"
	"github.com/lumenhq/lumen/event"
	"github.com/lumenhq/lumen/serving"
)

// AppReport is what a person wants to know about an app over a range of
// days: its loads, active users, and how many of them did not crash.
type AppReport struct {
	AppID   string
	Version string // AllVersions for the app as a whole
	Loads   int64
	Crashes int64
	DAU     int64 // distinct devices loading the app on the last day
	Active  int64 // distinct devices loading the app over the range (MAU for 30 days)
	Crashed int64 // distinct devices that crashed over the range
}

// CrashFree is the share of active users without a crash (DESIGN §4),
// or 1 if there were no active users.
func (r AppReport) CrashFree() float64 {
	if r.Active == 0 {
		return 1
	}
	return 1 - float64(min(r.Crashed, r.Active))/float64(r.Active)
}

// report computes an AppReport over the days [from, to], through both
// layers. Without full, only the users and crashed users over the range
// (what the versions table shows).
func report(ctx context.Context, q *serving.Querier, app, version string, from, to time.Time, full bool) (AppReport, error) {
	r := AppReport{AppID: app, Version: version}
	sum := func(k event.Kind) (int64, error) {
		pts, err := q.Counts(ctx, serving.CountQuery{Kind: k, AppID: app, Version: version, Gran: aggregate.Day, From: from, To: to})
		var n int64
		for _, p := range pts {
			n += p.Count
		}
		return n, err
	}
	users := func(k event.Kind, from time.Time) (int64, error) {
		u, err := q.Users(ctx, serving.UserQuery{Kind: k, AppID: app, Version: version, From: from, To: to})
		return u.Estimate, err
	}
	var err error
	if r.Active, err = users(event.AppLoad, from); err != nil {
		return r, err
	}
	if r.Crashed, err = users(event.Crash, from); err != nil {
		return r, err
	}
	if !full {
		return r, nil
	}
	if r.Loads, err = sum(event.AppLoad); err != nil {
		return r, err
	}
	if r.Crashes, err = sum(event.Crash); err != nil {
		return r, err
	}
	if r.DAU, err = users(event.AppLoad, to); err != nil {
		return r, err
	}
	return r, nil
}

// versionsPerApp bounds the versions of each top app that the summary
// reads: the ones with the most loads.
const versionsPerApp = 10

// topApps reports the n apps with the most loads over [from, to], most
// first, with the reports of their versionsPerApp versions with the most
// loads in versions. Its cost does not grow with the number of apps: one
// scan of the batch day counts ranks them (Store.DayTotals), and only
// the apps and versions it reports are read one by one.
func topApps(ctx context.Context, q *serving.Querier, n int, from, to time.Time) (apps []AppReport, versions map[string][]AppReport, err error) {
	totals, err := q.Store.DayTotals(ctx, event.AppLoad, from, to)
	if err != nil {
		return nil, nil, err
	}
	var ranked []serving.AppTotal
	byApp := map[string][]serving.AppTotal{}
	for _, t := range totals {
		if t.Version == aggregate.AllVersions {
			ranked = append(ranked, t)
		} else {
			byApp[t.AppID] = append(byApp[t.AppID], t)
		}
	}
	mostFirst := func(a, b serving.AppTotal) int {
		return cmp.Or(cmp.Compare(b.Count, a.Count), cmp.Compare(a.AppID, b.AppID), cmp.Compare(a.Version, b.Version))
	}
	slices.SortFunc(ranked, mostFirst)
	versions = map[string][]AppReport{}
	for _, t := range ranked[:min(n, len(ranked))] {
		r, err := report(ctx, q, t.AppID, aggregate.AllVersions, from, to, true)
		if err != nil {
			return nil, nil, err
		}
		apps = append(apps, r)
		vs := byApp[t.AppID]
		slices.SortFunc(vs, mostFirst)
		for _, v := range vs[:min(versionsPerApp, len(vs))] {
			r, err := report(ctx, q, t.AppID, v.Version, from, to, false)
			if err != nil {
				return nil, nil, err
			}
			versions[t.AppID] = append(versions[t.AppID], r)
		}
	}
	// The ranking is by the batch rows; the reports merge both layers.
	slices.SortStableFunc(apps, func(a, b AppReport) int { return cmp.Compare(b.Loads, a.Loads) })
	return apps, versions, nil
}
