package aggregate

import "github.com/lumenhq/lumen/event"

// CombineFn is the one combine of both layers (DESIGN §3, §4). As a Beam
// CombineFn (transforms registers it) it merges partial aggregates: its
// input, accumulator and output are all Agg. The map-side pre-aggregation
// that builds those partials — the batch's readers (Partials) and the
// stream's per-bundle partials — starts each one with CreateAccumulator
// and feeds it with AddEvent. So every event is counted and sketched by
// Agg.Add, every merge is Agg.Merge, and the same events give the same
// counts and byte-identical sketches in both layers.
//
// Inputs are adopted, not copied: a partial must have no other consumer
// (lumen's partials are built for the combine and used once). Outputs are
// the accumulators themselves, which suits the default and discarding
// triggers lumen combines under, where an accumulator is extracted once.
type CombineFn struct {
	// Gran is the count granularity of the partials.
	Gran Granularity
	// Precision of the daily sketches; 0 skips them.
	Precision uint8
}

// CreateAccumulator returns an empty Agg of c's granularity and precision.
func (c *CombineFn) CreateAccumulator() Agg { return NewAgg(c.Gran, c.Precision) }

// AddEvent counts e in a, bucketed by e.BucketTime (DESIGN §3), and adds
// its device to the day's sketch. It returns a (a fresh accumulator if a
// was zero).
func (c *CombineFn) AddEvent(a Agg, e *event.Event) Agg {
	if a.IsZero() {
		a = c.CreateAccumulator()
	}
	ms, _ := e.BucketTime()
	a.Add(e, ms)
	return a
}

// AddInput merges a partial into the accumulator, adopting it.
func (c *CombineFn) AddInput(a, partial Agg) (Agg, error) { return a.Merge(partial) }

// MergeAccumulators merges b into a.
func (c *CombineFn) MergeAccumulators(a, b Agg) (Agg, error) { return a.Merge(b) }

// ExtractOutput returns the accumulator.
func (c *CombineFn) ExtractOutput(a Agg) Agg { return a }
