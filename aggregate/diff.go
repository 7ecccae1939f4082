package aggregate

import (
	"bytes"
	"cmp"
	"math/bits"
	"slices"

	"github.com/lumenhq/lumen/aggregate/hll"
)

// RowDiff is what changes in the batch rows of one AppKey when its
// aggregate goes from one value to another: the rows to write (new or
// with another value), the rows to delete (keys only the old value has),
// and how many rows stay as they are.
type RowDiff struct {
	Counts        []CountRow // to write
	Users         []UserRow  // to write
	DeletedCounts []CountRow // keys to delete; Count is the old value
	DeletedUsers  []UserRow  // keys to delete
	Unchanged     int64
}

// Diff compares the rows of old and new (both counted per hour, at one
// precision; old may be zero: no rows) at the batch's granularities, hour
// and day, per version and for AllVersions, and daily sketches. Rows are
// compared by value: counts, and sketches by their bytes and events. Only
// the user rows that changed are rendered, so their estimates are
// computed for those alone. Neither Agg is modified.
func Diff(key AppKey, old, new Agg) (RowDiff, error) {
	var d RowDiff
	oldSums, newSums := old.countSums(), new.countSums()
	for c, n := range newSums {
		if o, ok := oldSums[c]; ok && o == n {
			d.Unchanged++
			continue
		}
		d.Counts = append(d.Counts, CountRow{Kind: key.Kind, AppID: key.AppID, AppVersion: c.version, Gran: c.gran, Bucket: c.bucket, Count: n})
	}
	for c, n := range oldSums {
		if _, ok := newSums[c]; !ok {
			d.DeletedCounts = append(d.DeletedCounts, CountRow{Kind: key.Kind, AppID: key.AppID, AppVersion: c.version, Gran: c.gran, Bucket: c.bucket, Count: n})
		}
	}
	slices.SortFunc(d.Counts, compareCountRows)
	slices.SortFunc(d.DeletedCounts, compareCountRows)
	if new.Precision == 0 && old.Precision == 0 {
		return d, nil
	}
	if err := diffUsers(key, old, new, &d); err != nil {
		return RowDiff{}, err
	}
	return d, nil
}

// countKey is one count row's key within an AppKey.
type countKey struct {
	version string
	gran    Granularity
	bucket  int64
}

// countSums are a's count rows at Hour and Day, per version and for
// AllVersions.
func (a Agg) countSums() map[countKey]int64 {
	out := make(map[countKey]int64, len(a.cells)*3)
	for c, x := range a.cells {
		for _, g := range []Granularity{Hour, Day} {
			b := g.Truncate(c.Bucket)
			out[countKey{c.Version, g, b}] += x.n
			out[countKey{AllVersions, g, b}] += x.n
		}
	}
	return out
}

// diffUsers adds the user rows of Diff: a version's day changed if its
// sketch's bytes or its events did; the day's AllVersions row changed if
// any version of it did, appeared or went.
func diffUsers(key AppKey, old, new Agg, d *RowDiff) error {
	oldEvents, newEvents := old.dayEventSums(), new.dayEventSums()
	changedDays := map[int64]bool{}
	for c, s := range new.days {
		same, err := sameSketch(old.days[c], s)
		if err != nil {
			return err
		}
		if same && oldEvents[c] == newEvents[c] {
			d.Unchanged++
			continue
		}
		changedDays[c.Day] = true
		r, err := userRow(key, c.Version, c.Day, s, newEvents[c])
		if err != nil {
			return err
		}
		d.Users = append(d.Users, r)
	}
	for c := range old.days {
		if new.days[c] == nil {
			changedDays[c.Day] = true
			d.DeletedUsers = append(d.DeletedUsers, UserRow{Kind: key.Kind, AppID: key.AppID, AppVersion: c.Version, Day: c.Day})
		}
	}
	// The AllVersions rows: one per day that new has, rendered where a
	// version changed; deleted where only old has the day.
	newDays := map[int64]bool{}
	for c := range new.days {
		newDays[c.Day] = true
	}
	for day := range newDays {
		if !changedDays[day] {
			d.Unchanged++
			continue
		}
		all := hll.MustNew(new.Precision)
		for c, s := range new.days {
			if c.Day == day {
				if err := all.Merge(s); err != nil {
					return err
				}
			}
		}
		r, err := userRow(key, AllVersions, day, all, newEvents[DayCell{AllVersions, day}])
		if err != nil {
			return err
		}
		d.Users = append(d.Users, r)
	}
	for c := range old.days {
		if !newDays[c.Day] && c.Version != AllVersions {
			if !slices.ContainsFunc(d.DeletedUsers, func(u UserRow) bool { return u.AppVersion == AllVersions && u.Day == c.Day }) {
				d.DeletedUsers = append(d.DeletedUsers, UserRow{Kind: key.Kind, AppID: key.AppID, AppVersion: AllVersions, Day: c.Day})
			}
		}
	}
	byKey := func(a, b UserRow) int {
		return cmp.Or(cmp.Compare(a.Day, b.Day), cmp.Compare(a.AppVersion, b.AppVersion))
	}
	slices.SortFunc(d.Users, byKey)
	slices.SortFunc(d.DeletedUsers, byKey)
	return nil
}

// dayEventSums are a's events per (version, day) and (AllVersions, day).
func (a Agg) dayEventSums() map[DayCell]int64 {
	out := make(map[DayCell]int64, len(a.days)*2)
	for c, x := range a.cells {
		day := Day.Truncate(c.Bucket)
		out[DayCell{c.Version, day}] += x.n
		out[DayCell{AllVersions, day}] += x.n
	}
	return out
}

// sameSketch reports whether two sketches have the same bytes (a nil one
// is never the same).
func sameSketch(a, b *hll.Sketch) (bool, error) {
	if a == nil || b == nil {
		return false, nil
	}
	ab, err := a.MarshalBinary()
	if err != nil {
		return false, err
	}
	bb, err := b.MarshalBinary()
	if err != nil {
		return false, err
	}
	return bytes.Equal(ab, bb), nil
}

// DiffAdded is Diff for old = base ⊕ removed and new = base ⊕ added, the
// step of an incremental batch run (removed: the state's days it
// recomputes; added: the partitions it read). The rows of a day that
// neither removed nor added touches are the same in old and new (every
// row belongs to one day), so only the touched days are compared; the
// others are counted unchanged. It returns the diff and new, which adopts
// base and added: neither may be used afterwards; removed is only read.
func DiffAdded(key AppKey, base, removed, added Agg) (RowDiff, Agg, error) {
	touched := map[int64]bool{}
	for day := range removed.DayEvents() {
		touched[day] = true
	}
	for day := range added.DayEvents() {
		touched[day] = true
	}
	isTouched := func(day int64) bool { return touched[day] }
	// old's touched days, copied before base takes added in.
	old, err := Agg{}.MergeCopy(base.KeepDays(isTouched))
	if err != nil {
		return RowDiff{}, Agg{}, err
	}
	if old, err = old.MergeCopy(removed); err != nil {
		return RowDiff{}, Agg{}, err
	}
	new, err := base.Merge(added)
	if err != nil {
		return RowDiff{}, Agg{}, err
	}
	d, err := Diff(key, old, new.KeepDays(isTouched))
	if err != nil {
		return RowDiff{}, Agg{}, err
	}
	d.Unchanged += new.rowCount(func(day int64) bool { return !touched[day] })
	return d, new, nil
}

// rowCount is the number of rows Diff renders for a in the days keep says
// yes to: count rows at Hour and Day, per version and for AllVersions,
// and with sketches a user row per version and day and per day.
//
// Counted per hour with sketches (the batch's aggregates), it needs no
// set of row keys: a cell is one version's hour row, a sketch one
// version's day row and user row, and a bitmap of hours per day gives
// the AllVersions rows.
func (a Agg) rowCount(keep func(day int64) bool) int64 {
	if a.Gran != Hour || a.Precision == 0 {
		return a.rowCountBySet(keep)
	}
	var n int64
	hours := map[int64]uint32{} // day → bit h for each hour h with a cell
	for c := range a.cells {
		if c.Version == AllVersions {
			return a.rowCountBySet(keep) // its rows are the AllVersions rows
		}
		day := Day.Truncate(c.Bucket)
		if keep(day) {
			n++ // the version's hour row
			hours[day] |= 1 << ((c.Bucket - day) / Hour.Millis())
		}
	}
	for _, h := range hours {
		n += int64(bits.OnesCount32(h)) + 2 // AllVersions: the hour rows, the day row, the user row
	}
	for c := range a.days {
		if keep(c.Day) {
			n += 2 // the version's day row and user row
		}
	}
	return n
}

// rowCountBySet is rowCount for any Agg, by the set of row keys.
func (a Agg) rowCountBySet(keep func(day int64) bool) int64 {
	in := a.KeepDays(keep)
	n := int64(len(in.countSums()))
	days := map[int64]bool{}
	for c := range in.days {
		n++
		days[c.Day] = true
	}
	return n + int64(len(days))
}
