package transforms

import (
	"fmt"
	"time"

	"github.com/apache/beam/sdks/v2/go/pkg/beam"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/core/graph/window"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/core/graph/window/trigger"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/core/state"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/core/typex"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/register"

	"github.com/lumenhq/lumen/event"
)

func init() {
	register.DoFn6x1[typex.PaneInfo, typex.Window, AppKey, func(*event.Event) bool, func(AppKey, Agg), func(LateKey, Agg), error](&paneAggregateFn{})
	register.Iter1[event.Event]()
	register.Emitter2[AppKey, Agg]()
	register.Emitter2[LateKey, Agg]()
	register.DoFn3x1[LateKey, Agg, func(LateRow), error](&lateRowsFn{})
	register.Function2x2(countsOnly)
	register.DoFn4x1[state.Provider, AppKey, Agg, func(AppKey, Agg), error](&totalsFn{})
	register.Emitter1[LateRow]()
	register.DoFn3x1[string, event.Event, func(LateRow), error](&tooLateRowsFn{})
}

// LateKey identifies one late pane of one window of one AppKey.
type LateKey struct {
	Kind        event.Kind
	AppID       string
	WindowStart int64 // ms
	Pane        int64
}

// WindowConfig shapes the streaming windows.
type WindowConfig struct {
	// Size of the fixed event-time windows (1 minute in lumen's speed layer).
	Size time.Duration
	// Every fires early and late panes this often (processing time).
	Every time.Duration
	// AllowedLateness keeps windows open for late panes this long after
	// they close (the horizon within which late events are counted).
	AllowedLateness time.Duration
	// Precision of the daily sketches carried in the deltas; 0 skips them.
	Precision uint8
}

// PaneDeltas windows keyed events into fixed event-time windows and
// aggregates each pane with the shared Agg (DESIGN §3's streaming
// semantics). Panes are discarding, so every pane is a delta: early and
// on-time panes (events within the watermark) go to deltas, late panes
// (events behind the watermark, which the speed layer drops and counts) go
// to late, keyed by window and pane index so writing them is idempotent.
//
// It groups with GroupByKey rather than a combine because the Go SDK
// reports pane timing reliably only on grouped output.
//
//	keyed: PCollection<KV<AppKey, event.Event>> → PCollection<KV<AppKey, Agg>>, PCollection<KV<LateKey, Agg>>
func PaneDeltas(s beam.Scope, keyed beam.PCollection, cfg WindowConfig) (deltas, late beam.PCollection) {
	s = s.Scope("transforms.PaneDeltas")
	w := beam.WindowInto(s, window.NewFixedWindows(cfg.Size), keyed,
		beam.Trigger(trigger.AfterEndOfWindow().
			EarlyFiring(trigger.Repeat(trigger.AfterProcessingTime().PlusDelay(cfg.Every))).
			LateFiring(trigger.Repeat(trigger.AfterProcessingTime().PlusDelay(cfg.Every)))),
		beam.AllowedLateness(cfg.AllowedLateness), beam.PanesDiscard())
	gran := Minute
	if cfg.Size >= time.Hour {
		gran = Hour
	}
	return beam.ParDo2(s, &paneAggregateFn{Gran: gran, Precision: cfg.Precision}, beam.GroupByKey(s, w))
}

type paneAggregateFn struct {
	Gran      Granularity
	Precision uint8
}

func (f *paneAggregateFn) ProcessElement(pn typex.PaneInfo, w typex.Window, k AppKey, evs func(*event.Event) bool,
	emitDelta func(AppKey, Agg), emitLate func(LateKey, Agg)) error {
	a := NewAgg(f.Gran, f.Precision)
	var e event.Event
	for evs(&e) {
		ms, _ := BucketTime(&e)
		a.Add(&e, ms)
	}
	if pn.Timing == typex.PaneLate {
		emitLate(LateKey{Kind: k.Kind, AppID: k.AppID, WindowStart: w.MaxTimestamp().Milliseconds() + 1 - int64(f.Gran.Millis()), Pane: pn.Index}, a)
		return nil
	}
	emitDelta(k, a)
	return nil
}

// Totals sums deltas into running totals per key and fixed window of
// size, and emits the window's total so far on every delta (the speed
// layer keeps the largest). Deltas arrive at most once per key and minute
// every WindowConfig.Every, so this is the accumulating, processing-time
// early firing of DESIGN §3, one stage removed. With sketches false the
// totals carry counts only.
//
// It keeps the total in per-key, per-window state rather than re-grouping
// with an accumulating trigger: prism (2.77) runs every triggered pane as
// a bundle of its own holding all the window's earlier input again, so a
// day window fed once a minute re-merged ~1,440²/2 partials per key, and
// its processing-time timers may fire after the window is collected and
// fail the job. State costs one read and one write per delta on any runner.
//
// Deltas are the early and on-time panes of PaneDeltas, but prism may run
// an early pane after the watermark has passed it, so the lateness must
// be PaneDeltas' own: a window's state must outlive every delta of it.
//
//	deltas: PCollection<KV<AppKey, Agg>> → PCollection<KV<AppKey, Agg>>
func Totals(s beam.Scope, deltas beam.PCollection, size, lateness time.Duration, sketches bool) beam.PCollection {
	s = s.Scope(fmt.Sprintf("transforms.Totals(%v)", size))
	if !sketches {
		deltas = beam.ParDo(s, countsOnly, deltas)
	}
	w := beam.WindowInto(s, window.NewFixedWindows(size), deltas, beam.AllowedLateness(lateness))
	return beam.ParDo(s, &totalsFn{Total: state.MakeValueState[Agg]("total")}, w)
}

// countsOnly drops an Agg's sketches.
func countsOnly(k AppKey, a Agg) (AppKey, Agg) {
	return k, Agg{Gran: a.Gran, Counts: a.Counts}
}

type totalsFn struct {
	Total state.Value[Agg]
}

func (f *totalsFn) ProcessElement(sp state.Provider, k AppKey, delta Agg, emit func(AppKey, Agg)) error {
	total, ok, err := f.Total.Read(sp)
	if err != nil {
		return err
	}
	if !ok {
		total = NewAgg(delta.Gran, delta.Precision)
	}
	if total, err = total.MergeCopy(delta); err != nil {
		return err
	}
	if err := f.Total.Write(sp, total); err != nil {
		return err
	}
	// The state is decoded afresh for every element, so total is ours.
	emit(k, total)
	return nil
}

// LateRowsOf renders late panes as late rows at each granularity.
//
//	late: PCollection<KV<LateKey, Agg>> → PCollection<LateRow>
func LateRowsOf(s beam.Scope, late beam.PCollection, grans ...Granularity) beam.PCollection {
	s = s.Scope("transforms.LateRows")
	return beam.ParDo(s, &lateRowsFn{Grans: grans}, late)
}

type lateRowsFn struct{ Grans []Granularity }

func (f *lateRowsFn) ProcessElement(k LateKey, a Agg, emit func(LateRow)) error {
	rows, err := a.LateRows(AppKey{k.Kind, k.AppID}, fmt.Sprintf("pane/%d/%d", k.WindowStart, k.Pane), f.Grans...)
	if err != nil {
		return err
	}
	for _, r := range rows {
		emit(r)
	}
	return nil
}

// TooLateRows renders single events that arrived beyond the lateness
// horizon (keyed by a unique source id, e.g. topic/partition/offset) as
// late rows at each granularity.
//
//	events: PCollection<KV<string, event.Event>> → PCollection<LateRow>
func TooLateRows(s beam.Scope, events beam.PCollection, grans ...Granularity) beam.PCollection {
	s = s.Scope("transforms.TooLateRows")
	return beam.ParDo(s, &tooLateRowsFn{Grans: grans}, events)
}

type tooLateRowsFn struct{ Grans []Granularity }

func (f *tooLateRowsFn) ProcessElement(id string, e event.Event, emit func(LateRow)) error {
	a := NewAgg(Minute, 0)
	ms, _ := BucketTime(&e)
	a.Add(&e, ms)
	rows, err := a.LateRows(AppKey{e.Kind, e.AppID}, id, f.Grans...)
	if err != nil {
		return err
	}
	for _, r := range rows {
		emit(r)
	}
	return nil
}
