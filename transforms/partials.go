package transforms

import (
	"github.com/lumenhq/lumen/event"
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
// accumulates them into one Agg per AppKey. Draining it yields the partials
// that are shuffled and merged with the same Agg.Merge the streaming combine
// uses. Not safe for concurrent use.
type Partials struct {
	gran      Granularity
	precision uint8
	window    DayWindow
	first     int64
	end       int64
	aggs      map[AppKey]Agg
	last      AppKey
	lastAgg   Agg
	stats     [event.HandledException + 1]Stats // by kind
}

// NewPartials returns an empty Partials for a run over window, counting per
// gran and sketching at precision.
func NewPartials(window DayWindow, gran Granularity, precision uint8) *Partials {
	return &Partials{
		gran: gran, precision: precision, window: window,
		first: window.First.UnixMilli(), end: window.Last.AddDate(0, 0, 1).UnixMilli(),
		aggs: map[AppKey]Agg{},
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
	// Consecutive events often share an app (files are written per
	// producer batch); skip the map lookup then.
	if e.Kind != p.last.Kind || e.AppID != p.last.AppID || p.lastAgg.IsZero() {
		k := AppKey{e.Kind, e.AppID}
		a, ok := p.aggs[k]
		if !ok {
			a = NewAgg(p.gran, p.precision)
			p.aggs[k] = a
		}
		p.last, p.lastAgg = k, a
	}
	p.lastAgg.Add(e, ms)
}

// Len is the number of AppKeys held.
func (p *Partials) Len() int { return len(p.aggs) }

// Stats returns the placement counts of kind k so far.
func (p *Partials) Stats(k event.Kind) Stats { return p.stats[k] }

// Drain hands every (AppKey, Agg) to emit and empties p. It returns the
// placement counts by kind (index event.Kind) and resets them.
func (p *Partials) Drain(emit func(AppKey, Agg)) [event.HandledException + 1]Stats {
	for k, a := range p.aggs {
		emit(k, a)
	}
	st := p.stats
	p.aggs = map[AppKey]Agg{}
	p.last, p.lastAgg, p.stats = AppKey{}, Agg{}, [event.HandledException + 1]Stats{}
	return st
}
