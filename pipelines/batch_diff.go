package pipelines

import (
	"context"
	"fmt"
	"time"

	"github.com/apache/beam/sdks/v2/go/pkg/beam"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/register"

	"github.com/lumenhq/lumen/aggregate"
	"github.com/lumenhq/lumen/io/winstate"
	"github.com/lumenhq/lumen/serving"
)

func init() {
	register.DoFn10x1[aggregate.AppKey, func(*aggregate.Agg) bool, func(*aggregate.Agg) bool, func(*aggregate.Agg) bool,
		func(aggregate.CountRow), func(aggregate.UserRow), func(aggregate.CountRow), func(aggregate.UserRow), func(KindStats), func(winstate.Shard), error](&diffFn{})
	register.DoFn3x1[context.Context, aggregate.CountRow, func(int64), error](&deleteCountsFn{})
	register.DoFn3x1[context.Context, aggregate.UserRow, func(int64), error](&deleteUsersFn{})
	register.Iter1[aggregate.Agg]()
}

// rowChanges are the rows a batch run writes and deletes.
type rowChanges struct {
	Counts, Users               beam.PCollection // to write: aggregate.CountRow, aggregate.UserRow
	DeletedCounts, DeletedUsers beam.PCollection // keys to delete
	Stats                       beam.PCollection // KindStats: rows changed, unchanged, deleted
	Shards                      beam.PCollection // winstate.Shard: the new state's aggregates, written
}

// diffRows adds the merge of the partitions read to the old state's
// aggregates (cut to the window, without the recomputed days; none without
// a state) per (kind, app), compares the result with the old state's, and
// gives the rows that changed, the rows that went, and the new state's
// shards, which it writes as it goes (under root, for asOf and stamp; none
// when root is "").
//
//	merged, kept, dropped: PCollection<KV<AppKey, Agg>>
func diffRows(s beam.Scope, merged, kept, dropped beam.PCollection, files fileSetup, root string, asOf time.Time, stamp int64) rowChanges {
	s = s.Scope("pipelines.DiffRows")
	c, u, dc, du, st, sh := beam.ParDo6(s, &diffFn{fileSetup: files, Root: root, AsOf: asOf, Stamp: stamp}, beam.CoGroupByKey(s, merged, kept, dropped))
	return rowChanges{Counts: c, Users: u, DeletedCounts: dc, DeletedUsers: du, Stats: st, Shards: sh}
}

// diffFn renders a key's rows: every row of the new aggregate without an
// old one (a full run, or a new key), the changed ones with it. The old
// aggregate is the state's kept and recomputed days; the new one its kept
// days plus the partitions read; only the days read or recomputed are
// compared (aggregate.DiffAdded). It keeps the new aggregates of a bundle
// and writes them as one shard of the new state when the bundle ends.
type diffFn struct {
	fileSetup
	Root  string
	AsOf  time.Time
	Stamp int64

	keep map[aggregate.AppKey]aggregate.Agg
}

func (f *diffFn) StartBundle(context.Context, func(aggregate.CountRow), func(aggregate.UserRow), func(aggregate.CountRow), func(aggregate.UserRow),
	func(KindStats), func(winstate.Shard)) {
	f.keep = map[aggregate.AppKey]aggregate.Agg{}
}

func (f *diffFn) ProcessElement(k aggregate.AppKey, news, kepts, droppeds func(*aggregate.Agg) bool,
	emitCount func(aggregate.CountRow), emitUser func(aggregate.UserRow), delCount func(aggregate.CountRow), delUser func(aggregate.UserRow),
	emitStats func(KindStats), emitShard func(winstate.Shard)) error {
	mergeAll := func(next func(*aggregate.Agg) bool) (aggregate.Agg, error) {
		var out, a aggregate.Agg
		var err error
		for next(&a) {
			if out, err = out.Merge(a); err != nil {
				return out, err
			}
			a = aggregate.Agg{}
		}
		return out, nil
	}
	read, err := mergeAll(news)
	if err != nil {
		return err
	}
	kept, err := mergeAll(kepts)
	if err != nil {
		return err
	}
	dropped, err := mergeAll(droppeds)
	if err != nil {
		return err
	}
	// Only the days read or dropped touch can change (aggregate.DiffAdded).
	d, new, err := aggregate.DiffAdded(k, kept, dropped, read)
	if err != nil {
		return fmt.Errorf("pipelines: rows of %v: %w", k, err)
	}
	for _, r := range d.Counts {
		emitCount(r)
	}
	for _, r := range d.Users {
		emitUser(r)
	}
	for _, r := range d.DeletedCounts {
		delCount(r)
	}
	for _, r := range d.DeletedUsers {
		delUser(r)
	}
	emitStats(KindStats{Kind: k.Kind, RowsChanged: int64(len(d.Counts) + len(d.Users)), RowsUnchanged: d.Unchanged,
		RowsDeleted: int64(len(d.DeletedCounts) + len(d.DeletedUsers))})
	if !new.IsZero() && new.Total() > 0 {
		f.keep[k] = new
	}
	return nil
}

func (f *diffFn) FinishBundle(ctx context.Context, _ func(aggregate.CountRow), _ func(aggregate.UserRow), _ func(aggregate.CountRow), _ func(aggregate.UserRow),
	_ func(KindStats), emitShard func(winstate.Shard)) error {
	if f.Root == "" || len(f.keep) == 0 {
		return nil
	}
	sh, err := winstate.WriteShard(ctx, f.Root, f.AsOf, f.Stamp, f.keep)
	if err != nil {
		return fmt.Errorf("pipelines: window state: %w", err)
	}
	emitShard(sh)
	return nil
}

// DeleteRows deletes a batch run's vanished rows by key, with the run's
// stamp (monotone: a newer run's rows stay), and returns the number each
// bundle deleted.
//
//	counts: PCollection<aggregate.CountRow>, users: PCollection<aggregate.UserRow> → PCollection<int64>
func DeleteRows(s beam.Scope, store string, stamp int64, counts, users beam.PCollection) beam.PCollection {
	s = s.Scope("pipelines.DeleteRows")
	w := rowWriter{Store: store, Layer: serving.Batch, Stamp: stamp}
	return beam.Flatten(s,
		beam.ParDo(s, &deleteCountsFn{rowWriter: w}, counts),
		beam.ParDo(s, &deleteUsersFn{rowWriter: w}, users))
}

type deleteCountsFn struct {
	rowWriter
	buf []aggregate.CountRow
}

func (f *deleteCountsFn) ProcessElement(ctx context.Context, row aggregate.CountRow, _ func(int64)) error {
	return bufferRow(ctx, &f.rowWriter, &f.buf, row, f.w.DeleteCounts, "count deletes")
}

func (f *deleteCountsFn) FinishBundle(ctx context.Context, emit func(int64)) error {
	if err := flushRows(ctx, &f.rowWriter, &f.buf, f.w.DeleteCounts, "count deletes"); err != nil {
		return err
	}
	return f.finish(ctx, emit, "batch_count_rows_deleted")
}

type deleteUsersFn struct {
	rowWriter
	buf []aggregate.UserRow
}

func (f *deleteUsersFn) ProcessElement(ctx context.Context, row aggregate.UserRow, _ func(int64)) error {
	return bufferRow(ctx, &f.rowWriter, &f.buf, row, f.w.DeleteUsers, "user deletes")
}

func (f *deleteUsersFn) FinishBundle(ctx context.Context, emit func(int64)) error {
	if err := flushRows(ctx, &f.rowWriter, &f.buf, f.w.DeleteUsers, "user deletes"); err != nil {
		return err
	}
	return f.finish(ctx, emit, "batch_user_rows_deleted")
}
