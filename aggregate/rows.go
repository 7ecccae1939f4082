package aggregate

import (
	"cmp"
	"fmt"
	"slices"
	"time"

	"github.com/lumenhq/lumen/aggregate/hll"
	"github.com/lumenhq/lumen/event"
)

// CountRow is one count: events of a kind, app and version (AllVersions for
// every version) in one bucket. It maps onto batch_counts and speed_counts
// (DESIGN §2).
type CountRow struct {
	Kind       event.Kind
	AppID      string
	AppVersion string
	Gran       Granularity
	Bucket     int64 // bucket start, ms since the epoch (UTC)
	Count      int64
}

// BucketTime is the bucket start as a UTC time.
func (r CountRow) BucketTime() time.Time { return time.UnixMilli(r.Bucket).UTC() }

func (r CountRow) String() string {
	return fmt.Sprintf("%s/%s/%q %s %s = %d", r.Kind, r.AppID, r.AppVersion, r.Gran,
		r.BucketTime().Format(time.RFC3339), r.Count)
}

// UserRow is one day's distinct devices of a kind, app and version: the
// serialized sketch, which later merges into WAU/MAU and other ranges, and
// its estimate. It maps onto batch_users and speed_users.
type UserRow struct {
	Kind       event.Kind
	AppID      string
	AppVersion string
	Day        int64 // day start, ms since the epoch (UTC)
	Sketch     []byte
	Estimate   int64
	// Events is how many events went into the sketch. Within an
	// accumulating window it only grows, so the speed layer keeps the row
	// with the most events when panes arrive out of order.
	Events int64
}

// LateRow counts events that arrived behind the watermark, dropped from
// the speed layer (the batch will count them). Source tells apart the
// contributions to one bucket (a late pane of one window, or one Kafka
// record beyond the lateness horizon), so writing it is idempotent and the
// bucket's total is the sum over sources.
type LateRow struct {
	Kind       event.Kind
	AppID      string
	AppVersion string
	Gran       Granularity
	Bucket     int64
	Source     string
	Count      int64
}

// DayTime is the day start as a UTC time.
func (r UserRow) DayTime() time.Time { return time.UnixMilli(r.Day).UTC() }

// CountRows returns a's counts at each granularity in grans (each at least
// as coarse as a.Gran), per version and for AllVersions, sorted.
func (a Agg) CountRows(key AppKey, grans ...Granularity) ([]CountRow, error) {
	var rows []CountRow
	for _, g := range grans {
		if g < a.Gran {
			return nil, fmt.Errorf("aggregate: %v rows from an Agg counted per %v", g, a.Gran)
		}
		sums := make(map[Cell]int64, len(a.cells)/int(max(1, g-a.Gran+1)))
		for c, x := range a.cells {
			b := g.Truncate(c.Bucket)
			sums[Cell{c.Version, b}] += x.n
			sums[Cell{AllVersions, b}] += x.n
		}
		for c, n := range sums {
			rows = append(rows, CountRow{Kind: key.Kind, AppID: key.AppID, AppVersion: c.Version, Gran: g, Bucket: c.Bucket, Count: n})
		}
	}
	slices.SortFunc(rows, compareCountRows)
	return rows, nil
}

func compareCountRows(a, b CountRow) int {
	return cmp.Or(cmp.Compare(a.Kind, b.Kind), cmp.Compare(a.AppID, b.AppID), cmp.Compare(a.Gran, b.Gran),
		cmp.Compare(a.Bucket, b.Bucket), cmp.Compare(a.AppVersion, b.AppVersion))
}

// UserRows returns a's daily sketches per version and, merged, for
// AllVersions, sorted. It does not modify a. Each row's Events comes from
// one pass over a's cells.
func (a Agg) UserRows(key AppKey) ([]UserRow, error) {
	if a.Precision == 0 {
		return nil, nil
	}
	events := make(map[DayCell]int64, len(a.days)*2)
	for c, x := range a.cells {
		day := Day.Truncate(c.Bucket)
		events[DayCell{c.Version, day}] += x.n
		events[DayCell{AllVersions, day}] += x.n
	}
	all := map[int64]*hll.Sketch{}
	var rows []UserRow
	for c, s := range a.days {
		u := all[c.Day]
		if u == nil {
			u = hll.MustNew(a.Precision)
			all[c.Day] = u
		}
		if err := u.Merge(s); err != nil {
			return nil, err
		}
		r, err := userRow(key, c.Version, c.Day, s, events[c])
		if err != nil {
			return nil, err
		}
		rows = append(rows, r)
	}
	for day, s := range all {
		r, err := userRow(key, AllVersions, day, s, events[DayCell{AllVersions, day}])
		if err != nil {
			return nil, err
		}
		rows = append(rows, r)
	}
	slices.SortFunc(rows, func(a, b UserRow) int {
		return cmp.Or(cmp.Compare(a.Kind, b.Kind), cmp.Compare(a.AppID, b.AppID), cmp.Compare(a.Day, b.Day),
			cmp.Compare(a.AppVersion, b.AppVersion))
	})
	return rows, nil
}

func userRow(key AppKey, version string, day int64, s *hll.Sketch, events int64) (UserRow, error) {
	b, err := s.MarshalBinary()
	if err != nil {
		return UserRow{}, err
	}
	return UserRow{Kind: key.Kind, AppID: key.AppID, AppVersion: version, Day: day, Sketch: b,
		Estimate: int64(s.Estimate()), Events: events}, nil
}

// LateRows renders a's counts at each granularity as late rows from source.
func (a Agg) LateRows(key AppKey, source string, grans ...Granularity) ([]LateRow, error) {
	counts, err := a.CountRows(key, grans...)
	if err != nil {
		return nil, err
	}
	rows := make([]LateRow, len(counts))
	for i, c := range counts {
		rows[i] = LateRow{Kind: c.Kind, AppID: c.AppID, AppVersion: c.AppVersion, Gran: c.Gran, Bucket: c.Bucket, Source: source, Count: c.Count}
	}
	return rows, nil
}
