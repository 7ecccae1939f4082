package aggregate

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"reflect"
	"testing"
	"time"

	"github.com/lumenhq/lumen/event"
)

var day0 = time.Date(2026, 11, 20, 0, 0, 0, 0, time.UTC)

// genEvents makes events of one app over a few versions and three days,
// one in twenty with its device clock ahead.
func genEvents(n int, seed uint64) []event.Event {
	rng := rand.New(rand.NewPCG(seed, 3))
	out := make([]event.Event, n)
	for i := range out {
		et := day0.UnixMilli() + rng.Int64N(3*86_400_000)
		rt := et + rng.Int64N(3_600_000)
		if rng.IntN(20) == 0 {
			rt = et - rng.Int64N(7_200_000)
		}
		out[i] = event.Event{Kind: event.Crash, AppID: "app", AppVersion: fmt.Sprintf("1.%d", rng.IntN(3)), Platform: "ios",
			DeviceID: []byte(fmt.Sprintf("dev-%d", rng.IntN(500))), EventTime: et, ReceivedTime: rt, Signature: "s"}
	}
	return out
}

var key = AppKey{Kind: event.Crash, AppID: "app"}

// truth counts per "version/bucket" (version "" for all) at g, and the
// devices per "version/day", computed without this package's code.
func truth(evs []event.Event, g time.Duration) (counts map[string]int64, devices map[string]map[string]bool) {
	counts, devices = map[string]int64{}, map[string]map[string]bool{}
	for _, e := range evs {
		at := time.UnixMilli(min(e.EventTime, e.ReceivedTime)).UTC()
		for _, v := range []string{e.AppVersion, ""} {
			counts[fmt.Sprintf("%s/%d", v, at.Truncate(g).UnixMilli())]++
			d := fmt.Sprintf("%s/%d", v, at.Truncate(24*time.Hour).UnixMilli())
			if devices[d] == nil {
				devices[d] = map[string]bool{}
			}
			devices[d][string(e.DeviceID)] = true
		}
	}
	return counts, devices
}

func aggOf(evs []event.Event, g Granularity, precision uint8) Agg {
	fn := CombineFn{Gran: g, Precision: precision}
	a := fn.CreateAccumulator()
	for i := range evs {
		a = fn.AddEvent(a, &evs[i])
	}
	return a
}

func rowsOf(t *testing.T, a Agg, grans ...Granularity) (map[string]int64, []UserRow) {
	t.Helper()
	rows, err := a.CountRows(key, grans...)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]int64{}
	for _, r := range rows {
		got[fmt.Sprintf("%s/%d", r.AppVersion, r.Bucket)] = r.Count
	}
	users, err := a.UserRows(key)
	if err != nil {
		t.Fatal(err)
	}
	return got, users
}

// The combine counts every event once per version and once for all
// versions, in the bucket of its corrected event time, and sketches its
// device into the day: below a few thousand devices a p=14 sketch is exact.
func TestCombineCountsAndSketches(t *testing.T) {
	evs := genEvents(4000, 1)
	for _, g := range []Granularity{Minute, Hour, Day} {
		wantCounts, wantDevices := truth(evs, time.Duration(g.Millis())*time.Millisecond)
		gotCounts, users := rowsOf(t, aggOf(evs, g, 14), g)
		if !reflect.DeepEqual(gotCounts, wantCounts) {
			t.Errorf("%v: %d count rows, want %d (or counts differ)", g, len(gotCounts), len(wantCounts))
		}
		if len(users) != len(wantDevices) {
			t.Fatalf("%v: %d user rows, want %d", g, len(users), len(wantDevices))
		}
		for _, u := range users {
			if want := len(wantDevices[fmt.Sprintf("%s/%d", u.AppVersion, u.Day)]); u.Estimate != int64(want) {
				t.Errorf("%v: %s/%s estimate %d, want %d", g, u.AppVersion, u.DayTime().Format(time.DateOnly), u.Estimate, want)
			}
		}
	}
}

// Merging partials built over any split of the events, in any order, gives
// the same counts and byte-identical sketches as one pass over all of them.
func TestMergeOfAnySplitEqualsOnePass(t *testing.T) {
	evs := genEvents(3000, 2)
	wantCounts, wantUsers := rowsOf(t, aggOf(evs, Hour, 14), Hour, Day)
	rng := rand.New(rand.NewPCG(9, 9))
	for trial := 0; trial < 5; trial++ {
		var parts []Agg
		for lo := 0; lo < len(evs); {
			hi := min(len(evs), lo+1+rng.IntN(700))
			parts = append(parts, aggOf(evs[lo:hi], Hour, 14))
			lo = hi
		}
		rng.Shuffle(len(parts), func(i, j int) { parts[i], parts[j] = parts[j], parts[i] })
		fn := CombineFn{Gran: Hour, Precision: 14}
		acc := fn.CreateAccumulator()
		for _, p := range parts {
			var err error
			if acc, err = fn.AddInput(acc, p); err != nil {
				t.Fatal(err)
			}
		}
		gotCounts, gotUsers := rowsOf(t, fn.ExtractOutput(acc), Hour, Day)
		if !reflect.DeepEqual(gotCounts, wantCounts) || !reflect.DeepEqual(gotUsers, wantUsers) {
			t.Fatalf("trial %d: merging %d partials differs from one pass", trial, len(parts))
		}
	}
}

// MergeCopy leaves its input untouched and unshared; Merge adopts it.
func TestMergeCopyLeavesTheInput(t *testing.T) {
	a, b := aggOf(genEvents(100, 3), Hour, 14), aggOf(genEvents(100, 4), Hour, 14)
	before, _ := EncodeAgg(b)
	beforeRows, beforeUsers := rowsOf(t, b, Hour)
	merged, err := a.MergeCopy(b)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := merged.MergeCopy(aggOf(genEvents(100, 5), Hour, 14)); err != nil {
		t.Fatal(err)
	}
	afterRows, afterUsers := rowsOf(t, b, Hour)
	after, _ := EncodeAgg(b)
	if len(after) != len(before) || !reflect.DeepEqual(afterRows, beforeRows) || !reflect.DeepEqual(afterUsers, beforeUsers) {
		t.Error("MergeCopy changed its input")
	}
	if _, err := NewAgg(Minute, 14).Merge(b); err == nil {
		t.Error("merging an hour Agg into a minute Agg succeeded")
	}
}

// Partials places events against the run's window exactly as DESIGN §3
// says, counting too_old, after_window and clock_skew, and aggregates only
// the events inside it.
func TestPartialsPlacement(t *testing.T) {
	evs := genEvents(5000, 6)
	w := DayWindow{First: day0.AddDate(0, 0, 1), Last: day0.AddDate(0, 0, 1)} // the middle day only
	p := NewPartials(w, Hour, 14)
	var want Stats
	var inside []event.Event
	for i := range evs {
		p.Add(&evs[i])
		e := evs[i]
		at := time.UnixMilli(min(e.EventTime, e.ReceivedTime)).UTC()
		want.Events++
		if e.EventTime > e.ReceivedTime {
			want.ClockSkew++
		}
		switch {
		case at.Before(w.First):
			want.TooOld++
		case !at.Before(w.Last.AddDate(0, 0, 1)):
			want.AfterWindow++
		default:
			want.Counted++
			inside = append(inside, e)
		}
	}
	var drained int
	var a Agg
	stats := p.Drain(func(k AppKey, x Agg) {
		drained++
		if k != key {
			t.Errorf("drained key %v", k)
		}
		a = x
	})
	if stats[event.Crash] != want || drained != 1 || p.Cells() != 0 {
		t.Errorf("drain: %d aggs, stats %+v, %d cells left", drained, stats[event.Crash], p.Cells())
	}
	gotCounts, _ := rowsOf(t, a, Hour)
	wantCounts, _ := truth(inside, time.Hour)
	if !reflect.DeepEqual(gotCounts, wantCounts) {
		t.Error("the drained Agg does not hold exactly the events inside the window")
	}
}

// The wire form round-trips: the same counts, byte-identical sketches, and
// an encoding of the same length; every truncation is an error, never a
// wrong Agg.
func TestEncodingRoundTrip(t *testing.T) {
	for _, a := range []Agg{aggOf(genEvents(600, 7), Minute, 12), aggOf(genEvents(50, 8), Day, 0), NewAgg(Hour, 14)} {
		b, err := EncodeAgg(a)
		if err != nil {
			t.Fatal(err)
		}
		a2, err := DecodeAgg(b)
		if err != nil {
			t.Fatal(err)
		}
		b2, err := EncodeAgg(a2)
		if err != nil {
			t.Fatal(err)
		}
		if len(b2) != len(b) {
			t.Errorf("re-encoded %d bytes, first encoding %d", len(b2), len(b))
		}
		r1, u1 := rowsOf(t, a, a.Gran)
		r2, u2 := rowsOf(t, a2, a2.Gran)
		if !reflect.DeepEqual(r1, r2) || len(u1) != len(u2) || a2.Gran != a.Gran || a2.Precision != a.Precision || a2.Total() != a.Total() {
			t.Fatalf("round trip changed the Agg: %d/%d count rows, %d/%d user rows", len(r1), len(r2), len(u1), len(u2))
		}
		for i := range u1 {
			if !bytes.Equal(u1[i].Sketch, u2[i].Sketch) {
				t.Fatalf("sketch %d differs after the round trip", i)
			}
		}
		for i := 0; i < len(b); i++ {
			if _, err := DecodeAgg(b[:i]); err == nil {
				t.Fatalf("decoding a %d-byte prefix of %d succeeded", i, len(b))
			}
		}
	}
}

// FuzzDecodeAgg: no input makes the decoder panic, and whatever it accepts
// encodes again to something it accepts.
func FuzzDecodeAgg(f *testing.F) {
	for _, a := range []Agg{aggOf(genEvents(30, 1), Minute, 14), aggOf(genEvents(3, 2), Day, 0)} {
		b, _ := EncodeAgg(a)
		f.Add(b)
	}
	f.Add([]byte{1, 9, 99})
	f.Fuzz(func(t *testing.T, b []byte) {
		a, err := DecodeAgg(b)
		if err != nil {
			return
		}
		again, err := EncodeAgg(a)
		if err != nil {
			t.Fatalf("decoded Agg does not encode: %v", err)
		}
		if _, err := DecodeAgg(again); err != nil {
			t.Fatalf("re-encoded Agg does not decode: %v", err)
		}
	})
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
	if ms, skew := e.BucketTime(); ms != 1000 || !skew {
		t.Errorf("skewed event bucketed at %d (skew %v)", ms, skew)
	}
	if Hour.Truncate(-1) != -3_600_000 {
		t.Error("Truncate must floor")
	}
}

// Cut keeps exactly the events of the window's days, with their sketches,
// and counts the rest: cutting a whole partial equals aggregating only the
// window's events.
func TestCut(t *testing.T) {
	evs := genEvents(3000, 11)
	w := DayWindow{First: day0.AddDate(0, 0, 1), Last: day0.AddDate(0, 0, 1)}
	var inside []event.Event
	var before, after int64
	for _, e := range evs {
		at := time.UnixMilli(min(e.EventTime, e.ReceivedTime)).UTC()
		switch {
		case at.Before(w.First):
			before++
		case !at.Before(w.Last.AddDate(0, 0, 1)):
			after++
		default:
			inside = append(inside, e)
		}
	}
	in, b, a := aggOf(evs, Hour, 14).Cut(w)
	if b != before || a != after {
		t.Errorf("cut counted %d before and %d after, want %d and %d", b, a, before, after)
	}
	gotRows, gotUsers := rowsOf(t, in, Hour, Day)
	wantRows, wantUsers := rowsOf(t, aggOf(inside, Hour, 14), Hour, Day)
	if !reflect.DeepEqual(gotRows, wantRows) || !reflect.DeepEqual(gotUsers, wantUsers) {
		t.Error("the cut Agg differs from aggregating the window's events alone")
	}
}

// Coarsen sums a minute Agg into hours and days exactly as one pass at
// that granularity counts, with one cell per version and bucket of the
// coarser grain, byte-identical sketches (or none), and leaves its input
// untouched and unshared; it refuses a finer granularity.
func TestCoarsen(t *testing.T) {
	evs := genEvents(3000, 6)
	minutes := aggOf(evs, Minute, 14)
	beforeCounts, beforeUsers := rowsOf(t, minutes, Minute)
	for _, g := range []Granularity{Minute, Hour, Day} {
		for _, sketches := range []bool{false, true} {
			c, err := minutes.Coarsen(g, sketches)
			if err != nil {
				t.Fatal(err)
			}
			want := aggOf(evs, g, 14)
			wantCounts, wantUsers := rowsOf(t, want, g)
			gotCounts, gotUsers := rowsOf(t, c, g)
			if !reflect.DeepEqual(gotCounts, wantCounts) {
				t.Errorf("%v: counts differ from one pass per %v", g, g)
			}
			if c.Gran != g || len(c.cells) != len(want.cells) {
				t.Errorf("%v: %v with %d cells, want %d", g, c.Gran, len(c.cells), len(want.cells))
			}
			switch {
			case sketches && !reflect.DeepEqual(gotUsers, wantUsers):
				t.Errorf("%v: user rows differ from one pass", g)
			case !sketches && len(gotUsers) != 0:
				t.Errorf("%v: %d user rows from a counts-only copy", g, len(gotUsers))
			}
			// The copy shares nothing: merging into it leaves minutes as it was.
			if _, err := c.Merge(aggOf(genEvents(50, 7), g, c.Precision)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if afterCounts, afterUsers := rowsOf(t, minutes, Minute); !reflect.DeepEqual(afterCounts, beforeCounts) || !reflect.DeepEqual(afterUsers, beforeUsers) {
		t.Error("Coarsen changed its input")
	}
	if _, err := aggOf(evs, Hour, 14).Coarsen(Minute, true); err == nil {
		t.Error("coarsening hours to minutes: no error")
	}
}

// KeepDays keeps exactly the days asked for, counts and sketches, and
// DayEvents counts each day's events.
func TestKeepDays(t *testing.T) {
	evs := genEvents(2000, 12)
	a := aggOf(evs, Hour, 14)
	days := a.DayEvents()
	var total int64
	for _, n := range days {
		total += n
	}
	if total != int64(len(evs)) || len(days) < 2 {
		t.Fatalf("DayEvents: %d events over %d days, want %d over several", total, len(days), len(evs))
	}
	keep := day0.UnixMilli() + 86_400_000
	got := aggOf(evs, Hour, 14).KeepDays(func(d int64) bool { return d == keep })
	wantCounts, wantUsers := rowsOf(t, aggOf(evs, Hour, 14).KeepDays(func(int64) bool { return true }), Hour)
	gotCounts, gotUsers := rowsOf(t, got, Hour)
	if got.Total() != days[keep] || len(gotUsers) == 0 {
		t.Errorf("kept %d events (%d user rows), want day %d's %d", got.Total(), len(gotUsers), keep, days[keep])
	}
	for k, n := range gotCounts {
		if wantCounts[k] != n {
			t.Errorf("%s: %d, want %d", k, n, wantCounts[k])
		}
	}
	var wantDay []UserRow
	for _, u := range wantUsers {
		if u.Day == keep {
			wantDay = append(wantDay, u)
		}
	}
	if !reflect.DeepEqual(gotUsers, wantDay) {
		t.Errorf("%d user rows kept, want the day's %d, byte for byte", len(gotUsers), len(wantDay))
	}
}
