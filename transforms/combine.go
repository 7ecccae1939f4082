package transforms

import (
	"fmt"

	"github.com/apache/beam/sdks/v2/go/pkg/beam"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/register"

	"github.com/lumenhq/lumen/aggregate"
	_ "github.com/lumenhq/lumen/coders" // AppKey, Agg and Event cross every shuffle here
)

func init() {
	register.Combiner1[aggregate.Agg](&aggregate.CombineFn{})
	register.DoFn3x1[aggregate.AppKey, aggregate.Agg, func(aggregate.CountRow), error](&countRowsFn{})
	register.DoFn3x1[aggregate.AppKey, aggregate.Agg, func(aggregate.UserRow), error](&userRowsFn{})
	register.Emitter1[aggregate.CountRow]()
	register.Emitter1[aggregate.UserRow]()
}

// MergePartials merges per-key partial Aggs, built map-side with fn
// (aggregate.Partials in the batch), with fn as the CombineFn: the batch
// layer's combine. Combiner lifting merges partials before the shuffle.
//
//	partials: PCollection<KV<aggregate.AppKey, aggregate.Agg>> → PCollection<KV<aggregate.AppKey, aggregate.Agg>>
func MergePartials(s beam.Scope, partials beam.PCollection, fn aggregate.CombineFn) beam.PCollection {
	s = s.Scope("transforms.MergePartials")
	return beam.CombinePerKey(s, &fn, partials)
}

// CountRows explodes merged Aggs into count rows at each granularity.
//
//	aggs: PCollection<KV<aggregate.AppKey, aggregate.Agg>> → PCollection<aggregate.CountRow>
func CountRows(s beam.Scope, aggs beam.PCollection, grans ...aggregate.Granularity) beam.PCollection {
	s = s.Scope("transforms.CountRows")
	return beam.ParDo(s, &countRowsFn{Grans: grans}, aggs)
}

// UserRows explodes merged Aggs into daily distinct-device rows.
//
//	aggs: PCollection<KV<aggregate.AppKey, aggregate.Agg>> → PCollection<aggregate.UserRow>
func UserRows(s beam.Scope, aggs beam.PCollection) beam.PCollection {
	s = s.Scope("transforms.UserRows")
	return beam.ParDo(s, &userRowsFn{}, aggs)
}

type countRowsFn struct {
	Grans []aggregate.Granularity
}

func (f *countRowsFn) ProcessElement(k aggregate.AppKey, a aggregate.Agg, emit func(aggregate.CountRow)) error {
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

func (f *userRowsFn) ProcessElement(k aggregate.AppKey, a aggregate.Agg, emit func(aggregate.UserRow)) error {
	rows, err := a.UserRows(k)
	if err != nil {
		return fmt.Errorf("transforms: %v: %w", k, err)
	}
	for _, r := range rows {
		emit(r)
	}
	return nil
}
