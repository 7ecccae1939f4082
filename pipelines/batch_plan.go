package pipelines

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/apache/beam/sdks/v2/go/pkg/beam"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/register"
	"golang.org/x/sync/errgroup"

	"github.com/lumenhq/lumen/io/blob"
	"github.com/lumenhq/lumen/io/raw"
	"github.com/lumenhq/lumen/io/rollup"
)

func init() {
	register.DoFn3x1[context.Context, []byte, func(batchUnit), error](&planFn{})
	register.Emitter1[batchUnit]()
}

// batchUnit is a work unit of the batch read: some or all raw files of one
// arrival partition, or several partitions to take from their rollups.
type batchUnit struct {
	ID int
	// A raw unit: files (or splits of them) of one partition, with the
	// partition's whole manifest, and its rollup files that the new one
	// will replace.
	Partition string // raw.Partition.String()
	Splits    []raw.FileSplit
	Manifest  rollup.Manifest
	Stale     []string
	// A rollup unit.
	Rollups []rollupTask
}

// rollupTask is a partition whose listing matches an existing rollup's
// name. The rollup is still checked when it is read; the partition's files
// come along, to be read instead if it cannot be used.
type rollupTask struct {
	Partition string
	Path      string
	Manifest  rollup.Manifest
	Files     []raw.FileSplit
	Stale     []string // none: the rollup was found by its name
}

// rollupsPerUnit is how many rollups one unit reads (concurrently): a
// day's worth of hourly ones.
const rollupsPerUnit = 24

// planFn lists the window's raw partitions and plans the read: a
// partition whose raw listing still matches its rollup is taken from the
// rollup, any other (new, changed, or without a rollup) is read from its
// raw files. A rollup is named by the hash of its manifest, so whether a
// partition's listing matches one is a stat of one name (a HEAD on S3),
// not a listing of the rollups: those are listed only for the kinds and
// days with a partition read from raw, to find the rollups its new one
// replaces. It runs once, on the impulse: listing happens inside the job,
// so a submitted job needs no access to the input from the launcher.
type planFn struct {
	fileSetup
	Root, RollupRoot string
	First, Last      time.Time
	Grain            raw.Grain
	Full, NoRollups  bool
	Opts             raw.PlanOptions
}

func (f *planFn) ProcessElement(ctx context.Context, _ []byte, emit func(batchUnit)) error {
	files, err := raw.ListWindow(ctx, f.Root, f.First, f.Last, f.Opts)
	if err != nil {
		// Listing failures are transient or a misconfiguration; either way
		// the run must not succeed on a partial listing. Beam retries the
		// bundle, then fails the job.
		return fmt.Errorf("pipelines: %w", err)
	}
	byPart := map[raw.Partition][]raw.FileSplit{}
	for _, fs := range files {
		p, err := raw.PartitionOf(fs.Path, f.Grain)
		if err != nil {
			return fmt.Errorf("pipelines: %w", err)
		}
		byPart[p] = append(byPart[p], fs)
	}
	parts := make([]raw.Partition, 0, len(byPart))
	for p := range byPart {
		parts = append(parts, p)
	}
	slices.SortFunc(parts, raw.Partition.Compare)
	manifests := make([]rollup.Manifest, len(parts))
	found := make([]bool, len(parts))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(max(1, f.Opts.ListConcurrency))
	for i, p := range parts {
		manifests[i] = rollup.NewManifest(byPart[p])
		if f.Full || f.NoRollups {
			continue
		}
		g.Go(func() (err error) {
			found[i], err = blob.Exists(gctx, rollup.Path(f.RollupRoot, p, manifests[i]))
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return fmt.Errorf("pipelines: looking for rollups: %w", err)
	}

	// The rollups that partitions read from raw will replace: one LIST
	// per kind and day that has such a partition.
	var days []raw.Partition
	listed := map[string]bool{}
	for i, p := range parts {
		day := raw.Partition{Kind: p.Kind, Day: p.Day, Hour: -1}
		if !found[i] && !f.NoRollups && !listed[day.String()] {
			listed[day.String()] = true
			days = append(days, day)
		}
	}
	existing, err := rollup.ListDays(ctx, f.RollupRoot, days, f.Opts.ListConcurrency)
	if err != nil {
		return fmt.Errorf("pipelines: %w", err)
	}

	var units []batchUnit
	var tasks []rollupTask
	fromRaw := 0
	for i, p := range parts {
		m := manifests[i]
		want := rollup.Path(f.RollupRoot, p, m)
		if found[i] {
			tasks = append(tasks, rollupTask{Partition: p.String(), Path: want, Manifest: m, Files: byPart[p]})
			continue
		}
		var stale []string
		for _, path := range existing[p] {
			if path != want {
				stale = append(stale, path)
			}
		}
		fromRaw++
		// A partition is packed on its own, so its aggregates stay apart:
		// usually one unit, more if it is larger than a unit.
		opts := f.Opts
		opts.Parallelism = 1
		for _, u := range raw.Pack(byPart[p], opts) {
			units = append(units, batchUnit{Partition: p.String(), Splits: u.Splits, Manifest: m, Stale: stale})
		}
	}
	for lo := 0; lo < len(tasks); lo += rollupsPerUnit {
		units = append(units, batchUnit{Rollups: tasks[lo:min(lo+rollupsPerUnit, len(tasks))]})
	}
	planned.Add(int64(len(files)))
	unitsPlanned.Add(int64(len(units)))
	c := "lumen.batch"
	beam.NewCounter(c, "files_listed").Inc(ctx, int64(len(files)))
	beam.NewCounter(c, "work_units").Inc(ctx, int64(len(units)))
	beam.NewCounter(c, "partitions_planned_from_raw").Inc(ctx, int64(fromRaw))
	beam.NewCounter(c, "partitions_planned_from_rollups").Inc(ctx, int64(len(tasks)))
	for i := range units {
		units[i].ID = i
		emit(units[i])
	}
	return nil
}
