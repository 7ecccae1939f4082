// Package pipelines composes io and transforms into lumen's Beam graphs:
// BuildBatch, the daily batch layer, and BuildStream, the speed layer. The
// commands in cmd/ and the tests build the same graphs through these
// functions.
package pipelines

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/apache/beam/sdks/v2/go/pkg/beam"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/register"

	"github.com/lumenhq/lumen/aggregate"
	"github.com/lumenhq/lumen/event"
	"github.com/lumenhq/lumen/io/deadletter"
	"github.com/lumenhq/lumen/io/raw"
	"github.com/lumenhq/lumen/serving"
	"github.com/lumenhq/lumen/transforms"
)

func init() {
	register.DoFn3x1[context.Context, []byte, func(raw.WorkUnit), error](&planFn{})
	register.DoFn5x1[context.Context, raw.WorkUnit, func(string, deadletter.Record), func(KindStats), func(aggregate.AppKey, aggregate.Agg), error](&readAggregateFn{})
	register.Emitter1[raw.WorkUnit]()
	register.Emitter2[aggregate.AppKey, aggregate.Agg]()
	register.Emitter2[string, deadletter.Record]()
	register.Emitter1[KindStats]()
}

// BuildBatch adds one batch run to s (DESIGN §3 and §7a):
//
//	list the window's arrival partitions → pack files into work units →
//	Reshuffle → decode, validate and pre-aggregate per unit → merge partials
//	per (kind, app) → hour and day counts, daily sketches → store;
//	dead letters → files; run counters → batch_runs, after every row.
//
// The graph uses no state, timers, triggers or unbounded SDFs, so it runs on
// the legacy direct runner as well as on prism, Flink, Spark and Dataflow.
func BuildBatch(s beam.Scope, cfg BatchConfig) error {
	_, err := BuildBatchOutputs(s, cfg)
	return err
}

// BatchOutputs are a batch run's rows and counters, as BuildBatch writes
// them; tests assert on them.
type BatchOutputs struct {
	Counts beam.PCollection // aggregate.CountRow, hour and day
	Users  beam.PCollection // aggregate.UserRow
	Stats  beam.PCollection // KindStats, one per kind with input, summed over the run
	Dead   beam.PCollection // KV<string, deadletter.Record>, keyed by work unit
}

// BuildBatchOutputs is BuildBatch, returning the run's outputs.
func BuildBatchOutputs(s beam.Scope, cfg BatchConfig) (BatchOutputs, error) {
	cfg.EnsureDefaults()
	if err := cfg.Validate(); err != nil {
		return BatchOutputs{}, err
	}
	s = s.Scope("pipelines.Batch")
	window := aggregate.NewDayWindow(cfg.AsOf, cfg.WindowDays)

	files := fileSetup{S3: cfg.S3}
	units := beam.ParDo(s, &planFn{fileSetup: files, Root: cfg.Input, First: window.First, Last: window.Last, Opts: cfg.Plan}, beam.Impulse(s))
	units = beam.Reshuffle(s, units)
	dead, stats, partials := beam.ParDo3(s, &readAggregateFn{fileSetup: files,
		First: window.First, Last: window.Last, Precision: cfg.Precision, Opts: cfg.Read,
		MaxCells: cfg.MaxBundleCells,
	}, units)

	merged := transforms.MergePartials(s, partials, aggregate.Combine{Gran: aggregate.Hour, Precision: cfg.Precision})
	out := BatchOutputs{
		Counts: transforms.CountRows(s, merged, aggregate.Hour, aggregate.Day),
		Users:  transforms.UserRows(s, merged),
		Stats:  SumStats(s, stats),
		Dead:   dead,
	}
	counts := WriteCounts(s, cfg.Store, serving.Batch, out.Counts)
	users := WriteUsers(s, cfg.Store, serving.Batch, out.Users)
	deadWritten := WriteDeadLetters(s, deadletter.Dir(cfg.DeadLetterRoot, "batch", cfg.AsOf.Format(time.DateOnly)), cfg.S3, dead)

	RecordRun(s, RunInfo{Store: cfg.Store, AsOf: cfg.AsOf, WindowStart: window.First, Started: cfg.Started},
		out.Stats, counts, users, deadWritten)
	return out, nil
}

// planFn lists the window's raw files and packs them into work units. It
// runs once, on the impulse: listing happens inside the job, so a submitted
// job needs no access to the input from the launcher.
type planFn struct {
	fileSetup
	Root        string
	First, Last time.Time
	Opts        raw.PlanOptions
}

func (f *planFn) ProcessElement(ctx context.Context, _ []byte, emit func(raw.WorkUnit)) error {
	files, err := raw.ListWindow(ctx, f.Root, f.First, f.Last, f.Opts)
	if err != nil {
		// Listing failures are transient or a misconfiguration; either way
		// the run must not succeed on a partial listing. Beam retries the
		// bundle, then fails the job.
		return fmt.Errorf("pipelines: %w", err)
	}
	units := raw.Pack(files, f.Opts)
	planned.Add(int64(len(files)))
	unitsPlanned.Add(int64(len(units)))
	beam.NewCounter("lumen.batch", "files_listed").Inc(ctx, int64(len(files)))
	beam.NewCounter("lumen.batch", "work_units").Inc(ctx, int64(len(units)))
	for _, u := range units {
		emit(u)
	}
	return nil
}

// readAggregateFn reads work units and aggregates them map-side: the hot
// path. Events of every unit in a bundle go into one Partials, drained when
// the bundle finishes (or early, past MaxCells), so only per-(kind, app)
// partials leave it, never single events, and few partials need merging.
type readAggregateFn struct {
	fileSetup
	First, Last time.Time
	Precision   uint8
	Opts        raw.ReadOptions
	MaxCells    int

	partials *aggregate.Partials
	files    [event.HandledException + 1]KindStats
}

func (f *readAggregateFn) StartBundle(_ context.Context, _ func(string, deadletter.Record), _ func(KindStats), _ func(aggregate.AppKey, aggregate.Agg)) error {
	// A failed bundle never reaches FinishBundle: start clean every time.
	f.partials = aggregate.NewPartials(aggregate.DayWindow{First: f.First, Last: f.Last}, aggregate.Hour, f.Precision)
	f.files = [event.HandledException + 1]KindStats{}
	return nil
}

func (f *readAggregateFn) ProcessElement(ctx context.Context, u raw.WorkUnit,
	emitDead func(string, deadletter.Record), emitStats func(KindStats), emitPartial func(aggregate.AppKey, aggregate.Agg)) error {
	sink := &aggregateSink{p: f.partials, unitName: fmt.Sprintf("unit-%05d", u.ID), emitDead: emitDead}
	rs, err := raw.ReadUnit(ctx, u, f.Opts, sink)
	if err != nil {
		return fmt.Errorf("pipelines: work unit %d: %w", u.ID, err)
	}
	for _, sp := range u.Splits {
		f.files[sp.Kind].Bytes += sp.End - sp.Start
		if sp.Start == 0 {
			f.files[sp.Kind].Files++
		}
	}
	for k, dl := range sink.dead {
		for reason, n := range dl {
			if f.files[k].DeadLetters == nil {
				f.files[k].DeadLetters = map[string]int64{}
			}
			f.files[k].DeadLetters[reason] += n
			beam.NewCounter("lumen.batch", "deadletter_"+reason).Inc(ctx, n)
		}
	}
	c := "lumen.batch"
	beam.NewCounter(c, "files_read").Inc(ctx, rs.Files)
	beam.NewCounter(c, "bytes_read").Inc(ctx, rs.Bytes)
	beam.NewCounter(c, "records_read").Inc(ctx, rs.Records)
	filesRead.Add(rs.Files)
	eventsRead.Add(rs.Records)
	if f.partials.Cells() > f.maxCells() {
		f.drain(ctx, emitStats, emitPartial)
	}
	return nil
}

func (f *readAggregateFn) FinishBundle(ctx context.Context, _ func(string, deadletter.Record), emitStats func(KindStats), emitPartial func(aggregate.AppKey, aggregate.Agg)) error {
	f.drain(ctx, emitStats, emitPartial)
	return nil
}

func (f *readAggregateFn) maxCells() int {
	if f.MaxCells > 0 {
		return f.MaxCells
	}
	return 2_000_000
}

// drain emits the partials and stats gathered so far and starts afresh.
func (f *readAggregateFn) drain(ctx context.Context, emitStats func(KindStats), emitPartial func(aggregate.AppKey, aggregate.Agg)) {
	byKind := f.partials.Drain(emitPartial)
	var tot aggregate.Stats
	for _, k := range event.Kinds {
		st := f.files[k]
		st.Kind = k
		st.Placement = byKind[k]
		tot.Add(byKind[k])
		emitStats(st)
	}
	f.files = [event.HandledException + 1]KindStats{}
	c := "lumen.batch"
	beam.NewCounter(c, "events_counted").Inc(ctx, tot.Counted)
	beam.NewCounter(c, "clock_skew").Inc(ctx, tot.ClockSkew)
	beam.NewCounter(c, "too_old").Inc(ctx, tot.TooOld)
	beam.NewCounter(c, "after_window").Inc(ctx, tot.AfterWindow)
}

// aggregateSink feeds a unit's events into Partials and keys its dead
// letters by unit, so each unit's dead letters land in one file.
type aggregateSink struct {
	p        *aggregate.Partials
	unitName string
	emitDead func(string, deadletter.Record)
	dead     map[event.Kind]map[string]int64
}

func (s *aggregateSink) Events(evs []event.Event) {
	for i := range evs {
		s.p.Add(&evs[i])
	}
}

func (s *aggregateSink) DeadLetter(r deadletter.Record) {
	k, _, _ := raw.ParsePath(r.Source)
	if s.dead == nil {
		s.dead = map[event.Kind]map[string]int64{}
	}
	if s.dead[k] == nil {
		s.dead[k] = map[string]int64{}
	}
	s.dead[k][r.Reason]++
	s.emitDead(s.unitName, r)
}

// Progress counters for the in-process runners (direct, prism loopback),
// where main can show them while the job runs.
var planned, unitsPlanned, filesRead, eventsRead atomic.Int64

// BatchProgress is a snapshot of the batch read in this process.
type BatchProgress struct {
	FilesListed, Units, FilesRead, RecordsRead int64
}

// Progress returns the batch read's progress in this process.
func Progress() BatchProgress {
	return BatchProgress{FilesListed: planned.Load(), Units: unitsPlanned.Load(), FilesRead: filesRead.Load(), RecordsRead: eventsRead.Load()}
}
