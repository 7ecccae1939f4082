package pipelines

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"reflect"
	"strings"
	"time"

	"github.com/apache/beam/sdks/v2/go/pkg/beam"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/register"

	"github.com/lumenhq/lumen/aggregate"
	"github.com/lumenhq/lumen/event"
	"github.com/lumenhq/lumen/io/blob"
	"github.com/lumenhq/lumen/io/raw"
	"github.com/lumenhq/lumen/io/s3fs"
	"github.com/lumenhq/lumen/io/winstate"
	"github.com/lumenhq/lumen/serving"
)

func init() {
	beam.RegisterCoder(reflect.TypeOf(KindStats{}), encodeKindStats, decodeKindStats)
	register.Function1x2(keyKindStats)
	register.Function2x1(dropKey)
	register.Combiner1[KindStats](&sumKindStatsFn{})
	register.DoFn8x1[context.Context, []byte, func(*[]byte) bool, func(*KindStats) bool, func(*rowsDone) bool,
		func(*statePlan) bool, func(*winstate.Part) bool, func(*winstate.Shard) bool, error](&recordRunFn{})
	register.Iter1[rowsDone]()
	beam.RegisterCoder(reflect.TypeOf(rowsDone{}), encodeRowsDone, decodeRowsDone)
	register.Function1x1(countsDone)
	register.Function1x1(usersDone)
	register.Function1x1(deletesDone)
	register.Function1x1(deadDone)
	register.Iter1[statePlan]()
	register.Iter1[winstate.Part]()
	register.Iter1[winstate.Shard]()
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
	PartitionsFromState                      int64 // partitions the window state held, unchanged
	// What the run did to the rows.
	RowsChanged, RowsUnchanged, RowsDeleted int64
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
	a.PartitionsFromState += b.PartitionsFromState
	a.RowsChanged += b.RowsChanged
	a.RowsUnchanged += b.RowsUnchanged
	a.RowsDeleted += b.RowsDeleted
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
		"read.rollup_bytes": a.RollupBytes, "read.partitions_from_state": a.PartitionsFromState,
		"rows.changed": a.RowsChanged, "rows.unchanged": a.RowsUnchanged, "rows.deleted": a.RowsDeleted,
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

// RunInfo identifies a batch run for batch_runs and its window state.
type RunInfo struct {
	Store       string
	AsOf        time.Time
	WindowStart time.Time
	WindowDays  int
	Started     time.Time
	// Stamp is the run's serving.BatchStamp.
	Stamp int64
	// Partial: AsOf had not ended when the run started.
	Partial bool
	// AllowIncomplete records a kind whose input for AsOf is not sealed
	// as succeeded anyway.
	AllowIncomplete bool
	// What the window state records of the run.
	Precision uint8
	Grain     raw.Grain
	S3        s3fs.Options
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

// RunInputs are what a run's record waits for and reads: the seals
// (sealsFn), the summed stats, the rows written and deleted, the dead
// letters written, the state plan, the partitions read (for the state)
// and the state's shards, written.
type RunInputs struct {
	Seals, Stats                 beam.PCollection
	Counts, Users, Deleted, Dead beam.PCollection // int64 per bundle
	Plan                         beam.PCollection // statePlan, one
	Parts                        beam.PCollection // winstate.Part
	Shards                       beam.PCollection // winstate.Shard
}

// RecordRun finishes a batch run once every row of the run has been
// written: it takes the writers' outputs as side inputs, which Beam makes
// available only when those stages have finished. Then, without a window
// state, it deletes the window's rows the run did not write (those with an
// older stamp); an incremental run has deleted the rows that went already,
// one by one. It writes the run's window state, and records the run in
// batch_runs (DESIGN §3: the run's result for the window is the rows it
// wrote, "then it records the run").
func RecordRun(s beam.Scope, info RunInfo, in RunInputs) {
	s = s.Scope("pipelines.RecordRun")
	done := beam.Flatten(s, beam.ParDo(s, countsDone, in.Counts), beam.ParDo(s, usersDone, in.Users),
		beam.ParDo(s, deletesDone, in.Deleted), beam.ParDo(s, deadDone, in.Dead))
	beam.ParDo0(s, &recordRunFn{fileSetup: fileSetup{S3: info.S3}, Info: info}, beam.Impulse(s),
		beam.SideInput{Input: in.Seals}, beam.SideInput{Input: in.Stats}, beam.SideInput{Input: done},
		beam.SideInput{Input: in.Plan}, beam.SideInput{Input: in.Parts}, beam.SideInput{Input: in.Shards})
}

// rowsDone is what the writers of a bundle did, for RecordRun.
type rowsDone struct{ Counts, Users, Deleted, Dead int64 }

func (a *rowsDone) add(b rowsDone) {
	a.Counts += b.Counts
	a.Users += b.Users
	a.Deleted += b.Deleted
	a.Dead += b.Dead
}

func countsDone(n int64) rowsDone  { return rowsDone{Counts: n} }
func usersDone(n int64) rowsDone   { return rowsDone{Users: n} }
func deletesDone(n int64) rowsDone { return rowsDone{Deleted: n} }
func deadDone(n int64) rowsDone    { return rowsDone{Dead: n} }

type recordRunFn struct {
	fileSetup
	Info RunInfo
}

func (f *recordRunFn) ProcessElement(ctx context.Context, _ []byte, seals func(*[]byte) bool, stats func(*KindStats) bool,
	dones func(*rowsDone) bool, plans func(*statePlan) bool, parts func(*winstate.Part) bool, shards func(*winstate.Shard) bool) error {
	incomplete := map[string]string{}
	var b []byte
	for seals(&b) {
		if err := json.Unmarshal(b, &incomplete); err != nil {
			return fmt.Errorf("pipelines: seals: %w", err)
		}
	}
	byKind := map[event.Kind]KindStats{}
	var st, all KindStats
	for stats(&st) {
		agg := byKind[st.Kind]
		agg.add(st)
		byKind[st.Kind] = agg
		all.add(st)
	}
	var done, d rowsDone
	for dones(&d) {
		done.add(d)
	}
	countRows, userRows, deletedRows, deadRows := done.Counts, done.Users, done.Deleted, done.Dead
	var plan statePlan
	for plans(&plan) {
	}
	store, err := serving.Open(ctx, f.Info.Store)
	if err != nil {
		return fmt.Errorf("pipelines: open store %s: %w", serving.Redact(f.Info.Store), err)
	}
	defer store.Close()
	pruned := int64(0)
	if plan.Mode != stateUsed {
		if pruned, err = store.PruneBatch(ctx, f.Info.WindowStart, f.Info.AsOf, f.Info.Stamp); err != nil {
			return fmt.Errorf("pipelines: delete the rows the run did not write: %w", err)
		}
	}
	stateNote, written := f.writeState(ctx, plan, all, parts, shards)
	finished := time.Now().UTC()
	for _, k := range event.Kinds {
		c := byKind[k].Counters()
		// Rows are written for all kinds together; each kind's row carries
		// the run's totals.
		c["run.count_rows"] = countRows
		c["run.user_rows"] = userRows
		c["run.dead_letters_written"] = deadRows
		c["run.rows_deleted"] = pruned + deletedRows // pruned: -1 if the store cannot tell
		if pruned < 0 {
			c["run.rows_deleted"] = -1
		}
		c["state."+plan.Mode] = 1
		if plan.Rejected {
			c["state.rejected"] = 1
		}
		if written {
			c["state.written"] = 1
		}
		if plan.VerifiedFrom.After(f.Info.WindowStart) {
			c["state.verified_new"] = 1 // --verify=new: the older days were not listed
		}
		if plan.Mode == stateUsed {
			c["state.bytes_read"] = plan.Old.Bytes()
		}
		status, note := f.Info.status(k, incomplete)
		if stateNote != "" {
			note = strings.TrimPrefix(note+"; "+stateNote, "; ")
		}
		if err := store.RecordRun(ctx, serving.BatchRun{
			Kind: k, AsOf: f.Info.AsOf, WindowStart: f.Info.WindowStart,
			Started: f.Info.Started, Finished: finished, Status: status, Note: note, Counters: c,
		}); err != nil {
			return fmt.Errorf("pipelines: record run: %w", err)
		}
	}
	return nil
}

// writeState writes the run's window state, once its rows are durable, and
// deletes the states before it, which no run will use again. It returns
// what batch_runs' note says of the state, and whether one was written. A
// state that cannot be written, or must not be (a partition the run
// could not read whole, or one without object versions, whose partial
// aggregates a later run could not tell from a whole read), is no failure:
// the next run merges the rollups instead.
func (f *recordRunFn) writeState(ctx context.Context, plan statePlan, all KindStats, parts func(*winstate.Part) bool, shards func(*winstate.Shard) bool) (string, bool) {
	note := ""
	if plan.Rejected {
		note = "state rejected (" + plan.Reason + ")"
	}
	if plan.Root == "" {
		return note, false
	}
	if all.RollupsSkipped > 0 || all.Unversioned > 0 {
		return strings.TrimPrefix(note+"; no state written: partitions not read whole or without versions", "; "), false
	}
	s := winstate.State{AsOf: f.Info.AsOf, WindowDays: f.Info.WindowDays, Precision: f.Info.Precision, Grain: f.Info.Grain, Stamp: f.Info.Stamp,
		Started: f.Info.Started}
	seen := map[raw.Partition]bool{}
	var p winstate.Part
	for parts(&p) {
		seen[p.Partition] = true
		s.Parts = append(s.Parts, p)
		p = winstate.Part{}
	}
	for _, kept := range plan.Kept {
		if !seen[kept.Partition] {
			s.Parts = append(s.Parts, kept)
		}
	}
	var sh winstate.Shard
	for shards(&sh) {
		s.Shards = append(s.Shards, sh)
	}
	if err := winstate.Write(ctx, plan.Root, s); err != nil {
		slog.Warn("batch: the window state could not be written; the next run merges the rollups instead", "error", err)
		return strings.TrimPrefix(note+"; no state written: "+err.Error(), "; "), false
	}
	older, err := winstate.Find(ctx, plan.Root, time.Time{}, f.Info.AsOf)
	if err == nil {
		for _, path := range older {
			if path == winstate.Path(plan.Root, s.AsOf, s.Stamp) {
				continue
			}
			if old, err := winstate.Read(ctx, path); err == nil && (old.AsOf.After(s.AsOf) || old.AsOf.Equal(s.AsOf) && old.Stamp > s.Stamp) {
				continue // newer than this one
			}
			if err := winstate.Remove(ctx, path); err != nil {
				slog.Warn("batch: an older window state could not be removed", "state", path, "error", err)
			}
		}
	}
	// The marks of runs started before this one's tell nothing any more.
	if marks, err := winstate.Marks(ctx, plan.Root); err == nil {
		for _, m := range marks {
			if m.Started.Before(s.Started) {
				if err := blob.Remove(ctx, m.Path); err != nil {
					slog.Warn("batch: an old run mark could not be removed", "mark", m.Path, "error", err)
				}
			}
		}
	}
	return note, true
}
