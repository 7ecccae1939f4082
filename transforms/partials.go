package transforms

import (
	"github.com/lumenhq/lumen/event"
	"github.com/lumenhq/lumen/transforms/hll"
)

// Stats counts how events were placed by Partials. It is additive.
type Stats struct {
	Events      int64 // events offered
	Counted     int64 // events aggregated
	ClockSkew   int64 // bucketed by received_time because event_time was ahead
	TooOld      int64 // bucket day before the window
	AfterWindow int64 // bucket day after the window
}

// Add adds o to s.
func (s *Stats) Add(o Stats) {
	s.Events += o.Events
	s.Counted += o.Counted
	s.ClockSkew += o.ClockSkew
	s.TooOld += o.TooOld
	s.AfterWindow += o.AfterWindow
}

// Partials is the batch layer's map-side combine: it buckets events
// (BucketTime), keeps those whose bucket falls in the run's DayWindow, and
// accumulates them per (kind, app, version, bucket). Draining it yields one
// Agg per AppKey, which are shuffled and merged with the same Agg.Merge the
// streaming combine uses. Not safe for concurrent use.
//
// It is the hottest code in the batch layer, so it keeps one map whose cell
// holds both the count and a pointer to the day's sketch: an event costs one
// map lookup, and the Aggs are assembled only when draining.
type Partials struct {
	gran      Granularity
	precision uint8
	first     int64
	end       int64
	cells     map[hotKey]*hotCell
	days      map[dayKey]*hll.Sketch
	stats     [event.HandledException + 1]Stats // by kind
}

type hotKey struct {
	kind    event.Kind
	app     string
	version string
	bucket  int64
}

type dayKey struct {
	kind    event.Kind
	app     string
	version string
	day     int64
}

type hotCell struct {
	n      int64
	sketch *hll.Sketch // the cell's day; nil without sketches
}

// NewPartials returns an empty Partials for a run over window, counting per
// gran and sketching at precision.
func NewPartials(window DayWindow, gran Granularity, precision uint8) *Partials {
	return &Partials{
		gran: gran, precision: precision,
		first: window.First.UnixMilli(), end: window.Last.AddDate(0, 0, 1).UnixMilli(),
		cells: map[hotKey]*hotCell{}, days: map[dayKey]*hll.Sketch{},
	}
}

// Add places and aggregates one valid event (e.Kind must be valid). e is
// not retained.
func (p *Partials) Add(e *event.Event) {
	st := &p.stats[e.Kind]
	st.Events++
	ms, skewed := BucketTime(e)
	if skewed {
		st.ClockSkew++
	}
	switch {
	case ms < p.first:
		st.TooOld++
		return
	case ms >= p.end:
		st.AfterWindow++
		return
	}
	st.Counted++
	k := hotKey{e.Kind, e.AppID, e.AppVersion, p.gran.Truncate(ms)}
	c := p.cells[k]
	if c == nil {
		c = &hotCell{}
		if p.precision > 0 {
			dk := dayKey{e.Kind, e.AppID, e.AppVersion, Day.Truncate(ms)}
			c.sketch = p.days[dk]
			if c.sketch == nil {
				c.sketch = hll.MustNew(p.precision)
				p.days[dk] = c.sketch
			}
		}
		p.cells[k] = c
	}
	c.n++
	if c.sketch != nil {
		c.sketch.AddHash(hll.Hash(e.DeviceID))
	}
}

// Cells is the number of count cells and sketches held: a proxy for memory
// (roughly 100 bytes a cell, more for a sketch), so a caller aggregating a
// whole bundle can drain early instead of growing without bound.
func (p *Partials) Cells() int { return len(p.cells) + len(p.days) }

// Stats returns the placement counts of kind k so far.
func (p *Partials) Stats(k event.Kind) Stats { return p.stats[k] }

// Drain hands one Agg per AppKey to emit and empties p. It returns the
// placement counts by kind (index event.Kind) and resets them.
func (p *Partials) Drain(emit func(AppKey, Agg)) [event.HandledException + 1]Stats {
	aggs := map[AppKey]Agg{}
	agg := func(k AppKey) Agg {
		a, ok := aggs[k]
		if !ok {
			a = NewAgg(p.gran, p.precision)
			aggs[k] = a
		}
		return a
	}
	for k, c := range p.cells {
		agg(AppKey{k.kind, k.app}).Counts[Cell{k.version, k.bucket}] += c.n
	}
	for k, s := range p.days {
		agg(AppKey{k.kind, k.app}).Users[DayCell{k.version, k.day}] = s
	}
	for k, a := range aggs {
		emit(k, a)
	}
	st := p.stats
	p.cells, p.days = map[hotKey]*hotCell{}, map[dayKey]*hll.Sketch{}
	p.stats = [event.HandledException + 1]Stats{}
	return st
}
