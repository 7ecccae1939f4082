package transforms

import (
	"encoding/binary"
	"fmt"
	"reflect"
	"time"

	"github.com/apache/beam/sdks/v2/go/pkg/beam"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/core/graph/mtime"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/core/graph/window"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/core/graph/window/trigger"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/core/state"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/core/typex"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/register"

	"github.com/lumenhq/lumen/aggregate"
	"github.com/lumenhq/lumen/event"
)

func init() {
	beam.RegisterCoder(reflect.TypeOf(paneKey{}), encodePaneKey, decodePaneKey)
	register.DoFn4x0[beam.EventTime, aggregate.AppKey, aggregate.Agg, func(paneKey, aggregate.Agg)](&paneKeyFn{})
	register.Emitter2[paneKey, aggregate.Agg]()
	register.DoFn6x1[typex.PaneInfo, typex.Window, paneKey, func(*aggregate.Agg) bool, func(aggregate.AppKey, aggregate.Agg), func(LateKey, aggregate.Agg), error](&paneMergeFn{})
	register.Iter1[aggregate.Agg]()
	register.Emitter2[aggregate.AppKey, aggregate.Agg]()
	register.Emitter2[LateKey, aggregate.Agg]()
	register.DoFn3x1[LateKey, aggregate.Agg, func(aggregate.LateRow), error](&lateRowsFn{})
	register.DoFn4x1[beam.EventTime, aggregate.AppKey, aggregate.Agg, func(beam.EventTime, aggregate.AppKey, aggregate.Agg), error](&bundleMergeFn{})
	register.DoFn4x1[state.Provider, aggregate.AppKey, aggregate.Agg, func(aggregate.AppKey, aggregate.Agg), error](&totalsFn{})
	register.Emitter1[aggregate.LateRow]()
	register.DoFn3x1[string, event.Event, func(aggregate.LateRow), error](&tooLateRowsFn{})
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
	// Combine merges a window's partials; its granularity is the window's
	// size (a minute window's events share one bucket per version).
	Combine aggregate.CombineFn
	// Every fires early and late panes this often (processing time).
	Every time.Duration
	// AllowedLateness keeps windows open for late panes this long after
	// they close (the horizon within which late events are counted).
	AllowedLateness time.Duration
}

// PaneDeltas windows partial aggregates (Partials) into fixed event-time
// windows and merges each pane's partials with the shared combine
// (DESIGN §3's streaming semantics). Panes are discarding, so every pane is
// a delta: early and on-time panes (within the watermark) go to deltas,
// late panes (behind the watermark, which the speed layer drops and
// counts) go to late, keyed by window and pane index so writing them is
// idempotent.
//
// It is beam.CombinePerKey(aggregate.CombineFn) in all but name: a
// GroupByKey whose values are merged with the Combine's own methods. The
// runner's CombinePerKey cannot be used because on prism (2.77) its
// output carries no pane timing (every pane reports early, index 0; see
// TestPrismCombineLosesPaneTiming), so late panes could not be told from
// on-time ones.
//
// The GroupByKey's key is the AppKey and the window's start (paneKey),
// although the window already tells the windows apart: prism (2.77)
// builds each pane fired by a processing-time trigger by popping every
// pending element of its key, of every window, off a heap and pushing
// back the others, so a key with many windows pending (a replay of
// history: a day of minutes per app) cost each pane as much as all of
// them; in a profile of a 5-day sparse replay that was 43 % of the time.
//
//	partials: PCollection<KV<aggregate.AppKey, aggregate.Agg>> → PCollection<KV<aggregate.AppKey, aggregate.Agg>>, PCollection<KV<LateKey, aggregate.Agg>>
func PaneDeltas(s beam.Scope, partials beam.PCollection, cfg WindowConfig) (deltas, late beam.PCollection) {
	s = s.Scope("transforms.PaneDeltas")
	keyed := beam.ParDo(s, &paneKeyFn{SizeMs: cfg.Size.Milliseconds()}, partials)
	w := beam.WindowInto(s, window.NewFixedWindows(cfg.Size), keyed,
		beam.Trigger(trigger.AfterEndOfWindow().
			EarlyFiring(trigger.Repeat(trigger.AfterProcessingTime().PlusDelay(cfg.Every))).
			LateFiring(trigger.Repeat(trigger.AfterProcessingTime().PlusDelay(cfg.Every)))),
		beam.AllowedLateness(cfg.AllowedLateness), beam.PanesDiscard())
	return beam.ParDo2(s, &paneMergeFn{Fn: cfg.Combine}, beam.GroupByKey(s, w))
}

// paneKey is the key of PaneDeltas' GroupByKey: an AppKey in one window.
type paneKey struct {
	Key    aggregate.AppKey
	Window int64 // ms, the window's start
}

// encodePaneKey is deterministic, as a key's coder must be: the window's
// start, then the AppKey.
func encodePaneKey(k paneKey) []byte {
	return append(binary.BigEndian.AppendUint64(nil, uint64(k.Window)), aggregate.EncodeAppKey(k.Key)...)
}

func decodePaneKey(b []byte) (paneKey, error) {
	if len(b) < 8 {
		return paneKey{}, fmt.Errorf("transforms: paneKey coder: %d bytes", len(b))
	}
	k, err := aggregate.DecodeAppKey(b[8:])
	return paneKey{Key: k, Window: int64(binary.BigEndian.Uint64(b))}, err
}

// paneKeyFn keys a partial by its AppKey and the fixed window of SizeMs
// its timestamp falls in.
type paneKeyFn struct{ SizeMs int64 }

func (f *paneKeyFn) ProcessElement(ts beam.EventTime, k aggregate.AppKey, a aggregate.Agg, emit func(paneKey, aggregate.Agg)) {
	emit(paneKey{Key: k, Window: aggregate.WindowStart(int64(ts), f.SizeMs)}, a)
}

// paneMergeFn is the combine of one pane: aggregate.CombineFn's methods over
// the pane's partials (freshly decoded by the GroupByKey, so adopting them
// is safe).
type paneMergeFn struct {
	Fn aggregate.CombineFn
}

func (f *paneMergeFn) ProcessElement(pn typex.PaneInfo, w typex.Window, pk paneKey, partials func(*aggregate.Agg) bool,
	emitDelta func(aggregate.AppKey, aggregate.Agg), emitLate func(LateKey, aggregate.Agg)) error {
	k := pk.Key
	acc := f.Fn.CreateAccumulator()
	var p aggregate.Agg
	for partials(&p) {
		var err error
		if acc, err = f.Fn.AddInput(acc, p); err != nil {
			return fmt.Errorf("transforms: pane of %v: %w", k, err)
		}
		p = aggregate.Agg{}
	}
	delta := f.Fn.ExtractOutput(acc)
	if pn.Timing == typex.PaneLate {
		start := w.MaxTimestamp().Milliseconds() + 1 - f.Fn.Gran.Millis()
		emitLate(LateKey{Kind: k.Kind, AppID: k.AppID, WindowStart: start, Pane: pn.Index}, delta)
		return nil
	}
	emitDelta(k, delta)
	return nil
}

// Totals sums deltas into running totals per key and fixed window of
// gran's length, counted per gran, and emits the window's total so far on every delta (the speed
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
// fail the job. State costs one read and one write per element on any
// runner (on prism a few hundred microseconds: both are calls to the
// runner), so the deltas of one key and window that arrive in one bundle
// are merged first: a catch-up that closes an hour's sixty minute windows
// at once costs the hour's total one state update, not sixty.
//
// The totals are sized to what they answer: an hour's total holds one
// cell per version, not the sixty minute cells its deltas arrive in, so
// its state, what it re-emits on every delta, and the rows built from it
// do not grow with the minutes.
//
// Deltas are the early and on-time panes of PaneDeltas, but prism may run
// an early pane after the watermark has passed it, so the lateness must
// be PaneDeltas' own: a window's state must outlive every delta of it.
//
//	deltas: PCollection<KV<AppKey, Agg>> → PCollection<KV<AppKey, Agg>>
func Totals(s beam.Scope, deltas beam.PCollection, gran aggregate.Granularity, lateness time.Duration, sketches bool) beam.PCollection {
	s = s.Scope(fmt.Sprintf("transforms.Totals(%v)", gran))
	merged := beam.ParDo(s, &bundleMergeFn{Gran: gran, Sketches: sketches}, deltas)
	w := beam.WindowInto(s, window.NewFixedWindows(time.Duration(gran.Millis())*time.Millisecond), merged, beam.AllowedLateness(lateness))
	return beam.ParDo(s, &totalsFn{Total: state.MakeValueState[aggregate.Agg]("total")}, w)
}

// bundleMergeFn merges the deltas of each key and window of Gran that
// arrive in one bundle, counted per Gran, and emits one per key and window
// when the bundle ends, timestamped with the newest delta's time. Deltas
// are shared with the other granularities' totals, so they are copied
// (coarsened), never adopted; without Sketches only their counts are.
type bundleMergeFn struct {
	Gran     aggregate.Granularity
	Sketches bool

	parts aggregate.WindowPartials
}

func (f *bundleMergeFn) StartBundle(func(beam.EventTime, aggregate.AppKey, aggregate.Agg)) {
	f.parts = aggregate.WindowPartials{SizeMs: f.Gran.Millis()}
}

func (f *bundleMergeFn) ProcessElement(ts beam.EventTime, k aggregate.AppKey, delta aggregate.Agg, _ func(beam.EventTime, aggregate.AppKey, aggregate.Agg)) error {
	c, err := delta.Coarsen(f.Gran, f.Sketches)
	if err != nil {
		return fmt.Errorf("transforms: totals of %v: %w", k, err)
	}
	p := f.parts.At(k, int64(ts), nil)
	if p.Agg, err = p.Agg.Merge(c); err != nil {
		return fmt.Errorf("transforms: totals of %v: %w", k, err)
	}
	return nil
}

func (f *bundleMergeFn) FinishBundle(emit func(beam.EventTime, aggregate.AppKey, aggregate.Agg)) {
	f.parts.Drain(func(wk aggregate.WindowKey, p *aggregate.WindowPartial) {
		emit(mtime.FromMilliseconds(p.Newest), wk.Key, p.Agg)
	})
}

type totalsFn struct {
	Total state.Value[aggregate.Agg]
}

func (f *totalsFn) ProcessElement(sp state.Provider, k aggregate.AppKey, delta aggregate.Agg, emit func(aggregate.AppKey, aggregate.Agg)) error {
	total, ok, err := f.Total.Read(sp)
	if err != nil {
		return err
	}
	if !ok {
		total = aggregate.NewAgg(delta.Gran, delta.Precision)
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
func LateRowsOf(s beam.Scope, late beam.PCollection, grans ...aggregate.Granularity) beam.PCollection {
	s = s.Scope("transforms.LateRows")
	return beam.ParDo(s, &lateRowsFn{Grans: grans}, late)
}

type lateRowsFn struct{ Grans []aggregate.Granularity }

func (f *lateRowsFn) ProcessElement(k LateKey, a aggregate.Agg, emit func(aggregate.LateRow)) error {
	rows, err := a.LateRows(aggregate.AppKey{Kind: k.Kind, AppID: k.AppID}, fmt.Sprintf("pane/%d/%d", k.WindowStart, k.Pane), f.Grans...)
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
func TooLateRows(s beam.Scope, events beam.PCollection, grans ...aggregate.Granularity) beam.PCollection {
	s = s.Scope("transforms.TooLateRows")
	return beam.ParDo(s, &tooLateRowsFn{Grans: grans}, events)
}

type tooLateRowsFn struct{ Grans []aggregate.Granularity }

func (f *tooLateRowsFn) ProcessElement(id string, e event.Event, emit func(aggregate.LateRow)) error {
	fn := aggregate.CombineFn{Gran: aggregate.Minute}
	a := fn.AddEvent(fn.CreateAccumulator(), &e)
	rows, err := a.LateRows(aggregate.AppKey{Kind: e.Kind, AppID: e.AppID}, id, f.Grans...)
	if err != nil {
		return err
	}
	for _, r := range rows {
		emit(r)
	}
	return nil
}
