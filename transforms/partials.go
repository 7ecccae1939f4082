package transforms

import (
	"time"

	"github.com/apache/beam/sdks/v2/go/pkg/beam"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/core/graph/mtime"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/register"

	"github.com/lumenhq/lumen/aggregate"
	"github.com/lumenhq/lumen/event"
)

func init() {
	register.DoFn3x0[beam.EventTime, event.Event, func(beam.EventTime, aggregate.AppKey, aggregate.Agg)](&partialsFn{})
	register.Emitter3[beam.EventTime, aggregate.AppKey, aggregate.Agg]()
}

// Partials is the speed layer's map-side pre-aggregation, the streaming
// counterpart of the batch's aggregate.Partials: within each bundle it
// adds the events of each AppKey and fixed event-time window of size to
// one partial Agg with fn.AddEvent, and emits the partials when the bundle
// ends (or early, past maxCells), each timestamped with the newest event
// time in it. Windowed with the same size downstream, a partial lands in
// its events' window, and a runner judges it on time or late exactly as it
// would have judged each of its events: they reach the window together, in
// one bundle's output. Only partials cross the shuffle, never single
// events (DESIGN §7a: an element crossing prism's shuffle costs ~10 µs).
//
//	events: PCollection<event.Event> (timestamped with their bucket time) → PCollection<KV<aggregate.AppKey, aggregate.Agg>>
func Partials(s beam.Scope, events beam.PCollection, size time.Duration, fn aggregate.Combine) beam.PCollection {
	s = s.Scope("transforms.Partials")
	return beam.ParDo(s, &partialsFn{SizeMs: size.Milliseconds(), Fn: fn}, events)
}

// maxPartialCells bounds a bundle's partials (count cells and sketches)
// before they are emitted early.
const maxPartialCells = 200_000

type partialsFn struct {
	SizeMs int64
	Fn     aggregate.Combine

	open  map[windowKey]*partial
	cells int
}

type windowKey struct {
	key   aggregate.AppKey
	start int64
}

type partial struct {
	agg    aggregate.Agg
	newest int64 // ms
}

func (f *partialsFn) StartBundle(func(beam.EventTime, aggregate.AppKey, aggregate.Agg)) {
	f.open, f.cells = map[windowKey]*partial{}, 0
}

func (f *partialsFn) ProcessElement(ts beam.EventTime, e event.Event, emit func(beam.EventTime, aggregate.AppKey, aggregate.Agg)) {
	ms := int64(ts)
	k := windowKey{aggregate.AppKey{Kind: e.Kind, AppID: e.AppID}, ms - ((ms%f.SizeMs)+f.SizeMs)%f.SizeMs}
	p := f.open[k]
	if p == nil {
		p = &partial{agg: f.Fn.CreateAccumulator(), newest: ms}
		f.open[k] = p
	}
	before := p.agg.Cells()
	f.Fn.AddEvent(p.agg, &e)
	f.cells += p.agg.Cells() - before
	p.newest = max(p.newest, ms)
	if f.cells > maxPartialCells {
		f.FinishBundle(emit)
	}
}

func (f *partialsFn) FinishBundle(emit func(beam.EventTime, aggregate.AppKey, aggregate.Agg)) {
	for k, p := range f.open {
		emit(mtime.FromMilliseconds(p.newest), k.key, p.agg)
	}
	f.open, f.cells = map[windowKey]*partial{}, 0
}
