package pipelines

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"time"

	"github.com/apache/beam/sdks/v2/go/pkg/beam"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/register"

	"github.com/lumenhq/lumen/aggregate"
	"github.com/lumenhq/lumen/event"
	"github.com/lumenhq/lumen/serving"
)

func init() {
	beam.RegisterCoder(reflect.TypeOf(KindStats{}), encodeKindStats, decodeKindStats)
	register.Function1x2(keyKindStats)
	register.Function2x1(dropKey)
	register.Combiner1[KindStats](&sumKindStatsFn{})
	register.DoFn7x1[context.Context, []byte, func(*[]byte) bool, func(*KindStats) bool, func(*int64) bool, func(*int64) bool, func(*int64) bool, error](&recordRunFn{})
	register.Iter1[[]byte]()
	register.Iter1[KindStats]()
	register.Iter1[int64]()
}

// KindStats counts what a batch run did with one kind's input.
type KindStats struct {
	Kind event.Kind
	// What the window's input holds, however the run read it: the same in
	// an incremental run and a full one.
	Files       int64
	Bytes       int64
	Placement   aggregate.Stats
	DeadLetters map[string]int64 // by reason
	// How the run read it.
	PartitionsFromRollups, PartitionsFromRaw int64
	RollupsRejected                          int64 // found unusable, and replaced by raw
	RollupsWritten, RollupWriteErrors        int64
	RollupsSkipped                           int64 // partitions with a read failure, given no rollup
	Unversioned                              int64 // partitions whose listing gives no object versions: never rolled up
	RawFiles, RawBytes                       int64 // raw files (or splits) read, and their bytes
	RollupBytes                              int64 // bytes of the rollups read
}

func (a *KindStats) add(b KindStats) {
	a.Files += b.Files
	a.Bytes += b.Bytes
	a.Placement.Add(b.Placement)
	a.PartitionsFromRollups += b.PartitionsFromRollups
	a.PartitionsFromRaw += b.PartitionsFromRaw
	a.RollupsRejected += b.RollupsRejected
	a.RollupsWritten += b.RollupsWritten
	a.RollupWriteErrors += b.RollupWriteErrors
	a.RollupsSkipped += b.RollupsSkipped
	a.Unversioned += b.Unversioned
	a.RawFiles += b.RawFiles
	a.RawBytes += b.RawBytes
	a.RollupBytes += b.RollupBytes
	for r, n := range b.DeadLetters {
		if a.DeadLetters == nil {
			a.DeadLetters = map[string]int64{}
		}
		a.DeadLetters[r] += n
	}
}

// Counters flattens the stats into batch_runs counters.
func (a KindStats) Counters() map[string]int64 {
	m := map[string]int64{
		"files": a.Files, "bytes": a.Bytes,
		"events": a.Placement.Events, "counted": a.Placement.Counted,
		"clock_skew": a.Placement.ClockSkew, "too_old": a.Placement.TooOld, "after_window": a.Placement.AfterWindow,
		"read.partitions_from_rollups": a.PartitionsFromRollups, "read.partitions_from_raw": a.PartitionsFromRaw,
		"read.rollups_rejected": a.RollupsRejected, "read.rollups_written": a.RollupsWritten,
		"read.rollup_write_errors": a.RollupWriteErrors, "read.rollups_skipped": a.RollupsSkipped,
		"read.partitions_unversioned": a.Unversioned, "read.raw_files": a.RawFiles, "read.raw_bytes": a.RawBytes,
		"read.rollup_bytes": a.RollupBytes,
	}
	var dead int64
	for r, n := range a.DeadLetters {
		m["deadletter."+r] = n
		dead += n
	}
	m["dead_letters"] = dead
	return m
}

// KindStats is tiny and rare (a few per work unit): JSON is a fine coder.
func encodeKindStats(s KindStats) ([]byte, error) { return json.Marshal(s) }
func decodeKindStats(b []byte) (KindStats, error) {
	var s KindStats
	err := json.Unmarshal(b, &s)
	return s, err
}

// SumStats sums per-unit stats into one KindStats per kind.
//
//	stats: PCollection<KindStats> → PCollection<KindStats>
func SumStats(s beam.Scope, stats beam.PCollection) beam.PCollection {
	s = s.Scope("pipelines.SumStats")
	summed := beam.CombinePerKey(s, &sumKindStatsFn{}, beam.ParDo(s, keyKindStats, stats))
	return beam.ParDo(s, dropKey, summed)
}

func keyKindStats(st KindStats) (int, KindStats) { return int(st.Kind), st }
func dropKey(_ int, st KindStats) KindStats      { return st }

type sumKindStatsFn struct{}

func (*sumKindStatsFn) MergeAccumulators(a, b KindStats) KindStats {
	if a.Kind == 0 {
		a.Kind = b.Kind
	}
	a.add(b)
	return a
}

// RunInfo identifies a batch run for batch_runs.
type RunInfo struct {
	Store       string
	AsOf        time.Time
	WindowStart time.Time
	Started     time.Time
	// Stamp is the run's serving.BatchStamp.
	Stamp int64
	// Partial: AsOf had not ended when the run started.
	Partial bool
	// AllowIncomplete records a kind whose input for AsOf is not sealed
	// as succeeded anyway.
	AllowIncomplete bool
}

// status is what a finished run of kind records, and why; incomplete says,
// by kind name, why a kind's input for AsOf is not complete.
func (i RunInfo) status(k event.Kind, incomplete map[string]string) (serving.RunStatus, string) {
	note := incomplete[k.String()]
	switch {
	case i.Partial:
		return serving.RunPartial, "as_of had not ended when the run started (--allow_partial_day)"
	case note != "" && !i.AllowIncomplete:
		return serving.RunIncomplete, note
	case note != "":
		return serving.RunSucceeded, "incomplete input accepted (--allow_incomplete): " + note
	}
	return serving.RunSucceeded, ""
}

// RecordRun finishes a batch run once every row of the run has been
// written: it takes the writers' outputs as side inputs, which Beam makes
// available only when those stages have finished. It then deletes the
// window's rows the run did not write (those with an older stamp), and
// records the run in batch_runs (DESIGN §3: the run's result for the
// window is the rows it wrote, "then it records the run").
//
// seals is sealsFn's output: what of AsOf's input is not sealed, by kind.
func RecordRun(s beam.Scope, info RunInfo, seals, stats, countsWritten, usersWritten, deadWritten beam.PCollection) {
	s = s.Scope("pipelines.RecordRun")
	beam.ParDo0(s, &recordRunFn{Info: info}, beam.Impulse(s), beam.SideInput{Input: seals},
		beam.SideInput{Input: stats}, beam.SideInput{Input: countsWritten},
		beam.SideInput{Input: usersWritten}, beam.SideInput{Input: deadWritten})
}

type recordRunFn struct {
	Info RunInfo
}

func (f *recordRunFn) ProcessElement(ctx context.Context, _ []byte, seals func(*[]byte) bool, stats func(*KindStats) bool,
	counts, users, dead func(*int64) bool) error {
	incomplete := map[string]string{}
	var b []byte
	for seals(&b) {
		if err := json.Unmarshal(b, &incomplete); err != nil {
			return fmt.Errorf("pipelines: seals: %w", err)
		}
	}
	byKind := map[event.Kind]KindStats{}
	var st KindStats
	for stats(&st) {
		agg := byKind[st.Kind]
		agg.add(st)
		byKind[st.Kind] = agg
	}
	sum := func(it func(*int64) bool) int64 {
		var n, t int64
		for it(&n) {
			t += n
		}
		return t
	}
	countRows, userRows, deadRows := sum(counts), sum(users), sum(dead)
	store, err := serving.Open(ctx, f.Info.Store)
	if err != nil {
		return fmt.Errorf("pipelines: open store %s: %w", serving.Redact(f.Info.Store), err)
	}
	defer store.Close()
	deleted, err := store.PruneBatch(ctx, f.Info.WindowStart, f.Info.AsOf, f.Info.Stamp)
	if err != nil {
		return fmt.Errorf("pipelines: delete the rows the run did not write: %w", err)
	}
	finished := time.Now().UTC()
	for _, k := range event.Kinds {
		c := byKind[k].Counters()
		// Rows are written for all kinds together; each kind's row carries
		// the run's totals.
		c["run.count_rows"] = countRows
		c["run.user_rows"] = userRows
		c["run.dead_letters_written"] = deadRows
		c["run.rows_deleted"] = deleted // -1: the store cannot tell
		status, note := f.Info.status(k, incomplete)
		if err := store.RecordRun(ctx, serving.BatchRun{
			Kind: k, AsOf: f.Info.AsOf, WindowStart: f.Info.WindowStart,
			Started: f.Info.Started, Finished: finished, Status: status, Note: note, Counters: c,
		}); err != nil {
			return fmt.Errorf("pipelines: record run: %w", err)
		}
	}
	return nil
}
