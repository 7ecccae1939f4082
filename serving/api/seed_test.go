package api_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/lumenhq/lumen/aggregate"
	"github.com/lumenhq/lumen/event"
	"github.com/lumenhq/lumen/serving"
)

// seed is a month of a few apps' traffic, aggregated by the model the
// pipelines use (aggregate.Agg) and written through the Store: batch rows
// for every day up to yesterday with a successful run, speed rows for
// today, and some late drops today. Events of the last holdBack before now
// are kept aside, so a test can add them later as the stream would.
type seed struct {
	now      time.Time
	today    time.Time
	batch    map[aggregate.AppKey]aggregate.Agg
	speed    map[aggregate.AppKey]aggregate.Agg
	held     map[aggregate.AppKey]aggregate.Agg
	apps     []string
	versions []string
	// The truth, tallied here by plain counting as events are made:
	// events per (kind, app, version or "", day), and the devices.
	dayCount map[truthKey]int64
	devices  map[truthKey]map[string]bool
}

type truthKey struct {
	kind         event.Kind
	app, version string
	day          time.Time
}

var seedApps = []struct {
	id      string
	devices int
}{{"com.acme.notes", 3000}, {"com.acme.maps", 1200}, {"com.acme.chat", 500}}

func newSeed(now time.Time, holdBack time.Duration) *seed {
	s := &seed{now: now.UTC(), today: aggregate.Day.TruncateTime(now),
		batch: map[aggregate.AppKey]aggregate.Agg{}, speed: map[aggregate.AppKey]aggregate.Agg{}, held: map[aggregate.AppKey]aggregate.Agg{},
		versions: []string{"3.1.0", "3.2.0", "3.3.0"},
		dayCount: map[truthKey]int64{}, devices: map[truthKey]map[string]bool{}}
	rng := rand.New(rand.NewPCG(42, 7))
	for _, a := range seedApps {
		s.apps = append(s.apps, a.id)
		for d := -30; d <= 0; d++ {
			day := s.today.AddDate(0, 0, d)
			for dev := 0; dev < a.devices; dev++ {
				// Weekly rhythm and a slowly growing audience.
				p := 0.3 + 0.05*float64(int(day.Weekday())%6) + 0.002*float64(d+30)
				if rng.Float64() > p {
					continue
				}
				// Releases on days -20 and -6, adopted by device id.
				v := 0
				if d >= -20 && dev%10 < 7 {
					v = 1
				}
				if d >= -6 && dev%10 < min(8, 2+(d+6)) {
					v = 2
				}
				crashRate := []float64{0.0002, 0.0001, 0.002}[v]
				for range 1 + rng.IntN(4) {
					at := day.Add(time.Duration(rng.Int64N(int64(24 * time.Hour))))
					if at.After(s.now) {
						continue
					}
					s.add(event.AppLoad, a.id, s.versions[v], dev, at, holdBack)
					if rng.Float64() < crashRate {
						s.add(event.Crash, a.id, s.versions[v], dev, at.Add(time.Duration(rng.IntN(300))*time.Second), holdBack)
					}
				}
			}
		}
	}
	return s
}

func (s *seed) add(k event.Kind, app, version string, dev int, at time.Time, holdBack time.Duration) {
	if at.After(s.now) {
		return
	}
	e := &event.Event{Kind: k, AppID: app, AppVersion: version, Platform: "android", DeviceID: fmt.Appendf(nil, "%s-%d", app, dev),
		EventTime: at.UnixMilli(), ReceivedTime: at.UnixMilli(), Signature: "sig"}
	for _, v := range []string{version, ""} {
		tk := truthKey{k, app, v, at.Truncate(24 * time.Hour)}
		s.dayCount[tk]++
		if s.devices[tk] == nil {
			s.devices[tk] = map[string]bool{}
		}
		s.devices[tk][string(e.DeviceID)] = true
	}
	key := aggregate.AppKey{Kind: k, AppID: app}
	m, gran := s.batch, aggregate.Hour
	if !at.Before(s.today) {
		m, gran = s.speed, aggregate.Minute
		if at.After(s.now.Add(-holdBack)) {
			m = s.held
		}
	}
	a, ok := m[key]
	if !ok {
		a = aggregate.NewAgg(gran, 14)
		m[key] = a
	}
	a.Add(e, at.UnixMilli())
}

// distinct is the exact number of devices of kind, app and version over
// the days [from, to].
func (s *seed) distinct(k event.Kind, app, version string, from, to time.Time) int {
	all := map[string]bool{}
	for d := from; !d.After(to); d = d.AddDate(0, 0, 1) {
		for id := range s.devices[truthKey{k, app, version, d}] {
			all[id] = true
		}
	}
	return len(all)
}

// write writes the batch and speed rows (not the held-back ones) and the
// batch runs, and some late drops in today's first hour.
func (s *seed) write(t testing.TB, st serving.Store) {
	t.Helper()
	ctx := context.Background()
	writeAggs(t, st, serving.Batch, s.batch, aggregate.Hour, aggregate.Day)
	writeAggs(t, st, serving.Speed, s.speed, aggregate.Minute, aggregate.Hour, aggregate.Day)
	for _, k := range event.Kinds {
		if err := st.RecordRun(ctx, serving.BatchRun{Kind: k, AsOf: s.today.AddDate(0, 0, -1), WindowStart: s.today.AddDate(0, 0, -30),
			Started: s.today.Add(time.Hour), Finished: s.today.Add(2 * time.Hour), Status: serving.RunSucceeded, Counters: map[string]int64{}}); err != nil {
			t.Fatal(err)
		}
	}
	w, err := st.NewWriter(ctx, serving.Speed, serving.WithRun("seed"))
	if err != nil {
		t.Fatal(err)
	}
	var late []aggregate.LateRow
	for i, app := range s.apps {
		for _, v := range []string{"", s.versions[2]} {
			for _, g := range []aggregate.Granularity{aggregate.Minute, aggregate.Hour} {
				late = append(late, aggregate.LateRow{Kind: event.AppLoad, AppID: app, AppVersion: v, Gran: g, Bucket: s.today.UnixMilli(), Source: "seed", Count: int64(40 / (i + 1))})
				// Yesterday's drops were recounted by the batch already.
				late = append(late, aggregate.LateRow{Kind: event.Crash, AppID: app, AppVersion: v, Gran: g, Bucket: s.today.Add(-time.Hour).UnixMilli(), Source: "seed", Count: 3})
			}
		}
	}
	if err := w.WriteLate(ctx, late); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(ctx); err != nil {
		t.Fatal(err)
	}
}

// release writes the held-back events as a later run of the stream would.
func (s *seed) release(t testing.TB, st serving.Store) {
	t.Helper()
	writeAggs(t, st, serving.Speed, s.held, aggregate.Minute)
}

func writeAggs(t testing.TB, st serving.Store, layer serving.Layer, aggs map[aggregate.AppKey]aggregate.Agg, grans ...aggregate.Granularity) {
	t.Helper()
	ctx := context.Background()
	w, err := st.NewWriter(ctx, layer, serving.WithRun(fmt.Sprint("seed-", len(grans))))
	if err != nil {
		t.Fatal(err)
	}
	for key, a := range aggs {
		counts, err := a.CountRows(key, grans...)
		if err != nil {
			t.Fatal(err)
		}
		if err := w.WriteCounts(ctx, counts); err != nil {
			t.Fatal(err)
		}
		if len(grans) > 1 {
			users, err := a.UserRows(key)
			if err != nil {
				t.Fatal(err)
			}
			if err := w.WriteUsers(ctx, users); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := w.Close(ctx); err != nil {
		t.Fatal(err)
	}
}
