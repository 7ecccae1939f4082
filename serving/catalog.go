package serving

import (
	"context"
	"slices"
	"strings"
	"time"

	"github.com/lumenhq/lumen/event"
)

// CatalogMonths is how far back Apps looks for apps: 13 months before the
// newest of the batch watermarks and today, so an app a year old is known
// and the lookup stays a bounded number of partition reads.
const CatalogMonths = 13

// AppInfo is one app the store knows, its versions, and the layers that
// have rows of it.
type AppInfo struct {
	AppID    string
	Versions []string // ascending; AllVersions is implied
	Layers   []Layer  // ascending (Batch before Speed)
}

// Apps lists the apps with rows of any kind in either layer from
// CatalogMonths before the newest of the batch watermarks and now until
// the day after it, sorted by app id. It is how the serving side tells an
// unknown app from a quiet one: an app it lists answers empty ranges with
// no points; one it does not list is unknown.
func (q *Querier) Apps(ctx context.Context, now time.Time) ([]AppInfo, error) {
	anchor := now.UTC()
	for _, k := range event.Kinds {
		w, err := q.Watermark(ctx, k)
		if err != nil {
			return nil, err
		}
		if w.OK() && w.Day.After(anchor) {
			anchor = w.Day
		}
	}
	from, to := anchor.AddDate(0, -CatalogMonths, 0), anchor.AddDate(0, 0, 1)
	type entry struct {
		versions map[string]bool
		layers   map[Layer]bool
	}
	apps := map[string]*entry{}
	for _, l := range []Layer{Batch, Speed} {
		for _, k := range event.Kinds {
			avs, err := q.Store.Catalog(ctx, l, k, from, to)
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
