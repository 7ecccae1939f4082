package aggregate

import "github.com/lumenhq/lumen/event"

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

// Partials is the batch layer's map-side pre-aggregation: it places events
// against the run's DayWindow (too old, after the window, clock-skewed) and
// adds those inside it to one Agg per AppKey with CombineFn.AddEvent. Drain
// hands the Aggs on to be shuffled and merged by the same CombineFn. Not
// safe for concurrent use.
type Partials struct {
	fn         CombineFn
	first, end int64
	aggs       map[AppKey]Agg
	stats      [event.HandledException + 1]Stats // by kind
}

// NewPartials returns an empty Partials for a run over window, counting per
// gran and sketching at precision.
func NewPartials(window DayWindow, gran Granularity, precision uint8) *Partials {
	return &Partials{
		fn:    CombineFn{Gran: gran, Precision: precision},
		first: window.First.UnixMilli(), end: window.Last.AddDate(0, 0, 1).UnixMilli(),
		aggs: map[AppKey]Agg{},
	}
}

// Add places and aggregates one valid event (e.Kind must be valid). e is
// not retained.
func (p *Partials) Add(e *event.Event) {
	st := &p.stats[e.Kind]
	st.Events++
	ms, skewed := e.BucketTime()
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
	k := AppKey{e.Kind, e.AppID}
	a, ok := p.aggs[k]
	if !ok {
		a = p.fn.CreateAccumulator()
		p.aggs[k] = a
	}
	p.fn.AddEvent(a, e)
}

// Cells is the number of count cells and sketches held: a proxy for memory
// (roughly 100 bytes a cell, more for a sketch), so a caller aggregating a
// whole bundle can drain early instead of growing without bound.
func (p *Partials) Cells() int {
	n := 0
	for _, a := range p.aggs {
		n += a.Cells()
	}
	return n
}

// Drain hands one Agg per AppKey to emit and empties p. It returns the
// placement counts by kind (index event.Kind) and resets them.
func (p *Partials) Drain(emit func(AppKey, Agg)) [event.HandledException + 1]Stats {
	for k, a := range p.aggs {
		emit(k, a)
	}
	st := p.stats
	p.aggs = map[AppKey]Agg{}
	p.stats = [event.HandledException + 1]Stats{}
	return st
}
