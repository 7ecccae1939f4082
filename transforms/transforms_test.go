package transforms

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/apache/beam/sdks/v2/go/pkg/beam"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/register"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/testing/passert"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/testing/ptest"

	"github.com/lumenhq/lumen/event"
	"github.com/lumenhq/lumen/transforms/hll"
)

func TestMain(m *testing.M) { ptest.MainWithDefault(m, "prism") }

var day0 = time.Date(2026, 11, 20, 0, 0, 0, 0, time.UTC)

// genEvents makes events over a few apps, versions and days, some of them
// clock-skewed.
func genEvents(n int, seed uint64) []event.Event {
	rng := rand.New(rand.NewPCG(seed, 3))
	out := make([]event.Event, n)
	for i := range out {
		k := event.Kinds[rng.IntN(3)]
		et := day0.UnixMilli() + rng.Int64N(3*86_400_000)
		rt := et + rng.Int64N(3_600_000)
		if rng.IntN(20) == 0 {
			rt = et - rng.Int64N(7_200_000) // device clock ahead
		}
		out[i] = event.Event{Kind: k, AppID: fmt.Sprintf("app%d", rng.IntN(3)), AppVersion: fmt.Sprintf("1.%d", rng.IntN(3)),
			Platform: "android", DeviceID: []byte(fmt.Sprintf("dev-%d", rng.IntN(400))), EventTime: et, ReceivedTime: rt}
		if k.HasSignature() {
			out[i].Signature = "s"
		}
	}
	return out
}

// exactCounts is the ground truth, computed without transforms' code: each
// event counts once for its version and once for all versions, in the
// bucket of min(event_time, received_time).
func exactCounts(evs []event.Event, g Granularity) []CountRow {
	type key struct {
		k      event.Kind
		app, v string
		b      int64
	}
	m := map[key]int64{}
	for _, e := range evs {
		t := e.EventTime
		if e.ReceivedTime < t {
			t = e.ReceivedTime
		}
		b := time.UnixMilli(t).UTC().Truncate(g.Duration()).UnixMilli()
		m[key{e.Kind, e.AppID, e.AppVersion, b}]++
		m[key{e.Kind, e.AppID, "", b}]++
	}
	var rows []CountRow
	for k, n := range m {
		rows = append(rows, CountRow{Kind: k.k, AppID: k.app, AppVersion: k.v, Gran: g, Bucket: k.b, Count: n})
	}
	return rows
}

func TestCountPerBucket(t *testing.T) {
	evs := genEvents(3000, 1)
	for _, g := range []Granularity{Minute, Hour, Day} {
		t.Run(g.String(), func(t *testing.T) {
			p, s := beam.NewPipelineWithRoot()
			in := beam.CreateList(s, evs)
			rows := CountPerBucket(s, in, g)
			passert.Equals(s, rows, toAny(exactCounts(evs, g))...)
			ptest.RunAndValidate(t, p)
		})
	}
}

// DistinctDevices on 400 possible devices per key is within the sparse
// range, where the estimate is exact.
func TestDistinctDevices(t *testing.T) {
	evs := genEvents(3000, 2)
	type key struct {
		k      event.Kind
		app, v string
		d      int64
	}
	exact := map[key]map[string]bool{}
	events := map[key]int64{}
	for _, e := range evs {
		t, _ := BucketTime(&e)
		d := Day.Truncate(t)
		for _, v := range []string{e.AppVersion, ""} {
			k := key{e.Kind, e.AppID, v, d}
			if exact[k] == nil {
				exact[k] = map[string]bool{}
			}
			exact[k][string(e.DeviceID)] = true
			events[k]++
		}
	}
	var want []any
	for k, devs := range exact {
		sk := hll.MustNew(14)
		for d := range devs {
			sk.Add([]byte(d))
		}
		b, _ := sk.MarshalBinary()
		want = append(want, UserRow{Kind: k.k, AppID: k.app, AppVersion: k.v, Day: k.d, Sketch: b, Estimate: int64(len(devs)), Events: events[k]})
	}
	p, s := beam.NewPipelineWithRoot()
	rows := DistinctDevices(s, beam.CreateList(s, evs), 14)
	passert.Equals(s, rows, want...)
	ptest.RunAndValidate(t, p)
}

// Partials built map-side over arbitrary splits of the input, merged with
// MergePartials, give exactly the rows of the per-event combine.
func TestMergePartialsMatchesAggregate(t *testing.T) {
	evs := genEvents(5000, 3)
	// Skew correction can move events to the day before day0.
	w := DayWindow{First: day0.AddDate(0, 0, -1), Last: day0.AddDate(0, 0, 3)}
	var parts []aggPair
	for lo := 0; lo < len(evs); lo += 700 {
		p := NewPartials(w, Hour, 14)
		for i := lo; i < min(lo+700, len(evs)); i++ {
			p.Add(&evs[i])
		}
		p.Drain(func(k AppKey, a Agg) {
			b, err := EncodeAgg(a)
			if err != nil {
				t.Fatal(err)
			}
			parts = append(parts, aggPair{K: k, V: b})
		})
	}
	p, s := beam.NewPipelineWithRoot()
	merged := MergePartials(s, beam.ParDo(s, splitPair, beam.CreateList(s, parts)))
	viaPartials := CountRows(s, merged, Hour, Day)
	viaEvents := CountRows(s, Aggregate(s, KeyByApp(s, beam.CreateList(s, evs)), AggregateConfig{Gran: Hour, Precision: 14}), Hour, Day)
	passert.Equals(s, viaPartials, viaEvents)
	passert.Equals(s, UserRows(s, merged), UserRows(s, Aggregate(s, KeyByApp(s, beam.CreateList(s, evs)), AggregateConfig{Gran: Day, Precision: 14})))
	ptest.RunAndValidate(t, p)
}

// aggPair carries an encoded partial into a test pipeline; decoding it
// there also exercises the coder as a shuffle would.
type aggPair struct {
	K AppKey
	V []byte
}

func splitPair(p aggPair) (AppKey, Agg, error) {
	a, err := DecodeAgg(p.V)
	return p.K, a, err
}

func init() { register.Function1x3(splitPair) }

func toAny[T any](xs []T) []any {
	out := make([]any, len(xs))
	for i, x := range xs {
		out[i] = x
	}
	return out
}

func TestAggCoderRoundTrip(t *testing.T) {
	evs := genEvents(2000, 4)
	a := NewAgg(Minute, 12)
	for i := range evs {
		ms, _ := BucketTime(&evs[i])
		a.Add(&evs[i], ms)
	}
	b, err := EncodeAgg(a)
	if err != nil {
		t.Fatal(err)
	}
	a2, err := DecodeAgg(b)
	if err != nil {
		t.Fatal(err)
	}
	r1, _ := a.CountRows(AppKey{event.Crash, "x"}, Minute, Hour)
	r2, _ := a2.CountRows(AppKey{event.Crash, "x"}, Minute, Hour)
	if fmt.Sprint(r1) != fmt.Sprint(r2) {
		t.Error("count rows differ after round trip")
	}
	u1, _ := a.UserRows(AppKey{event.Crash, "x"})
	u2, _ := a2.UserRows(AppKey{event.Crash, "x"})
	for i := range u1 {
		if !bytes.Equal(u1[i].Sketch, u2[i].Sketch) {
			t.Fatal("sketch bytes differ after round trip")
		}
	}
	for i := 0; i < len(b); i++ {
		if _, err := DecodeAgg(b[:i]); err == nil {
			t.Fatalf("decoding a %d-byte prefix of %d succeeded", i, len(b))
		}
	}
}

func TestPlacement(t *testing.T) {
	w := NewDayWindow(time.Date(2026, 11, 30, 17, 0, 0, 0, time.UTC), 30)
	if w.First != time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC) || w.Days() != 30 {
		t.Fatalf("window %v (%d days)", w, w.Days())
	}
	cases := []struct {
		t    time.Time
		want Placement
	}{
		{time.Date(2026, 10, 31, 23, 59, 59, 999e6, time.UTC), TooOld},
		{time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC), InWindow},
		{time.Date(2026, 11, 30, 23, 59, 59, 999e6, time.UTC), InWindow},
		{time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC), AfterWindow},
	}
	for _, c := range cases {
		if got := w.Place(c.t.UnixMilli()); got != c.want {
			t.Errorf("Place(%v) = %v, want %v", c.t, got, c.want)
		}
	}
	e := event.Event{EventTime: 2000, ReceivedTime: 1000}
	if ms, skew := BucketTime(&e); ms != 1000 || !skew {
		t.Errorf("skewed event bucketed at %d (skew %v)", ms, skew)
	}
	if Hour.Truncate(-1) != -3_600_000 {
		t.Error("Truncate must floor")
	}
}
