package serving

import (
	"context"
	"slices"
	"strings"
	"time"

	"github.com/lumenhq/lumen/event"
)

// CatalogMonths is how far back Apps looks for apps in the batch layer:
// 13 months before the newest batch watermark, so an app a year old is
// known and the lookup stays a bounded number of partition reads.
const CatalogMonths = 13

// BatchCatalog reads the batch layer's Catalog of kind over the months that
// overlap [from, to], grouped: the app ids, sorted, and each app's versions
// (not AllVersions), sorted.
func BatchCatalog(ctx context.Context, st Store, kind event.Kind, from, to time.Time) (apps []string, versions map[string][]string, err error) {
	avs, err := st.Catalog(ctx, Batch, kind, from, to)
	if err != nil {
		return nil, nil, err
	}
	versions = map[string][]string{}
	for _, av := range avs { // sorted by app, then version
		if len(apps) == 0 || apps[len(apps)-1] != av.AppID {
			apps = append(apps, av.AppID)
		}
		versions[av.AppID] = append(versions[av.AppID], av.Version)
	}
	return apps, versions, nil
}

// AppInfo is one app the store knows, its versions, and the layers that
// have rows of it.
type AppInfo struct {
	AppID    string
	Versions []string // ascending; AllVersions is implied
	Layers   []Layer  // ascending (Batch before Speed)
}

// Apps lists the apps with rows of any kind, sorted by app id: batch rows
// in the CatalogMonths up to the newest batch watermark W (of any kind),
// and speed rows after W, up to the day after now, or at most
// CatalogMonths back (all of them if no batch run has succeeded). These are the
// rows the merge reads, so it is how the serving side tells an unknown
// app from a quiet one: an app it lists answers an empty range with no
// points; one it does not list is unknown.
func (q *Querier) Apps(ctx context.Context, now time.Time) ([]AppInfo, error) {
	var w BatchComplete
	for _, k := range event.Kinds {
		kw, err := q.BatchComplete(ctx, k)
		if err != nil {
			return nil, err
		}
		if kw.Day.After(w.Day) {
			w = kw
		}
	}
	now = now.UTC()
	anchor := now
	if w.OK() {
		anchor = w.Day
	}
	speedTo := now.AddDate(0, 0, 1)
	if speedTo.Before(anchor) {
		speedTo = anchor.AddDate(0, 0, 1)
	}
	speedFrom := anchor
	if !w.OK() {
		// No batch run: the speed layer answers for every day it holds
		// (a replay of history before the first batch run).
		speedFrom = time.Time{}
	}
	if limit := speedTo.AddDate(0, -CatalogMonths, 0); speedFrom.Before(limit) {
		speedFrom = limit
	}
	windows := map[Layer][2]time.Time{Batch: {anchor.AddDate(0, -CatalogMonths, 0), anchor}, Speed: {speedFrom, speedTo}}
	type entry struct {
		versions map[string]bool
		layers   map[Layer]bool
	}
	apps := map[string]*entry{}
	for _, l := range []Layer{Batch, Speed} {
		for _, k := range event.Kinds {
			avs, err := q.Store.Catalog(ctx, l, k, windows[l][0], windows[l][1])
			if err != nil {
				return nil, err
			}
			for _, av := range avs {
				e := apps[av.AppID]
				if e == nil {
					e = &entry{versions: map[string]bool{}, layers: map[Layer]bool{}}
					apps[av.AppID] = e
				}
				e.versions[av.Version] = true
				e.layers[l] = true
			}
		}
	}
	out := make([]AppInfo, 0, len(apps))
	for id, e := range apps {
		info := AppInfo{AppID: id}
		for v := range e.versions {
			info.Versions = append(info.Versions, v)
		}
		slices.Sort(info.Versions)
		for _, l := range []Layer{Batch, Speed} {
			if e.layers[l] {
				info.Layers = append(info.Layers, l)
			}
		}
		out = append(out, info)
	}
	slices.SortFunc(out, func(a, b AppInfo) int { return strings.Compare(a.AppID, b.AppID) })
	return out, nil
}
