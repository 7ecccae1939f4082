package aggregate

import (
	"fmt"
	"reflect"
	"testing"

	"github.com/lumenhq/lumen/event"
)

// allRows renders an Agg's batch rows as "key → value" strings.
func allRows(t *testing.T, a Agg) map[string]string {
	t.Helper()
	out := map[string]string{}
	if a.IsZero() {
		return out
	}
	counts, err := a.CountRows(key, Hour, Day)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range counts {
		out[fmt.Sprintf("c/%s/%v/%d", r.AppVersion, r.Gran, r.Bucket)] = fmt.Sprint(r.Count)
	}
	users, err := a.UserRows(key)
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range users {
		out[fmt.Sprintf("u/%s/%d", u.AppVersion, u.Day)] = fmt.Sprintf("%x/%d/%d", u.Sketch, u.Estimate, u.Events)
	}
	return out
}

// Applying Diff(old, new) to old's rows gives new's rows exactly: late
// events added to some buckets, a version and a day gone, a new one
// come; and it writes only rows whose value changed.
func TestDiffAppliedToOldIsNew(t *testing.T) {
	evs := genEvents(3000, 11)
	for name, c := range map[string]struct{ old, new []int }{
		"events added":          {old: []int{0, 2000}, new: []int{0, 3000}},
		"events removed":        {old: []int{0, 3000}, new: []int{500, 2500}},
		"from nothing":          {old: []int{0, 0}, new: []int{0, 3000}},
		"to nothing":            {old: []int{0, 3000}, new: []int{0, 0}},
		"the same":              {old: []int{0, 3000}, new: []int{0, 3000}},
		"a few late among many": {old: []int{0, 2990}, new: []int{0, 3000}},
	} {
		t.Run(name, func(t *testing.T) {
			old, new := Agg{}, Agg{}
			if c.old[1] > c.old[0] {
				old = aggOf(evs[c.old[0]:c.old[1]], Hour, 14)
			}
			if c.new[1] > c.new[0] {
				new = aggOf(evs[c.new[0]:c.new[1]], Hour, 14)
			}
			d, err := Diff(key, old, new)
			if err != nil {
				t.Fatal(err)
			}
			got := allRows(t, old)
			for _, r := range d.DeletedCounts {
				delete(got, fmt.Sprintf("c/%s/%v/%d", r.AppVersion, r.Gran, r.Bucket))
			}
			for _, u := range d.DeletedUsers {
				delete(got, fmt.Sprintf("u/%s/%d", u.AppVersion, u.Day))
			}
			written := map[string]string{}
			for _, r := range d.Counts {
				written[fmt.Sprintf("c/%s/%v/%d", r.AppVersion, r.Gran, r.Bucket)] = fmt.Sprint(r.Count)
			}
			for _, u := range d.Users {
				written[fmt.Sprintf("u/%s/%d", u.AppVersion, u.Day)] = fmt.Sprintf("%x/%d/%d", u.Sketch, u.Estimate, u.Events)
			}
			oldRows := allRows(t, old)
			for k, v := range written {
				if oldRows[k] == v {
					t.Errorf("%s written with the value it had", k)
				}
				got[k] = v
			}
			want := allRows(t, new)
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("old's rows with the diff applied: %d rows, new has %d (or values differ)", len(got), len(want))
			}
			if int64(len(written))+d.Unchanged != int64(len(want)) {
				t.Errorf("%d written + %d unchanged, want new's %d rows", len(written), d.Unchanged, len(want))
			}
			t.Logf("%d rows: %d written, %d unchanged, %d deleted", len(want), len(written), d.Unchanged, len(d.DeletedCounts)+len(d.DeletedUsers))
		})
	}
}

// DiffAdded gives what Diff gives for base ⊕ removed against base ⊕
// added, comparing only the days removed or added touch, and returns
// base ⊕ added.
func TestDiffAdded(t *testing.T) {
	evs := genEvents(4000, 12)
	day := func(e event.Event) int64 { return Day.Truncate(e.EventTime) }
	last := day(evs[0])
	for _, e := range evs {
		last = max(last, day(e))
	}
	for name, c := range map[string]struct {
		base, removed, added func(e event.Event, i int) bool
	}{
		"late events on the last day": {
			base:  func(e event.Event, i int) bool { return i < 3900 },
			added: func(e event.Event, i int) bool { return i >= 3900 && day(e) == last },
		},
		"late events on every day": {
			base:  func(e event.Event, i int) bool { return i < 3900 },
			added: func(e event.Event, i int) bool { return i >= 3900 },
		},
		"a day recomputed with fewer events": {
			base:    func(e event.Event, i int) bool { return day(e) != last },
			removed: func(e event.Event, i int) bool { return day(e) == last },
			added:   func(e event.Event, i int) bool { return day(e) == last && i%3 != 0 },
		},
		"a day recomputed to nothing": {
			base:    func(e event.Event, i int) bool { return day(e) != last },
			removed: func(e event.Event, i int) bool { return day(e) == last },
		},
		"no state": {
			added: func(e event.Event, i int) bool { return true },
		},
		"nothing new": {
			base: func(e event.Event, i int) bool { return true },
		},
	} {
		t.Run(name, func(t *testing.T) {
			part := func(in func(e event.Event, i int) bool) Agg {
				if in == nil {
					return Agg{}
				}
				var sel []event.Event
				for i, e := range evs {
					if in(e, i) {
						sel = append(sel, e)
					}
				}
				if len(sel) == 0 {
					return Agg{}
				}
				return aggOf(sel, Hour, 14)
			}
			old, err := part(c.base).Merge(part(c.removed))
			if err != nil {
				t.Fatal(err)
			}
			wantNew, err := part(c.base).Merge(part(c.added))
			if err != nil {
				t.Fatal(err)
			}
			want, err := Diff(key, old, wantNew)
			if err != nil {
				t.Fatal(err)
			}
			got, gotNew, err := DiffAdded(key, part(c.base), part(c.removed), part(c.added))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("DiffAdded: %d counts, %d users, %d + %d deleted, %d unchanged; Diff: %d, %d, %d + %d, %d",
					len(got.Counts), len(got.Users), len(got.DeletedCounts), len(got.DeletedUsers), got.Unchanged,
					len(want.Counts), len(want.Users), len(want.DeletedCounts), len(want.DeletedUsers), want.Unchanged)
			}
			if g, w := allRows(t, gotNew), allRows(t, wantNew); !reflect.DeepEqual(g, w) {
				t.Errorf("the new aggregate has %d rows (or other values), want %d", len(g), len(w))
			}
			t.Logf("%d written, %d deleted, %d unchanged", len(got.Counts)+len(got.Users), len(got.DeletedCounts)+len(got.DeletedUsers), got.Unchanged)
		})
	}
}

// rowCount's bitmap agrees with the set of row keys, and with the rows
// the Agg renders.
func TestRowCount(t *testing.T) {
	a := aggOf(genEvents(3000, 13), Hour, 14)
	all := func(int64) bool { return true }
	if got, want := a.rowCount(all), int64(len(allRows(t, a))); got != want {
		t.Errorf("rowCount = %d, the Agg renders %d rows", got, want)
	}
	for _, keep := range []func(int64) bool{all, func(d int64) bool { return d == day0.UnixMilli() }, func(int64) bool { return false }} {
		if got, want := a.rowCount(keep), a.rowCountBySet(keep); got != want {
			t.Errorf("rowCount = %d, by the set of keys %d", got, want)
		}
	}
}
