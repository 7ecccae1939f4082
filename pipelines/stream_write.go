package pipelines

import (
	"context"
	"time"

	"github.com/apache/beam/sdks/v2/go/pkg/beam"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/core/graph/window"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/register"

	"github.com/lumenhq/lumen/aggregate"
	"github.com/lumenhq/lumen/serving"
)

func init() {
	register.DoFn3x1[context.Context, aggregate.CountRow, func(string, int64), error](&streamCountsFn{})
	register.DoFn3x1[context.Context, aggregate.UserRow, func(string, int64), error](&streamUsersFn{})
	register.DoFn3x1[context.Context, aggregate.LateRow, func(string, int64), error](&streamLateFn{})
	register.Emitter2[string, int64]()
	register.Function2x1(sumInt64)
	register.Function2x0(dropAck)
}

// The streaming writers upsert speed rows per bundle. Each bundle also
// emits one ack, which a small per-minute sum consumes and drops. The acks
// carry no information anyone reads: they exist because prism (2.77) waits
// for a bundle of a stage with no outputs by spinning on an already closed
// channel (stage.Execute's progress loop), so every writer bundle burned a
// core for as long as it ran, starving the SDK on a small machine. With an
// output crossing to another stage it waits on the output instead: a
// 30,000-event replay went from 61 s to 8.7 s.

// WriteSpeedCounts upserts speed count rows of a stream run.
//
//	rows: PCollection<aggregate.CountRow> → ()
func WriteSpeedCounts(s beam.Scope, store, run string, rows beam.PCollection) {
	s = s.Scope("pipelines.WriteSpeedCounts")
	drainAcks(s, beam.ParDo(s, &streamCountsFn{streamWriter: streamWriter{rowWriter: rowWriter{Store: store, Layer: serving.Speed}, Run: run}}, rows))
}

// WriteSpeedUsers upserts speed sketch rows.
//
//	rows: PCollection<aggregate.UserRow> → ()
func WriteSpeedUsers(s beam.Scope, store, run string, rows beam.PCollection) {
	s = s.Scope("pipelines.WriteSpeedUsers")
	drainAcks(s, beam.ParDo(s, &streamUsersFn{streamWriter: streamWriter{rowWriter: rowWriter{Store: store, Layer: serving.Speed}, Run: run}}, rows))
}

// WriteLate records late rows, and counts late events per kind in Beam
// metrics (lumen.stream "late_dropped/<kind>"; never per app, whose number
// the data sets).
//
//	rows: PCollection<aggregate.LateRow> → ()
func WriteLate(s beam.Scope, store, run string, rows beam.PCollection) {
	s = s.Scope("pipelines.WriteLate")
	drainAcks(s, beam.ParDo(s, &streamLateFn{streamWriter: streamWriter{rowWriter: rowWriter{Store: store, Layer: serving.Speed}, Run: run}}, rows))
}

// drainAcks sums the writers' acks per minute and drops them.
//
//	acks: PCollection<KV<string, int64>> → ()
func drainAcks(s beam.Scope, acks beam.PCollection) {
	w := beam.WindowInto(s, window.NewFixedWindows(time.Minute), acks)
	beam.ParDo0(s, dropAck, beam.CombinePerKey(s, sumInt64, w))
}

func sumInt64(a, b int64) int64 { return a + b }
func dropAck(string, int64)     {}

type streamWriter struct {
	rowWriter
	// Run tags the rows with the stream run (serving.WithRun).
	Run   string
	acked bool
}

// ack emits the bundle's one ack.
func (w *streamWriter) ack(emit func(string, int64)) {
	if !w.acked {
		w.acked = true
		emit("bundles", 1)
	}
}

func (w *streamWriter) StartBundle(ctx context.Context, _ func(string, int64)) error {
	nw, err := w.store.NewWriter(ctx, w.Layer, serving.WithRun(w.Run))
	if err != nil {
		return err
	}
	w.w, w.n, w.acked = nw, 0, false
	return nil
}

func (w *streamWriter) FinishBundle(ctx context.Context, _ func(string, int64)) error {
	if err := w.finish(ctx, func(int64) {}, "speed_rows"); err != nil {
		return err
	}
	if w.n > 0 {
		// When speed rows last reached the store: cmd/stream serves its
		// age at /metrics, to alert on a stream that stopped storing.
		beam.NewGauge(StoredGauge, "speed_rows").Set(ctx, time.Now().UnixMilli())
	}
	return nil
}

// StoredGauge is the namespace of the gauge a speed writer sets, in Unix
// milliseconds, each time its rows are stored.
const StoredGauge = "lumen.stream.stored_at"

type streamCountsFn struct{ streamWriter }

func (f *streamCountsFn) ProcessElement(ctx context.Context, r aggregate.CountRow, emit func(string, int64)) error {
	f.ack(emit)
	f.n++
	return f.w.WriteCounts(ctx, []aggregate.CountRow{r})
}

type streamUsersFn struct{ streamWriter }

func (f *streamUsersFn) ProcessElement(ctx context.Context, r aggregate.UserRow, emit func(string, int64)) error {
	f.ack(emit)
	f.n++
	return f.w.WriteUsers(ctx, []aggregate.UserRow{r})
}

type streamLateFn struct{ streamWriter }

func (f *streamLateFn) ProcessElement(ctx context.Context, r aggregate.LateRow, emit func(string, int64)) error {
	f.ack(emit)
	f.n++
	if r.Gran == aggregate.Minute && r.AppVersion == aggregate.AllVersions {
		// Each late event is in exactly one all-versions minute row.
		beam.NewCounter("lumen.stream", "late_dropped/"+r.Kind.String()).Inc(ctx, r.Count)
	}
	// Pane indexes start again in a new run: keep the runs' rows apart.
	r.Source = f.Run + "|" + r.Source
	return f.w.WriteLate(ctx, []aggregate.LateRow{r})
}
