package aggregate

import (
	"fmt"

	"github.com/lumenhq/lumen/aggregate/hll"
	"github.com/lumenhq/lumen/event"
)

// AppKey is the key partials are shuffled by: one kind of one app. Keying by
// app rather than by (version, bucket) keeps the number of shuffled elements
// small (DESIGN §7a); versions and buckets live inside the Agg.
type AppKey struct {
	Kind  event.Kind
	AppID string
}

func (k AppKey) String() string { return k.Kind.String() + "/" + k.AppID }

// AllVersions is the app_version of rows that count every version.
const AllVersions = ""

// Cell is one count bucket of one version within an Agg.
type Cell struct {
	Version string
	Bucket  int64 // bucket start, ms since the epoch, at the Agg's granularity
}

// DayCell is one day of one version within an Agg.
type DayCell struct {
	Version string
	Day     int64 // day start, ms since the epoch
}

// Agg is the accumulator both layers share: for one AppKey, event counts per
// (version, bucket) at one granularity and, if Precision > 0, a distinct
// device sketch per (version, day). All-version rows and coarser
// granularities are derived when rows are extracted, so a partial holds
// each event once.
//
// Add is the only place an event is counted and sketched, and merge the
// only place two Aggs are combined; CombineFn exposes both to Beam and to
// the map-side pre-aggregation of both layers.
//
// Agg has reference semantics (its maps are shared by copies). The zero
// Agg is empty and adopts whatever is merged into it.
type Agg struct {
	Gran      Granularity
	Precision uint8

	cells map[Cell]*cell
	days  map[DayCell]*hll.Sketch
}

// cell is one count, with its day's sketch at hand, so that counting and
// sketching an event costs one map lookup once the cell exists: the batch
// layer's hot path (DESIGN §7a).
type cell struct {
	n   int64
	day *hll.Sketch // the sketch of the cell's (version, day); nil without sketches
}

// NewAgg returns an empty Agg counting at gran, sketching at precision
// (0 = no sketches).
func NewAgg(gran Granularity, precision uint8) Agg {
	a := Agg{Gran: gran, Precision: precision, cells: map[Cell]*cell{}}
	if precision > 0 {
		a.days = map[DayCell]*hll.Sketch{}
	}
	return a
}

// IsZero reports whether a was never initialised (a fresh accumulator).
func (a Agg) IsZero() bool { return a.cells == nil }

// Add counts e in the bucket holding ms, which the caller got from
// e.BucketTime, and adds its device to that day's sketch.
func (a Agg) Add(e *event.Event, ms int64) {
	k := Cell{e.AppVersion, a.Gran.Truncate(ms)}
	c := a.cells[k]
	if c == nil {
		c = a.cell(k)
	}
	c.n++
	if c.day != nil {
		c.day.AddHash(hll.Hash(e.DeviceID))
	}
}

// cell returns the cell k, creating it (linked to its day's sketch).
func (a Agg) cell(k Cell) *cell {
	c := a.cells[k]
	if c != nil {
		return c
	}
	c = &cell{}
	if a.Precision > 0 {
		d := DayCell{k.Version, Day.Truncate(k.Bucket)}
		if c.day = a.days[d]; c.day == nil {
			c.day = hll.MustNew(a.Precision)
			a.days[d] = c.day
		}
	}
	a.cells[k] = c
	return c
}

// Merge adds b into a and returns a. It takes ownership of b's sketches:
// b must not be used afterwards. An uninitialised a becomes b.
func (a Agg) Merge(b Agg) (Agg, error) { return a.merge(b, true) }

// MergeCopy adds b into a and returns a, leaving b untouched and unshared:
// for inputs the caller does not own, such as an element a fused stage
// also hands to other consumers.
func (a Agg) MergeCopy(b Agg) (Agg, error) { return a.merge(b, false) }

func (a Agg) merge(b Agg, own bool) (Agg, error) {
	if b.IsZero() {
		return a, nil
	}
	if a.IsZero() {
		if own {
			return b, nil
		}
		return b.clone(), nil
	}
	if a.Gran != b.Gran || a.Precision != b.Precision {
		return a, fmt.Errorf("aggregate: merging Agg(%v, p=%d) into Agg(%v, p=%d)", b.Gran, b.Precision, a.Gran, a.Precision)
	}
	// Sketches first, so new cells link to the merged day sketch.
	for d, s := range b.days {
		switch mine := a.days[d]; {
		case mine != nil:
			if err := mine.Merge(s); err != nil {
				return a, fmt.Errorf("aggregate: merge sketch %v: %w", d, err)
			}
		case own:
			a.days[d] = s
		default:
			a.days[d] = s.Clone()
		}
	}
	for k, c := range b.cells {
		a.cell(k).n += c.n
	}
	return a, nil
}

// clone is a deep copy.
func (a Agg) clone() Agg {
	if a.IsZero() {
		return a
	}
	c := NewAgg(a.Gran, a.Precision)
	for d, s := range a.days {
		c.days[d] = s.Clone()
	}
	for k, x := range a.cells {
		c.cell(k).n = x.n
	}
	return c
}

// Coarsen returns a copy of a counted per g, which must be at least as
// coarse as a.Gran: each count is summed into the bucket of g that holds
// it. With sketches it copies a's daily sketches too (they are per day at
// every granularity); without, the copy counts only. a is left untouched
// and unshared. The speed layer's hour and day totals keep hour and day
// cells this way, not the minute cells their deltas arrive in.
func (a Agg) Coarsen(g Granularity, sketches bool) (Agg, error) {
	if a.IsZero() {
		return a, nil
	}
	if g < a.Gran {
		return a, fmt.Errorf("aggregate: coarsening an Agg counted per %v to %v", a.Gran, g)
	}
	p := a.Precision
	if !sketches {
		p = 0
	}
	c := NewAgg(g, p)
	for d, s := range a.days {
		if p > 0 {
			c.days[d] = s.Clone()
		}
	}
	for k, x := range a.cells {
		c.cell(Cell{k.Version, g.Truncate(k.Bucket)}).n += x.n
	}
	return c, nil
}

// Count is the count of one cell.
func (a Agg) Count(c Cell) int64 {
	if x := a.cells[c]; x != nil {
		return x.n
	}
	return 0
}

// Sketch is the sketch of one day of one version; nil if none.
func (a Agg) Sketch(d DayCell) *hll.Sketch { return a.days[d] }

// Cells is the number of count cells and sketches held: a proxy for
// memory (roughly 100 bytes a cell, up to 12 KiB a sketch at p=14).
func (a Agg) Cells() int { return len(a.cells) + len(a.days) }

// Total is the number of events counted in a.
func (a Agg) Total() int64 {
	var n int64
	for _, c := range a.cells {
		n += c.n
	}
	return n
}

// KeepDays returns the part of a in the days keep says yes to (day start,
// ms): their counts, and a's sketches themselves, shared: a change to
// either changes the other, so use one of them only, or read both. An
// incremental batch run takes its window state this way without the days
// it recomputes, a partition's partials with only those days, and
// DiffAdded the days it compares.
func (a Agg) KeepDays(keep func(day int64) bool) Agg {
	if a.IsZero() {
		return a
	}
	out := NewAgg(a.Gran, a.Precision)
	for d, s := range a.days {
		if keep(d.Day) {
			out.days[d] = s
		}
	}
	for k, c := range a.cells {
		if keep(Day.Truncate(k.Bucket)) {
			out.cell(k).n = c.n
		}
	}
	return out
}

// DayEvents counts a's events per day (day start, ms), every version.
func (a Agg) DayEvents() map[int64]int64 {
	out := map[int64]int64{}
	for k, c := range a.cells {
		out[Day.Truncate(k.Bucket)] += c.n
	}
	return out
}

// Cut returns the part of a inside the window: the counts and sketches of
// its days, adopted from a (which must not be used afterwards), and how
// many events a holds before and after it. Kept whole, a partial can be
// cut to any run's window later: the batch cuts rollups this way.
func (a Agg) Cut(w DayWindow) (in Agg, before, after int64) {
	if a.IsZero() {
		return a, 0, 0
	}
	first, end := w.First.UnixMilli(), w.Last.AddDate(0, 0, 1).UnixMilli()
	in = NewAgg(a.Gran, a.Precision)
	for d, s := range a.days {
		if d.Day >= first && d.Day < end {
			in.days[d] = s
		}
	}
	for k, c := range a.cells {
		switch day := Day.Truncate(k.Bucket); {
		case day < first:
			before += c.n
		case day >= end:
			after += c.n
		default:
			in.cell(k).n = c.n
		}
	}
	return in, before, after
}
