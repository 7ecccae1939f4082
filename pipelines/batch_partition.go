package pipelines

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/apache/beam/sdks/v2/go/pkg/beam"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/register"

	"github.com/lumenhq/lumen/aggregate"
	"github.com/lumenhq/lumen/io/blob"
	"github.com/lumenhq/lumen/io/rollup"
	"github.com/lumenhq/lumen/io/winstate"
)

func init() {
	register.DoFn6x1[context.Context, string, func(*partPartial) bool, func(aggregate.AppKey, aggregate.Agg), func(KindStats), func(winstate.Part), error](&cutPartitionFn{})
	register.Iter1[partPartial]()
}

// cutPartitionFn takes the partials of one partition read from raw,
// grouped: it merges them into the partition's whole partial aggregates,
// writes them as the partition's rollup (and removes the rollups it
// replaces), then cuts them to the run's window (cutWhole). Rollups are
// written before the cut: they keep every event, so any later run's
// window can be cut from them. A partition taken from its rollup is whole
// already, and is cut where it is read, without this shuffle.
//
// A partition whose listing gives no object versions gets no rollup
// either: no later run could prove it still covers the same files.
//
// A partition with a read failure (a file gone or forbidden: an
// unreadable_file dead letter) gets no rollup: what was read is not what
// its listing holds, and a rollup would keep that forever, since the
// listing, and so the rollup's name, does not change when the cause is
// fixed. The next run reads the partition from raw again. Damaged content
// is no such failure: it reads the same every time.
//
// A rollup that cannot be written is a warning and a counter, not a
// failure: the run's rows do not depend on it, and the next run reads the
// partition from raw again.
type cutPartitionFn struct {
	fileSetup
	RollupRoot  string
	NoRollups   bool
	First, Last time.Time
}

func (f *cutPartitionFn) ProcessElement(ctx context.Context, key string, parts func(*partPartial) bool,
	emit func(aggregate.AppKey, aggregate.Agg), emitStats func(KindStats), emitPart func(winstate.Part)) error {
	var whole rollup.Rollup
	st := KindStats{PartitionsFromRaw: 1}
	var failures int64
	unversioned := false
	started := false
	var only []int64
	stale := map[string]bool{}
	var pp partPartial
	for parts(&pp) {
		if !started {
			whole, started = pp.Rollup, true
		} else if err := whole.Merge(pp.Rollup); err != nil {
			return fmt.Errorf("pipelines: partition %s: %w", key, err)
		}
		st.RollupsRejected += pp.Rejected
		st.RawFiles += pp.RawFiles
		st.RawBytes += pp.RawBytes
		failures += pp.ReadFailures
		unversioned = unversioned || pp.Unversioned
		only = pp.Only
		for _, s := range pp.Stale {
			stale[s] = true
		}
		pp = partPartial{}
	}
	if !started {
		return nil
	}
	switch {
	case f.NoRollups:
	case unversioned:
		st.Unversioned++ // planFn said why, once for the run
	case failures > 0:
		slog.Warn("batch: no rollup for a partition with files that could not be read; the next run reads it from raw again",
			"partition", whole.Partition, "unreadable_files", failures)
		st.RollupsSkipped++
		beam.NewCounter("lumen.batch", "rollups_skipped").Inc(ctx, 1)
	default:
		f.writeRollup(ctx, whole, stale, &st)
	}
	cutWhole(whole, st, aggregate.DayWindow{First: f.First, Last: f.Last}, only, emit, emitStats, emitPart)
	return nil
}

// cutWhole cuts one whole partition's partial aggregates to the run's
// window: it emits the part inside it per (kind, app), the partition's
// counters, st plus the input and placement the partition holds (too_old
// and after_window from the cut), and what the window state keeps of it.
// With only, it emits the part in those days of the window alone, and of
// its counters only how it was read (st): the run recomputes those days,
// and has the partition's counters from its state.
func cutWhole(whole rollup.Rollup, st KindStats, window aggregate.DayWindow, only []int64,
	emit func(aggregate.AppKey, aggregate.Agg), emitStats func(KindStats), emitPart func(winstate.Part)) {
	if only != nil {
		for k, a := range whole.Aggs {
			in, _, _ := a.Cut(window)
			if in = in.KeepDays(func(d int64) bool { return slices.Contains(only, d) }); in.Total() > 0 {
				emit(k, in)
			}
		}
		st.Kind = whole.Partition.Kind
		emitStats(st) // how it was read, and no more
		return
	}
	part := winstate.Part{Partition: whole.Partition, Hash: whole.Manifest.Hash(), Counters: whole.Counters, Times: whole.Times, Days: map[int64]int64{}}
	for _, a := range whole.Aggs {
		for d, n := range a.DayEvents() {
			part.Days[d] += n
		}
	}
	emitPart(part)
	c := whole.Counters
	st.Kind, st.Files, st.Bytes, st.DeadLetters = whole.Partition.Kind, c.Files, c.Bytes, c.DeadLetters
	st.Placement = aggregate.Stats{Events: c.Events, ClockSkew: c.ClockSkew}
	for k, a := range whole.Aggs {
		in, before, after := a.Cut(window)
		st.Placement.TooOld += before
		st.Placement.AfterWindow += after
		if in.Total() > 0 {
			emit(k, in)
		}
	}
	st.Placement.Counted = st.Placement.Events - st.Placement.TooOld - st.Placement.AfterWindow
	emitStats(st)
}

func (f *cutPartitionFn) writeRollup(ctx context.Context, r rollup.Rollup, stale map[string]bool, st *KindStats) {
	path := rollup.Path(f.RollupRoot, r.Partition, r.Manifest)
	if err := rollup.Write(ctx, path, r); err != nil {
		slog.Warn("batch: a rollup could not be written; the next run reads the partition from raw again",
			"partition", r.Partition, "error", err)
		st.RollupWriteErrors++
		return
	}
	st.RollupsWritten++
	for s := range stale {
		if s == path {
			continue
		}
		if err := blob.Remove(ctx, s); err != nil {
			slog.Warn("batch: a replaced rollup could not be removed", "rollup", s, "error", err)
		}
	}
	beam.NewCounter("lumen.batch", "rollups_written").Inc(ctx, 1)
}
