package pipelines

import (
	"context"
	"fmt"

	"github.com/apache/beam/sdks/v2/go/pkg/beam"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/register"

	"github.com/lumenhq/lumen/aggregate"
	"github.com/lumenhq/lumen/serving"
)

func init() {
	// The int64 emitter declares the output FinishBundle writes to.
	register.DoFn3x1[context.Context, aggregate.CountRow, func(int64), error](&writeCountsFn{})
	register.DoFn3x1[context.Context, aggregate.UserRow, func(int64), error](&writeUsersFn{})
}

// writeBatch is how many rows a writer hands the store at a time.
const writeBatch = 2000

// WriteCounts upserts a batch run's count rows, stamped with the run's
// serving.BatchStamp, and returns the number of rows each bundle wrote.
//
//	rows: PCollection<aggregate.CountRow> → PCollection<int64>
func WriteCounts(s beam.Scope, store string, stamp int64, rows beam.PCollection) beam.PCollection {
	s = s.Scope("pipelines.WriteCounts")
	return beam.ParDo(s, &writeCountsFn{rowWriter: rowWriter{Store: store, Layer: serving.Batch, Stamp: stamp}}, rows)
}

// WriteUsers upserts a batch run's daily sketch rows, stamped like
// WriteCounts', and returns the number of rows each bundle wrote.
//
//	rows: PCollection<aggregate.UserRow> → PCollection<int64>
func WriteUsers(s beam.Scope, store string, stamp int64, rows beam.PCollection) beam.PCollection {
	s = s.Scope("pipelines.WriteUsers")
	return beam.ParDo(s, &writeUsersFn{rowWriter: rowWriter{Store: store, Layer: serving.Batch, Stamp: stamp}}, rows)
}

// rowWriter holds what the two writer DoFns share: a store opened once per
// worker in Setup and a writer per bundle.
type rowWriter struct {
	Store string
	Layer serving.Layer
	Stamp int64

	store serving.Store
	w     serving.RowWriter
	n     int64
}

func (r *rowWriter) Setup(ctx context.Context) error {
	st, err := serving.Open(ctx, r.Store)
	if err != nil {
		return fmt.Errorf("pipelines: open store %s: %w", serving.Redact(r.Store), err)
	}
	r.store = st
	return nil
}

func (r *rowWriter) StartBundle(ctx context.Context, _ func(int64)) error {
	w, err := r.store.NewWriter(ctx, r.Layer, serving.WithStamp(r.Stamp))
	if err != nil {
		return err
	}
	r.w, r.n = w, 0
	return nil
}

func (r *rowWriter) finish(ctx context.Context, emit func(int64), metric string) error {
	if err := r.w.Close(ctx); err != nil {
		return fmt.Errorf("pipelines: write %s rows: %w", r.Layer, err)
	}
	beam.NewCounter("lumen.store", metric).Inc(ctx, r.n)
	if sr, ok := r.w.(serving.StatsReporter); ok {
		for name, v := range sr.Stats() {
			beam.NewCounter("lumen.store", name).Inc(ctx, v)
		}
	}
	emit(r.n)
	return nil
}

func (r *rowWriter) Teardown() error {
	if r.store != nil {
		return r.store.Close()
	}
	return nil
}

// bufferRow adds row to buf, and writes buf out with write once it holds
// writeBatch rows: what both batch writers do with each element.
func bufferRow[R any](ctx context.Context, r *rowWriter, buf *[]R, row R, write func(context.Context, []R) error, what string) error {
	*buf = append(*buf, row)
	if len(*buf) < writeBatch {
		return nil
	}
	return flushRows(ctx, r, buf, write, what)
}

// flushRows writes buf out with write, counts it, and empties it.
func flushRows[R any](ctx context.Context, r *rowWriter, buf *[]R, write func(context.Context, []R) error, what string) error {
	if err := write(ctx, *buf); err != nil {
		return fmt.Errorf("pipelines: write %s %s: %w", r.Layer, what, err)
	}
	r.n += int64(len(*buf))
	*buf = (*buf)[:0]
	return nil
}

type writeCountsFn struct {
	rowWriter
	buf []aggregate.CountRow
}

func (f *writeCountsFn) ProcessElement(ctx context.Context, row aggregate.CountRow, _ func(int64)) error {
	return bufferRow(ctx, &f.rowWriter, &f.buf, row, f.w.WriteCounts, "counts")
}

func (f *writeCountsFn) FinishBundle(ctx context.Context, emit func(int64)) error {
	if err := flushRows(ctx, &f.rowWriter, &f.buf, f.w.WriteCounts, "counts"); err != nil {
		return err
	}
	return f.finish(ctx, emit, f.Layer.String()+"_count_rows")
}

type writeUsersFn struct {
	rowWriter
	buf []aggregate.UserRow
}

func (f *writeUsersFn) ProcessElement(ctx context.Context, row aggregate.UserRow, _ func(int64)) error {
	return bufferRow(ctx, &f.rowWriter, &f.buf, row, f.w.WriteUsers, "users")
}

func (f *writeUsersFn) FinishBundle(ctx context.Context, emit func(int64)) error {
	if err := flushRows(ctx, &f.rowWriter, &f.buf, f.w.WriteUsers, "users"); err != nil {
		return err
	}
	return f.finish(ctx, emit, f.Layer.String()+"_user_rows")
}
