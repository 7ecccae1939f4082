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
// layers.
func report(ctx context.Context, q *serving.Querier, app, version string, from, to time.Time) (AppReport, error) {
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
	if r.Loads, err = sum(event.AppLoad); err != nil {
		return r, err
	}
	if r.Crashes, err = sum(event.Crash); err != nil {
		return r, err
	}
	if r.DAU, err = users(event.AppLoad, to); err != nil {
		return r, err
	}
	if r.Active, err = users(event.AppLoad, from); err != nil {
		return r, err
	}
	if r.Crashed, err = users(event.Crash, from); err != nil {
		return r, err
	}
	return r, nil
}

// topApps reports the n apps with the most loads over [from, to], most
// first, with their versions' reports in versions.
func topApps(ctx context.Context, q *serving.Querier, n int, from, to time.Time) (apps []AppReport, versions map[string][]AppReport, err error) {
	ids, vers, err := serving.BatchCatalog(ctx, q.Store, event.AppLoad, from, to)
	if err != nil {
		return nil, nil, err
	}
	for _, id := range ids {
		r, err := report(ctx, q, id, aggregate.AllVersions, from, to)
		if err != nil {
			return nil, nil, err
		}
		apps = append(apps, r)
	}
	slices.SortFunc(apps, func(a, b AppReport) int { return cmp.Or(cmp.Compare(b.Loads, a.Loads), cmp.Compare(a.AppID, b.AppID)) })
	apps = apps[:min(n, len(apps))]
	versions = map[string][]AppReport{}
	for _, a := range apps {
		for _, v := range vers[a.AppID] {
			r, err := report(ctx, q, a.AppID, v, from, to)
			if err != nil {
				return nil, nil, err
			}
			versions[a.AppID] = append(versions[a.AppID], r)
		}
	}
	return apps, versions, nil
}
