package transforms

import (
	"fmt"

	"github.com/apache/beam/sdks/v2/go/pkg/beam"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/register"

	"github.com/lumenhq/lumen/event"
)

func init() {
	register.Function1x2(keyByApp)
	register.Combiner3[Agg, event.Event, Agg](&aggregateFn{})
	register.Combiner1[Agg](&mergeFn{})
	register.DoFn3x1[AppKey, Agg, func(CountRow), error](&countRowsFn{})
	register.DoFn3x1[AppKey, Agg, func(UserRow), error](&userRowsFn{})
	register.Emitter1[CountRow]()
	register.Emitter1[UserRow]()
}

// AggregateConfig says what Aggregate accumulates.
type AggregateConfig struct {
	// Gran is the count granularity. In a fixed event-time window of the
	// same size, every event of the window lands in one bucket per version.
	Gran Granularity
	// Precision of the daily sketches; 0 skips sketches.
	Precision uint8
}

// KeyByApp keys events by AppKey.
//
//	events: PCollection<event.Event> → PCollection<KV<AppKey, event.Event>>
func KeyByApp(s beam.Scope, events beam.PCollection) beam.PCollection {
	s = s.Scope("transforms.KeyByApp")
	return beam.ParDo(s, keyByApp, events)
}

func keyByApp(e event.Event) (AppKey, event.Event) { return AppKey{e.Kind, e.AppID}, e }

// Aggregate combines keyed events, per key and window, into an Agg: counts
// per version and bucket, and daily sketches. It is the streaming layer's
// combine; events are bucketed by BucketTime exactly as in batch.
//
//	keyed: PCollection<KV<AppKey, event.Event>> → PCollection<KV<AppKey, Agg>>
func Aggregate(s beam.Scope, keyed beam.PCollection, cfg AggregateConfig) beam.PCollection {
	s = s.Scope("transforms.Aggregate")
	return beam.CombinePerKey(s, &aggregateFn{Gran: cfg.Gran, Precision: cfg.Precision}, keyed)
}

// MergePartials merges per-key partial Aggs, built map-side by Partials,
// with the same Agg.Merge the streaming combine uses. It is the batch
// layer's combine; combiner lifting merges partials before the shuffle.
//
//	partials: PCollection<KV<AppKey, Agg>> → PCollection<KV<AppKey, Agg>>
func MergePartials(s beam.Scope, partials beam.PCollection) beam.PCollection {
	s = s.Scope("transforms.MergePartials")
	return beam.CombinePerKey(s, &mergeFn{}, partials)
}

// CountRows explodes merged Aggs into count rows at each granularity.
//
//	aggs: PCollection<KV<AppKey, Agg>> → PCollection<CountRow>
func CountRows(s beam.Scope, aggs beam.PCollection, grans ...Granularity) beam.PCollection {
	s = s.Scope("transforms.CountRows")
	return beam.ParDo(s, &countRowsFn{Grans: grans}, aggs)
}

// UserRows explodes merged Aggs into daily distinct-device rows.
//
//	aggs: PCollection<KV<AppKey, Agg>> → PCollection<UserRow>
func UserRows(s beam.Scope, aggs beam.PCollection) beam.PCollection {
	s = s.Scope("transforms.UserRows")
	return beam.ParDo(s, &userRowsFn{}, aggs)
}

// CountPerBucket counts events per (kind, app_id, app_version and all
// versions, bucket) at gran.
//
//	events: PCollection<event.Event> → PCollection<CountRow>
func CountPerBucket(s beam.Scope, events beam.PCollection, gran Granularity) beam.PCollection {
	s = s.Scope("transforms.CountPerBucket")
	return CountRows(s, Aggregate(s, KeyByApp(s, events), AggregateConfig{Gran: gran}), gran)
}

// DistinctDevices sketches distinct devices per (kind, app_id, app_version
// and all versions, day).
//
//	events: PCollection<event.Event> → PCollection<UserRow>
func DistinctDevices(s beam.Scope, events beam.PCollection, precision uint8) beam.PCollection {
	s = s.Scope("transforms.DistinctDevices")
	return UserRows(s, Aggregate(s, KeyByApp(s, events), AggregateConfig{Gran: Day, Precision: precision}))
}

// aggregateFn is the CombineFn over events.
type aggregateFn struct {
	Gran      Granularity
	Precision uint8
}

func (f *aggregateFn) CreateAccumulator() Agg { return NewAgg(f.Gran, f.Precision) }

func (f *aggregateFn) AddInput(a Agg, e event.Event) Agg {
	if a.IsZero() {
		a = NewAgg(f.Gran, f.Precision)
	}
	ms, _ := BucketTime(&e)
	a.Add(&e, ms)
	return a
}

func (f *aggregateFn) MergeAccumulators(a, b Agg) (Agg, error) { return a.Merge(b) }

// ExtractOutput returns a copy, because accumulating triggers keep adding to
// the accumulator after a pane has been emitted.
func (f *aggregateFn) ExtractOutput(a Agg) Agg { return a.clone() }

// mergeFn is the CombineFn over partial Aggs. Inputs are copied, not
// adopted: a fused stage may pass one element to several combines (the
// speed layer's minute, hour and day totals share their deltas).
// Accumulators are the combine's own, so merging them adopts.
type mergeFn struct{}

func (*mergeFn) AddInput(a, b Agg) (Agg, error)          { return a.MergeCopy(b) }
func (*mergeFn) MergeAccumulators(a, b Agg) (Agg, error) { return a.Merge(b) }

// ExtractOutput returns a copy, because accumulating triggers keep adding to
// the accumulator after a pane has been emitted.
func (*mergeFn) ExtractOutput(a Agg) Agg { return a.clone() }

func (a Agg) clone() Agg {
	if a.IsZero() {
		return a
	}
	c := NewAgg(a.Gran, a.Precision)
	for k, n := range a.Counts {
		c.Counts[k] = n
	}
	for k, s := range a.Users {
		c.Users[k] = s.Clone()
	}
	return c
}

type countRowsFn struct {
	Grans []Granularity
}

func (f *countRowsFn) ProcessElement(k AppKey, a Agg, emit func(CountRow)) error {
	rows, err := a.CountRows(k, f.Grans...)
	if err != nil {
		return fmt.Errorf("transforms: %v: %w", k, err)
	}
	for _, r := range rows {
		emit(r)
	}
	return nil
}

type userRowsFn struct{}

func (f *userRowsFn) ProcessElement(k AppKey, a Agg, emit func(UserRow)) error {
	rows, err := a.UserRows(k)
	if err != nil {
		return fmt.Errorf("transforms: %v: %w", k, err)
	}
	for _, r := range rows {
		emit(r)
	}
	return nil
}
