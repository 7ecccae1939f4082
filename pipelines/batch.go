// Package pipelines composes io and transforms into lumen's Beam graphs:
// BuildBatch, the daily batch layer, and BuildStream, the speed layer. The
// commands in cmd/ and the tests build the same graphs through these
// functions.
package pipelines

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/apache/beam/sdks/v2/go/pkg/beam"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/register"

	"github.com/lumenhq/lumen/aggregate"
	"github.com/lumenhq/lumen/event"
	"github.com/lumenhq/lumen/io/deadletter"
	"github.com/lumenhq/lumen/io/raw"
	"github.com/lumenhq/lumen/io/winstate"
	"github.com/lumenhq/lumen/transforms"
)

func init() {
	register.Emitter2[aggregate.AppKey, aggregate.Agg]()
	register.Emitter2[string, deadletter.Record]()
	register.Emitter1[KindStats]()
	register.DoFn3x1[context.Context, []byte, func([]byte), error](&sealsFn{})
}

// BuildBatch adds one batch run to s (DESIGN §3 and §7a):
//
//	mark the run's start, load the newest window state (io/winstate) and
//	decide whether it may be trusted; list the window's arrival
//	partitions, raw and rollups (one listing per kind and day each,
//	concurrently) → per partition: nothing where the state holds it
//	unchanged, its rollup where the listing is unchanged since the rollup
//	was written, else its raw files packed into work units → Reshuffle →
//	read (decode, validate and pre-aggregate a unit's files, or read and
//	check rollups) → for raw: group per partition, write its rollup → cut
//	each whole partition to the window (too_old) → merge per (kind, app)
//	by aggregate.CombineFn → add to the state's aggregates of the days not
//	recomputed (read from its shards, shuffled once) and compare with the
//	state per key: the hour and day counts and daily sketches that changed
//	→ store, the rows whose key went → deleted; the new state's shards;
//	dead letters → files; run counters → batch_runs, after every row, and
//	(without a state) after deleting the window's rows that the run did
//	not write (an older stamp's); then the new state's manifest.
//
// Without a trusted state (the first run, --full, or one rejected) every
// row is written: the diff has nothing to compare with.
//
// A partition's whole partial aggregates are the same whether they were
// merged from its raw files or read from its rollup, and every partition
// takes the same path from there (the cut, the merge), so an incremental
// run stores exactly what a full one (cfg.Full) does; and the state is that
// merge of the run before, so extending it gives the same merge again. A rollup is whole
// already, so it is cut where it is read, and is never shuffled.
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
	Counts beam.PCollection // aggregate.CountRow, hour and day: the rows written (all, or those that changed)
	Users  beam.PCollection // aggregate.UserRow: the rows written
	Stats  beam.PCollection // KindStats, one per kind with input, summed over the run
	Dead   beam.PCollection // KV<string, deadletter.Record>, keyed by partition
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
	// The seals are read before anything is listed (the plan takes their
	// output as its input): an hour sealed by then has all its files in
	// the listing.
	seals := beam.ParDo(s, &sealsFn{fileSetup: files, Root: cfg.Input, AsOf: cfg.AsOf}, beam.Impulse(s))
	stamp := cfg.Stamp()
	stateRoot := ""
	if !cfg.NoRollups {
		stateRoot = winstate.Root(cfg.RollupRoot, cfg.Store)
	}
	units, plan, keptStats := beam.ParDo3(s, &planFn{fileSetup: files, Stamp: stamp, Root: cfg.Input, RollupRoot: cfg.RollupRoot,
		First: window.First, Last: window.Last, Grain: cfg.Grain, Full: cfg.Full, NoRollups: cfg.NoRollups, Opts: cfg.Plan,
		StateRoot: stateRoot, Started: cfg.Started, WindowDays: cfg.WindowDays, Precision: cfg.Precision,
		NowMs: cfg.Now.UnixMilli(), MaxFutureMs: cfg.MaxFuture.Milliseconds(), VerifyNew: cfg.Verify == VerifyNew}, seals)
	units = beam.Reshuffle(s, units)
	read := beam.ParDoN(s, &readPartitionsFn{fileSetup: files, Stamp: stamp, Precision: cfg.Precision, Opts: cfg.Read,
		MaxCells: cfg.MaxBundleCells, First: window.First, Last: window.Last}, units)
	dead, parts, fromRollups, rollupStats, rollupParts := read[0], read[1], read[2], read[3], read[4]
	fromRaw, rawStats, rawParts := beam.ParDo3(s, &cutPartitionFn{fileSetup: files, RollupRoot: cfg.RollupRoot, NoRollups: cfg.NoRollups,
		First: window.First, Last: window.Last}, beam.GroupByKey(s, parts))
	// The window state, when the plan uses one: its aggregates to merge
	// with the partitions read, and the rows the store holds, to compare.
	shards := beam.Reshuffle(s, beam.ParDo(s, &expandShardsFn{First: window.First, Last: window.Last}, plan))
	kept, dropped := beam.ParDo2(s, &readShardFn{fileSetup: files}, shards)

	partials := beam.Flatten(s, fromRaw, fromRollups)
	merged := transforms.MergePartials(s, partials, aggregate.CombineFn{Gran: aggregate.Hour, Precision: cfg.Precision})
	rows := diffRows(s, merged, kept, dropped, files, stateRoot, cfg.AsOf, stamp)
	out := BatchOutputs{
		Counts: rows.Counts,
		Users:  rows.Users,
		Stats:  SumStats(s, beam.Flatten(s, rawStats, rollupStats, keptStats, rows.Stats)),
		Dead:   dead,
	}
	counts := WriteCounts(s, cfg.Store, stamp, out.Counts)
	users := WriteUsers(s, cfg.Store, stamp, out.Users)
	deleted := DeleteRows(s, cfg.Store, stamp, rows.DeletedCounts, rows.DeletedUsers)
	deadWritten := WriteDeadLetters(s, deadletter.Dir(cfg.DeadLetterRoot, "batch", cfg.AsOf.Format(time.DateOnly)), cfg.S3, dead)

	RecordRun(s, RunInfo{Store: cfg.Store, AsOf: cfg.AsOf, WindowStart: window.First, WindowDays: cfg.WindowDays, Started: cfg.Started,
		Stamp: stamp, Partial: cfg.Partial(), AllowIncomplete: cfg.AllowIncomplete, Precision: cfg.Precision, Grain: cfg.Grain, S3: cfg.S3},
		RunInputs{Seals: seals, Stats: out.Stats, Counts: counts, Users: users, Deleted: deleted, Dead: deadWritten,
			Plan: plan, Parts: beam.Flatten(s, rawParts, rollupParts), Shards: rows.Shards})
	return out, nil
}

// sealsFn reads which arrival hours of AsOf the archiver has not sealed
// (raw.Sealed), and emits one element: the JSON of a map from kind name to
// a note saying what is missing. A kind with a note has incomplete input,
// and its run does not move the watermark (DESIGN §3).
type sealsFn struct {
	fileSetup
	Root string
	AsOf time.Time
}

func (f *sealsFn) ProcessElement(ctx context.Context, _ []byte, emit func([]byte)) error {
	notes := map[string]string{}
	for _, k := range event.Kinds {
		missing, err := raw.Sealed(ctx, f.Root, k, f.AsOf)
		if err != nil {
			return fmt.Errorf("pipelines: the seals of %s: %w", k, err)
		}
		if len(missing) > 0 {
			notes[k.String()] = fmt.Sprintf("arrival hours %s of %s not sealed by the archiver", hourRanges(missing), f.AsOf.Format(time.DateOnly))
		}
	}
	b, err := json.Marshal(notes)
	if err != nil {
		return err
	}
	emit(b)
	return nil
}

// hourRanges writes ascending hours as ranges: "00-05, 09, 22-23".
func hourRanges(hours []int) string {
	var parts []string
	for i := 0; i < len(hours); {
		j := i
		for j+1 < len(hours) && hours[j+1] == hours[j]+1 {
			j++
		}
		if j == i {
			parts = append(parts, fmt.Sprintf("%02d", hours[i]))
		} else {
			parts = append(parts, fmt.Sprintf("%02d-%02d", hours[i], hours[j]))
		}
		i = j + 1
	}
	return strings.Join(parts, ", ")
}

// runProgress counts one run's read in this process, for the in-process
// runners (direct, prism loopback), where main can show it while the job
// runs. Runs are kept apart by their stamp, so that each day of a backfill
// counts, and is rated, on its own.
type runProgress struct {
	planned, units, filesRead, eventsRead atomic.Int64
}

var (
	progressMu sync.Mutex
	progress   = map[int64]*runProgress{}
)

// progressOf returns the counters of the run stamped stamp.
func progressOf(stamp int64) *runProgress {
	progressMu.Lock()
	defer progressMu.Unlock()
	p := progress[stamp]
	if p == nil {
		p = &runProgress{}
		progress[stamp] = p
	}
	return p
}

// BatchProgress is a snapshot of one run's read in this process.
type BatchProgress struct {
	FilesListed, Units, FilesRead, RecordsRead int64
}

// Progress returns the read progress in this process of the run with
// stamp (BatchConfig.Stamp); zero before its read starts here.
func Progress(stamp int64) BatchProgress {
	p := progressOf(stamp)
	return BatchProgress{FilesListed: p.planned.Load(), Units: p.units.Load(), FilesRead: p.filesRead.Load(), RecordsRead: p.eventsRead.Load()}
}
